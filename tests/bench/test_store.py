"""The results store: the file layout of a bench directory and the typed records' round trip."""

import csv
import json

import numpy as np
import pytest

from scorelid.bench.store import (
    RECORD_KEYS,
    BenchDir,
    ResultRow,
    UnitMeta,
    UnitRecord,
    load_extras,
    load_records,
    unit_name,
    write_results,
)


def _row(method="dsm", sigma=0.05, **extra) -> ResultRow:
    row = ResultRow(manifold="hyperball", d=2, n=6, arch="mlp", method=method, sigma=sigma, options="K=8",
                    mae=0.25, mean_lid=2.1, seconds=0.5, points_per_second=80.0, peak_mem_bytes=None,
                    n_points=40, device="cpu", n_nonfinite=0)
    row.update(extra)
    return row


def _unit() -> UnitRecord:
    meta = UnitMeta("hyperball", "mlp", 0, train_seconds=1.5,
                    lid_by_sigma=[{"sigma_lo": 0.01, "sigma_hi": 0.02, "mean_lid": 2.0, "count": 3}])
    rows = [_row(), _row("dsm@auto", None, rule="first_plateau", grid=[0.01, 0.1])]
    per_point = {"dsm@0.05": np.linspace(1, 3, 40), "dsm@auto": np.full(40, 2.0)}
    extras = {"dsm@auto::curve": np.ones((2, 40), np.float32)}
    return UnitRecord(meta, rows, np.full(40, 2), per_point, extras)


def test_layout(tmp_path):
    store = BenchDir(tmp_path)
    unit = _unit()
    assert not store.unit_done("hyperball", "mlp")
    store.save_unit(unit)
    # the documented layout, byte for byte in the names: units/<manifold>__<arch>.{json,npz,extra.npz}
    assert unit_name("hyperball", "mlp") == "hyperball__mlp"
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == \
        ["hyperball__mlp.extra.npz", "hyperball__mlp.json", "hyperball__mlp.npz"]
    assert store.model_dir("hyperball", "mlp") == tmp_path / "models" / "hyperball__mlp"
    assert store.unit_done("hyperball", "mlp") and not store.unit_done("hyperball", "knn")
    saved = json.loads((tmp_path / "units" / "hyperball__mlp.json").read_text())
    assert list(saved) == ["meta", "records"]
    assert saved["meta"] == {"manifold": "hyperball", "arch": "mlp", "seed": 0, "train_seconds": 1.5,
                             "lid_by_sigma": unit.meta.lid_by_sigma}
    assert list(saved["records"][1]) == [*RECORD_KEYS, "n_nonfinite", "rule", "grid"]
    with np.load(tmp_path / "units" / "hyperball__mlp.npz") as z:
        assert z.files == ["d_true", "dsm@0.05", "dsm@auto"]
        np.testing.assert_array_equal(z["dsm@0.05"], unit.per_point["dsm@0.05"])
    assert store.unit_archs("hyperball") == ["mlp"]  # the extras are not per-point LIDs
    assert list(store.load_per_point("hyperball", "mlp")) == ["d_true", "dsm@0.05", "dsm@auto"]
    assert load_extras(tmp_path, "hyperball__mlp")["dsm@auto::curve"].shape == (2, 40)
    assert store.load_extras("hyperball", "knn") == {}
    assert not list(tmp_path.rglob("*.tmp"))


def test_record_round_trip(tmp_path):
    store = BenchDir(tmp_path)
    unit = _unit()
    store.save_unit(unit)
    rows = store.load_rows("hyperball", "mlp")
    assert rows == unit.rows
    for row in rows:  # the dict form keeps key order, so a resumed run rewrites the same bytes
        d = row.to_dict()
        assert ResultRow.from_dict(d).to_dict() == d and list(ResultRow.from_dict(d).to_dict()) == list(d)
    assert json.dumps([r.to_dict() for r in rows]) == \
        json.dumps(json.loads((tmp_path / "units" / "hyperball__mlp.json").read_text())["records"])
    assert store.load_meta("hyperball", "mlp") == unit.meta
    assert store.load_meta("hyperball", "knn") is None
    assert [(m, meta.arch) for m, meta in store.metas()] == [("hyperball", "mlp")]
    # a baseline meta (no model) keeps only its three keys
    assert UnitMeta("hyperball", "knn", 0).to_dict() == {"manifold": "hyperball", "arch": "knn", "seed": 0}
    # fields a row adds: known keys set in place, new keys appended (as dict.update)
    row = _row(mae=0.5, extra_key=1)
    assert row.mae == 0.5 and list(row.to_dict())[-1] == "extra_key"
    with pytest.raises(ValueError, match="lacks"):
        ResultRow.from_dict({"manifold": "hyperball"})


def test_results_files(tmp_path):
    recs = [_row().to_dict(), _row("dsm@auto", None, grid=[0.01, 0.1]).to_dict()]
    write_results(tmp_path, recs)
    assert load_records(tmp_path) == recs
    assert (tmp_path / "results.json").read_text() == json.dumps(recs, indent=2)
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert list(rows[0]) == [*RECORD_KEYS, "grid", "n_nonfinite"]
    assert rows[0]["peak_mem_bytes"] == "" and json.loads(rows[1]["grid"]) == [0.01, 0.1]
    store = BenchDir(tmp_path)
    assert store.read_stamp() is None
    store.write_stamp({"fingerprint": "abc", "seed": 1})
    assert store.read_stamp() == {"fingerprint": "abc", "seed": 1}
    assert (tmp_path / "bench.json").is_file()
    with pytest.raises(FileNotFoundError, match=r"no results\.json"):
        load_records(tmp_path / "missing")
