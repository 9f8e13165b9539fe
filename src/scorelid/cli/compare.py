"""``scorelid compare``: DSM vs FLIPD, precision drift, cost, plots over `scorelid images` results."""

from __future__ import annotations

import argparse
from pathlib import Path

from scorelid.cli.common import add_force, refuse_overwrite

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", help="compare methods and precisions over `scorelid images` results",
        description="Spearman/Pearson of DSM vs FLIPD per sigma, fraction of negative FLIPD, drift of "
        "each precision from the reference, images/s and peak memory; plots and an image grid.",
    )
    p.add_argument("results", nargs="+", help="result tables (.parquet/.csv), e.g. one per precision")
    p.add_argument("--out-dir", required=True, help="folder for report.md, summary.json and plots")
    p.add_argument("--reference", default="fp32", help="precision the others are compared with")
    p.add_argument("--bench", default=None, help="benchmarks/sd_memory.py JSON to merge into the cost table")
    p.add_argument("--grid-k", type=int, default=4, help="images per row in the lowest/highest grids")
    p.add_argument("--no-plots", action="store_true")
    add_force(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from scorelid.images.compare import load_bench, load_results, plot_all, summarize, write_report

    for name in ("report.md", "summary.json"):  # a finished comparison; other files in the folder are fine
        refuse_overwrite(Path(args.out_dir) / name, args.force)
    df = load_results(args.results)
    summary = summarize(df, args.reference, load_bench(args.bench))
    report = write_report(summary, args.out_dir)
    if not args.no_plots:
        plot_all(df, summary, args.out_dir, grid_k=args.grid_k)
    print(report.read_text())
    return 0
