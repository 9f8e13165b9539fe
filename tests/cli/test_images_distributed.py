"""``torchrun -m scorelid images`` with 2 gloo processes: a failing rank is named, no output is left,
the rerun resumes per shard, and the rows equal the single-process run's.

Run as a script (under torchrun) this file is the worker: it counts (and optionally fails) the
estimator calls of its rank, then runs ``scorelid images``:

    python -m torch.distributed.run --nproc_per_node=2 THIS_FILE CALLS FAIL_RANK FAIL_AT ARGS...
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

STABLE = ["path", "index", "method", "sigma", "sigma_used", "timestep", "dtype", "quant"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(calls: Path, fail_rank: int, fail_at: int, args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", __file__, str(calls), str(fail_rank), str(fail_at), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[1]))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def _calls(folder: Path, rank: int) -> list[list[int]]:
    f = folder / f"rank{rank}.txt"
    return [[int(v) for v in line.split(",")] for line in f.read_text().split()] if f.exists() else []


def test_two_processes_fail_named_resume_per_shard_and_match_one(tmp_path, capsys):
    from adapters.tiny_models import cached, write_images

    from scorelid.cli import main

    write_images(tmp_path / "im", 5, bad=1)  # sorted: broken0.png is image 0, img000..img004 are 1..5
    args = ["images", "--model", str(cached("sd3")), "--images", str(tmp_path / "im"),
            "--methods", "dsm,flipd", "--sigma", "0.05", "--n-noise", "2", "--n-probes", "2",
            "--batch-size", "1", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    one = tmp_path / "one.csv"
    assert main([*args, "--out", str(one)]) == 0
    capsys.readouterr()

    # batches of one image: rank 0 takes images 0, 2, 4 and rank 1 images 1, 3, 5; rank 1 fails on
    # its 3rd estimator call (image 3, dsm), after image 1 was finished
    two = tmp_path / "two.csv"
    proc = _torchrun(tmp_path / "calls1", 1, 3, [*args, "--out", str(two)])
    assert proc.returncode != 0
    assert "scorelid images: error: rank 1 failed: RuntimeError: injected failure" in proc.stderr
    assert proc.stderr.count("rank 1 failed") == 2  # each rank's one line; no scorelid traceback
    assert "scorelid/images.py" not in proc.stderr
    assert not two.exists()  # nothing that looks complete
    assert sorted(p.name for p in (tmp_path / "two.csv.partial").glob("chunk-*.csv")) == [
        f"chunk-{i:08d}-{i:08d}.csv" for i in (0, 1, 2, 4)
    ]

    proc = _torchrun(tmp_path / "calls2", -1, 0, [*args, "--out", str(two)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _calls(tmp_path / "calls2", 0) == []  # rank 0's shard was finished: nothing recomputed
    assert _calls(tmp_path / "calls2", 1) == [[3], [3], [5], [5]]  # dsm and flipd of the missing two
    assert not (tmp_path / "two.csv.partial").exists()
    skipped = json.loads((tmp_path / "two.csv.skipped.json").read_text())
    assert [Path(p).name for p in skipped] == ["broken0.png"]

    a, b = pd.read_csv(one), pd.read_csv(two)
    assert len(b) == 5 * 2 and b["index"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    pd.testing.assert_frame_equal(b[STABLE], a[STABLE])
    # float32 networks; the single process may use 2 threads, torchrun's ranks use 1
    np.testing.assert_allclose(b["lid"].to_numpy(), a["lid"].to_numpy(), rtol=1e-5)

    # a finished output is not overwritten without --force (refused before any model is loaded)
    assert main([*args, "--out", str(two)]) == 2
    assert "two.csv already exists" in capsys.readouterr().err


def _worker() -> int:
    """Count this rank's estimator calls in CALLS/rank{R}.txt; rank FAIL_RANK raises on call FAIL_AT."""
    import torch

    import scorelid.images.run as images_mod
    from scorelid.cli import main

    torch.set_num_threads(1)
    calls, fail_rank, fail_at, args = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    rank = int(os.environ["RANK"])
    calls.mkdir(parents=True, exist_ok=True)
    real, count = images_mod.estimate, [0]

    def counting(D, x, method, sigma, **kw):
        count[0] += 1
        if rank == fail_rank and count[0] == fail_at:
            raise RuntimeError("injected failure")
        with open(calls / f"rank{rank}.txt", "a") as fh:
            fh.write(",".join(str(int(i)) for i in kw["indices"]) + "\n")
        return real(D, x, method, sigma, **kw)

    images_mod.estimate = counting
    return main(args)


if __name__ == "__main__":
    sys.exit(_worker())
