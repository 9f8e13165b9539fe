"""EDM preconditioning (Karras et al. 2022): turn a network ``F`` into a denoiser ``D(y, sigma)``.

In normalised units (data centred by ``mean`` and divided by ``scale``, noise ``s = sigma/scale``):

    D_norm(u, s) = c_skip(s) u + c_out(s) F(c_in(s) u, c_noise(s)),
    c_skip = sd^2 / (s^2 + sd^2),  c_out = s sd / sqrt(s^2 + sd^2),
    c_in = 1 / sqrt(s^2 + sd^2),   c_noise = log(s) / 4,

with ``sd = sigma_data`` (the RMS per-coordinate standard deviation of the normalised training
data).  In data units ``D(y, sigma) = mean + scale * D_norm((y - mean) / scale, sigma / scale)``, so
estimators see the data as it was given and ``sigma`` is in the data's units.

``skip="wiener"`` replaces the scalar ``c_skip(s) u`` by the exact posterior mean of the Gaussian
fit of the training data, ``U diag(lam / (lam + s^2)) U^T u`` (``U, lam``: eigenvectors and
eigenvalues of the normalised training covariance, those above ``1e-6`` of the largest); the
network then learns only the non-Gaussian residual.  It is still a denoiser trained on the data
(its linear part is fitted in closed form); directions with no training variance, such as
zero-padded coordinates, are removed exactly instead of by a learned map.

Gated networks (``MLP(gate=True)``) also output per-coordinate gains ``G`` and a shared gain
``g0``, added to the skip path as ``(G + g0) * u`` *without* the ``c_out`` factor.  At small
noise the posterior mean tends to the projection onto the data manifold, a function that does not
depend on ``s``; for a sphere or the circles of a torus that projection is ``u * (R / |u_k| - 1)``
per block, i.e. a gain (shared by all coordinates for a sphere: ``g0`` then gets the signal of
every coordinate at once).  Without the gate the network would have to output that correction
divided by ``c_out ~ s``, a target whose sensitivity to ``|u|`` grows like ``1/s`` and which MLPs
learn very slowly.  ``MLP(delta=True)`` adds a general unscaled output ``Delta`` the same way
(the projection's correction need not be along ``u``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from scorelid.denoiser import SigmaLike, sigma_like
from scorelid.nn.dit import DiT
from scorelid.nn.grouped import GroupedMLP
from scorelid.nn.mlp import MLP

__all__ = ["ARCHS", "EDMDenoiser", "build_denoiser", "data_scale", "edm_scalings"]

ARCHS: dict[str, type[nn.Module]] = {"mlp": MLP, "dit": DiT, "grouped": GroupedMLP}
SKIPS = ("edm", "wiener")
C_INS = ("edm", "data")


def edm_scalings(s: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(c_skip, c_out, c_in, c_noise)`` for noise levels ``s`` (any shape, normalised units)."""
    sd2 = sigma_data**2
    c_skip = sd2 / (s**2 + sd2)
    c_out = s * sigma_data / torch.sqrt(s**2 + sd2)
    c_in = 1 / torch.sqrt(s**2 + sd2)
    c_noise = torch.log(s) / 4
    return c_skip, c_out, c_in, c_noise


class EDMDenoiser(nn.Module):
    """A network wrapped as a denoiser ``D(y [B, n], sigma float|[B]) -> [B, n]`` in data units.

    Args:
        arch: ``"mlp"`` or ``"dit"``.
        n: data dimension.
        sigma_data: RMS standard deviation of the normalised data.
        skip: ``"edm"`` (scalar ``c_skip``) or ``"wiener"`` (Gaussian posterior mean, see module doc).
        rank: number of Wiener directions (``skip="wiener"`` only).
        net: keyword arguments of the network class.
        c_in: ``"edm"`` (``1/sqrt(s^2 + sd^2)``) or ``"data"`` (``1/sd`` at every noise level: the
            network sees ``u`` on one fixed scale, so a function of ``u`` learnt at one noise level
            carries over to the others; fine while ``s`` stays below a few ``sd``).

    Buffers ``mean [n]``, ``scale []`` (and ``U [n, rank]``, ``lam [rank]``) are set by
    ``set_data_stats``; ``config`` is the JSON-able dict that rebuilds the module.
    """

    def __init__(self, arch: str, n: int, sigma_data: float = 0.5, skip: str = "edm", rank: int = 0,
                 net: dict[str, Any] | None = None, c_in: str = "edm") -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
        if skip not in SKIPS:
            raise ValueError(f"unknown skip {skip!r}; choose one of {SKIPS}")
        if c_in not in C_INS:
            raise ValueError(f"unknown c_in {c_in!r}; choose one of {C_INS}")
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"n must be a positive integer, got {n!r}")
        net = _full_kwargs(ARCHS[arch], dict(net or {}))
        self.arch, self.n, self.sigma_data, self.skip, self.rank = arch, n, float(sigma_data), skip, rank
        self.c_in = c_in
        self.net = ARCHS[arch](n, **net)
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("scale", torch.ones(()))
        if skip == "wiener":
            self.register_buffer("U", torch.zeros(n, rank))
            self.register_buffer("lam", torch.zeros(rank))
        self.config: dict[str, Any] = {"arch": arch, "n": n, "sigma_data": self.sigma_data, "skip": skip,
                                       "rank": rank, "net": net, "c_in": c_in}

    @staticmethod
    def data_stats(x: Tensor, groups: list[list[int]] | None = None) -> dict[str, Any]:
        """Statistics of training data ``x [N, n]``: mean, scale, sigma_data, Wiener basis.

        With ``groups`` (independent coordinate groups, as ``GroupedMLP`` takes) the covariance is
        taken block-diagonal (zero between groups and for coordinates in none), so the Wiener skip
        keeps the groups apart as the network does.
        """
        x = x.double()
        mean = x.mean(0)
        scale = data_scale(x)
        u = (x - mean) / scale
        sigma_data = math.sqrt(float(u.var(0).mean()))
        cov = u.T @ u / max(1, u.shape[0] - 1)
        if groups is None:
            lam, vec = torch.linalg.eigh(cov)
        else:  # eigenvectors of each group's block, so none mixes two groups
            lam, vec = torch.zeros(0, dtype=cov.dtype), torch.zeros(len(cov), 0, dtype=cov.dtype)
            for g in groups:
                lg, vg = torch.linalg.eigh(cov[g][:, g])
                full = torch.zeros(len(cov), len(g), dtype=cov.dtype)
                full[g] = vg
                lam, vec = torch.cat([lam, lg]), torch.cat([vec, full], dim=1)
        keep = lam > 1e-6 * lam.max()
        return {"mean": mean.float(), "scale": scale, "sigma_data": sigma_data,
                "U": vec[:, keep].float().contiguous(), "lam": lam[keep].float()}

    def set_data_stats(self, stats: dict[str, Any]) -> None:
        """Copy the statistics from ``data_stats`` into the buffers (shapes must match)."""
        with torch.no_grad():
            self.mean.copy_(stats["mean"])
            self.scale.fill_(stats["scale"])
            if self.skip == "wiener":
                self.U.copy_(stats["U"])
                self.lam.copy_(stats["lam"])

    def forward(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """Posterior mean ``[B, n]`` of clean data given ``y [B, n]`` at noise level ``sigma``."""
        if y.ndim != 2 or y.shape[1] != self.n:
            raise ValueError(f"denoiser expects inputs of shape [B, {self.n}], got {tuple(y.shape)}")
        scale = self.scale.to(y.dtype)
        s = sigma_like(sigma, y) / scale  # [B, 1], normalised units
        u = (y - self.mean.to(y.dtype)) / scale
        c_skip, c_out, c_in, c_noise = edm_scalings(s, self.sigma_data)
        if self.c_in == "data":
            c_in = torch.full_like(c_in, 1 / self.sigma_data)
        if self.skip == "wiener":
            U, lam = self.U.to(y.dtype), self.lam.to(y.dtype)
            skip = ((u @ U) * (lam / (lam + s**2))) @ U.T
        else:
            skip = c_skip * u
        f = self.net(c_in * u, c_noise.reshape(-1))
        n = self.n
        if getattr(self.net, "gate", False):
            g, g0 = f[:, n : 2 * n], f[:, 2 * n : 2 * n + 1]
            skip = skip + (g + g0) * u
        if getattr(self.net, "delta", False):
            skip = skip + f[:, -n:]
        f = f[:, :n]
        out = skip + c_out * f
        return self.mean.to(y.dtype) + scale * out


def data_scale(x: Any) -> float:
    """The data's scale: the largest per-coordinate standard deviation of ``x [N, ...]`` (an array or
    tensor, any units).  ``EDMDenoiser`` divides by it, and noise levels given as fractions of it
    (``scorelid.training.config``) mean the same on data of any units.  ``ValueError`` for data with
    no variance (or a single point)."""
    t = torch.as_tensor(x).double()
    scale = float(t.reshape(len(t), -1).std(0).max()) if len(t) > 1 else 0.0
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError("the data has zero variance in every coordinate: it has no scale to normalise "
                         "it or to set noise levels by")
    return scale


def _full_kwargs(cls: type[nn.Module], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` plus every defaulted keyword of ``cls`` (so a config survives default changes)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    unknown = (set(given) - set(params)) | ({"self", "n"} & set(given))
    if unknown:
        raise ValueError(f"unknown network option(s) {sorted(unknown)} for {cls.__name__}")
    full = {k: p.default for k, p in params.items() if k not in ("self", "n")}
    full.update(given)
    return full


def build_denoiser(config: dict[str, Any]) -> EDMDenoiser:
    """Rebuild an (untrained) ``EDMDenoiser`` from its ``config`` dict; ``ValueError`` if invalid."""
    if not isinstance(config, dict):
        raise ValueError(f"denoiser config must be a dict, got {type(config).__name__}")
    try:
        return EDMDenoiser(arch=config["arch"], n=int(config["n"]), sigma_data=float(config["sigma_data"]),
                           skip=config.get("skip", "edm"), rank=int(config.get("rank", 0)),
                           net=config.get("net", {}), c_in=config.get("c_in", "edm"))
    except KeyError as exc:
        raise ValueError(f"denoiser config lacks the key {exc.args[0]!r}") from None
    except TypeError as exc:
        raise ValueError(f"invalid denoiser config: {exc}") from None
