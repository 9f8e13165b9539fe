"""The manifold benchmark: profiles, runner, meters, scaling study (``scorelid bench``)."""

from scorelid.bench.meter import Measurement, measure
from scorelid.bench.profiles import PROFILES, Profile, get_profile
from scorelid.bench.runner import (
    RECORD_KEYS,
    ROW_BUILDERS,
    RowSpec,
    UnitData,
    load_records,
    register_rows,
    run_bench,
    write_results,
)

__all__ = ["PROFILES", "RECORD_KEYS", "ROW_BUILDERS", "Measurement", "Profile", "RowSpec", "UnitData",
           "get_profile", "load_records", "measure", "register_rows", "run_bench", "write_results"]
