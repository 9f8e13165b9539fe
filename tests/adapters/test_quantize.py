"""Half precision and weight-only quantization on the tiny SD3 model: numbers close to fp32."""

import pytest
import torch
from adapters.tiny_models import cached

import scorelid
from scorelid.adapters import load_model
from scorelid.adapters.quantize import quantize_weights, quantized_fraction


@pytest.fixture(scope="module")
def latents(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    m = load_model(cached("sd3"), cache_dir=cache)
    img = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return m.codec.encode(img), cache, m


def _lid(m, z, method):
    kw = {"trace": "hutchinson", "n_probes": 2, "ad": "reverse" if m.quant != "none" else "auto"}
    kw = kw if method == "flipd" else {}
    return scorelid.estimate(m.denoiser, z, method, 0.1, n_noise=2, seed=1, **kw)


@pytest.mark.parametrize(("dtype", "quant", "tol"), [("fp32", "none", 0.0), ("fp16", "none", 0.01),
                                                     ("bf16", "none", 0.05), ("fp32", "int8", 0.05),
                                                     ("bf16", "int4", 0.2)])
def test_precision_drift_small(latents, dtype, quant, tol):
    """fp32 without quantization: a second load gives bit-identical LIDs (the reference's own
    reproducibility); every other setting changes them (so the setting took effect), by less than
    ``tol`` relative."""
    z, cache, ref = latents
    m = load_model(cached("sd3"), dtype=dtype, quant=quant, cache_dir=cache)
    assert m.network.pos_embed.proj.weight.dtype == {"fp32": torch.float32, "fp16": torch.float16,
                                                     "bf16": torch.bfloat16}[dtype]
    if quant == "none":
        assert quantized_fraction(m.network) == 0.0
    else:
        assert quantized_fraction(m.network) > 0.5
    for method in ("dsm", "flipd"):
        a, b = _lid(ref, z, method), _lid(m, z, method)
        rel = ((b - a).abs() / a).max().item()
        if (dtype, quant) == ("fp32", "none"):
            assert torch.equal(a, b), (method, rel)
        else:
            assert 0 < rel < tol, (method, rel)  # precision really changed something, a little


def test_quantize_rejects_unknown():
    with pytest.raises(ValueError, match="quant must be one of"):
        quantize_weights(torch.nn.Sequential(torch.nn.Linear(16, 16)), "int3")
    m = quantize_weights(torch.nn.Sequential(torch.nn.Linear(16, 16)), "int4")
    assert quantized_fraction(m) == 1.0
    plain = quantize_weights(torch.nn.Sequential(torch.nn.Linear(16, 16)), "none")
    assert quantized_fraction(plain) == 0.0
