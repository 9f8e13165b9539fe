"""The report's Markdown: the Table 1 layout with reference rows, mean LIDs, cost, the adaptive-sigma
section and the training-loss LID beside the estimate (``render_markdown``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scorelid.bench.report.labels import arch_name, fmt, group_rows, is_auto, manifolds, row_label, true_d
from scorelid.bench.report.references import (
    AUTHORS_CPU,
    AUTHORS_CPU_AVG,
    MANIFOLD_ORDER,
    METHOD_NAMES,
    PAPER_TABLE1_AVG,
    SHORT,
)

__all__ = ["render_markdown"]


_INTRO = (
    "Mean absolute error of the per-point LID estimate against the true dimension, on held-out "
    "evaluation points (drawn independently of the training points). **σ is our VE noise level** "
    "(normalised data units); the paper's and the authors' columns are flow times t, and "
    "t = σ/(1+σ) ≈ σ within 5% at these levels. Reference rows in *italics*: the paper's Table 1 "
    "averages (per-manifold values not available here) and the authors' demo code run on a 2-core "
    "CPU (trained and evaluated on the same points, baselines k=50). Baselines have no σ.")
_COST_NOTE = ("Wall seconds per row over all evaluation points; peak memory above the phase's start "
              "(CPU: sampled RSS; CUDA: max allocated), see `scorelid.bench.meter`.")
_NOTES = [
    "- hypertwinpeaks at d = 128: scikit-dimension's height is a product of 128 sines and "
    "underflows (≈ 1e-24 or smaller), so the data is in effect a flat 128-dimensional cube with "
    "no peaks (the same holds for the paper's and the authors' numbers).",
    "- † FLIPD with Hutchinson's trace estimate (Rademacher probes, see the row's options in "
    "results.json) instead of the exact Jacobian trace: where n is above the profile's "
    "`flipd_exact_max_n` (hypertwinpeaks, n = 256, in the quick profile) and on every level of "
    "the `@auto` FLIPD curves. The cost table's FLIPD rows sum both kinds of cells.",
]


def _table(records: list[dict], field: str, with_refs: bool) -> list[str]:
    mans = manifolds(records)
    head = "| method | " + " | ".join(f"{SHORT.get(m, m)} (d={true_d(records, m)})" for m in mans)
    head += " | average |"
    lines = [head, "|" + "---|" * (len(mans) + 2)]
    for label, by_m in group_rows(records):
        vals = [by_m.get(m, {}).get(field) for m in mans]
        ok = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
        avg = sum(ok) / len(ok) if len(ok) == len(mans) and ok else None
        marks = ["†" if "hutchinson" in (by_m.get(m, {}).get("options") or "") else "" for m in mans]
        lines.append(f"| {label} | " + " | ".join(fmt(v) + k for v, k in zip(vals, marks, strict=True))
                     + f" | {fmt(avg)} |")
        if with_refs:
            lines += _reference_lines(next(iter(by_m.values())), mans)
    return lines


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
        out.append(f"| *{name}{scale} (authors' code, CPU)* | " + " | ".join(fmt(v) for v in vals)
                   + f" | *{fmt(avg)}* |")
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
    for label, by_m in group_rows(records):
        recs = list(by_m.values())
        secs = sum(r.get("seconds") or 0.0 for r in recs)
        pps = [r["points_per_second"] for r in recs if r.get("points_per_second")]
        mem = [r["peak_mem_bytes"] for r in recs if r.get("peak_mem_bytes") is not None]
        lines.append(f"| {label} | {secs:.1f} | {fmt(float(np.median(pps)) if pps else None, 0)} | "
                     f"{fmt(max(mem) / 2**20 if mem else None, 1)} |")
    return lines


def _auto_section(records: list[dict], auto_rules: dict[tuple[str, str], dict[str, float]]) -> list[str]:
    """Adaptive sigma: auto vs each fixed grid level vs the oracle, per method; rules compared."""
    autos = [r for r in records if is_auto(r["method"]) and r.get("grid_mae")]
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
        mans = [m for m in manifolds(autos) if m in rs]
        lines += _auto_table(rs, mans)
        rules = {rule: v for (meth, rule), v in auto_rules.items() if meth == method}
        if rules:
            lines += _rules_table(rules, row_label(rs[mans[0]]), mans)
        lines.append("")
    return lines


def _auto_table(rs: dict[str, dict], mans: list[str]) -> list[str]:
    """One adaptive row's table: per manifold, auto MAE, chosen sigma, fixed levels, oracle."""
    grid = rs[mans[0]]["grid"]
    show = [g for g in grid if any(abs(g - f) < 1e-12 for f in (0.01, 0.02, 0.05))]
    lines = [f"### {row_label(rs[mans[0]])} ({rs[mans[0]].get('options', '')})", "",
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
        lines.append(f"| {SHORT.get(m, m)} | {r['d']} | {fmt(r['mae'])} | {r['sigma_median']:.3g} "
                     f"[{r['sigma_q10']:.3g}, {r['sigma_q90']:.3g}] | {fmt(r.get('flatness_median'))} | "
                     + " | ".join(fmt(v) for v in fixed)
                     + f" | {r['oracle_sigma']:g} | {fmt(r['oracle_mae'])} | "
                     f"{r['mae'] / r['oracle_mae']:.2f} |")
    k = len(mans)
    lines.append(f"| **average** | | **{fmt(sums['auto'] / k)}** | | | "
                 + " | ".join(fmt(sums[g] / k) for g in show)
                 + f" | | {fmt(sums['oracle'] / k)} | {sums['auto'] / sums['oracle']:.2f} |")
    return lines


def _rules_table(rules: dict[str, dict[str, float]], label: str, mans: list[str]) -> list[str]:
    """MAE of every selection rule on the same stored curves, per manifold and averaged."""
    lines = ["", f"Every rule on the same stored curves ({label}), MAE:", "",
             "| rule | " + " | ".join(SHORT.get(m, m) for m in mans) + " | average |",
             "|" + "---|" * (len(mans) + 2)]
    for rule, by_m in rules.items():
        vals = [by_m.get(m) for m in mans]
        avg = sum(vals) / len(vals) if all(v is not None for v in vals) else None
        lines.append(f"| {rule} | " + " | ".join(fmt(v) for v in vals) + f" | {fmt(avg)} |")
    return lines


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
        cells = [f"{fmt(_bucket_lid(rows, s), 1)} / {fmt(est.get(s), 1)}" for s in sig]
        lines.append(f"| {name} | {true_d(records, m)} | " + " | ".join(cells) + " |")
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
        _INTRO,
        "",
        "## MAE (Table 1 layout)", "",
        *_table(records, "mae", with_refs=True), "",
        "## Mean estimated LID", "",
        *_table(records, "mean_lid", with_refs=False), "",
        "## Cost", "",
        _COST_NOTE, "",
        *_cost_table(records), "",
        "## Notes", "",
        *_NOTES,
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
