"""GroupedMLP: one network per coordinate group, the MLP's output layout, no coupling between groups."""

import pytest
import torch

from scorelid.nn import MLP
from scorelid.nn.grouped import GroupedMLP
from scorelid.nn.precond import EDMDenoiser, build_denoiser

GROUPS = [[0, 4], [1, 2, 5], [6]]  # coordinate 3 is in no group (a constant coordinate)


def _randomised(net: torch.nn.Module) -> torch.nn.Module:
    """The zero-initialised head and FiLM layers filled with random weights."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            if not p.abs().sum():
                p.normal_(0, 0.3)
    return net


@pytest.mark.parametrize("options", [{}, {"gate": True, "squares": True, "delta": True},
                                     {"glu": True, "norm": True, "expansion": 2}])
def test_layout_matches_the_mlp_and_starts_at_zero(options):
    torch.manual_seed(0)
    g, m = GroupedMLP(7, GROUPS, width=8, depth=2, **options), MLP(7, width=8, depth=2, **options)
    x, c = torch.randn(5, 7), torch.linspace(-1, 1, 5)
    assert g(x, c).shape == m(x, c).shape
    assert (g(x, c) == 0).all()  # zero-initialised heads: the denoiser starts as its skip path


def test_each_group_reads_only_its_own_coordinates():
    net = _randomised(GroupedMLP(7, GROUPS, width=8, depth=2, gate=True, squares=True, delta=True))
    x, c = torch.randn(4, 7), torch.zeros(4)
    jac = torch.autograd.functional.jacobian(lambda v: net(v, c).sum(0), x).sum(1)  # [n_out, n]
    n = 7
    for part in (jac[:n], jac[n : 2 * n], jac[2 * n + 1 :]):  # F, gains, Delta
        for a, ga in enumerate(GROUPS):
            for b, gb in enumerate(GROUPS):
                block = part[ga][:, gb]
                assert (block.abs().sum() > 0) == (a == b), (a, b)
        assert (part[3] == 0).all() and (part[:, 3] == 0).all()  # the ungrouped coordinate
    assert (jac[2 * n] == 0).all()  # no gain shared across groups
    # rows are independent, and the noise level changes the output
    torch.testing.assert_close(net(x[:2], c[:2]), net(x, c)[:2])
    assert not torch.allclose(net(x, c), net(x, c + 1))


def test_denoiser_config_round_trip_and_block_diagonal_wiener():
    torch.manual_seed(0)
    x = torch.randn(200, 7) @ torch.randn(7, 7)  # every coordinate correlated with every other
    x[:, 3] = 0.0
    stats = EDMDenoiser.data_stats(x, GROUPS)
    P = stats["U"] @ torch.diag(stats["lam"]) @ stats["U"].T  # the covariance the skip path uses
    for a, ga in enumerate(GROUPS):
        for b, gb in enumerate(GROUPS):
            assert (P[ga][:, gb].abs().max() > 1e-3) == (a == b)
    den = EDMDenoiser("grouped", 7, skip="wiener", rank=stats["U"].shape[1],
                      net={"groups": GROUPS, "width": 8, "depth": 1, "gate": True})
    den.set_data_stats(stats)
    _randomised(den.net)
    again = build_denoiser(den.config)
    again.load_state_dict(den.state_dict())
    y = torch.randn(3, 7)
    torch.testing.assert_close(again(y, 0.1), den(y, 0.1))


@pytest.mark.parametrize("groups", [[], [[0, 1], [1, 2]], [[0, 9]], [[-1]]])
def test_bad_groups_are_refused(groups):
    with pytest.raises(ValueError, match="groups must be disjoint"):
        GroupedMLP(7, groups)
