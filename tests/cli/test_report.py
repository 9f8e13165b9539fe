"""``scorelid report DIR``."""

import json

from scorelid.cli import main


def test_report_writes_files(tmp_path, capsys):
    rec = {"manifold": "hyperball", "d": 16, "n": 64, "arch": "mlp", "method": "dsm", "sigma": 0.05,
           "options": "K=8", "mae": 1.25, "mean_lid": 17.25, "seconds": 1.0, "points_per_second": 1000.0,
           "peak_mem_bytes": 2**20, "n_points": 1000, "device": "cpu"}
    (tmp_path / "results.json").write_text(json.dumps([rec]))
    assert main(["report", str(tmp_path)]) == 0
    assert "| MLP DSM σ=0.05 | 1.25 | 1.25 |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "mae.png").is_file()
    assert "report written to" in capsys.readouterr().err


def test_missing_dir_one_line(tmp_path, capsys):
    code = main(["report", str(tmp_path / "nope")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"scorelid report: error: results directory not found: {tmp_path / 'nope'}"


def test_bad_results_one_line(tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"a": 1}')
    code = main(["report", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "must hold a list of records" in err
