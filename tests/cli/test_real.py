"""``scorelid real``: listed, bad input -> one stderr line and exit 2, a tiny run end to end."""

import json

import pytest

from scorelid.cli import main


def test_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["real", "--help"])
    assert "--full" in capsys.readouterr().out


@pytest.mark.parametrize("argv, msg", [
    (["--mlp-steps", "0"], "--mlp-steps must be > 0"),
    (["--sigma", "-0.1"], "--sigma must be > 0"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--n-digits", "3"], "n_digits must be in"),
])
def test_bad_input(tmp_path, capsys, argv, msg):
    assert main(["real", "--out", str(tmp_path / "o"), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0] and "Traceback" not in err[0]


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["real", "--out", str(f), "--no-progress"]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_tiny_run(tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["real", "--out", str(out), "--no-progress", "--no-unet", "--n-digits", "80",
               "--n-patches", "50", "--n-test", "30", "--n-ood", "20", "--mlp-steps", "5"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert "unet" not in res and res["digits"]["n"] == 80 and res["patches"]["n"] == 50
    assert "Spearman(LID, PNG)" in capsys.readouterr().out
