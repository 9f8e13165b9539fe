"""Worker launched by tests/runtime/test_distributed.py under torchrun (2 gloo processes).

Usage: dist_worker.py PARTS_DIR METHODS FAIL_RANK OUT_PREFIX   (METHODS: comma-separated)
Writes OUT_PREFIX.METHOD.rank{R}.npy (rank 0's gathered result) for each method, or
OUT_PREFIX.rank{R}.err (the message) when a rank failed.
"""

import sys

import numpy as np
import torch

import scorelid
from scorelid.data.analytic import GaussianSubspace
from scorelid.runtime.distributed import RankFailure, init_distributed, run_chunked, shutdown

G = GaussianSubspace(4, 16, seed=0)
X, _ = G.sample(150, seed=3)


def main() -> None:
    parts, methods, fail_rank, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(1)
    info = init_distributed("cpu")

    def compute(method: str):
        def chunk(sl: slice) -> np.ndarray:
            if info.rank == fail_rank:
                raise ValueError("denoiser returned non-finite values (NaN or inf)")
            idx = torch.arange(sl.start, sl.stop)
            return scorelid.estimate(G, X[sl], method, 0.05, seed=5, indices=idx).numpy()

        return chunk

    try:
        for method in methods.split(","):
            out = run_chunked(compute(method), len(X), f"{parts}-{method}", {"method": method}, info,
                              chunk=32, progress=False)
            if out is not None:
                np.save(f"{prefix}.{method}.rank{info.rank}.npy", out)
    except RankFailure as exc:
        with open(f"{prefix}.rank{info.rank}.err", "w") as fh:
            fh.write(str(exc))
        shutdown(wait=False)
        sys.exit(1)
    shutdown(wait=True)  # as the CLI does: no rank tears its connections down while a peer still writes


if __name__ == "__main__":
    main()
