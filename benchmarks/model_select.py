"""Choose, per manifold, between the models of several bench runs without the true dimension.

DSM's reading is the denoising loss in LID units, and for small sigma it is at least the true
dimension (Thm 3.1): of two denoisers of the same data, the one with the lower loss is the better
denoiser and, where the bound holds, the closer estimate.  So a user holding several trained
models can pick, per dataset, the one whose mean DSM reading at sigma is lowest — the usual
"lowest validation loss" rule, no ground truth needed.  This script applies that rule to finished
``scorelid bench`` runs (e.g. the ``quick`` MLP and the ``cpu-dit`` DiT) and reports, per
(method, sigma), the MAE of the chosen model's estimate against each run alone and against the
oracle (the run of smaller MAE, chosen with knowledge of the truth).

Criteria:

* ``heldout``: the lowest mean DSM reading at sigma on the run's evaluation points (the same
  points the MAE is taken on; only the estimates are used, never the truth);
* ``train``: the lowest training-loss LID (``history["lid_by_sigma"]``, the bucket holding sigma)
  — only where the run's ``units/*.json`` are present (``benchmarks/results/*`` keep no units).

    .venv/bin/python benchmarks/model_select.py runs/quick runs/cpu_dit \\
        --out benchmarks/results/model_select.json

Writes the JSON and a Markdown table beside it (atomically) and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scorelid.bench.store import BenchDir, load_records
from scorelid.runtime.io import atomic_write_json, atomic_write_text

CRITERIA = ("heldout", "train")


def _train_curve(run: Path, manifold: str, arch: str) -> list[dict[str, float]]:
    """The unit's training-loss curve ``history["lid_by_sigma"]`` (empty without its metadata)."""
    meta = BenchDir(run).load_meta(manifold, arch)
    return (meta.lid_by_sigma if meta is not None else None) or []


def _train_lid(curve: list[dict[str, float]], sigma: float) -> float | None:
    """Training-loss LID of the bucket holding ``sigma`` (None if no bucket does)."""
    hits = [b["mean_lid"] for b in curve if b["sigma_lo"] <= sigma < b["sigma_hi"]]
    return hits[0] if hits else None


def candidates(runs: list[Path]) -> list[dict[str, Any]]:
    """One entry per (run, model arch, manifold, method, sigma) with its MAE and DSM reading."""
    out = []
    for run in runs:
        recs = [r for r in load_records(run) if r["arch"] != "baseline" and r["sigma"] is not None]
        dsm = {(r["arch"], r["manifold"], r["sigma"]): r["mean_lid"] for r in recs if r["method"] == "dsm"}
        curves = {(a, m): _train_curve(run, m, a) for a, m, _ in dsm}  # one read per unit
        for r in recs:
            key = (r["arch"], r["manifold"], r["sigma"])
            if r["method"] not in ("dsm", "flipd") or key not in dsm:
                continue
            out.append({"run": run.name, "arch": r["arch"], "manifold": r["manifold"], "d": r["d"],
                        "method": r["method"], "sigma": r["sigma"], "mae": r["mae"], "heldout": dsm[key],
                        "train": _train_lid(curves[r["arch"], r["manifold"]], r["sigma"])})
    return out


def select(cands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, sigma, manifold): each run's MAE, the pick of each criterion, the oracle."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for c in cands:
        groups.setdefault((c["method"], c["sigma"], c["manifold"]), []).append(c)
    rows = []
    for (method, sigma, manifold), cs in sorted(groups.items()):
        if len(cs) < 2:
            continue
        row: dict[str, Any] = {"method": method, "sigma": sigma, "manifold": manifold, "d": cs[0]["d"],
                               "mae": {f"{c['run']}/{c['arch']}": c["mae"] for c in cs},
                               "oracle_mae": min(c["mae"] for c in cs)}
        for crit in CRITERIA:
            if all(c[crit] is not None for c in cs):
                best = min(cs, key=lambda c: c[crit])
                row[f"{crit}_pick"], row[f"{crit}_mae"] = f"{best['run']}/{best['arch']}", best["mae"]
        rows.append(row)
    return rows


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Averages over manifolds per (method, sigma) for every run, criterion and the oracle."""
    out = []
    for key in sorted({(r["method"], r["sigma"]) for r in rows}):
        rs = [r for r in rows if (r["method"], r["sigma"]) == key]
        s: dict[str, Any] = {"method": key[0], "sigma": key[1], "n_manifolds": len(rs)}
        for name in rs[0]["mae"]:
            s[name] = _mean([r["mae"][name] for r in rs])
        for crit in CRITERIA:
            if all(f"{crit}_mae" in r for r in rs):
                s[crit] = _mean([r[f"{crit}_mae"] for r in rs])
        s["oracle"] = _mean([r["oracle_mae"] for r in rs])
        out.append(s)
    return out


def markdown(rows: list[dict[str, Any]], summary: list[dict[str, Any]], runs: list[str]) -> str:
    names = list(rows[0]["mae"])
    head = " | ".join(names) + " | pick (held-out DSM) | pick (training loss) | oracle |"
    lines = [f"Model selection by the lowest DSM reading, runs: {', '.join(runs)}", "",
             "| method | σ | " + head,
             "|---|---|" + "---|" * (len(names) + 3)]
    for s in summary:
        cells = [f"{s[n]:.2f}" for n in names] + [f"{s[c]:.2f}" if c in s else "–" for c in CRITERIA]
        lines.append(f"| {s['method']} | {s['sigma']:g} | " + " | ".join(cells) + f" | {s['oracle']:.2f} |")
    lines += ["", "Averages of the MAE over the manifolds. Picks per manifold:", "",
              "| method | σ | manifold | " + " | ".join(names) + " | held-out pick | training-loss pick |",
              "|---|---|---|" + "---|" * (len(names) + 2)]
    for r in rows:
        cells = [f"{r['mae'][n]:.2f}" for n in names]
        picks = [r.get(f"{c}_pick", "–") for c in CRITERIA]
        lead = f"| {r['method']} | {r['sigma']:g} | {r['manifold']} | "
        lines.append(lead + " | ".join(cells + picks) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished `scorelid bench` directories (two or more)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/model_select.json"))
    args = ap.parse_args(argv)
    if len(args.runs) < 2:
        ap.error("give at least two bench runs to choose between")
    rows = select(candidates(args.runs))
    if not rows:
        raise SystemExit("no (method, sigma, manifold) is shared by two runs")
    summary = summarise(rows)
    md = markdown(rows, summary, [str(r) for r in args.runs])
    atomic_write_json(args.out, {"runs": [str(r) for r in args.runs], "summary": summary, "rows": rows})
    atomic_write_text(args.out.with_suffix(".md"), md)
    print(md)


if __name__ == "__main__":
    main()
