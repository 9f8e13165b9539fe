"""Tables and figures from a benchmark results directory (``scorelid report DIR``).

Reads ``DIR/results.json`` (a list of records, see ``scorelid.bench.runner.RECORD_KEYS``) and,
where present, the per-point LIDs in ``DIR/units/*.npz``; writes ``DIR/report.md`` and PNGs:

* ``mae.png``: MAE per manifold (groups) and method (bars);
* ``hist_<manifold>.png``: per-point LID histograms of each row, true ``d`` marked;
* ``lid_curves.png`` (when the run has adaptive rows, ``dsm@auto`` / ``flipd@auto``): per manifold,
  the mean LID curve over the sigma grid (10-90% band), true ``d``, the chosen sigma (median over
  points) and the oracle sigma (the grid level of smallest MAE, chosen with knowledge of the truth);
* ``train_lid.png`` (when the units' meta holds the models' ``lid_by_sigma``): the mean LID read off
  the training loss per sigma bucket (training points, in-sample) against the estimated mean DSM
  LID on the held-out points at the same sigmas.

Adaptive rows get their own section: ``dsm@auto``'s MAE against every fixed level of its grid
and against the oracle, and every selection rule of ``scorelid.sigma.select`` applied afterwards
to the stored curves (``units/*.extra.npz``), so the rules are compared on identical curves.

The Markdown table has the paper's Table 1 layout: one row per method, one column per manifold
plus the average; reference rows (the paper's Table 1 averages; the authors' code run on our CPU,
from ``paper-protocol.md``) sit under our row with the same method, scale and architecture.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from scorelid.runtime.io import atomic_path, atomic_write_text

__all__ = ["AUTHORS_CPU", "PAPER_TABLE1_AVG", "render_markdown", "row_label", "write_report"]

MANIFOLD_ORDER = ("hypersphere", "hyperball", "hypertwinpeaks", "clifford_torus", "nonlinear")
SHORT = {"hypersphere": "sphere", "hyperball": "ball", "hypertwinpeaks": "twinpeaks",
         "clifford_torus": "clifford", "nonlinear": "nonlinear"}
METHOD_NAMES = {"dsm": "DSM", "flipd": "FLIPD", "ism": "ISM", "error_bundle": "error bundle",
                "normal_bundle": "normal bundle", "mle": "MLE", "twonn": "TwoNN", "ess": "ESS",
                "lpca": "lPCA"}

#: The authors' demo code run on our 2-core CPU (small 4-layer MLP, 50,000 steps, baselines k=50;
#: flow time t; trained and evaluated on the same points).  Source: paper-protocol.md.
#: key (method, t or None) -> {manifold: MAE}
AUTHORS_CPU: dict[tuple[str, float | None], dict[str, float]] = {
    ("dsm", 0.01): dict(zip(MANIFOLD_ORDER, (2.97, 2.45, 9.92, 38.92, 22.93), strict=True)),
    ("dsm", 0.05): dict(zip(MANIFOLD_ORDER, (2.89, 2.26, 6.96, 38.64, 18.73), strict=True)),
    ("flipd", 0.01): dict(zip(MANIFOLD_ORDER, (0.53, 1.47, 3.24, 31.13, 25.95), strict=True)),
    ("flipd", 0.05): dict(zip(MANIFOLD_ORDER, (0.59, 1.75, 2.73, 30.23, 20.08), strict=True)),
    ("mle", None): dict(zip(MANIFOLD_ORDER, (3.39, 3.85, 80.89, 3.44, 12.31), strict=True)),
    ("twonn", None): dict(zip(MANIFOLD_ORDER, (3.90, 4.47, 81.83, 4.54, 12.80), strict=True)),
    ("ess", None): dict(zip(MANIFOLD_ORDER, (0.48, 0.73, 6.59, 29.70, 1.30), strict=True)),
}
AUTHORS_CPU_AVG = {("dsm", 0.01): 15.44, ("dsm", 0.05): 13.89, ("flipd", 0.01): 12.46, ("flipd", 0.05): 11.08,
                   ("mle", None): 20.78, ("twonn", None): 21.51, ("ess", None): 7.76}

#: The paper's Table 1 averages over the five manifolds (GPU, t = 0.05); per-manifold values are
#: not in paper-protocol.md.  key (arch or None, method, t or None) -> average MAE
PAPER_TABLE1_AVG: dict[tuple[str | None, str, float | None], float] = {
    ("dit", "dsm", 0.05): 2.21, ("dit", "flipd", 0.05): 23.05,
    ("mlp", "dsm", 0.05): 7.27, ("mlp", "flipd", 0.05): 11.11, (None, "ess", None): 7.12,
}


def _is_auto(method: str) -> bool:
    return method.endswith("@auto")


ARCH_NAMES = {"mlp": "MLP", "dit": "DiT"}


def arch_name(arch: str | None) -> str:
    """``"mlp"`` -> ``"MLP"``, ``"dit"`` -> ``"DiT"`` (others upper-cased)."""
    return ARCH_NAMES.get(str(arch or ""), str(arch or "").upper())


def row_label(rec: dict[str, Any]) -> str:
    """E.g. ``"MLP DSM σ=0.05"``, ``"ESS k=50"``, ``"MLP DSM σ=auto"``.  The trace of a FLIPD row is
    not in its label (one row per sigma in Table 1): cells with Hutchinson's trace carry a ``†``."""
    opts = rec.get("options") or ""
    if _is_auto(rec["method"]):
        base = rec["method"].removesuffix("@auto")
        return f"{arch_name(rec.get('arch'))} {METHOD_NAMES.get(base, base)} σ=auto"
    name = METHOD_NAMES.get(rec["method"], rec["method"])
    if rec.get("sigma") is None:
        k = [o for o in opts.split(",") if o.startswith("k=")]
        return f"{name} {k[0]}" if k else name
    arch = arch_name(rec.get("arch"))
    extra = ""
    return f"{arch} {name} σ={rec['sigma']:g}{extra}"


def _fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _manifolds(records: Iterable[dict]) -> list[str]:
    seen = list(dict.fromkeys(r["manifold"] for r in records))
    return [m for m in MANIFOLD_ORDER if m in seen] + [m for m in seen if m not in MANIFOLD_ORDER]


def _rows(records: list[dict]) -> list[tuple[str, dict[str, dict]]]:
    """``[(label, {manifold: record})]`` in first-seen order."""
    rows: dict[str, dict[str, dict]] = {}
    for r in records:
        rows.setdefault(row_label(r), {})[r["manifold"]] = r
    return list(rows.items())


def _table(records: list[dict], field: str, with_refs: bool) -> list[str]:
    mans = _manifolds(records)
    head = "| method | " + " | ".join(f"{SHORT.get(m, m)} (d={_d(records, m)})" for m in mans)
    head += " | average |"
    lines = [head, "|" + "---|" * (len(mans) + 2)]
    for label, by_m in _rows(records):
        vals = [by_m.get(m, {}).get(field) for m in mans]
        ok = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
        avg = sum(ok) / len(ok) if len(ok) == len(mans) and ok else None
        marks = ["†" if "hutchinson" in (by_m.get(m, {}).get("options") or "") else "" for m in mans]
        lines.append(f"| {label} | " + " | ".join(_fmt(v) + k for v, k in zip(vals, marks, strict=True))
                     + f" | {_fmt(avg)} |")
        if with_refs:
            lines += _reference_lines(next(iter(by_m.values())), mans)
    return lines


def _d(records: list[dict], manifold: str) -> Any:
    return next(r["d"] for r in records if r["manifold"] == manifold)


def _reference_lines(rec: dict, mans: list[str]) -> list[str]:
    out = []
    sig = rec.get("sigma")
    key = (rec["method"], sig)
    name = METHOD_NAMES.get(rec["method"], rec["method"])
    if key in AUTHORS_CPU and (sig is not None or "k=50" in (rec.get("options") or "")) and \
            (sig is None or rec.get("arch") == "mlp"):
        vals = [AUTHORS_CPU[key].get(m) for m in mans]
        avg = AUTHORS_CPU_AVG[key] if len(mans) == len(MANIFOLD_ORDER) else None
        scale = f" t={sig:g}" if sig is not None else " k=50"
        out.append(f"| *{name}{scale} (authors' code, CPU)* | " + " | ".join(_fmt(v) for v in vals)
                   + f" | *{_fmt(avg)}* |")
    pkey = (rec.get("arch") if sig is not None else None, rec["method"], sig)
    if pkey in PAPER_TABLE1_AVG:
        arch = f"{arch_name(pkey[0])} " if pkey[0] else ""
        scale = f" t={sig:g}" if sig is not None else ""
        out.append(f"| *{arch}{name}{scale} (paper Table 1, GPU)* | " + " | ".join("" for _ in mans)
                   + f" | *{PAPER_TABLE1_AVG[pkey]:.2f}* |")
    return out


def _cost_table(records: list[dict]) -> list[str]:
    lines = ["| method | seconds (sum over manifolds) | points/s (median) | peak memory MiB (max) |",
             "|---|---|---|---|"]
    for label, by_m in _rows(records):
        recs = list(by_m.values())
        secs = sum(r.get("seconds") or 0.0 for r in recs)
        pps = [r["points_per_second"] for r in recs if r.get("points_per_second")]
        mem = [r["peak_mem_bytes"] for r in recs if r.get("peak_mem_bytes") is not None]
        lines.append(f"| {label} | {secs:.1f} | {_fmt(float(np.median(pps)) if pps else None, 0)} | "
                     f"{_fmt(max(mem) / 2**20 if mem else None, 1)} |")
    return lines


def _auto_section(records: list[dict], auto_rules: dict[tuple[str, str], dict[str, float]]) -> list[str]:
    """Adaptive sigma: auto vs each fixed grid level vs the oracle, per method; rules compared."""
    autos = [r for r in records if _is_auto(r["method"]) and r.get("grid_mae")]
    if not autos:
        return []
    lines = ["", "## Adaptive sigma (issue 7)", "",
             "`@auto` rows choose sigma per point from its LID curve on the grid "
             f"({', '.join(f'{v:g}' for v in autos[0]['grid'])}; VE scale) with the rule "
             f"`{autos[0].get('rule')}` of `scorelid.sigma.select`. The fixed-level columns are the "
             "same curve read at one level for every point (the same noise draws), so they equal the "
             "fixed-sigma estimate with the row's K; *oracle* is the grid level of smallest MAE, chosen "
             "afterwards with knowledge of the true d. Chosen σ: median [10%, 90%] over points. "
             "The average row's last cell is the ratio of the averages.", ""]
    for method in dict.fromkeys(r["method"] for r in autos):
        rs = {r["manifold"]: r for r in autos if r["method"] == method}
        mans = [m for m in _manifolds(autos) if m in rs]
        grid = rs[mans[0]]["grid"]
        show = [g for g in grid if any(abs(g - f) < 1e-12 for f in (0.01, 0.02, 0.05))]
        lines += [f"### {row_label(rs[mans[0]])} ({rs[mans[0]].get('options', '')})", "",
                  "| manifold | d | auto MAE | chosen σ | flatness (median) | "
                  + " | ".join(f"σ={g:g} MAE" for g in show) + " | oracle σ | oracle MAE | auto / oracle |",
                  "|" + "---|" * (8 + len(show))]
        sums = {"auto": 0.0, "oracle": 0.0, **{g: 0.0 for g in show}}
        for m in mans:
            r = rs[m]
            fixed = [r["grid_mae"][grid.index(g)] for g in show]
            for g, v in zip(show, fixed, strict=True):
                sums[g] += v
            sums["auto"] += r["mae"]
            sums["oracle"] += r["oracle_mae"]
            lines.append(f"| {SHORT.get(m, m)} | {r['d']} | {_fmt(r['mae'])} | {r['sigma_median']:.3g} "
                         f"[{r['sigma_q10']:.3g}, {r['sigma_q90']:.3g}] | {_fmt(r.get('flatness_median'))} | "
                         + " | ".join(_fmt(v) for v in fixed)
                         + f" | {r['oracle_sigma']:g} | {_fmt(r['oracle_mae'])} | "
                         f"{r['mae'] / r['oracle_mae']:.2f} |")
        k = len(mans)
        lines.append(f"| **average** | | **{_fmt(sums['auto'] / k)}** | | | "
                     + " | ".join(_fmt(sums[g] / k) for g in show)
                     + f" | | {_fmt(sums['oracle'] / k)} | {sums['auto'] / sums['oracle']:.2f} |")
        rules = {rule: v for (meth, rule), v in auto_rules.items() if meth == method}
        if rules:
            lines += ["", f"Every rule on the same stored curves ({row_label(rs[mans[0]])}), MAE:", "",
                      "| rule | " + " | ".join(SHORT.get(m, m) for m in mans) + " | average |",
                      "|" + "---|" * (len(mans) + 2)]
            for rule, by_m in rules.items():
                vals = [by_m.get(m) for m in mans]
                avg = sum(vals) / len(vals) if all(v is not None for v in vals) else None
                lines.append(f"| {rule} | " + " | ".join(_fmt(v) for v in vals) + f" | {_fmt(avg)} |")
        lines.append("")
    return lines


def render_markdown(records: list[dict], meta: dict[str, Any] | None = None,
                    figures: list[str] | None = None,
                    auto_rules: dict[tuple[str, str], dict[str, float]] | None = None,
                    train: dict[str, list[dict]] | None = None) -> str:
    """The report's Markdown text for ``records`` (``meta``: e.g. profile, seed, device;
    ``auto_rules``: ``{(method, rule): {manifold: MAE}}`` from ``rule_maes``; ``train``: ``{"<manifold>
    (<ARCH>)": lid_by_sigma rows}`` of the trained models)."""
    if not records:
        raise ValueError("no records to report")
    meta = meta or {}
    lines = ["# scorelid benchmark report", ""]
    if meta:
        lines += [", ".join(f"{k}: {v}" for k, v in meta.items()), ""]
    lines += [
        "Mean absolute error of the per-point LID estimate against the true dimension, on held-out "
        "evaluation points (drawn independently of the training points). **σ is our VE noise level** "
        "(normalised data units); the paper's and the authors' columns are flow times t, and "
        "t = σ/(1+σ) ≈ σ within 5% at these levels. Reference rows in *italics*: the paper's Table 1 "
        "averages (per-manifold values not available here) and the authors' demo code run on a 2-core "
        "CPU (trained and evaluated on the same points, baselines k=50). Baselines have no σ.",
        "",
        "## MAE (Table 1 layout)", "",
        *_table(records, "mae", with_refs=True), "",
        "## Mean estimated LID", "",
        *_table(records, "mean_lid", with_refs=False), "",
        "## Cost", "",
        "Wall seconds per row over all evaluation points; peak memory above the phase's start "
        "(CPU: sampled RSS; CUDA: max allocated), see `scorelid.bench.meter`.", "",
        *_cost_table(records), "",
        "## Notes", "",
        "- hypertwinpeaks at d = 128: scikit-dimension's height is a product of 128 sines and "
        "underflows (≈ 1e-24 or smaller), so the data is in effect a flat 128-dimensional cube with "
        "no peaks (the same holds for the paper's and the authors' numbers).",
        "- † FLIPD with Hutchinson's trace estimate (Rademacher probes, see the row's options in "
        "results.json) instead of the exact Jacobian trace: where n is above the profile's "
        "`flipd_exact_max_n` (hypertwinpeaks, n = 256, in the quick profile) and on every level of "
        "the `@auto` FLIPD curves. The cost table's FLIPD rows sum both kinds of cells.",
    ]
    lines += _auto_section(records, auto_rules or {})
    lines += _train_section(train or {}, records)
    nonfinite = [r for r in records if r.get("n_nonfinite")]
    for r in nonfinite:
        lines.append(f"- {row_label(r)} on {r['manifold']}: {r['n_nonfinite']} of {r['n_points']} points "
                     "gave no finite estimate and are left out of its MAE.")
    if figures:
        lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def _savefig(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def _plot_mae(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mans = _manifolds(records)
    rows = _rows(records)
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(mans) + 0.15 * len(rows) * len(mans)), 4.5))
    # one distinct colour per row: tab20 (10 hues, dark and light), tab20b beyond 20 rows
    colors = [*plt.get_cmap("tab20").colors, *plt.get_cmap("tab20b").colors]
    for j, (label, by_m) in enumerate(rows):
        vals = [by_m.get(m, {}).get("mae") for m in mans]
        xs = np.arange(len(mans)) + (j - (len(rows) - 1) / 2) * width
        ax.bar(xs, [np.nan if v is None else v for v in vals], width, label=label,
               color=colors[j % len(colors)])
    ax.set_xticks(np.arange(len(mans)), [f"{SHORT.get(m, m)}\n(d={_d(records, m)})" for m in mans])
    ax.set_yscale("log")
    ax.set_ylabel("MAE of per-point LID (log scale)")
    ax.set_title("MAE per manifold and method (held-out points)")
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    _savefig(fig, path)
    plt.close(fig)


def _plot_hist(manifold: str, d: int, per_point: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in per_point if k != "d_true"]
    cols = min(4, len(keys))
    nrows = math.ceil(len(keys) / cols)
    # one x range for every panel (the true d and the 1-99% range of every row), so that the
    # spreads compare at a glance
    finite = [v[np.isfinite(v)] for v in (per_point[k] for k in keys)]
    lo = min([d - 1.0] + [float(np.quantile(v, 0.01)) for v in finite if v.size])
    hi = max([d + 1.0] + [float(np.quantile(v, 0.99)) for v in finite if v.size])
    edges = np.linspace(lo, hi, 61)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.4 * nrows), squeeze=False)
    for ax, key, v in zip(axes.ravel(), keys, finite, strict=False):
        ax.hist(np.clip(v, lo, hi), bins=edges, color="tab:blue", alpha=0.8)
        ax.set_xlim(lo, hi)
        ax.axvline(d, color="tab:red", lw=1.5, label=f"true d={d}")
        ax.set_title(key, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{manifold}: per-point LID estimates (held-out points; values beyond the rows' 1-99% "
                 "range are piled at the edges)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    _savefig(fig, path)
    plt.close(fig)


def _per_point(out: Path, manifold: str) -> tuple[dict[str, np.ndarray], int | None]:
    merged: dict[str, np.ndarray] = {}
    d = None
    files = sorted((out / "units").glob(f"{manifold}__*.npz"),
                   key=lambda f: (f.stem.endswith("__knn"), f.name))  # model rows first
    for f in files:
        arch = f.stem.split("__", 1)[1]
        if "." in arch:  # <unit>.extra.npz: curves and other arrays, not per-point LIDs
            continue
        with np.load(f, allow_pickle=False) as z:
            for k in z.files:
                if k == "d_true":
                    d = int(np.unique(z[k])[0]) if len(np.unique(z[k])) == 1 else None
                else:
                    merged[k if arch == "knn" else f"{arch} {k}"] = z[k]
    return merged, d


def _auto_curves(out: Path, records: list[dict]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """``{manifold: {row label: {"curve", "sigma", "grid", "d"}}}`` from the units' extras."""
    from scorelid.bench.runner import load_extras

    res: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for r in records:
        if not _is_auto(r["method"]):
            continue
        ex = load_extras(out, f"{r['manifold']}__{r['arch']}")
        key = r["method"]
        if f"{key}::curve" in ex:
            res.setdefault(r["manifold"], {})[row_label(r)] = {
                "curve": ex[f"{key}::curve"].astype(np.float64), "sigma": ex[f"{key}::sigma"],
                "grid": ex[f"{key}::grid"], "d": r["d"], "oracle": r.get("oracle_sigma")}
    return res


def rule_maes(curves: dict[str, dict[str, dict[str, np.ndarray]]],
              records: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """MAE of every selection rule (but ``agreement``, which needs a second curve) on the stored
    curves: ``{(method, rule): {manifold: MAE}}``."""
    import torch

    from scorelid.sigma import RULES, select

    label_to_method = {row_label(r): r["method"] for r in records if _is_auto(r["method"])}
    out: dict[tuple[str, str], dict[str, float]] = {}
    for m, by_label in curves.items():
        for label, item in by_label.items():
            c = torch.from_numpy(item["curve"])
            g = torch.from_numpy(np.asarray(item["grid"], dtype=np.float64))
            for rule in RULES:
                if rule == "agreement":
                    continue
                idx, _ = select(c, g, rule)
                lid = c.gather(0, idx.unsqueeze(0)).squeeze(0)
                out.setdefault((label_to_method[label], rule), {})[m] = float((lid - item["d"]).abs().mean())
    return out


def _plot_curves(curves: dict[str, dict[str, dict[str, np.ndarray]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mans = [m for m in MANIFOLD_ORDER if m in curves] + [m for m in curves if m not in MANIFOLD_ORDER]
    cols = min(3, len(mans))
    nrows = math.ceil(len(mans) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.4 * cols, 3.3 * nrows), squeeze=False)
    for ax, m in zip(axes.ravel(), mans, strict=False):
        d = None
        for j, (label, it) in enumerate(curves[m].items()):
            s, c, color = np.asarray(it["grid"], float), it["curve"], f"C{j}"
            d = it["d"]
            ax.plot(s, c.mean(1), "o-", ms=3, color=color, label=f"{label} (mean)")
            ax.fill_between(s, np.quantile(c, 0.1, axis=1), np.quantile(c, 0.9, axis=1), color=color,
                            alpha=0.2)
            ax.axvline(float(np.median(it["sigma"])), color=color, lw=1.3, label="chosen σ (median)")
            if it.get("oracle") is not None:
                ax.axvline(float(it["oracle"]), color=color, lw=1.0, ls=":", label="oracle σ")
        lo = min(float(np.quantile(it["curve"], 0.1, axis=1).min()) for it in curves[m].values())
        hi = max(float(np.quantile(it["curve"], 0.9, axis=1).max()) for it in curves[m].values())
        _lid_axes(ax, m, "LID", d, lo, hi)
    _legend_in_spare(fig, axes, len(mans))
    fig.suptitle("LID curves over σ (held-out points; band 10-90%) and the chosen σ", fontsize=10)
    _savefig(fig, path)
    plt.close(fig)


def _lid_axes(ax: Any, title: str, ylabel: str, d: float | None, lo: float | None, hi: float | None) -> None:
    """Log-σ axes of an LID-against-σ panel; with a true ``d``, its line and y-limits around
    ``[lo, hi]`` (the plotted range) that keep ``d`` in view and cut runaway curves at ``3 d``."""
    if d is not None:
        ax.axhline(d, color="k", ls="--", lw=1, label="true d")
        ax.set_ylim(max(0.0, min(lo, 0.8 * d)), min(max(hi, 1.2 * d), 3 * d) * 1.03)
    ax.set_xscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("σ (VE, data units)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)


def _legend_in_spare(fig: Any, axes: np.ndarray, used: int) -> None:
    """The first panel's legend in the first unused panel, or below the figure when all are used."""
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    for ax in axes.ravel()[used:]:
        ax.axis("off")
    if used < axes.size:
        axes.ravel()[used].legend(handles, labels, fontsize=8, loc="center")
        fig.tight_layout(rect=(0, 0, 1, 0.95))
    else:
        fig.tight_layout(rect=(0, 0.12, 1, 0.95))
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=3)


def _train_curves(out: Path) -> dict[str, list[dict]]:
    import json

    res = {}
    files = sorted((out / "units").glob("*__*.json"),
                   key=lambda f: (_order(f.stem.split("__")[0]), f.name))
    for f in files:
        meta = json.loads(f.read_text()).get("meta", {})
        if meta.get("lid_by_sigma"):
            res[f"{meta['manifold']} ({arch_name(meta['arch'])})"] = meta["lid_by_sigma"]
    return res


def _order(manifold: str) -> int:
    return MANIFOLD_ORDER.index(manifold) if manifold in MANIFOLD_ORDER else len(MANIFOLD_ORDER)


def _bucket_lid(rows: list[dict], sigma: float) -> float | None:
    """The training-loss mean LID of the bucket holding ``sigma`` (``None`` outside the range)."""
    for r in rows:
        if r["sigma_lo"] <= sigma < r["sigma_hi"] and r.get("count"):
            return r["mean_lid"]
    return None


def _train_section(train: dict[str, list[dict]], records: list[dict]) -> list[str]:
    """Training-loss mean LID (bucket holding sigma) next to the held-out DSM mean LID at sigma."""
    if not train:
        return []
    sig = sorted({r["sigma"] for r in records if r["method"] == "dsm" and r.get("sigma") is not None})
    lines = ["", "## The LID read off the training loss", "",
             "The DSM training loss at noise level σ is, per sample, the DSM LID estimate; "
             "`scorelid.training.loop` "
             "averages it per log-spaced σ bucket over the last part of training (training points, online "
             "weights). Beside it: the DSM estimate's mean LID on the held-out points at the same σ "
             "(EMA weights). See `train_lid.png`.", "",
             "| model | d | " + " | ".join(f"σ={s:g} train loss / estimate" for s in sig) + " |",
             "|" + "---|" * (len(sig) + 2)]
    for name, rows in train.items():
        m, arch = name.split(" (")[0], name.split(" (")[1].rstrip(")").lower()
        est = {r["sigma"]: r["mean_lid"] for r in records
               if r["manifold"] == m and r["arch"] == arch and r["method"] == "dsm"}
        cells = [f"{_fmt(_bucket_lid(rows, s), 1)} / {_fmt(est.get(s), 1)}" for s in sig]
        lines.append(f"| {name} | {_d(records, m)} | " + " | ".join(cells) + " |")
    return lines


def _plot_train_lid(train: dict[str, list[dict]], records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(train)
    cols = min(3, len(names))
    nrows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.4 * cols, 3.3 * nrows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        m, arch = name.split(" (")[0], name.split(" (")[1].rstrip(")").lower()
        rows = [r for r in train[name] if r.get("count") and r.get("mean_lid") is not None
                and math.isfinite(r["mean_lid"])]
        ax.plot([r["sigma_mid"] for r in rows], [r["mean_lid"] for r in rows], "s-", ms=3, color="C1",
                label="training loss (train points)")
        mine = [r for r in records if r["manifold"] == m and r["arch"] == arch]
        auto = next((r for r in mine if r["method"] == "dsm@auto" and r.get("grid_mean_lid")), None)
        if auto is not None:
            ax.plot(auto["grid"], auto["grid_mean_lid"], "o-", ms=3, color="C0",
                    label="DSM estimate (held-out points)")
        fixed = sorted((r["sigma"], r["mean_lid"]) for r in mine
                       if r["method"] == "dsm" and r.get("mean_lid") is not None)
        if fixed and auto is None:
            ax.plot(*zip(*fixed, strict=True), "o", color="C0", label="DSM estimate (held-out points)")
        d = next((r["d"] for r in records if r["manifold"] == m), None)
        vals = [r["mean_lid"] for r in rows] + list((auto or {}).get("grid_mean_lid", []))
        lo, hi = (min(vals), max(vals)) if vals else (d, d)
        _lid_axes(ax, name, "mean LID", d, lo, hi)
    _legend_in_spare(fig, axes, len(names))
    fig.suptitle("Mean LID read off the training loss vs the DSM estimate", fontsize=10)
    _savefig(fig, path)
    plt.close(fig)


def write_report(out: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``out/report.md`` and the PNGs from ``out/results.json``; returns the report's path."""
    from scorelid.bench.runner import load_records

    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"results directory not found: {out}")
    records = load_records(out)
    if not records:
        raise ValueError(f"{out}/results.json has no records")
    if meta is None:
        meta = {}
        stamp = out / "bench.json"
        if stamp.is_file():
            import json

            s = json.loads(stamp.read_text())
            meta = {"profile": s.get("profile", {}).get("name"), "seed": s.get("seed")}
        devices = sorted({r.get("device") for r in records if r.get("device")})
        if devices:
            meta["device"] = ", ".join(devices)
    figures = ["mae.png"]
    _plot_mae(records, out / "mae.png")
    for m in _manifolds(records):
        pp, d = _per_point(out, m)
        if pp:
            d = d if d is not None else _d(records, m)
            _plot_hist(m, int(d), pp, out / f"hist_{m}.png")
            figures.append(f"hist_{m}.png")
    curves = _auto_curves(out, records) if (out / "units").is_dir() else {}
    rules = rule_maes(curves, records) if curves else {}
    if curves:
        _plot_curves(curves, out / "lid_curves.png")
        figures.append("lid_curves.png")
    train = _train_curves(out) if (out / "units").is_dir() else {}
    if train:
        _plot_train_lid(train, records, out / "train_lid.png")
        figures.append("train_lid.png")
    path = out / "report.md"
    atomic_write_text(path, render_markdown(records, meta, figures, rules, train))
    return path
