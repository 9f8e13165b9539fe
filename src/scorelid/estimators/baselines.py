"""Nonparametric LID baselines: scikit-dimension's MLE, TwoNN, ESS and lPCA, per point.

``baseline_lid(x, method, k)`` returns one estimate per row of ``x`` ``[N, n]`` as a ``[N]``
float64 tensor, like ``scorelid.estimate``.

Protocol (ours; the authors' code fits on the very points it reports on):

* Neighbourhoods.  Point ``x_i``'s neighbourhood is its ``k`` nearest neighbours (Euclidean,
  itself excluded) in the *pool* ``x ∪ reference``.  With ``reference=None`` the pool is ``x``
  alone.  The benchmark passes the training points as ``reference``, so a held-out evaluation
  point is judged from the same 2,000 + 1,000 samples of the manifold the models see, and the
  estimate does not depend on how the evaluation set was split into batches.
* Estimator.  Each method is scikit-dimension's estimator fitted on that neighbourhood, exactly
  what ``est.fit_pw(pool, precomputed_knn=knn, n_neighbors=k)`` does for the global estimators
  (TwoNN, lPCA: we call it in chunks with the eval rows' neighbour indices).  The local ones are
  per point by construction: MLE is Levina-Bickel from each point's ``k`` neighbour distances
  (``MLE().fit(..., precomputed_knn_arrays=...).dimension_pw_``), ESS is ``ESS.fit_once`` on
  each patch (what its own ``fit`` loops over).  That is the authors' ``fit_pw(X,
  n_neighbors=k)`` usage with ``k = 100`` by default (their README: 50).  TwoNN uses its default
  10% discard; ESS is version ``"a"`` with ``random_state=seed``; lPCA is the Fukunaga-Olsen rule
  (``ver="FO"``, ``alphaFO=0.05``): the number of eigenvalues of the patch's covariance above
  ``alphaFO`` times the largest.  We compute lPCA batched (one ``numpy.linalg.svd`` call over a
  chunk of centred patches, ``lpca_fo``) instead of scikit-dimension's one ``PCA().fit`` per
  patch: the same eigenvalues (checked equal to scikit-dimension's in the tests), ~100x faster.

Cost.  ESS dominates: it grows quickly with ``k`` (see ``docs/benchmarks.md``); MLE, TwoNN
and lPCA take a second or less for a thousand points.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

__all__ = ["BASELINES", "LPCA_ALPHA_FO", "baseline_lid", "lpca_fo", "neighbour_indices"]

#: Fukunaga-Olsen threshold of lPCA (scikit-dimension's default ``alphaFO``)
LPCA_ALPHA_FO = 0.05


def _mle():
    from skdim.id import MLE

    return MLE()


def _twonn():
    from skdim.id import TwoNN

    return TwoNN()


def _ess(seed: int):
    from skdim.id import ESS

    return ESS(random_state=seed)


def _lpca():
    from skdim.id import lPCA

    return lPCA(ver="FO", alphaFO=LPCA_ALPHA_FO, verbose=False)


#: method name -> factory ``(seed) -> scikit-dimension estimator``
BASELINES: dict[str, Callable[[int], object]] = {
    "mle": lambda seed: _mle(),
    "twonn": lambda seed: _twonn(),
    "ess": _ess,
    "lpca": lambda seed: _lpca(),
}


def _as_array(x: Tensor | np.ndarray, what: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{what} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{what} must have shape [N, n] with N, n >= 1, got {tuple(x.shape)}")
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{what} has non-finite values (NaN or inf)")
    return x


def lpca_fo(patches: np.ndarray, alpha: float = LPCA_ALPHA_FO) -> np.ndarray:
    """Fukunaga-Olsen local PCA dimension of each patch ``[B, k, n]`` -> ``[B]`` float64.

    The count of eigenvalues of the patch's sample covariance (centred, ``k - 1`` normalisation,
    as ``sklearn.decomposition.PCA.explained_variance_``) larger than ``alpha`` times the largest:
    scikit-dimension's ``lPCA(ver="FO", alphaFO=alpha)`` per patch.
    """
    c = patches - patches.mean(axis=1, keepdims=True)
    ev = np.linalg.svd(c, compute_uv=False) ** 2 / (patches.shape[1] - 1)  # [B, min(k, n)], descending
    return (ev > alpha * ev[:, :1]).sum(axis=1).astype(np.float64)


def neighbour_indices(x: np.ndarray, pool: np.ndarray, k: int,
                      self_rows: bool) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices ``[N, k]`` into ``pool`` of each row of ``x``'s ``k`` nearest neighbours.

    ``self_rows``: row ``i`` of ``x`` is row ``i`` of ``pool``; that row is excluded (when exact
    duplicates make it fall outside the first ``k + 1``, the farthest candidate is dropped).
    """
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + int(self_rows)).fit(pool)
    dist, idx = nn.kneighbors(x)
    if not self_rows:
        return dist, idx
    keep = idx != np.arange(len(x))[:, None]
    keep[keep.all(1), -1] = False  # self fell outside the k + 1 (exact duplicates): drop the farthest
    return dist[keep].reshape(len(x), k), idx[keep].reshape(len(x), k)


def baseline_lid(
    x: Tensor | np.ndarray,
    method: str = "mle",
    k: int = 100,
    *,
    reference: Tensor | np.ndarray | None = None,
    n_jobs: int = 1,
    seed: int = 0,
    chunk: int = 100,
    progress: bool = False,
) -> Tensor:
    """Per-point LID of ``x`` by a scikit-dimension estimator on ``k``-nearest-neighbour patches.

    Args:
        x: points ``[N, n]`` to estimate at (finite).
        method: ``"mle"``, ``"twonn"``, ``"ess"`` or ``"lpca"``.
        k: neighbours per patch (the point itself excluded); needs ``k < len(pool)``.
        reference: optional extra points ``[M, n]`` searched for neighbours too (e.g. the training
            set); the pool is ``x ∪ reference``.
        n_jobs: processes for scikit-dimension's per-patch loop.
        seed: ESS's ``random_state`` (the others are deterministic).
        chunk: points per ``fit_pw`` call (the progress bar's step).
        progress: show a progress bar.

    Returns:
        ``[N]`` float64 CPU tensor of per-point estimates, in the order of ``x``.
    """
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; choose one of {sorted(BASELINES)}")
    xa = _as_array(x, "x")
    pool = xa
    if reference is not None:
        ref = _as_array(reference, "reference")
        if ref.shape[1] != xa.shape[1]:
            raise ValueError(f"reference has {ref.shape[1]} columns, x has {xa.shape[1]}")
        pool = np.concatenate([xa, ref])
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    if k >= len(pool):
        raise ValueError(f"k={k} neighbours need at least {k + 1} points, the pool has {len(pool)}")
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")

    dists, knn = neighbour_indices(xa, pool, int(k), self_rows=True)
    est = BASELINES[method](int(seed))
    out = np.empty(len(xa))
    with tqdm(total=len(xa), desc=method, unit="pt", disable=not progress, leave=False) as bar, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-dimension warns per patch (e.g. lPCA verbosity)
        for start in range(0, len(xa), chunk):
            sl = slice(start, start + chunk)
            rows = knn[sl]
            if method == "mle":  # a LocalEstimator: Levina-Bickel from each row's k distances
                est.fit(xa[sl], precomputed_knn_arrays=(dists[sl], rows), n_neighbors=int(k))
                vals = est.dimension_pw_
            elif method == "ess":  # LocalEstimator._fit loops over every pool row: fit each patch
                vals = [est.fit_once(pool[r]).dimension_ for r in rows]
            elif method == "lpca":  # scikit-dimension's FO rule per patch, batched
                vals = lpca_fo(pool[rows])
            else:  # GlobalEstimators: scikit-dimension's fit_pw on the eval rows' patches
                est.fit_pw(pool, precomputed_knn=rows, n_neighbors=int(k), n_jobs=n_jobs)
                vals = est.dimension_pw_
            out[start:start + len(rows)] = np.asarray(vals, dtype=np.float64)
            bar.update(len(rows))
    return torch.from_numpy(out)
