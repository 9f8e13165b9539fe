"""Residual MLP: shapes, conditioning on the noise level, zero-initialised output."""

import torch

from scorelid.nn import MLP


def test_shapes_zero_init_and_noise_conditioning():
    torch.manual_seed(0)
    net = MLP(6, width=32, depth=2)
    x, c = torch.randn(5, 6), torch.linspace(-1, 1, 5)
    assert net(x, c).shape == (5, 6)
    assert (net(x, c) == 0).all()  # zero-initialised head
    torch.nn.init.normal_(net.out.weight)
    for block in net.blocks:
        torch.nn.init.normal_(block.film.weight)
    a, b = net(x, torch.zeros(5)), net(x, torch.ones(5))
    assert not torch.allclose(a, b)  # the output depends on c_noise
    # rows are independent
    torch.testing.assert_close(net(x[:2], c[:2]), net(x, c)[:2])


def test_gate_and_squares_outputs():
    torch.manual_seed(0)
    net = MLP(6, width=16, depth=1, gate=True, squares=True, glu=True)
    assert net.inp.in_features == 12
    out = net(torch.randn(4, 6), torch.zeros(4))
    assert out.shape == (4, 13) and (out == 0).all()
