"""Images pipeline: discovery, crop/resize, streaming with resume, unreadable images skipped."""

import json

import pandas as pd
import pytest
import torch
from adapters.tiny_models import cached, write_images
from PIL import Image

import scorelid.images.run as images_mod
from scorelid.adapters import load_model
from scorelid.images.run import ImageRun, find_images, load_image, run_images

RUN = ImageRun(methods=["dsm", "flipd"], sigmas=[0.05], n_noise=2, batch_size=2, n_probes=2)
STABLE = ["path", "index", "method", "sigma", "sigma_used", "timestep", "lid", "dtype", "quant"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_model(cached("sd3"), cache_dir=tmp_path_factory.mktemp("cache"))


def test_find_and_load(tmp_path):
    paths = write_images(tmp_path / "im", 3, bad=1)
    (tmp_path / "im" / "notes.txt").write_text("x")
    assert find_images(tmp_path / "im") == paths
    assert find_images(str(tmp_path / "im" / "img00*.png")) == paths[1:]
    with pytest.raises(FileNotFoundError, match="no image files"):
        find_images(str(tmp_path / "im" / "*.jpg"))
    with pytest.raises(FileNotFoundError):
        find_images(tmp_path / "missing")
    # center crop then resize: a 4x8 image whose middle 4x4 is white becomes all white
    arr = torch.zeros(4, 8, 3, dtype=torch.uint8)
    arr[:, 2:6] = 255
    Image.fromarray(arr.numpy()).save(tmp_path / "c.png")
    x = load_image(tmp_path / "c.png", 4)
    assert x.shape == (3, 4, 4) and torch.allclose(x, torch.ones_like(x))
    with pytest.raises(ValueError, match="cannot read image"):
        load_image(tmp_path / "im" / "broken0.png", 4)


def test_resume_after_interrupt_recomputes_nothing(model, tmp_path, monkeypatch):
    imgs = write_images(tmp_path / "im", 5, bad=1)
    full = run_images(model, tmp_path / "im", tmp_path / "full.csv", RUN, progress=False)
    assert len(full) == 5 * 2 and full["path"].nunique() == 5  # broken image skipped
    skipped = json.loads((tmp_path / "full.csv.skipped.json").read_text())
    assert [p.split("/")[-1] for p in skipped] == ["broken0.png"]

    calls, interrupt = [], [True]
    real = images_mod.estimate

    def counting(D, x, method, sigma, **kw):
        calls.append(kw["indices"].tolist())
        if interrupt[0] and len(calls) == 3:  # the second batch's first estimate: mid-batch
            raise KeyboardInterrupt
        return real(D, x, method, sigma, **kw)

    monkeypatch.setattr(images_mod, "estimate", counting)
    out = tmp_path / "res.parquet"
    with pytest.raises(KeyboardInterrupt):
        run_images(model, tmp_path / "im", out, RUN, progress=False)
    assert not out.exists() and (tmp_path / "res.parquet.partial").is_dir()
    calls.clear()
    interrupt[0] = False
    df = run_images(model, tmp_path / "im", out, RUN, progress=False)
    # sorted paths: broken0.png is index 0, so the first batch (0, 1) held one readable image and
    # finished before the interrupt; the rerun estimates only images 2..5
    assert all(min(c) >= 2 for c in calls), calls
    assert sorted({i for c in calls for i in c}) == [2, 3, 4, 5]
    assert len(calls) == 2 * 2  # 2 batches x 2 methods
    assert not (tmp_path / "res.parquet.partial").exists()
    pd.testing.assert_frame_equal(pd.read_parquet(out)[STABLE], full[STABLE], check_dtype=False)
    readable = sorted(str(p) for p in imgs if "broken" not in p.name)
    assert df["lid"].notna().all() and sorted(df["path"].unique()) == readable


def test_settings_change_refused_and_existing_output_kept(model, tmp_path):
    write_images(tmp_path / "im", 2)
    out = tmp_path / "r.csv"
    part = tmp_path / "r.csv.partial"
    part.mkdir()
    (part / "run.json").write_text('{"seed": 123}')
    with pytest.raises(ValueError, match="other settings"):
        run_images(model, tmp_path / "im", out, RUN, progress=False)
    assert (part / "run.json").read_text() == '{"seed": 123}'  # the refused partial run is untouched
    first = run_images(model, tmp_path / "im", out, RUN, force=True, progress=False)  # starts over
    assert len(first) == 2 * 2 and not part.exists()
    with pytest.raises(FileExistsError, match=r"r\.csv already exists.*--force"):
        run_images(model, tmp_path / "im", out, RUN, progress=False)
    again = run_images(model, tmp_path / "im", out, RUN, force=True, progress=False)
    pd.testing.assert_frame_equal(again[STABLE], first[STABLE])
    with pytest.raises(ValueError, match="below the smallest"):
        run_images(model, tmp_path / "im", tmp_path / "low.csv", ImageRun(sigmas=[0.001]), progress=False)
