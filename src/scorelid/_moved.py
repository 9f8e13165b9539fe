"""Import paths of the flat layout (before the package was regrouped) that keep working.

``import scorelid.train`` (or ``from scorelid.curves import lid_curve``) finds a small alias module
whose attributes come from the new home, with a ``DeprecationWarning`` naming it.  Nothing here is
imported by scorelid itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

__all__ = ["MOVED", "install"]

#: old module -> its new home (the first module that has a name wins)
MOVED: dict[str, tuple[str, ...]] = {
    "scorelid.analytic": ("scorelid.data.analytic",),
    "scorelid.baselines": ("scorelid.estimators.baselines",),
    "scorelid.checkpoint": ("scorelid.training.checkpoint",),
    "scorelid.compare": ("scorelid.images.compare",),
    "scorelid.curves": ("scorelid.sigma.curve",),
    "scorelid.distributed": ("scorelid.runtime.distributed",),
    "scorelid.estimator": ("scorelid.sklearn",),
    "scorelid.guards": ("scorelid.runtime.guards",),
    "scorelid.io": ("scorelid.runtime.io",),
    "scorelid.lock": ("scorelid.runtime.lock",),
    "scorelid.quantize": ("scorelid.adapters.quantize",),
    "scorelid.report": ("scorelid.bench.report",),
    "scorelid.sigma_select": ("scorelid.sigma", "scorelid.sigma.plot"),
    "scorelid.train": ("scorelid.training.loop", "scorelid.training.config",
                       "scorelid.training.sigma_sampling"),
}


class _Alias(importlib.abc.Loader):
    def __init__(self, homes: tuple[str, ...]) -> None:
        self.homes = homes

    def create_module(self, spec):  # default module creation
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        new = self.homes[0]
        warnings.warn(f"{module.__name__} has moved to {new}; import it from there", DeprecationWarning,
                      stacklevel=2)
        targets = [importlib.import_module(m) for m in self.homes]
        module.__doc__ = f"Moved to ``{new}``."

        def __getattr__(name: str):
            if not name.startswith("__"):
                for target in targets:
                    if hasattr(target, name):
                        return getattr(target, name)
            raise AttributeError(f"{module.__name__} has moved to {new}, which has no attribute {name!r}")

        def __dir__():
            return sorted({n for t in targets for n in dir(t)})

        module.__getattr__ = __getattr__
        module.__dir__ = __dir__


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, _Alias(MOVED[fullname]))
        return None


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
