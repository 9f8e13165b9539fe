"""The package's top level: public API names and subpackages reachable as attributes."""

import subprocess
import sys

import pytest

import scorelid


def test_analytic_reachable_after_plain_import():
    code = ("import scorelid, sys; assert 'scorelid.analytic' not in sys.modules; "
            "g = scorelid.analytic.GaussianSubspace(2, 5, seed=0); print(g.sample(3, seed=0)[0].shape[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "5"


@pytest.mark.parametrize("name", scorelid._LAZY)
def test_every_lazy_name_imports(name):
    assert getattr(scorelid, name).__name__ == f"scorelid.{name}"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        scorelid.nope  # noqa: B018
