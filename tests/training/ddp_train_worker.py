"""Worker launched by tests/training/test_loop_ddp.py under torchrun (2 gloo processes).

Usage: ddp_train_worker.py DATA.npy OUT_DIR FAIL_RANK FAIL_STEP PREFIX

Trains a tiny MLP with ``train_denoiser(..., dist=info)``; rank ``FAIL_RANK`` raises from its
callback after step ``FAIL_STEP`` (``-1``: nobody fails).  Every write of a checkpoint or the model
is logged to ``PREFIX.writes.rank{R}``; a ``RankFailure`` message goes to ``PREFIX.rank{R}.err``.
"""

import sys

import numpy as np

import scorelid.training.loop as train
from scorelid.runtime.distributed import RankFailure, init_distributed, shutdown


def main() -> None:
    data, out, fail_rank, fail_step, prefix = sys.argv[1:6]
    fail_rank, fail_step = int(fail_rank), int(fail_step)
    info = init_distributed("cpu")
    log = open(f"{prefix}.writes.rank{info.rank}", "w")

    def logged(fn, what):
        def wrapper(*args, **kwargs):
            log.write(f"{what} {args[1] if what == 'checkpoint' else ''}\n")
            log.flush()
            return fn(*args, **kwargs)
        return wrapper

    train._checkpoint = logged(train._checkpoint, "checkpoint")
    train.save_denoiser = logged(train.save_denoiser, "model")

    def callback(step: int, loss: float) -> None:
        if info.rank == fail_rank and step == fail_step:
            raise ValueError(f"callback refused step {step}")

    x = np.load(data)
    try:
        train.train_denoiser(x, steps=40, batch_size=32, width=16, depth=2, out_dir=out, checkpoint_every=10,
                             progress=False, num_threads=1, callback=callback, dist=info)
    except RankFailure as exc:
        with open(f"{prefix}.rank{info.rank}.err", "w") as fh:
            fh.write(str(exc))
        shutdown(wait=False)
        sys.exit(1)
    shutdown(wait=True)  # as the CLI does: no rank tears its connections down while a peer still writes


if __name__ == "__main__":
    main()
