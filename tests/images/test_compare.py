"""Comparison statistics against hand-computed values on a small synthetic result table."""

import numpy as np
import pandas as pd
import pytest

from scorelid.images.compare import correlations, drift, load_results, pearson, spearman, throughput


def _table(tmp_path):
    rng = np.random.default_rng(0)
    paths = [f"im{i}.png" for i in range(6)]
    dsm = np.array([10.0, 12, 9, 30, 25, 14])
    flipd = np.array([8.0, 11, -2, 28, 26, 15])
    rows = []
    for prec_dtype, quant, shift in [("fp32", "none", 0.0), ("fp16", "none", 0.5), ("bf16", "int8", 2.0)]:
        for m, vals in [("dsm", dsm), ("flipd", flipd)]:
            for p, v in zip(paths, vals, strict=True):
                rows.append({"path": p, "method": m, "sigma": 0.05, "lid": v + shift * (p == "im0.png"),
                             "dtype": prec_dtype, "quant": quant,
                             "seconds_per_image": 0.5 if m == "dsm" else 2.0,
                             "peak_mem_mib": rng.uniform(1, 2)})
    f = tmp_path / "r.csv"
    pd.DataFrame(rows).to_csv(f, index=False)
    return f, dsm, flipd


def test_rank_and_linear_correlation():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [1, 1, 2]) == pytest.approx(1.0)  # ties
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1])


def test_tables(tmp_path):
    f, dsm, flipd = _table(tmp_path)
    df = load_results([f])
    assert set(df["precision"]) == {"fp32", "fp16", "bf16+int8"}
    c = correlations(df).set_index("precision")
    assert c.loc["fp32", "pearson"] == pytest.approx(np.corrcoef(dsm, flipd)[0, 1])
    assert c.loc["fp32", "frac_negative_flipd"] == pytest.approx(1 / 6)
    d = drift(df).set_index(["method", "precision"])
    assert d.loc[("dsm", "fp16"), "mean_abs_diff"] == pytest.approx(0.5 / 6)
    assert d.loc[("flipd", "bf16+int8"), "max_abs_diff"] == pytest.approx(2.0)
    assert d.loc[("dsm", "fp16"), "spearman"] == pytest.approx(1.0)
    t = throughput(df).set_index(["method", "precision"])
    assert t.loc[("dsm", "fp32"), "images_per_s"] == pytest.approx(2.0)
    assert t.loc[("flipd", "fp32"), "images_per_s"] == pytest.approx(0.5)


def test_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_results([tmp_path / "none.csv"])
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        load_results([tmp_path / "x.csv"])
    f, _, _ = _table(tmp_path)
    with pytest.raises(ValueError, match="duplicate"):
        load_results([f, f])
