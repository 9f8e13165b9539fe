"""Vector DiT: patching (incl. padding), shapes, adaLN-Zero start, noise conditioning."""

import pytest
import torch

from scorelid.nn import DiT


@pytest.mark.parametrize("n", [8, 10])
def test_shapes_and_padding(n):
    torch.manual_seed(0)
    net = DiT(n, patch=4, hidden=16, heads=4, depth=2)
    assert net.tokens == -(-n // 4)
    x, c = torch.randn(3, n), torch.zeros(3)
    out = net(x, c)
    assert out.shape == (3, n) and (out == 0).all()  # zero-initialised head
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    assert not torch.allclose(net(x, torch.zeros(3)), net(x, torch.ones(3)))
    torch.testing.assert_close(net(x[:1], c[:1]), net(x, c)[:1], atol=1e-5, rtol=1e-5)


def test_heads_must_divide_hidden():
    with pytest.raises(ValueError, match="divide"):
        DiT(8, hidden=10, heads=4)
