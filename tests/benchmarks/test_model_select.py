"""benchmarks/model_select.py: per-manifold choice of model by the lowest DSM reading."""

import importlib.util
import json
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "model_select", Path(__file__).parents[2] / "benchmarks" / "model_select.py")
ms = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ms)


def _run(root: Path, name: str, arch: str, readings: dict[str, tuple[float, float]], d: int = 16,
         train: dict[str, float] | None = None) -> Path:
    """A fake bench run: DSM and FLIPD rows at sigma 0.05 with the given (DSM mean, FLIPD mean)."""
    run = root / name
    (run / "units").mkdir(parents=True)
    recs = []
    for m, (dsm, flipd) in readings.items():
        for method, mean in (("dsm", dsm), ("flipd", flipd)):
            recs.append({"manifold": m, "d": d, "n": 64, "arch": arch, "method": method, "sigma": 0.05,
                         "mae": abs(mean - d), "mean_lid": mean})
        recs.append({"manifold": m, "d": d, "arch": "baseline", "method": "mle", "sigma": None,
                     "mae": 0.0, "mean_lid": d})
        if train is not None:
            meta = {"lid_by_sigma": [{"sigma_lo": 0.04, "sigma_hi": 0.06, "mean_lid": train[m]}]}
            (run / "units" / f"{m}__{arch}.json").write_text(json.dumps({"meta": meta, "records": []}))
    (run / "results.json").write_text(json.dumps(recs))
    return run


def test_the_lower_dsm_reading_is_picked_per_manifold(tmp_path):
    a = _run(tmp_path, "a", "mlp", {"m1": (17.0, 16.5), "m2": (40.0, 39.0)}, train={"m1": 17.5, "m2": 30.0})
    b = _run(tmp_path, "b", "dit", {"m1": (20.0, 21.0), "m2": (30.0, 31.0)}, train={"m1": 18.0, "m2": 41.0})
    rows = ms.select(ms.candidates([a, b]))
    picks = {(r["method"], r["manifold"]): r["heldout_pick"] for r in rows}
    # FLIPD rows follow the DSM reading too (the loss), not FLIPD's own value
    assert picks == {("dsm", "m1"): "a/mlp", ("dsm", "m2"): "b/dit", ("flipd", "m1"): "a/mlp",
                     ("flipd", "m2"): "b/dit"}
    summary = {s["method"]: s for s in ms.summarise(rows)}
    assert summary["dsm"]["heldout"] == pytest.approx((1.0 + 14.0) / 2)
    assert summary["dsm"]["a/mlp"] == pytest.approx((1.0 + 24.0) / 2)
    assert summary["flipd"]["heldout"] == pytest.approx((0.5 + 15.0) / 2)
    assert summary["flipd"]["oracle"] == pytest.approx((0.5 + 15.0) / 2)
    # the training-loss criterion reads the bucket holding sigma: a wins m1 (17.5 < 18), a wins m2 (30 < 41)
    assert summary["dsm"]["train"] == pytest.approx((1.0 + 24.0) / 2)


def test_without_units_the_training_criterion_is_left_out(tmp_path):
    a = _run(tmp_path, "a", "mlp", {"m1": (17.0, 16.5)})
    b = _run(tmp_path, "b", "dit", {"m1": (20.0, 21.0)}, train={"m1": 1.0})
    out = tmp_path / "sel.json"
    ms.main([str(a), str(b), "--out", str(out)])
    summary = json.loads(out.read_text())["summary"]
    assert "train" not in summary[0] and summary[0]["heldout"] == pytest.approx(1.0)
    assert "| dsm | 0.05 | 1.00 | 4.00 | 1.00 | – | 1.00 |" in out.with_suffix(".md").read_text()


def test_one_run_is_refused():
    with pytest.raises(SystemExit):
        ms.main(["only-one"])
