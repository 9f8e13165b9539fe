"""``scorelid report DIR``: Markdown tables and PNG figures from a benchmark's ``results.json``.

    scorelid report runs/quick

Writes ``DIR/report.md`` (Table 1 layout with the paper's and the authors' numbers beside ours),
``DIR/mae.png`` and ``DIR/hist_<manifold>.png`` (when per-point results are in ``DIR/units``).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="tables and figures from a benchmark results directory",
                       description=__doc__.splitlines()[0])
    p.add_argument("dir", help="results directory holding results.json")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from scorelid.bench.report import write_report

    path = write_report(args.dir)
    print(f"report written to {path}", file=sys.stderr)
    return 0
