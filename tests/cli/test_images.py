"""``scorelid images`` end to end on tiny SD2 (epsilon) and SD3 pipelines loaded from disk."""

import pandas as pd
import pytest
from adapters.tiny_models import cached, write_images

from scorelid.cli import main


@pytest.mark.parametrize(("kind", "suffix"), [("sd2-eps", ".csv"), ("sd3", ".parquet")])
def test_images_end_to_end(kind, suffix, tmp_path, capsys):
    write_images(tmp_path / "im", 3, bad=1)
    out = tmp_path / f"lid{suffix}"
    rc = main([
        "images", "--model", str(cached(kind)), "--images", str(tmp_path / "im"), "--methods", "dsm,flipd",
        "--sigma", "0.05,0.2" if kind == "sd3" else "0.05", "--out", str(out),
        "--n-noise", "2", "--n-probes", "2", "--batch-size", "2",
        "--cache-dir", str(tmp_path / "cache"), "--no-progress",
    ])
    assert rc == 0
    err = capsys.readouterr().err
    assert "skipping unreadable image" in err and "broken0.png" in err
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert {"path", "method", "sigma", "lid", "dtype", "sigma_used", "timestep"} <= set(df.columns)
    assert len(df) == 3 * 2 * (2 if kind == "sd3" else 1) and set(df["method"]) == {"dsm", "flipd"}
    assert set(df["dtype"]) == {"fp32"} and df["lid"].notna().all()
    n = 4 * 8 * 8 if kind == "sd2-eps" else 16 * 8 * 8
    # random tiny networks denoise nothing: both estimators land near the ambient dimension
    assert df["lid"].between(0.2 * n, 3 * n).all()
    t = df.loc[df["sigma"] == 0.05, "timestep"].iloc[0]
    assert t == pytest.approx(1000 * 0.05 / 1.05) if kind == "sd3" else 1 < t < 3


def test_images_errors_are_one_line(tmp_path, capsys):
    write_images(tmp_path / "im", 1)
    args = ["images", "--images", str(tmp_path / "im"), "--out", str(tmp_path / "o.csv")]
    assert main([*args, "--model", str(tmp_path / "nope")]) == 2
    assert "model directory not found" in capsys.readouterr().err
    rc = main([*args, "--model", str(cached("sd2-eps")), "--sigma", "0.01", "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert rc == 2 and last.startswith("scorelid images: error:") and "below the smallest noise level" in last
    assert main([*args, "--model", str(cached("sd2-eps")), "--methods", "dsm,bogus"]) == 2
    assert "unknown method" in capsys.readouterr().err
