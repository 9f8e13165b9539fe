"""ONNX denoisers: DSM through an onnxruntime session of an exported closed-form denoiser, methods
that need gradients refused, bad files named in one line, extra inputs and fixed-batch graphs."""

import numpy as np
import pytest
import torch
from torch import nn

import scorelid
from scorelid.data.analytic import GaussianSubspace
from scorelid.denoiser import sigma_like
from scorelid.errors import InputError, ModelLoadError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

from scorelid.adapters.onnx import OnnxDenoiser, export_onnx  # noqa: E402

D_TRUE, N_AMBIENT, SIGMA = 5, 20, 0.01


class Subspace(nn.Module):
    """float32 ``GaussianSubspace`` posterior mean ``mu + U (lam / (lam + sigma^2)) U^T (y - mu)``.

    ``axis=True`` takes the first ``d`` coordinates as the subspace: then the map is elementwise
    (no float32 reduction), so onnxruntime and PyTorch agree bit for bit.
    """

    def __init__(self, g: GaussianSubspace, axis: bool = False) -> None:
        super().__init__()
        self.axis, self.lam = axis, g.variance
        self.register_buffer("U", g.basis.float())
        self.register_buffer("mu", g.mean.float())
        self.register_buffer("mask", (torch.arange(g.n) < g.d).float())

    def forward(self, y, sigma):
        gain = self.lam / (self.lam + sigma_like(sigma, y) ** 2)
        r = y - self.mu
        if self.axis:
            return self.mu + self.mask * gain * r
        return self.mu + (gain * (r @ self.U)) @ self.U.T


@pytest.fixture(scope="module")
def axis_model(tmp_path_factory):
    g = GaussianSubspace(D_TRUE, N_AMBIENT, seed=3)
    g.basis = torch.eye(N_AMBIENT, dtype=torch.float64)[:, :D_TRUE]
    module = Subspace(g, axis=True)
    path = tmp_path_factory.mktemp("onnx") / "axis.onnx"
    export_onnx(module, path, (N_AMBIENT,), config={"n": N_AMBIENT})
    return g, module, path


@pytest.fixture(scope="module")
def rotated_model(tmp_path_factory):
    g = GaussianSubspace(D_TRUE, N_AMBIENT, seed=3)
    module = Subspace(g)
    return g, module, export_onnx(module, tmp_path_factory.mktemp("onnx") / "rot.onnx", (N_AMBIENT,))


def test_dsm_through_onnx_finds_the_dimension_and_matches_pytorch(axis_model):
    g, module, path = axis_model
    D = scorelid.load_denoiser(path)
    assert isinstance(D, OnnxDenoiser) and D.n == N_AMBIENT and D.config == {"n": N_AMBIENT}
    assert not path.with_name(path.name + ".data").exists()  # one file
    x, _ = g.sample(500, seed=1)
    # the closed form agrees with scorelid's float64 one
    torch.testing.assert_close(module(x, SIGMA), g(x, SIGMA), rtol=0, atol=1e-6)
    lid = scorelid.estimate(D, x, "dsm", SIGMA, n_noise=16, seed=0)
    # per-point spread about sqrt(2d/K) = 0.8, so the mean of 500 has sd 0.035: 3% of 5 is 4 sd
    assert abs(float(lid.mean()) - D_TRUE) < 0.03 * D_TRUE
    ref = scorelid.estimate(module, x, "dsm", SIGMA, n_noise=16, seed=0)
    np.testing.assert_allclose(lid.numpy(), ref.numpy(), rtol=0, atol=1e-5)


def test_rotated_subspace_matches_pytorch_up_to_float32_matmul_order(rotated_model):
    """With a random basis both runtimes reduce in float32 over different kernels: outputs differ by
    ~1e-7, which DSM's 1/sigma^2 at sigma=0.01 turns into ~1e-5 of the value."""
    g, module, path = rotated_model
    D = OnnxDenoiser(path)
    x, _ = g.sample(200, seed=2)
    s = torch.rand(7) + 0.01
    torch.testing.assert_close(D(x[:7], s), module(x[:7], s), rtol=0, atol=1e-6)
    lid = scorelid.estimate(D, x, "dsm", SIGMA, n_noise=16)
    ref = scorelid.estimate(module, x, "dsm", SIGMA, n_noise=16)
    np.testing.assert_allclose(lid.numpy(), ref.numpy(), rtol=1e-4)
    assert abs(float(lid.mean()) - D_TRUE) < 0.06 * D_TRUE  # 200 points: sd 0.06


def test_forward_only_methods_run_and_gradient_methods_are_refused(axis_model):
    g, _, path = axis_model
    D = OnnxDenoiser(path)
    x, _ = g.sample(6, seed=4)
    for method in ("error_bundle", "normal_bundle"):
        lid = scorelid.estimate(D, x, method, SIGMA, n_noise=24)
        assert lid.shape == (6,) and torch.isfinite(lid).all()
    assert (scorelid.estimate(D, x, "error_bundle", SIGMA, n_noise=24) == D_TRUE).all()
    for method in ("flipd", "ism"):
        with pytest.raises(ValueError, match=f"'{method}'.*dsm, error_bundle, normal_bundle"):
            scorelid.estimate(D, x, method, SIGMA)


def test_batch_sizes_give_identical_outputs(axis_model):
    g, module, path = axis_model
    D = OnnxDenoiser(path)
    x, _ = g.sample(33, seed=5)
    s = torch.linspace(0.01, 1, 33)
    full = D(x, s)
    assert torch.equal(full, module(x, s))
    assert torch.equal(torch.cat([D(x[:1], s[:1]), D(x[1:8], s[1:8]), D(x[8:], s[8:])]), full)
    assert torch.equal(D(x[:4], 0.3), module(x[:4], 0.3))  # a float sigma is broadcast to [B]


def test_corrupt_and_misshaped_files_one_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(ModelLoadError, match=r"bad\.onnx is not a loadable ONNX model") as info:
        scorelid.load_denoiser(bad)
    assert "\n" not in str(info.value)
    one_input = tmp_path / "one.onnx"
    _save_graph(one_input, [("noisy", [None, 4])], "Identity", ["noisy"])
    with pytest.raises(ModelLoadError, match=r"one.onnx is not an ONNX denoiser.*1 input"):
        OnnxDenoiser(one_input)
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        scorelid.load_denoiser(tmp_path / "missing.onnx")


def test_extra_inputs_take_fixed_values(tmp_path):
    path = tmp_path / "extra.onnx"  # denoised = noisy * difficulty (difficulty [B] broadcast per row)
    _save_graph(path, [("noisy", [None, 4]), ("sigma", [None]), ("difficulty", [None, 1])], "Mul",
                ["noisy", "difficulty"])
    with pytest.raises(InputError, match=r"missing \['difficulty'\]"):
        OnnxDenoiser(path)
    with pytest.raises(InputError, match=r"unknown \['level'\]"):
        OnnxDenoiser(path, extra={"difficulty": [0.5], "level": 1})
    D = scorelid.load_denoiser(path, extra={"difficulty": [0.5]})
    y = torch.ones(3, 4)
    assert torch.equal(D(y, 0.1), 0.5 * y)


def test_fixed_batch_graph_is_padded(tmp_path):
    path = tmp_path / "fixed.onnx"
    _save_graph(path, [("noisy", [4, 3]), ("sigma", [4])], "Identity", ["noisy"])
    D = OnnxDenoiser(path)
    y = torch.randn(10, 3)
    assert D.fixed_batch == 4 and torch.equal(D(y, 0.1), y)
    with pytest.raises(InputError, match=r"rows of shape \[3\]"):
        D(torch.randn(2, 5), 0.1)


def _save_graph(path, inputs, op, args):
    """A one-node ONNX graph ``out = op(*args)`` with float inputs of the given shapes."""
    from onnx import TensorProto, helper

    vis = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs]
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, inputs[0][1])
    graph = helper.make_graph([helper.make_node(op, args, ["out"])], "g", vis, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
