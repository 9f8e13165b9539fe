"""Images in, LID out: load, crop/resize, VAE-encode, estimate per image, stream results, resume.

Output design (resumable, never half-written):

* ``<out>.partial/run.json``: the settings of the run (model, methods, sigmas, precision, seed,
  the image list's hash); a rerun with other settings is refused instead of mixing results.
* ``<out>.partial/chunk-<first>-<last>.csv``: one file per batch of images, written atomically
  after the batch is done (rows for every method and sigma), plus ``skipped-<first>-<last>.json``
  for images that could not be read.  A killed run loses at most the batch in flight.
* On completion all chunks are merged, sorted by ``(index, method, sigma)``, written atomically to
  ``<out>`` (``.parquet`` or ``.csv``), and the partial folder is removed.

Image ``i`` (its position in the sorted list of found files) draws its noise from
``(seed, i)``, so results do not depend on where a run was interrupted (``scorelid.estimate`` pads
every chunk to a fixed shape, so they do not depend on the batch's other images either).

Under ``torchrun`` (``info`` from :func:`scorelid.runtime.distributed.init_distributed`) the images are cut
into the same fixed batches ``[b * batch_size, (b + 1) * batch_size)`` whatever the number of
processes, and batch ``b`` goes to rank ``b mod world_size``.  Every rank writes its finished
batches into the shared ``<out>.partial/`` (so a killed run resumes per shard, with the same or
another number of processes); rank 0 checks the settings before anyone starts and merges the
chunks into ``<out>`` once every rank has reported success.  A failing rank makes every rank raise
:class:`scorelid.runtime.distributed.RankFailure` naming it, and ``<out>`` is not written.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from scorelid.estimators import estimate
from scorelid.runtime.distributed import DistInfo, all_ok
from scorelid.runtime.io import atomic_path, atomic_write_json, atomic_write_text, refuse_overwrite
from scorelid.runtime.resume import claim

__all__ = [
    "COLUMNS", "IMAGE_SUFFIXES", "ImageRun", "find_images", "load_image", "read_captions", "run_images",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm")
COLUMNS = [
    "path", "index", "method", "sigma", "sigma_used", "timestep", "lid", "dtype", "quant",
    "n_noise", "trace", "seconds_per_image", "peak_mem_mib", "family", "prompt", "guidance",
]


def find_images(spec: str | os.PathLike) -> list[Path]:
    """Image files of a directory (recursive, by suffix) or a glob pattern, sorted by path."""
    spec = str(spec)
    p = Path(spec)
    if p.is_dir():
        files = [f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    elif p.is_file():
        files = [p]
    else:
        files = [Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file()]
        if not files and not any(c in spec for c in "*?["):
            raise FileNotFoundError(f"images not found: {spec}")
    if not files:
        raise FileNotFoundError(f"no image files in {spec} (suffixes {', '.join(IMAGE_SUFFIXES)})")
    return sorted(files)


def load_image(path: str | os.PathLike, size: int) -> Tensor:
    """RGB image, center-cropped to a square and resized to ``size``: ``[3, size, size]`` in ``[-1, 1]``.

    Raises ``ValueError`` naming the file when it cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side))
            if side != size:
                im = im.resize((size, size), Image.Resampling.BICUBIC)
            arr = np.asarray(im, dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1


class ImageRun:
    """Settings of one ``images`` run (see :func:`run_images`)."""

    def __init__(
        self,
        methods: Sequence[str] = ("dsm", "flipd"),
        sigmas: Sequence[float] = (0.05,),
        n_noise: int = 8,
        seed: int = 0,
        batch_size: int = 4,
        max_rows: int = 16,
        trace: str = "hutchinson",
        n_probes: int = 8,
        ad: str = "auto",
    ) -> None:
        if not methods:
            raise ValueError("no methods given")
        if not sigmas or any(not (s > 0 and math.isfinite(s)) for s in sigmas):
            raise ValueError(f"sigmas must be positive numbers, got {list(sigmas)}")
        if batch_size < 1 or max_rows < 1 or n_noise < 1:
            raise ValueError("batch_size, max_rows and n_noise must be >= 1")
        self.methods, self.sigmas = list(methods), [float(s) for s in sigmas]
        self.n_noise, self.seed, self.batch_size, self.max_rows = n_noise, seed, batch_size, max_rows
        self.trace, self.n_probes, self.ad = trace, n_probes, ad

    def options(self, method: str) -> dict:
        if method in ("flipd", "ism"):
            return {"trace": self.trace, "n_probes": self.n_probes, "ad": self.ad}
        return {}


def _partial_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def read_captions(file: str | os.PathLike, paths: Sequence[Path]) -> list[str]:
    """The caption of each image in ``paths`` from a csv/parquet ``file`` with columns path and caption.

    The path column (``path``, ``image``, ``file`` or ``file_name``) may hold the full path, a path
    relative to the captions file, or a file name (when unique); the caption column is ``caption``,
    ``text`` or ``prompt``.  Every image must have a caption.
    """
    import pandas as pd

    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"captions file not found: {file}")
    parquet = file.suffix.lower() == ".parquet"
    df = pd.read_parquet(file) if parquet else pd.read_csv(file, keep_default_na=False, dtype=str)
    pcol = next((c for c in ("path", "image", "file", "file_name") if c in df.columns), None)
    ccol = next((c for c in ("caption", "text", "prompt") if c in df.columns), None)
    if pcol is None or ccol is None:
        raise ValueError(f"{file}: needs a path column (path/image/file/file_name) and a caption column "
                         f"(caption/text/prompt); found {list(df.columns)}")
    by_path, by_name = {}, {}
    for p, c in zip(df[pcol].astype(str), df[ccol].fillna("").astype(str), strict=True):
        q = Path(p) if Path(p).is_absolute() else file.parent / p
        by_path[os.path.normpath(q.resolve())] = c
        by_name.setdefault(Path(p).name, []).append(c)
    out = []
    for path in paths:
        key = os.path.normpath(Path(path).resolve())
        if key in by_path:
            out.append(by_path[key])
        elif len(by_name.get(Path(path).name, [])) == 1:
            out.append(by_name[Path(path).name][0])
        else:
            raise ValueError(f"{file}: no caption for image {path}")
    return out


def _settings(model, run: ImageRun, paths: list[Path], prompts: list[str]) -> dict:
    names = "\n".join(str(p) for p in paths).encode()
    return {
        "conditioning_sha256": hashlib.sha256(json.dumps(prompts).encode()).hexdigest(),
        "prompt": prompts[0] if len(set(prompts)) == 1 else None,
        "guidance": getattr(model, "guidance", None), "revision": getattr(model, "revision", None),
        "model": str(Path(model.path).resolve()), "family": model.family, "dtype": model.dtype,
        "quant": model.quant, "image_size": model.image_size, "methods": run.methods,
        "sigmas": run.sigmas, "n_noise": run.n_noise, "seed": run.seed, "trace": run.trace,
        "n_probes": run.n_probes, "below_range": model.denoiser.below_range,
        "snap": getattr(model.denoiser, "snap", False), "n_images": len(paths),
        "images_sha256": hashlib.sha256(names).hexdigest(),
    }


def _done(partial: Path) -> set[int]:
    done: set[int] = set()
    for f in partial.glob("chunk-*.csv"):
        a, b = f.stem.split("-")[1:3]
        done.update(range(int(a), int(b) + 1))
    return done


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float:
    """Peak allocated CUDA memory since the last reset (MiB); NaN on CPU (see benchmarks/sd_memory.py)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    return float("nan")


def run_images(
    model,
    images: str | os.PathLike | Sequence[Path],
    out: str | os.PathLike,
    run: ImageRun | None = None,
    force: bool = False,
    progress: bool = True,
    log=None,
    info: DistInfo | None = None,
    prompts: str | Sequence[str] = "",
):
    """Per-image LID of ``images`` under ``model`` (a ``LoadedModel``); returns the result table.

    Writes ``out`` (``.parquet`` or ``.csv``) with one row per (image, method, sigma): the
    columns of ``COLUMNS``.  Resumes from ``<out>.partial/`` when it exists with the same settings.
    Unreadable images are reported on ``log`` (default stderr) and skipped.

    Args:
        force: overwrite a finished ``out`` and discard a partial run with other settings
            (without it both are refused: ``FileExistsError`` / ``ValueError``).  A partial run
            with the same settings is always resumed.
        info: this process's place among torchrun's processes (default: a single process); every
            rank must call ``run_images`` with the same arguments.
        prompts: the conditioning prompt of every image (one string) or of each image (a list
            aligned with the sorted images; see :func:`read_captions`).  No classifier-free
            guidance: the network is conditioned on the prompt alone.  Recorded per row.

    Returns:
        The table (a ``pandas.DataFrame``) on rank 0, ``None`` on the other ranks.
    """
    run = run or ImageRun()
    info = info or DistInfo()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"output must end in .parquet or .csv, got {out.name}")
    paths = list(images) if isinstance(images, list | tuple) else find_images(images)
    prompts = [prompts] * len(paths) if isinstance(prompts, str) else [str(p) for p in prompts]
    if len(prompts) != len(paths):
        raise ValueError(f"{len(prompts)} prompts for {len(paths)} images")
    levels = {s: model.denoiser.resolve(s) for s in run.sigmas}  # raises for out-of-range sigma
    partial = _partial_dir(out)
    error: BaseException | None = None
    try:
        if info.is_main:
            _prepare(out, partial, _settings(model, run, paths, prompts), force)
    except Exception as exc:  # reported to every rank
        error = exc
    all_ok(info, error)

    done = _done(partial)
    n = len(paths)
    batches = [range(s, min(s + run.batch_size, n)) for s in range(0, n, run.batch_size)]
    mine = [b for k, b in enumerate(batches) if k % info.world_size == info.rank]
    todo = [[i for i in b if i not in done] for b in mine]
    todo = [b for b in todo if b]
    if done and info.is_main:
        log(f"resuming: {len(done)} of {n} images already done")
    device = model.codec.device
    n_mine = sum(len(b) for b in mine)
    bar = tqdm(total=n_mine, initial=n_mine - sum(len(b) for b in todo), unit="img",
               disable=not (progress and info.is_main))
    try:
        with bar:
            for batch in todo:
                rows, skipped = _run_batch(model, paths, prompts, batch, run, levels, device, log)
                tag = f"{batch[0]:08d}-{batch[-1]:08d}"
                if skipped:
                    atomic_write_json(partial / f"skipped-{tag}.json", skipped)
                _write_chunk(partial / f"chunk-{tag}.csv", rows)
                bar.update(len(batch))
    except Exception as exc:  # reported to every rank; the finished batches stay for a rerun
        error = exc
    all_ok(info, error)
    df = None
    try:
        if info.is_main:
            df = _finish(out, partial, log)
    except Exception as exc:
        error = exc
    all_ok(info, error)  # every rank returns once the output exists (or every rank raises)
    return df


def _prepare(out: Path, partial: Path, settings: dict, force: bool) -> None:
    """Refuse a finished output (unless ``force``), check or start ``partial``'s settings."""
    refuse_overwrite(out, force)
    claim(partial, settings, force=force)


def _write_chunk(path: Path, rows: list[list]) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=COLUMNS)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _run_batch(model, paths, prompts, batch, run, levels, device, log):
    imgs, keep, skipped = [], [], {}
    for i in batch:
        try:
            imgs.append(load_image(paths[i], model.image_size))
            keep.append(i)
        except ValueError as exc:
            skipped[str(paths[i])] = str(exc)
            log(f"skipping unreadable image {paths[i]}: {exc}")
    rows: list[list] = []
    if not keep:
        return rows, skipped
    latents = model.codec.encode(torch.stack(imgs))
    guidance = getattr(model, "guidance", None)
    guidance = float("nan") if guidance is None else float(guidance)
    # images of one prompt share a conditioning; noise depends on (seed, index) only, so grouping
    # does not change any image's result
    groups: dict[str, list[int]] = {}
    for j, i in enumerate(keep):
        groups.setdefault(prompts[i], []).append(j)
    for prompt, js in groups.items():
        if hasattr(model, "use_prompt"):
            model.use_prompt(prompt)
        sel = torch.tensor(js)
        idx = torch.tensor([keep[j] for j in js])
        for sigma, level in levels.items():
            for method in run.methods:
                _peak_reset(device)
                t0 = time.perf_counter()
                lid = estimate(
                    model.denoiser, latents[sel], method, level.sigma_used, n_noise=run.n_noise,
                    seed=run.seed, batch_size=run.max_rows, indices=idx, **run.options(method),
                )
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                sec = (time.perf_counter() - t0) / len(js)
                peak = _peak_mib(device)
                trace = run.trace if method in ("flipd", "ism") else ""
                for k, j in enumerate(js):
                    i = keep[j]
                    rows.append([
                        str(paths[i]), i, method, sigma, level.sigma_used, level.timestep,
                        float(lid[k]), model.dtype, model.quant, run.n_noise if method != "flipd" else 0,
                        trace, sec, peak, model.family, prompt, guidance,
                    ])
    return rows, skipped


def _finish(out: Path, partial: Path, log):
    import pandas as pd

    chunks = sorted(partial.glob("chunk-*.csv"))
    frames = [pd.read_csv(f, keep_default_na=False, na_values=[""]) for f in chunks]
    frames = [f for f in frames if len(f)]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    df["trace"] = df["trace"].fillna("").astype(str)
    df["prompt"] = df["prompt"].fillna("").astype(str)
    df = df.sort_values(["index", "sigma", "method"], kind="stable").reset_index(drop=True)
    skipped: dict[str, str] = {}
    for f in sorted(partial.glob("skipped-*.json")):
        skipped.update(json.loads(f.read_text()))
    if df.empty and skipped:
        first, why = next(iter(skipped.items()))
        raise ValueError(f"none of the {len(skipped)} images could be read (first: {first}: {why})")
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
    if skipped:
        atomic_write_text(out.with_name(out.name + ".skipped.json"), json.dumps(skipped, indent=2))
        log(f"{len(skipped)} unreadable images skipped (listed in {out.name}.skipped.json)")
    shutil.rmtree(partial, ignore_errors=True)
    return df
