"""Points read a chunk at a time: memory that does not grow with the number of points.

``open_points(path)`` returns a ``PointSource`` that knows the number of points and the shape of
one point without reading the data, and reads any range of rows as float32 on demand:

* ``.npy``: read by file offset (``np.fromfile``), a chunk at a time, so no page of the file stays
  mapped into the process and the resident memory is one chunk's, whatever the file's size
  (a Fortran-ordered array is read through a fresh memory map per chunk);
* ``.parquet``: ``pyarrow.parquet.ParquetFile.iter_batches`` over the numeric columns (those
  ``pandas.read_parquet(...).select_dtypes("number")`` keeps), from the row group that holds the
  first row asked for; reading forward (as chunked runs do) never restarts.  Memory is bounded by
  the largest **row group**, not by the file: pyarrow holds a dictionary-encoded column chunk
  (pandas' and pyarrow's default encoding) whole while reading it, and their default row group
  is up to 1Mi rows, so write large files with ``row_group_size=65536`` (or so) for flat memory;
* ``.npz`` and ``.csv``: loaded whole by ``scorelid.runtime.io.load_points`` (neither format can
  be read by rows cheaply) and sliced.

``PointSource.scan(where)`` reads every point once, in blocks: it checks that they are finite (a
``ValueError`` naming the first bad row, as ``scorelid.runtime.guards.check_points_finite``) and
returns a content fingerprint of the float32 data computed block by block, equal to
``scorelid.runtime.resume.fingerprint`` of the whole float32 array.

The same errors as ``load_points``: ``FileNotFoundError`` for a missing file, ``ValueError``
starting with the path for anything unreadable, non-numeric, not at least 2-D, or empty.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from scorelid.runtime.io import POINT_SUFFIXES, load_points

__all__ = ["PointSource", "open_points"]

#: Bytes per block read by ``scan`` and per parquet batch (a few MB: flat memory, few calls).
BLOCK_BYTES = 1 << 23


class PointSource:
    """Rows ``[start, stop)`` of a point file on demand; ``len(source)`` points of ``shape`` each."""

    def __init__(self, path: Path, num: int, shape: tuple[int, ...]) -> None:
        self.path = path
        self.num = int(num)
        self.shape = tuple(int(s) for s in shape)

    def __len__(self) -> int:
        return self.num

    @property
    def full_shape(self) -> tuple[int, ...]:
        """``(N, *shape)``: the shape ``load_points`` would return."""
        return (self.num, *self.shape)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Points ``start..stop-1`` as a new C-contiguous float32 array ``[stop - start, *shape]``."""
        start, stop = max(0, int(start)), min(self.num, int(stop))
        if start >= stop:
            return np.empty((0, *self.shape), dtype=np.float32)
        return self._read(start, stop)

    def _read(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def block_rows(self) -> int:
        """Rows per block of ``blocks`` and ``scan``: about ``BLOCK_BYTES`` of float32."""
        return max(1, BLOCK_BYTES // (4 * max(1, int(np.prod(self.shape)))))

    def blocks(self, rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, points)`` for consecutive blocks of ``rows`` points covering all, in order."""
        rows = rows or self.block_rows()
        for s in range(0, self.num, rows):
            yield s, self.read(s, s + rows)

    def scan(self, where: str | None = None) -> str:
        """Read every point once: ``ValueError`` naming ``where`` (default: the path) and the first
        row with NaN or inf values; else the data's fingerprint (16 hex digits of SHA-256 of the
        float32 bytes in row order, the same as ``fingerprint`` of the whole array)."""
        digest = hashlib.sha256()
        bad: list[int] = []
        count = 0
        for s, x in self.blocks():
            rows = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(1))
            if len(rows):
                count += len(rows)
                bad.extend((rows[: 5 - len(bad)] + s).tolist() if len(bad) < 5 else [])
            digest.update(np.ascontiguousarray(x).data)
        if count:
            more = f" ({count} rows in all, e.g. {bad[:5]})" if count > 1 else ""
            raise ValueError(f"{where or self.path}: row {bad[0]} has NaN or inf values{more}")
        return digest.hexdigest()[:16]


class _ArraySource(PointSource):
    """An array already in memory (``.npz``, ``.csv``)."""

    def __init__(self, path: Path, x: np.ndarray) -> None:
        super().__init__(path, len(x), x.shape[1:])
        self._x = x

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.array(self._x[start:stop], dtype=np.float32, order="C")


class _NpySource(PointSource):
    """A ``.npy`` file read by offset: nothing of it stays in memory between reads."""

    def __init__(self, path: Path) -> None:
        try:
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                else:  # (3, 0) (a utf-8 header: no public reader) or not a version at all
                    shape, fortran, dtype = None, False, None
                offset = fh.tell()
            if shape is None:  # numpy's loader reads the header, or names what is wrong
                mapped = np.load(path, mmap_mode="r", allow_pickle=False)
                shape, dtype, offset = mapped.shape, mapped.dtype, mapped.offset
                fortran = mapped.flags.f_contiguous and not mapped.flags.c_contiguous
                del mapped
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path}: cannot read data ({exc})") from exc
        dtype = np.dtype(dtype)
        if dtype.hasobject or dtype.kind not in "fiub":
            raise ValueError(f"{path}: data must be numeric, got dtype {dtype}")
        _check_shape(path, shape)
        need = offset + int(np.prod(shape)) * dtype.itemsize
        size = path.stat().st_size
        if size < need:
            raise ValueError(f"{path}: cannot read data (file is truncated: {size} bytes, the header "
                             f"promises {need})")
        super().__init__(path, shape[0], shape[1:])
        self._dtype, self._offset, self._fortran = dtype, offset, bool(fortran) and len(shape) > 1
        self._row = int(np.prod(shape[1:]))

    def _read(self, start: int, stop: int) -> np.ndarray:
        if self._fortran:  # rows are strided: a memory map made for this read alone
            full = np.memmap(self.path, dtype=self._dtype, mode="r", offset=self._offset,
                             shape=self.full_shape, order="F")
            try:
                return np.array(full[start:stop], dtype=np.float32, order="C")
            finally:
                del full
        count = (stop - start) * self._row
        x = np.fromfile(self.path, dtype=self._dtype, count=count,
                        offset=self._offset + start * self._row * self._dtype.itemsize)
        if x.size != count:
            raise ValueError(f"{self.path}: cannot read data (rows {start}..{stop - 1} are cut short)")
        return x.reshape(stop - start, *self.shape).astype(np.float32, copy=False)


class _ParquetSource(PointSource):
    """A ``.parquet`` file's numeric columns, read forward in record batches."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            # unbuffered reads hold one page per column; pre-buffering would hold whole column chunks
            self._file = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 16)
            schema = self._file.schema_arrow
        except (ValueError, OSError, pa.ArrowException) as exc:
            raise ValueError(f"{path}: cannot read data ({exc})") from exc
        meta = schema.pandas_metadata or {}
        index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
        self._columns = [f.name for f in schema if f.name not in index
                         and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))]
        num = self._file.metadata.num_rows
        _check_shape(path, (num, len(self._columns)))
        super().__init__(path, num, (len(self._columns),))
        self._rows = [self._file.metadata.row_group(i).num_rows for i in range(self._file.num_row_groups)]
        self._it: Iterator[tuple[int, np.ndarray]] | None = None
        self._buf_start, self._buf = 0, np.empty((0, *self.shape), dtype=np.float32)

    def _batches_from(self, start: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, points)`` of record batches, from the row group holding row ``start``."""
        first, row0 = 0, 0
        while row0 + self._rows[first] <= start:
            row0 += self._rows[first]
            first += 1
        batches = self._file.iter_batches(batch_size=self.block_rows(), columns=self._columns,
                                          row_groups=range(first, len(self._rows)), use_pandas_metadata=False,
                                          use_threads=False)
        for batch in batches:
            # column by column, promoted as pandas' to_numpy() does (ints with nulls become floats)
            cols = [batch.column(i).to_numpy(zero_copy_only=False) for i in range(batch.num_columns)]
            x = np.column_stack(cols).astype(np.float32, copy=False)
            yield row0, np.ascontiguousarray(x)
            row0 += len(x)

    def _read(self, start: int, stop: int) -> np.ndarray:
        if self._it is None or start < self._buf_start:  # first read, or a step back: start over
            self._it = self._batches_from(start)
            self._buf_start, self._buf = 0, self._buf[:0]
        out, s = [], start
        while True:
            end = self._buf_start + len(self._buf)
            if end > s:
                out.append(self._buf[s - self._buf_start: stop - self._buf_start])
                if end >= stop:
                    break
                s = end
            try:
                self._buf_start, self._buf = next(self._it)
            except StopIteration:
                self._it = None
                raise ValueError(f"{self.path}: cannot read data (rows from {s} on are missing)") from None
        return out[0].copy() if len(out) == 1 else np.concatenate(out)


def open_points(path: str | os.PathLike, key: str | None = None) -> PointSource:
    """A ``PointSource`` for a ``.npy``, ``.parquet``, ``.npz`` (array ``key``) or ``.csv`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _NpySource(path)
    if suffix == ".parquet":
        return _ParquetSource(path)
    if suffix not in POINT_SUFFIXES:
        raise ValueError(f"{path}: unsupported data format {suffix!r}; use one of {POINT_SUFFIXES}")
    return _ArraySource(path, load_points(path, key=key))


def _check_shape(path: Path, shape: tuple[int, ...]) -> None:
    """The checks ``load_points`` makes on the shape: at least 2-D and not empty."""
    if len(shape) < 2:
        raise ValueError(f"{path}: data must be 2-D [N, n] (or [N, *shape]), got shape {tuple(shape)}")
    if int(np.prod(shape)) == 0:
        raise ValueError(f"{path}: data is empty (shape {tuple(shape)})")
