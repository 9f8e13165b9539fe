"""The paper's comparison over one image set, and more: DSM vs FLIPD, precision drift, cost.

Input: one or more result tables of ``scorelid images`` (rows ``path, method, sigma, lid, dtype,
quant, seconds_per_image, peak_mem_mib, ...``), e.g. one per precision.  A *precision* is the
label ``dtype`` or ``dtype+quant`` (``fp32``, ``fp16``, ``bf16+int8``, ...).

* ``correlations``: per sigma and precision, Pearson and Spearman correlation of DSM with FLIPD
  over the images, and the fraction of negative FLIPD values;
* ``drift``: per method, sigma and precision, mean and max ``|LID - LID_ref|`` against the
  reference precision (default ``fp32``) and the rank (Spearman) and Pearson correlation with it;
* ``throughput``: per method and precision, images per second and peak memory (CUDA runs; CPU
  runs leave memory to ``benchmarks/sd_memory.py``, whose JSON can be merged in).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["correlations", "drift", "load_results", "plot_all", "summarize", "throughput", "write_report"]


def load_results(paths: Sequence[str | os.PathLike]):
    """Concatenate result tables (``.parquet``/``.csv``) and add the ``precision`` label."""
    import pandas as pd

    frames = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise FileNotFoundError(f"results file not found: {p}")
        df = pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p, keep_default_na=False,
                                                                                   na_values=[""])
        missing = {"path", "method", "sigma", "lid", "dtype"} - set(df.columns)
        if missing:
            raise ValueError(f"{p}: not a `scorelid images` result (missing columns {sorted(missing)})")
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    if "quant" not in df:
        df["quant"] = "none"
    df["quant"] = df["quant"].fillna("none").astype(str)
    df["precision"] = np.where(df["quant"] == "none", df["dtype"], df["dtype"] + "+" + df["quant"])
    dup = df.duplicated(["path", "method", "sigma", "precision"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicate rows (same path, method, sigma, precision)")
    return df


def _ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank)."""
    order = np.argsort(a, kind="stable")
    r = np.empty(len(a))
    r[order] = np.arange(len(a), dtype=float)
    _, inv = np.unique(a, return_inverse=True)
    sums = np.bincount(inv, weights=r)
    counts = np.bincount(inv)
    return (sums / counts)[inv]


def pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a, b) -> float:
    return pearson(_ranks(np.asarray(a, float)), _ranks(np.asarray(b, float)))


def _pairs(df, method_a, method_b, by):
    import pandas as pd

    wide = df[df["method"].isin([method_a, method_b])].pivot_table(
        index=[*by, "path"], columns="method", values="lid", aggfunc="first"
    )
    if method_a not in wide or method_b not in wide:
        return pd.DataFrame()
    return wide.dropna(subset=[method_a, method_b]).reset_index()


def correlations(df, a: str = "dsm", b: str = "flipd"):
    """Per (sigma, precision): n, Pearson, Spearman of ``a`` vs ``b``, fraction of negative ``b``."""
    import pandas as pd

    rows = []
    pairs = _pairs(df, a, b, ["sigma", "precision"])
    for (sigma, prec), g in pairs.groupby(["sigma", "precision"]) if len(pairs) else []:
        rows.append({"sigma": sigma, "precision": prec, "n": len(g), "pearson": pearson(g[a], g[b]),
                     "spearman": spearman(g[a], g[b]), f"frac_negative_{b}": float((g[b] < 0).mean())})
    return pd.DataFrame(rows)


def drift(df, reference: str = "fp32"):
    """Per (method, sigma, precision != reference): mean/max |dLID|, Spearman, Pearson vs the reference."""
    import pandas as pd

    rows = []
    ref = df[df["precision"] == reference]
    others = df[df["precision"] != reference]
    for (method, sigma, prec), g in others.groupby(["method", "sigma", "precision"]):
        r = ref[(ref["method"] == method) & (ref["sigma"] == sigma)]
        m = g.merge(r[["path", "lid"]], on="path", suffixes=("", "_ref"))
        if not len(m):
            continue
        d = (m["lid"] - m["lid_ref"]).abs()
        rows.append({"method": method, "sigma": sigma, "precision": prec, "n": len(m),
                     "mean_abs_diff": float(d.mean()), "max_abs_diff": float(d.max()),
                     "mean_rel_diff": float((d / m["lid_ref"].abs()).mean()),
                     "spearman": spearman(m["lid"], m["lid_ref"]),
                     "pearson": pearson(m["lid"], m["lid_ref"])})
    return pd.DataFrame(rows)


def throughput(df, bench: dict | None = None):
    """Per (method, precision): images/s (from ``seconds_per_image``) and peak memory (MiB)."""
    import pandas as pd

    rows = []
    for (method, prec), g in df.groupby(["method", "precision"]):
        sec = g["seconds_per_image"].astype(float) if "seconds_per_image" in g else pd.Series(dtype=float)
        mem = g["peak_mem_mib"].astype(float) if "peak_mem_mib" in g else pd.Series(dtype=float)
        rows.append({"method": method, "precision": prec,
                     "images_per_s": float(1 / sec.mean()) if len(sec) and sec.mean() > 0 else float("nan"),
                     "peak_mem_mib": float(mem.max()) if mem.notna().any() else float("nan"),
                     "source": "images run"})
    for r in (bench or {}).get("rows", []):
        rows.append({"method": r["phase"], "precision": r["precision"], "images_per_s": r.get("images_per_s"),
                     "peak_mem_mib": r.get("peak_mib"), "source": "benchmark"})
    return pd.DataFrame(rows)


def summarize(df, reference: str = "fp32", bench: dict | None = None) -> dict:
    """All tables: ``{"correlations", "drift", "throughput"}`` as DataFrames."""
    return {"correlations": correlations(df), "drift": drift(df, reference),
            "throughput": throughput(df, bench)}


def write_report(summary: dict, out_dir: str | os.PathLike) -> Path:
    """``summary.json`` and ``report.md`` (markdown tables) in ``out_dir``; returns the report path."""
    from scorelid.runtime.io import atomic_write_json, atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "summary.json", {k: v.to_dict(orient="records") for k, v in summary.items()})
    parts = ["# LID comparison", ""]
    for name, table in summary.items():
        parts += [f"## {name}", "", _markdown(table), ""]
    atomic_write_text(out_dir / "report.md", "\n".join(parts))
    return out_dir / "report.md"


def _markdown(table) -> str:
    if not len(table):
        return "(no data)"
    cols = list(table.columns)
    fmt = [lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)] * len(cols)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(f(r[c]) for f, c in zip(fmt, cols, strict=True)) + " |")
    return "\n".join(lines)


def plot_all(
    df, summary: dict, out_dir: str | os.PathLike, grid_k: int = 4, image_size: int = 96
) -> list[Path]:
    """Scatter DSM vs FLIPD, drift per precision, histograms, lowest/highest-LID image grids."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    pairs = _pairs(df, "dsm", "flipd", ["sigma", "precision"])
    if len(pairs):
        fig, ax = plt.subplots(figsize=(5, 5))
        for (sigma, prec), g in pairs.groupby(["sigma", "precision"]):
            ax.scatter(g["dsm"], g["flipd"], s=10, label=f"σ={sigma:g} {prec}")
        ax.set_xlabel("DSM LID")
        ax.set_ylabel("FLIPD LID")
        ax.legend(fontsize=7)
        files.append(_save(fig, out_dir / "scatter_dsm_flipd.png"))
    dr = summary.get("drift")
    if dr is not None and len(dr):
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = [f"{r.method}\nσ={r.sigma:g}\n{r.precision}" for r in dr.itertuples()]
        ax.bar(range(len(dr)), dr["mean_abs_diff"])
        ax.set_xticks(range(len(dr)), labels, fontsize=6)
        ax.set_ylabel("mean |ΔLID| vs reference")
        files.append(_save(fig, out_dir / "drift.png"))
    fig, ax = plt.subplots(figsize=(6, 4))
    for (method, sigma, prec), g in df.groupby(["method", "sigma", "precision"]):
        ax.hist(g["lid"], bins=30, alpha=0.5, label=f"{method} σ={sigma:g} {prec}")
    ax.set_xlabel("LID")
    ax.legend(fontsize=6)
    files.append(_save(fig, out_dir / "histograms.png"))
    for (method, sigma, prec), g in df.groupby(["method", "sigma", "precision"]):
        f = _grid(g, grid_k, image_size, out_dir / f"grid_{method}_{sigma:g}_{prec}.png", plt)
        if f:
            files.append(f)
    return files


def _grid(g, k: int, size: int, path: Path, plt) -> Path | None:
    from PIL import Image

    g = g.sort_values("lid")
    k = min(k, len(g) // 2) if len(g) > 1 else len(g)
    if k == 0:
        return None
    rows = [("lowest", g.head(k)), ("highest", g.tail(k).iloc[::-1])]
    fig, axes = plt.subplots(2, k, figsize=(1.6 * k, 3.6), squeeze=False)
    for i, (name, sub) in enumerate(rows):
        for j, r in enumerate(sub.itertuples()):
            ax = axes[i][j]
            ax.axis("off")
            try:
                with Image.open(r.path) as im:
                    ax.imshow(im.convert("RGB").resize((size, size)))
            except OSError:
                ax.text(0.5, 0.5, "unreadable", ha="center")
            ax.set_title(f"{name}\n{r.lid:.1f}", fontsize=7)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    from scorelid.runtime.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def load_bench(path: str | os.PathLike | None) -> dict | None:
    """A ``benchmarks/sd_memory.py`` JSON results file (or None)."""
    if path is None:
        return None
    return json.loads(Path(path).read_text())
