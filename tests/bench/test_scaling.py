"""The scaling study with closed-form denoisers: known FLIPD answer, resume, ratios table."""

import json

from scorelid.bench.scaling import run_scaling
from scorelid.data.analytic import GaussianSubspace


def test_scaling_closed_form_and_resume(tmp_path):
    calls = []

    def data(d, n, num, seed):
        return GaussianSubspace(d, n, seed=d).sample(num, seed=seed)

    def train(x, arch, recipe, seed, device, out_dir):
        calls.append(out_dir.name)
        return GaussianSubspace(x.shape[1] // 4, x.shape[1], seed=x.shape[1] // 4)

    kw = dict(n_train=50, n_eval=30, data_fn=data, train_fn=train, sigma=0.01, exact_max_n=8)
    recs = run_scaling(tmp_path, (2, 4), **kw)
    assert calls == ["d2", "d4"]
    assert [(r["n"], r["options"].split(",")[0]) for r in recs] == [
        (8, "K=8"), (8, "trace=exact"), (8, "trace=hutchinson"), (16, "K=8"), (16, "trace=hutchinson")]
    exact = recs[1]
    assert exact["mae"] < 1e-3  # FLIPD of the exact denoiser is d + O(sigma^2)
    assert json.loads((tmp_path / "scaling.json").read_text()) == recs
    md = (tmp_path / "scaling.md").read_text()
    assert "| 2 | 8 | FLIPD exact |" in md and "| 4 | 16 | FLIPD Hutchinson |" in md
    again = run_scaling(tmp_path, (2, 4), **kw)
    assert calls == ["d2", "d4"] and again == recs
