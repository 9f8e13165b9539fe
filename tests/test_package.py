"""The package's top level: public API names and subpackages reachable as attributes."""

import subprocess
import sys

import pytest

import scorelid


def test_subpackages_reachable_after_plain_import():
    code = ("import scorelid, sys; assert 'scorelid.real' not in sys.modules; "
            "assert scorelid.real.digits.__module__ == 'scorelid.real.datasets'; "
            "g = scorelid.data.GaussianSubspace(2, 5, seed=0); print(g.sample(3, seed=0)[0].shape[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "5"


@pytest.mark.parametrize(("old", "name", "new"), [
    ("scorelid.analytic", "GaussianSubspace", "scorelid.data.analytic"),
    ("scorelid.train", "train_denoiser", "scorelid.training"),
    ("scorelid.curves", "lid_curve", "scorelid.sigma.curve"),
    ("scorelid.sigma_select", "plot_lid_curves", "scorelid.sigma"),
    ("scorelid.estimator", "ScoreLID", "scorelid.sklearn"),
    ("scorelid.lock", "exclusive_dir", "scorelid.runtime.lock"),
])
def test_old_import_paths_work_and_name_the_new_home(old, name, new):
    """The flat layout's module paths still import, with a DeprecationWarning naming the new module;
    the objects are the new modules' own."""
    code = (f"import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    from {old} import {name}\nexcept DeprecationWarning as w:\n    print(w)\n"
            f"warnings.simplefilter('ignore')\nfrom {old} import {name} as a\nimport scorelid\n"
            f"print(a.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    moved, module = out.stdout.strip().splitlines()
    assert moved.startswith(f"{old} has moved to {new}")
    assert module.startswith("scorelid.") and module != old


def test_old_path_unknown_name_names_the_new_home():
    code = ("import warnings; warnings.simplefilter('ignore')\nimport scorelid.sigma_select as m\n"
            "try:\n    m.auto_rows\nexcept AttributeError as e:\n    print(e)")  # removed: it had no caller
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    want = "scorelid.sigma_select has moved to scorelid.sigma, which has no attribute 'auto_rows'"
    assert out.stdout.strip() == want


@pytest.mark.parametrize("name", scorelid._LAZY)
def test_every_lazy_name_imports(name):
    assert getattr(scorelid, name).__name__ == f"scorelid.{name}"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        scorelid.nope  # noqa: B018
