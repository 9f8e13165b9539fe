"""``scorelid.runtime.points``: chunked reads equal the whole array, one-pass checks and fingerprint."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scorelid.runtime.distributed import run_chunked
from scorelid.runtime.guards import check_points_finite
from scorelid.runtime.io import load_points
from scorelid.runtime.points import open_points
from scorelid.runtime.resume import fingerprint


def _x(num=53, n=6, seed=0):
    return np.random.default_rng(seed).standard_normal((num, n)).astype(np.float32)


def _write(x, path, row_group_size=10):
    if path.suffix == ".npy":
        np.save(path, x)
    elif path.suffix == ".parquet":
        pd.DataFrame(x, columns=[f"c{i}" for i in range(x.shape[1])]).to_parquet(
            path, index=False, row_group_size=row_group_size)
    elif path.suffix == ".npz":
        np.savez(path, x=x)
    else:
        np.savetxt(path, x, delimiter=",")
    return path


@pytest.mark.parametrize("suffix", [".npy", ".parquet", ".npz", ".csv"])
def test_reads_in_any_order_equal_the_whole_array(tmp_path, suffix):
    path = _write(_x(), tmp_path / f"x{suffix}")
    whole = load_points(path)
    src = open_points(path)
    assert len(src) == 53 and src.shape == (6,) and src.full_shape == whole.shape
    for start, stop in [(0, 7), (7, 14), (50, 60), (3, 4), (0, 53), (12, 41), (41, 53), (0, 1)]:
        got = src.read(start, stop)  # forward, backward and past the end
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, whole[start:stop])
    assert src.read(60, 70).shape == (0, 6)
    assert src.scan() == fingerprint(whole)  # the same value as hashing the whole array


def test_parquet_keeps_the_columns_pandas_keeps(tmp_path):
    x = _x(20, 3)
    df = pd.DataFrame({"a": x[:, 0], "label": ["p"] * 20, "b": np.arange(20), "flag": [True] * 20,
                       "c": x[:, 2].astype(np.float64)}, index=np.arange(100, 120))
    path = tmp_path / "x.parquet"
    df.to_parquet(path, row_group_size=6)  # the index is stored as a column: not a point coordinate
    whole = load_points(path)
    assert whole.shape == (20, 3)
    src = open_points(path)
    np.testing.assert_array_equal(src.read(0, 20), whole)
    np.testing.assert_array_equal(src.read(5, 13), whole[5:13])


def test_parquet_integer_column_with_nulls_becomes_nan(tmp_path):
    table = pa.table({"a": pa.array([1, None, 3], pa.int64()), "b": pa.array([0.5, 1.5, 2.5])})
    path = tmp_path / "x.parquet"
    pq.write_table(table, path)
    np.testing.assert_array_equal(open_points(path).read(0, 3), load_points(path))


def test_fortran_ordered_npy(tmp_path):
    x = np.asfortranarray(_x(30, 5).astype(np.float64))
    path = tmp_path / "f.npy"
    np.save(path, x)
    np.testing.assert_array_equal(open_points(path).read(4, 19), x[4:19].astype(np.float32))


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_scan_names_the_first_bad_row_like_the_whole_array_check(tmp_path, suffix, monkeypatch):
    import scorelid.runtime.points as points

    x = _x(40, 4)
    for row, col, value in [(9, 1, np.nan), (21, 0, np.inf), (22, 3, -np.inf), (30, 2, np.nan),
                            (33, 0, np.nan),
                            (39, 1, np.inf)]:
        x[row, col] = value
    path = _write(x, tmp_path / f"x{suffix}", row_group_size=8)
    monkeypatch.setattr(points, "BLOCK_BYTES", 4 * 4 * 7)  # blocks of 7 rows: bad rows in several
    with pytest.raises(ValueError) as whole:
        check_points_finite(x, "data")
    with pytest.raises(ValueError) as streamed:
        open_points(path).scan("data")
    assert str(streamed.value) == str(whole.value)
    assert str(streamed.value) == ("data: row 9 has NaN or inf values "
                                   "(6 rows in all, e.g. [9, 21, 22, 30, 33])")


def test_fingerprint_sees_a_changed_value(tmp_path):
    x = _x()
    a = open_points(_write(x, tmp_path / "a.npy")).scan()
    x[40, 3] += 1e-3
    assert open_points(_write(x, tmp_path / "b.npy")).scan() != a


@pytest.mark.parametrize("case,message", [
    ("missing", "data file not found"), ("garbage", "cannot read data"), ("truncated", "cannot read data"),
    ("strings", "data must be numeric"), ("one_d", "data must be 2-D"), ("empty", "data is empty"),
    ("objects", "data must be numeric"), ("bad_parquet", "cannot read data"),
    ("txt", "unsupported data format"),
])
def test_bad_files_fail_as_load_points_does(tmp_path, case, message):
    path = tmp_path / "x.npy"
    if case == "garbage":
        path.write_bytes(b"\x93NUMPY garbage")
    elif case == "truncated":
        np.save(path, _x())
        path.write_bytes(path.read_bytes()[:-37])
    elif case == "strings":
        np.save(path, np.array([["a", "b"]] * 3))
    elif case == "one_d":
        np.save(path, np.zeros(5, np.float32))
    elif case == "empty":
        np.save(path, np.zeros((0, 4), np.float32))
    elif case == "objects":
        np.save(path, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    elif case == "bad_parquet":
        path = tmp_path / "x.parquet"
        path.write_bytes(b"not parquet at all")
    elif case == "txt":
        path = tmp_path / "x.txt"
        path.write_text("1,2\n")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        open_points(path)


def test_sink_gets_every_chunk_once_in_order_after_an_interruption(tmp_path):
    x = _x(50, 3)
    calls = []

    def compute(sl):
        calls.append(sl.start)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return x[sl].sum(1)

    seen = []
    with pytest.raises(RuntimeError, match="killed"):
        run_chunked(compute, 50, tmp_path / "p", {"j": 1}, chunk=8, progress=False,
                    sink=lambda s, r: seen.append((s, r)))
    assert [s for s, _ in seen] == [0, 8]  # streamed as they finished
    seen.clear()
    assert run_chunked(compute, 50, tmp_path / "p", {"j": 1}, chunk=8, progress=False,
                       sink=lambda s, r: seen.append((s, r))) is None
    assert [s for s, _ in seen] == list(range(0, 50, 8))
    np.testing.assert_array_equal(np.concatenate([r for _, r in seen]), x.sum(1))
