"""run_real on tiny sizes: outputs, value ranges, resume reusing the trained models."""

import json

import numpy as np
import pytest

from scorelid.real.bench import RealConfig, run_real

TINY = RealConfig(n_test=40, n_digits=100, n_patches=60, n_ood=20, mlp_steps=10, unet_steps=2,
                  unet_channels=(8, 16), n_noise=2, k=10)


def test_run_real_tiny_and_resume(tmp_path):
    res = run_real(tmp_path, config=TINY, progress=False)
    for name in ("results.json", "summary.csv", "real.md", "points_digits.csv", "points_patches.csv",
                 "anomaly.csv", "points_unet.csv", "extremes.png", "digits_per_class.png", "anomaly.png"):
        assert (tmp_path / name).is_file(), name
    assert res["digits"]["n"] == 100 and res["patches"]["n"] == 60
    for name in ("digits", "patches"):
        for m, r in res[name]["spearman_png"].items():
            assert -1 <= r <= 1, (name, m)
    assert len(res["digits"]["per_class_mean_lid"]["dsm"]) == 10
    for d in res["anomaly"]["auroc"].values():
        assert set(d) == {"dsm", "flipd", "mle", "twonn"} and all(0 <= v <= 1 for v in d.values())
    assert set(res["unet"]) == {"epsilon", "v_prediction"}
    assert json.loads((tmp_path / "results.json").read_text())["config"]["n_digits"] == 100
    assert "Anomaly detection" in (tmp_path / "real.md").read_text()
    # rerun: models are reloaded (no training), estimates are seeded, so the numbers repeat
    again = run_real(tmp_path, config=TINY, progress=False)
    assert again["unet"]["epsilon"]["train_seconds"] is None
    np.testing.assert_allclose(again["digits"]["spearman_png"]["dsm"], res["digits"]["spearman_png"]["dsm"])
    assert again["anomaly"]["auroc"] == res["anomaly"]["auroc"]


def test_run_real_bad_config(tmp_path):
    with pytest.raises(ValueError, match="n_digits"):
        run_real(tmp_path, config=RealConfig(n_digits=5), progress=False)
    with pytest.raises(ValueError, match="sigma"):
        run_real(tmp_path, config=RealConfig(sigma=0.0), progress=False)
