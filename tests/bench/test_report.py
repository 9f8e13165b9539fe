"""Report rendering from a hand-made results.json: Table 1 layout, references, figures."""

import json

import pytest

from scorelid.bench.report import render_markdown, row_label, write_report

MANS = {"hypersphere": 16, "hyperball": 16, "hypertwinpeaks": 128, "clifford_torus": 32, "nonlinear": 32}


def _rec(manifold, method, sigma, mae, arch="mlp", options=""):
    return {"manifold": manifold, "d": MANS[manifold], "n": 4 * MANS[manifold], "arch": arch,
            "method": method, "sigma": sigma, "options": options, "mae": mae,
            "mean_lid": MANS[manifold] + mae, "seconds": 2.0, "points_per_second": 500.0,
            "peak_mem_bytes": 3 * 2**20, "n_points": 1000, "device": "cpu"}


@pytest.fixture
def records():
    recs = []
    for i, m in enumerate(MANS):
        recs.append(_rec(m, "dsm", 0.05, 1.0 + i, options="K=8"))
        recs.append(_rec(m, "flipd", 0.05, 2.0, options="trace=hutchinson,probes=8"))
        recs.append(_rec(m, "ess", None, 0.5 * i, arch="knn", options="k=50"))
    return recs


def test_table1_layout(records):
    md = render_markdown(records, {"profile": "quick"})
    lines = md.splitlines()
    head = next(i for i, s in enumerate(lines) if s.startswith("| method | sphere (d=16)"))
    assert lines[head] == ("| method | sphere (d=16) | ball (d=16) | twinpeaks (d=128) | clifford (d=32) | "
                           "nonlinear (d=32) | average |")
    # ours, then the authors' CPU row, then the paper's average, for DSM at 0.05
    assert lines[head + 2] == "| MLP DSM σ=0.05 | 1.00 | 2.00 | 3.00 | 4.00 | 5.00 | 3.00 |"
    assert lines[head + 3] == ("| *DSM t=0.05 (authors' code, CPU)* | 2.89 | 2.26 | 6.96 | 38.64 | 18.73 | "
                               "*13.89* |")
    assert lines[head + 4].startswith("| *MLP DSM t=0.05 (paper Table 1, GPU)* |")
    assert "*7.27*" in lines[head + 4]
    assert "| MLP FLIPD σ=0.05 | 2.00† | 2.00† | 2.00† | 2.00† | 2.00† | 2.00 |" in lines
    assert "| ESS k=50 | 0.00 | 0.50 | 1.00 | 1.50 | 2.00 | 1.00 |" in lines
    assert "| *ESS k=50 (authors' code, CPU)* | 0.48 | 0.73 | 6.59 | 29.70 | 1.30 | *7.76* |" in lines
    assert any("*ESS (paper Table 1, GPU)*" in s and "*7.12*" in s for s in lines)
    assert "underflows" in md and "VE noise level" in md


def test_average_needs_every_manifold(records):
    recs = [r for r in records if not (r["manifold"] == "nonlinear" and r["method"] == "dsm")]
    md = render_markdown(recs)
    assert "| MLP DSM σ=0.05 | 1.00 | 2.00 | 3.00 | 4.00 | – | – |" in md.splitlines()


def test_labels():
    assert row_label(_rec("hyperball", "error_bundle", 0.01, 0.0)) == "MLP error bundle σ=0.01"
    assert row_label(_rec("hyperball", "dsm", 0.05, 0.0, arch="dit")) == "DiT DSM σ=0.05"
    assert row_label(_rec("hyperball", "mle", None, 0.0, arch="knn", options="k=100")) == "MLE k=100"
    assert row_label(_rec("hyperball", "dsm@auto", None, 0.0, options="K=16,grid=0.005..0.3x12")) == \
        "MLP DSM σ=auto"
    assert row_label(_rec("hyperball", "flipd@auto", None, 0.0, options="trace=hutchinson,probes=8")) == \
        "MLP FLIPD σ=auto"


def test_write_report_files(tmp_path, records):
    (tmp_path / "results.json").write_text(json.dumps(records))
    path = write_report(tmp_path)
    assert path == tmp_path / "report.md" and "## MAE (Table 1 layout)" in path.read_text()
    png = (tmp_path / "mae.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert not list(tmp_path.glob("hist_*.png"))  # no per-point files in a hand-made directory


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="results directory not found"):
        write_report(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"no results\.json"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps([{"manifold": "hyperball"}]))
    with pytest.raises(ValueError, match="record 0 lacks"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("[]")
    with pytest.raises(ValueError, match="no records"):
        write_report(tmp_path)
