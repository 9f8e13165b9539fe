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


@pytest.mark.parametrize("kind", ["sdxl", "ddpm", "pixart", "flux", "sd3"])
def test_images_each_family_with_prompt_and_captions(kind, tmp_path):
    paths = write_images(tmp_path / "im", 2)
    base = ["images", "--model", str(cached(kind)), "--images", str(tmp_path / "im"), "--methods", "dsm",
            "--sigma", "0.5", "--n-noise", "2", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    if kind == "flux":
        base += ["--image-size", "16"]
    uncond = kind == "ddpm"
    out1 = tmp_path / "a.csv"
    assert main([*base, "--out", str(out1), *([] if uncond else ["--prompt", "a red cat"])]) == 0
    df = pd.read_csv(out1, keep_default_na=False)
    assert len(df) == 2 and set(df["family"]) == {kind} and df["lid"].astype(float).notna().all()
    assert set(df["prompt"]) == {"" if uncond else "a red cat"}
    if uncond:
        assert main([*base, "--out", str(tmp_path / "b.csv"), "--prompt", "x"]) == 2  # unconditional
        return
    caps = tmp_path / "caps.csv"
    pd.DataFrame({"path": [p.name for p in paths], "caption": ["a red cat", "a blue dog"]}).to_csv(caps)
    out2 = tmp_path / "b.parquet"
    assert main([*base, "--out", str(out2), "--captions", str(caps)]) == 0
    df2 = pd.read_parquet(out2)
    assert list(df2["prompt"]) == ["a red cat", "a blue dog"]
    # the image captioned like --prompt gets the same number; the other prompt changes it
    assert df2["lid"].iloc[0] == pytest.approx(float(df["lid"].iloc[0]), rel=1e-5)
