"""The report's constants: manifold order and names, method and arch names, and the reference
numbers printed beside ours (the paper's Table 1 averages; the authors' code run on our CPU, from
``paper-protocol.md``).  MAEs are in LID units."""

from __future__ import annotations

__all__ = ["ARCH_NAMES", "AUTHORS_CPU", "AUTHORS_CPU_AVG", "MANIFOLD_ORDER", "METHOD_NAMES",
           "PAPER_TABLE1_AVG", "SHORT"]

MANIFOLD_ORDER = ("hypersphere", "hyperball", "hypertwinpeaks", "clifford_torus", "nonlinear")
SHORT = {"hypersphere": "sphere", "hyperball": "ball", "hypertwinpeaks": "twinpeaks",
         "clifford_torus": "clifford", "nonlinear": "nonlinear"}
METHOD_NAMES = {"dsm": "DSM", "flipd": "FLIPD", "ism": "ISM", "error_bundle": "error bundle",
                "normal_bundle": "normal bundle", "mle": "MLE", "twonn": "TwoNN", "ess": "ESS",
                "lpca": "lPCA"}
ARCH_NAMES = {"mlp": "MLP", "dit": "DiT"}

#: The authors' demo code run on our 2-core CPU (small 4-layer MLP, 50,000 steps, baselines k=50;
#: flow time t; trained and evaluated on the same points).  Source: paper-protocol.md.
#: key (method, t or None) -> {manifold: MAE}
AUTHORS_CPU: dict[tuple[str, float | None], dict[str, float]] = {
    ("dsm", 0.01): dict(zip(MANIFOLD_ORDER, (2.97, 2.45, 9.92, 38.92, 22.93), strict=True)),
    ("dsm", 0.05): dict(zip(MANIFOLD_ORDER, (2.89, 2.26, 6.96, 38.64, 18.73), strict=True)),
    ("flipd", 0.01): dict(zip(MANIFOLD_ORDER, (0.53, 1.47, 3.24, 31.13, 25.95), strict=True)),
    ("flipd", 0.05): dict(zip(MANIFOLD_ORDER, (0.59, 1.75, 2.73, 30.23, 20.08), strict=True)),
    ("mle", None): dict(zip(MANIFOLD_ORDER, (3.39, 3.85, 80.89, 3.44, 12.31), strict=True)),
    ("twonn", None): dict(zip(MANIFOLD_ORDER, (3.90, 4.47, 81.83, 4.54, 12.80), strict=True)),
    ("ess", None): dict(zip(MANIFOLD_ORDER, (0.48, 0.73, 6.59, 29.70, 1.30), strict=True)),
}
AUTHORS_CPU_AVG = {("dsm", 0.01): 15.44, ("dsm", 0.05): 13.89, ("flipd", 0.01): 12.46, ("flipd", 0.05): 11.08,
                   ("mle", None): 20.78, ("twonn", None): 21.51, ("ess", None): 7.76}

#: The paper's Table 1 averages over the five manifolds (GPU, t = 0.05); per-manifold values are
#: not in paper-protocol.md.  key (arch or None, method, t or None) -> average MAE
PAPER_TABLE1_AVG: dict[tuple[str | None, str, float | None], float] = {
    ("dit", "dsm", 0.05): 2.21, ("dit", "flipd", 0.05): 23.05,
    ("mlp", "dsm", 0.05): 7.27, ("mlp", "flipd", 0.05): 11.11, (None, "ess", None): 7.12,
}
