"""``scorelid bench``: bad input gives one line and exit 2; the scaling study end to end (tiny)."""

import json

import pytest
import torch

from scorelid.cli import main


def _one_line_error(capsys, code):
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("scorelid bench: error:")
    assert "Traceback" not in err
    return err


def test_unknown_manifold(tmp_path, capsys):
    code = main(["bench", "--out", str(tmp_path / "o"), "--manifolds", "hypersphere", "torus9"])
    assert "unknown manifold(s) ['torus9']" in _one_line_error(capsys, code)


def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    code = main(["bench", "--out", str(tmp_path / "f"), "--manifolds", "hyperball"])
    assert "not a directory" in _one_line_error(capsys, code)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_unavailable(tmp_path, capsys):
    code = main(["bench", "--out", str(tmp_path / "o"), "--device", "cuda"])
    assert "CUDA is not available" in _one_line_error(capsys, code)


def test_bad_numbers(tmp_path, capsys):
    code = main(["bench", "--out", str(tmp_path), "--seed", "-1"])
    assert "--seed must be >= 0" in _one_line_error(capsys, code)
    code = main(["bench", "--out", str(tmp_path), "--jobs", "0"])
    assert "--jobs must be >= 1" in _one_line_error(capsys, code)
    code = main(["bench", "--scaling", "--out", str(tmp_path), "--dims", "0"])
    assert "dims must be positive integers" in _one_line_error(capsys, code)


def test_unknown_profile(tmp_path, capsys):
    code = main(["bench", "--profile", "huge", "--out", str(tmp_path)])
    line = _one_line_error(capsys, code)
    assert "unknown profile 'huge'; choose one of ['cpu-dit', 'paper', 'quick']" in line


def test_scaling_end_to_end_and_force(tmp_path, capsys):
    """A one-member study with a 3-step model: every estimate in a fresh process (CPU), files written;
    the finished directory is refused without --force and rewritten from its cache with it."""
    out = tmp_path / "s"
    args = ["bench", "--scaling", "--out", str(out), "--dims", "2", "--steps", "3"]
    code = main(args)
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    recs = json.loads((out / "scaling.json").read_text())
    # DSM, FLIPD exact, FLIPD Hutchinson
    assert [(r["n"], r["method"], r["options"].split(",")[0]) for r in recs] == [
        (8, "dsm", "K=8"), (8, "flipd", "trace=exact"), (8, "flipd", "trace=hutchinson")]
    assert all(r["n_points"] == 1000 and r["seconds_per_point"] > 0 and r["isolated"] for r in recs)
    assert all(r["peak_mem_bytes"] is not None and r["peak_mem_bytes"] >= 0 for r in recs)
    assert (out / "scaling.png").stat().st_size > 5000
    assert "| 2 | 8 | DSM (K=8) |" in (out / "scaling.md").read_text()
    assert (out / "scaling" / "results.csv").is_file()
    assert "scaling.json already exists" in _one_line_error(capsys, main(args))
    assert main([*args, "--force"]) == 0
    assert json.loads((out / "scaling.json").read_text()) == recs


def test_finished_dir_refused_without_force(tmp_path, capsys, monkeypatch):
    import scorelid.bench.runner as runner

    calls = []
    monkeypatch.setattr(runner, "run_bench", lambda prof, out, **kw: calls.append((prof.name, kw["resume"])))
    out = tmp_path / "o"
    out.mkdir()
    (out / "bench.json").write_text("{}")  # a partially finished run: resumed, not refused
    assert main(["bench", "--out", str(out), "--manifolds", "hyperball"]) == 0
    capsys.readouterr()
    (out / "results.json").write_text("[]")  # finished
    code = main(["bench", "--out", str(out), "--manifolds", "hyperball"])
    err = _one_line_error(capsys, code)
    assert "results.json already exists" in err and "--force" in err
    assert main(["bench", "--out", str(out), "--force", "--no-resume"]) == 0
    assert calls == [("quick", True), ("quick", False)]


def test_real_delegates_to_the_real_benchmark(tmp_path, capsys, monkeypatch):
    import scorelid.cli.real as real

    seen = []
    monkeypatch.setattr(real, "run", lambda args: seen.append(args) or 0)
    assert main(["bench", "--real", "--out", str(tmp_path / "r"), "--seed", "3", "--force"]) == 0
    (args,) = seen
    assert (args.out, args.seed, args.force, args.full, args.no_unet) == (str(tmp_path / "r"), 3, True, False,
                                                                          False)
    assert main(["bench", "--real", "--scaling", "--out", str(tmp_path / "r")]) == 2
    assert "choose one" in capsys.readouterr().err.strip().splitlines()[-1]
