"""LID as an anomaly score: AUROC, and k-NN LID baselines of query points against a reference set.

A model trained on in-distribution data gives every new point a LID; the AUROC measures how well
that number separates held-out in-distribution points (label 0) from out-of-distribution ones
(label 1), with "higher LID = more anomalous".  An AUROC below 0.5 means OOD points get *lower*
LID; ``max(AUROC, 1 - AUROC)`` is then the separability with the direction flipped.

The k-NN baselines must also score new points against the training data (not against each
other), so they are computed here relative to a reference set:

* ``mle``: Levina-Bickel, ``d(q) = (k - 1) / sum_{j<k} log(T_k(q) / T_j(q))`` with ``T_j(q)`` the
  distance from ``q`` to its ``j``-th nearest reference point (MacKay-Ghahramani's ``k - 1``);
* ``twonn``: the TwoNN maximum-likelihood estimate on ``q``'s neighbourhood,
  ``d(q) = m / sum_i log(mu_i)`` over ``q`` and its ``k`` nearest reference points, where
  ``mu = r_2 / r_1`` is each point's ratio of second to first neighbour distance in the reference set.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["KNN_METHODS", "auroc", "knn_lid"]

KNN_METHODS = ("mle", "twonn")


def auroc(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    """Area under the ROC curve for "score is higher on OOD": ``P(s_out > s_in) + P(tie) / 2``.

    Computed exactly by the Mann-Whitney rank sum (ties get average ranks).
    """
    a = np.asarray(scores_in, dtype=np.float64).reshape(-1)
    b = np.asarray(scores_out, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise ValueError("auroc needs at least one in-distribution and one out-of-distribution score")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("auroc: scores must be finite")
    r = rankdata(np.concatenate([a, b]))
    u = r[a.size:].sum() - b.size * (b.size + 1) / 2
    return float(u / (a.size * b.size))


def _neighbours(query: np.ndarray, reference: np.ndarray, k: int, exclude_self: bool):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + int(exclude_self)).fit(reference)
    dist, idx = nn.kneighbors(query)
    if exclude_self:
        dist, idx = dist[:, 1:], idx[:, 1:]
    return dist, idx


def knn_lid(query: np.ndarray, reference: np.ndarray, method: str = "mle", k: int = 20,
            exclude_self: bool = False) -> np.ndarray:
    """Per-point LID ``[M]`` of ``query`` ``[M, n]`` from its nearest neighbours in ``reference`` ``[N, n]``.

    ``exclude_self``: the query rows are the reference rows (in-sample LID); each point's zero
    distance to itself is dropped.  Duplicate points (zero neighbour distances) are nudged to the
    smallest positive distance so the logarithms stay finite.
    """
    if method not in KNN_METHODS:
        raise ValueError(f"unknown k-NN method {method!r}; choose one of {KNN_METHODS}")
    query, reference = np.asarray(query, np.float64), np.asarray(reference, np.float64)
    if query.ndim != 2 or reference.ndim != 2 or query.shape[1] != reference.shape[1]:
        raise ValueError(f"query {query.shape} and reference {reference.shape} must be [*, n] with one n")
    if not 2 <= k < len(reference):
        raise ValueError(f"k must be in [2, {len(reference) - 1}], got {k}")
    dist, idx = _neighbours(query, reference, k, exclude_self)
    tiny = dist[dist > 0].min() if (dist > 0).any() else 1.0
    dist = np.maximum(dist, tiny)
    if method == "mle":
        logs = np.log(dist[:, -1:] / dist[:, :-1])  # [M, k-1]
        return (k - 1) / logs.sum(axis=1)
    rdist, _ = _neighbours(reference, reference, 2, True)  # reference points' own r1, r2
    rdist = np.maximum(rdist, tiny)
    log_mu_ref = np.log(rdist[:, 1] / rdist[:, 0])  # [N]
    log_mu_q = np.log(dist[:, 1] / dist[:, 0])  # [M]
    total = log_mu_q + log_mu_ref[idx].sum(axis=1)
    return (k + 1) / np.maximum(total, 1e-12)
