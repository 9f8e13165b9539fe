import pytest
import torch

from scorelid.estimators.jacobian import trace_exact, trace_hutchinson


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 6)).double()


def _brute_traces(f, y):
    return torch.stack([torch.autograd.functional.jacobian(f, yi).trace() for yi in y])


@pytest.mark.parametrize("ad", ["forward", "reverse", "auto"])
def test_exact_trace_matches_full_jacobian(ad):
    net = _net()
    y = torch.randn(5, 6, dtype=torch.float64)
    ref = _brute_traces(net, y)
    torch.testing.assert_close(trace_exact(net, y, chunk=4, ad=ad), ref)


def test_hutchinson_is_unbiased_and_exact_for_diagonal_maps():
    net = _net()
    y = torch.randn(3, 6, dtype=torch.float64)
    ref = _brute_traces(net, y)
    gen = torch.Generator().manual_seed(0)
    probes = torch.randint(0, 2, (3, 20000, 6), generator=gen).double() * 2 - 1
    est = trace_hutchinson(net, y, probes, ad="reverse")
    torch.testing.assert_close(est, ref, atol=0.05, rtol=0)
    # a diagonal Jacobian has zero Rademacher variance: one probe is exact
    diag = trace_hutchinson(lambda v: v * 3.0, y, probes[:, :1], ad="forward")
    torch.testing.assert_close(diag, torch.full((3,), 18.0, dtype=torch.float64))


def test_auto_falls_back_to_reverse_when_forward_mode_is_missing():
    class NoForward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, g):
            return 2 * g

    f = NoForward.apply
    y = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises((RuntimeError, NotImplementedError)):
        trace_exact(f, y, ad="forward")
    torch.testing.assert_close(trace_exact(f, y, ad="auto"), torch.full((4,), 6.0, dtype=torch.float64))


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   RuntimeError("DefaultCPUAllocator: not enough memory (out of memory)")])
def test_auto_does_not_fall_back_on_out_of_memory(error):
    modes = []

    def f(y):
        if not torch.is_grad_enabled():  # forward mode runs under no_grad
            modes.append("forward")
            raise error
        modes.append("reverse")
        return 2 * y

    with pytest.raises(type(error)):
        trace_exact(f, torch.randn(4, 3, dtype=torch.float64), ad="auto")
    assert modes == ["forward"]  # raised for the caller to halve its batch; reverse was not tried
