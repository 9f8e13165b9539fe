"""``scorelid compare`` on a real (tiny) `scorelid images` run in two precisions."""

import json

from adapters.tiny_models import cached, write_images

from scorelid.cli import main


def test_compare_end_to_end(tmp_path, capsys):
    write_images(tmp_path / "im", 4)
    outs = []
    for dtype in ("fp32", "bf16"):
        out = tmp_path / f"{dtype}.csv"
        assert main(["images", "--model", str(cached("sd3")), "--images", str(tmp_path / "im"),
                     "--out", str(out), "--dtype", dtype, "--n-noise", "2", "--n-probes", "2",
                     "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 0
        outs.append(str(out))
    rc = main(["compare", *outs, "--out-dir", str(tmp_path / "rep"), "--grid-k", "2"])
    assert rc == 0
    s = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert {r["precision"] for r in s["correlations"]} == {"fp32", "bf16"}
    (dr,) = [r for r in s["drift"] if r["method"] == "dsm"]
    assert dr["precision"] == "bf16" and 0 < dr["mean_rel_diff"] < 0.05
    for name in ("scatter_dsm_flipd.png", "drift.png", "histograms.png", "grid_dsm_0.05_fp32.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 1000
    assert "## correlations" in capsys.readouterr().out
    # a finished comparison is not overwritten without --force
    assert main(["compare", *outs, "--out-dir", str(tmp_path / "rep"), "--no-plots"]) == 2
    assert "report.md already exists" in capsys.readouterr().err
    (tmp_path / "rep" / "report.md").write_text("old")
    assert main(["compare", *outs, "--out-dir", str(tmp_path / "rep"), "--no-plots", "--force"]) == 0
    assert "## correlations" in (tmp_path / "rep" / "report.md").read_text()
    assert main(["compare", str(tmp_path / "missing.csv"), "--out-dir", str(tmp_path / "r2")]) == 2
