"""``scorelid images`` on a folder of mixed good and broken files: the good ones are scored, each
broken one is named on stderr with its reason and listed in ``OUT.skipped.json``; a folder with
no images at all, or a missing one, is one error line (exit 2)."""

import json

import pandas as pd
import pytest
import torch
from adapters.tiny_models import cached, write_images

from scorelid.cli import main


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_mixed_good_and_broken_images(tmp_path, capsys):
    im = tmp_path / "im"
    write_images(im, 2, bad=1)  # img000.png, img001.png, broken0.png ("not an image")
    good = (im / "img000.png").read_bytes()
    (im / "truncated.png").write_bytes(good[: len(good) // 2])
    (im / "empty.png").write_bytes(b"")
    (im / "fake.jpg").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # a PNG header, nothing else
    (im / "notes.txt").write_text("not an image suffix: ignored")
    out = tmp_path / "lid.csv"
    args = ["images", "--model", str(cached("sd2-eps")), "--methods", "dsm", "--n-noise", "2",
            "--batch-size", "2", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main([*args, "--images", str(im), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    reasons = {"broken0.png": "cannot identify image file", "empty.png": "cannot identify image file",
               "fake.jpg": "cannot identify image file", "truncated.png": "image file is truncated"}
    for name, why in reasons.items():
        assert any(line.startswith(f"skipping unreadable image {im / name}: ") and why in line
                   for line in err.splitlines()), (name, err)
    assert "4 unreadable images skipped (listed in lid.csv.skipped.json)" in err
    df = pd.read_csv(out)
    assert sorted(df["path"].map(lambda p: p.rsplit("/", 1)[-1])) == ["img000.png", "img001.png"]
    assert df["lid"].notna().all()
    skipped = json.loads((tmp_path / "lid.csv.skipped.json").read_text())
    assert sorted(k.rsplit("/", 1)[-1] for k in skipped) == sorted(reasons)

    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert main([*args, "--images", str(empty), "--out", str(tmp_path / "e.csv")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"scorelid images: error: no image files in {empty}")
    assert main([*args, "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "e.csv")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"scorelid images: error: images not found: " \
                                                              f"{tmp_path / 'nope'}"

    # every file broken: an error naming the first one, and no output that looks like a result
    allbad = tmp_path / "all_broken"
    allbad.mkdir()
    for name in ("a.png", "b.png"):
        (allbad / name).write_bytes(b"not an image")
    assert main([*args, "--images", str(allbad), "--out", str(tmp_path / "bad.csv")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    first = allbad / "a.png"
    assert line.startswith(f"scorelid images: error: none of the 2 images could be read (first: {first}: ")
    assert not (tmp_path / "bad.csv").exists()
