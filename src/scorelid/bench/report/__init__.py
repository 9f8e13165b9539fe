"""Tables and figures from a benchmark results directory (``scorelid report DIR``).

Reads ``DIR/results.json`` (a list of records, see ``scorelid.bench.store.RECORD_KEYS``) and,
where present, the per-point LIDs and extras of the units, all through ``scorelid.bench.store``;
writes ``DIR/report.md`` and PNGs:

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
to the stored curves (the units' extras), so the rules are compared on identical curves.

The Markdown table has the paper's Table 1 layout: one row per method, one column per manifold
plus the average; reference rows (the paper's Table 1 averages; the authors' code run on our CPU,
from ``paper-protocol.md``) sit under our row with the same method, scale and architecture.

Modules: ``references`` (the paper's numbers and other constants), ``labels`` (row labels, manifold
order), ``tables`` (Markdown), ``figures`` (matplotlib), ``build`` (``write_report``).
"""

from scorelid.bench.report.build import rule_maes, write_report
from scorelid.bench.report.labels import arch_name, row_label
from scorelid.bench.report.references import (
    ARCH_NAMES,
    AUTHORS_CPU,
    AUTHORS_CPU_AVG,
    MANIFOLD_ORDER,
    METHOD_NAMES,
    PAPER_TABLE1_AVG,
    SHORT,
)
from scorelid.bench.report.tables import render_markdown

__all__ = ["ARCH_NAMES", "AUTHORS_CPU", "AUTHORS_CPU_AVG", "MANIFOLD_ORDER", "METHOD_NAMES",
           "PAPER_TABLE1_AVG", "SHORT", "arch_name", "render_markdown", "row_label", "rule_maes",
           "write_report"]
