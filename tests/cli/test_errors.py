"""User errors and internal errors are told apart: a user error is one line and exit code 2; any
other exception is a bug in scorelid, reported as one ``internal error`` line with exit code 3 (its
type named), and ``--debug`` shows its traceback."""

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

import scorelid
from scorelid.cli import EXIT_INTERNAL, EXIT_USER, is_user_error, main
from scorelid.errors import (
    DirectoryBusyError,
    InputError,
    MissingDependencyError,
    ModelLoadError,
    RankFailure,
    ScoreLIDError,
    TrainingDivergedError,
)

HINT = "(a bug in scorelid; rerun with --debug for the traceback)"


def _estimate_args(tmp_path):
    # load_denoiser is the first library call after the options are checked
    return ["estimate", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "x.npy"),
            "--out", str(tmp_path / "lid.csv"), "--no-progress"]


@pytest.mark.parametrize("exc", [KeyError("x"), RuntimeError("boom\nsecond line"), TypeError("bad arg"),
                                 AssertionError()])
def test_internal_error_is_one_line_exit_3(exc, tmp_path, monkeypatch, capsys):
    def broken(*a, **k):
        raise exc

    monkeypatch.setattr(scorelid, "load_denoiser", broken)
    assert main(_estimate_args(tmp_path)) == EXIT_INTERNAL == 3
    err = capsys.readouterr().err.strip().splitlines()
    what = type(exc).__name__ + (f": {str(exc).splitlines()[0]}" if str(exc) else "")
    assert err == [f"scorelid estimate: internal error: {what} {HINT}"]
    assert not (tmp_path / "lid.csv").exists()


def test_internal_error_with_debug_raises(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise KeyError("x")

    monkeypatch.setattr(scorelid, "load_denoiser", broken)
    with pytest.raises(KeyError, match="x"):
        main(["--debug", *_estimate_args(tmp_path)])
    monkeypatch.setenv("SCORELID_DEBUG", "1")
    with pytest.raises(KeyError, match="x"):
        main(_estimate_args(tmp_path))


@pytest.mark.parametrize("exc", [ValueError("bad value"), FileNotFoundError("no such file: f"),
                                 PermissionError("denied"), InputError("bad option"),
                                 DirectoryBusyError("busy"), MissingDependencyError("pip install x"),
                                 ModelLoadError("damaged"), TrainingDivergedError("diverged")])
def test_user_errors_are_one_line_exit_2(exc, tmp_path, monkeypatch, capsys):
    def broken(*a, **k):
        raise exc

    monkeypatch.setattr(scorelid, "load_denoiser", broken)
    assert main(_estimate_args(tmp_path)) == EXIT_USER == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"scorelid estimate: error: {exc}"]


def test_process_shows_traceback_only_with_debug(tmp_path):
    """In a real process: no traceback without --debug (exit 3), the full one with it."""
    script = textwrap.dedent("""
        import sys
        import scorelid
        from scorelid.cli import main

        def broken(*a, **k):
            return {}["injected-key"]

        scorelid.load_denoiser = broken
        sys.exit(main(sys.argv[1:]))
    """)
    cmd = [sys.executable, "-c", script]
    proc = subprocess.run([*cmd, *_estimate_args(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        f"scorelid estimate: internal error: KeyError: 'injected-key' {HINT}"]
    proc = subprocess.run([*cmd, "--debug", *_estimate_args(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1  # the uncaught exception's exit status
    assert "Traceback (most recent call last)" in proc.stderr
    assert "in broken" in proc.stderr and "KeyError: 'injected-key'" in proc.stderr


def test_error_types_keep_their_builtin_bases():
    """Code that caught the built-in type before these types existed still catches them."""
    for cls, base in ((InputError, ValueError), (ModelLoadError, ValueError),
                      (MissingDependencyError, RuntimeError), (DirectoryBusyError, RuntimeError),
                      (TrainingDivergedError, RuntimeError), (RankFailure, RuntimeError)):
        assert issubclass(cls, ScoreLIDError) and issubclass(cls, base), cls
    from scorelid.runtime.distributed import RankFailure as from_distributed
    from scorelid.runtime.lock import DirectoryBusyError as from_lock

    assert from_lock is DirectoryBusyError and from_distributed is RankFailure


def test_classification():
    assert is_user_error(ValueError()) and is_user_error(OSError()) and is_user_error(MemoryError())
    assert is_user_error(torch.OutOfMemoryError("CUDA out of memory"))
    assert not any(is_user_error(e) for e in (RuntimeError(), KeyError("k"), TypeError(), IndexError(),
                                              AttributeError(), ImportError(), NotImplementedError()))
    # a failed torchrun rank: this rank's own error decides; a rank that only heard of it is told
    # in one line
    for cause, user in ((ValueError("bad data"), True), (KeyError("k"), False), (None, True)):
        try:
            raise RankFailure("rank 1 failed: ...") from cause
        except RankFailure as exc:
            assert is_user_error(exc) is user


def test_bad_device_is_a_user_error(tmp_path, capsys):
    assert main([*_estimate_args(tmp_path), "--device", "nosuchdevice:0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scorelid estimate: error: device 'nosuchdevice:0': ")


def test_damaged_diffusers_model_is_a_user_error(tmp_path, capsys):
    """Weights of other shapes than the UNet's config: diffusers raises RuntimeError; the user sees
    one line naming the component (exit 2), not an internal error."""
    from adapters.tiny_models import cached, write_images

    model = tmp_path / "sd2"
    shutil.copytree(cached("sd2-eps"), model)
    cfg = json.loads((model / "unet" / "config.json").read_text())
    cfg["block_out_channels"] = [2 * c for c in cfg["block_out_channels"]]
    (model / "unet" / "config.json").write_text(json.dumps(cfg))
    write_images(tmp_path / "im", 1)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["images", "--model", str(model), "--images", str(tmp_path / "im"), "--methods", "dsm",
                     "--n-noise", "1", "--cache-dir", str(tmp_path / "cache"), "--out",
                     str(tmp_path / "lid.csv"), "--no-progress"])
    finally:
        torch.set_num_threads(n)
    assert code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"scorelid images: error: {model}: cannot load component 'unet' (damaged or "
                           "foreign files): RuntimeError: Error(s) in loading state_dict"), line
    assert not (tmp_path / "lid.csv").exists()
