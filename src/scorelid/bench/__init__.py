"""The manifold benchmark (``scorelid bench``): profiles, rows, runner, results store, report,
meters, scaling study.

Modules: ``profiles`` (what a run does), ``rows`` (row specs and the registry of row builders),
``models`` (default data, training a unit's model), ``runner`` (``run_bench``: units in order,
resumable), ``store`` (the results directory: its file layout and typed records), ``report``
(Markdown and figures), ``meter``/``isolated`` (time and peak memory), ``scaling`` (Figure 2).
"""

from scorelid.bench.meter import Measurement, measure
from scorelid.bench.profiles import PROFILES, Profile, get_profile
from scorelid.bench.rows import ROW_BUILDERS, RowSpec, UnitData, register_rows
from scorelid.bench.runner import run_bench
from scorelid.bench.store import RECORD_KEYS, load_records, write_results

__all__ = ["PROFILES", "RECORD_KEYS", "ROW_BUILDERS", "Measurement", "Profile", "RowSpec", "UnitData",
           "get_profile", "load_records", "measure", "register_rows", "run_bench", "write_results"]
