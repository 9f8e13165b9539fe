"""Labels and groupings shared by the report's tables and figures: a record's row label, the
manifolds in the paper's order, records grouped by row, number formatting."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from scorelid.bench.report.references import ARCH_NAMES, MANIFOLD_ORDER, METHOD_NAMES

__all__ = ["arch_name", "fmt", "group_rows", "is_auto", "manifold_rank", "manifolds", "row_label", "true_d"]


def is_auto(method: str) -> bool:
    """Whether ``method`` is an adaptive-sigma row (``"dsm@auto"``, ``"flipd@auto"``)."""
    return method.endswith("@auto")


def arch_name(arch: str | None) -> str:
    """``"mlp"`` -> ``"MLP"``, ``"dit"`` -> ``"DiT"`` (others upper-cased)."""
    return ARCH_NAMES.get(str(arch or ""), str(arch or "").upper())


def row_label(rec: dict[str, Any]) -> str:
    """E.g. ``"MLP DSM σ=0.05"``, ``"ESS k=50"``, ``"MLP DSM σ=auto"``.  The trace of a FLIPD row is
    not in its label (one row per sigma in Table 1): cells with Hutchinson's trace carry a ``†``."""
    opts = rec.get("options") or ""
    if is_auto(rec["method"]):
        base = rec["method"].removesuffix("@auto")
        return f"{arch_name(rec.get('arch'))} {METHOD_NAMES.get(base, base)} σ=auto"
    name = METHOD_NAMES.get(rec["method"], rec["method"])
    if rec.get("sigma") is None:
        k = [o for o in opts.split(",") if o.startswith("k=")]
        return f"{name} {k[0]}" if k else name
    arch = arch_name(rec.get("arch"))
    extra = ""
    return f"{arch} {name} σ={rec['sigma']:g}{extra}"


def fmt(v: float | None, digits: int = 2) -> str:
    """``v`` with ``digits`` decimals; ``"–"`` for ``None`` or NaN."""
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def manifolds(records: Iterable[dict]) -> list[str]:
    """The records' manifolds: the paper's order first, then others in first-seen order."""
    seen = list(dict.fromkeys(r["manifold"] for r in records))
    return [m for m in MANIFOLD_ORDER if m in seen] + [m for m in seen if m not in MANIFOLD_ORDER]


def manifold_rank(manifold: str) -> int:
    """Position of ``manifold`` in the paper's order (others after all of them)."""
    return MANIFOLD_ORDER.index(manifold) if manifold in MANIFOLD_ORDER else len(MANIFOLD_ORDER)


def group_rows(records: list[dict]) -> list[tuple[str, dict[str, dict]]]:
    """``[(label, {manifold: record})]`` in first-seen order."""
    rows: dict[str, dict[str, dict]] = {}
    for r in records:
        rows.setdefault(row_label(r), {})[r["manifold"]] = r
    return list(rows.items())


def true_d(records: list[dict], manifold: str) -> Any:
    """The true LID ``d`` of ``manifold`` (its first record's)."""
    return next(r["d"] for r in records if r["manifold"] == manifold)
