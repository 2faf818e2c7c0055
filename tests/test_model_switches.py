"""Lesson 14's RMSNorm and QK-norm switches: the formula, no dtype-mismatch warning under bf16 autocast, QK-norm is RMSNorm."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from gptlab import GPT, GPTConfig
from gptlab.model import RMSNorm, make_norm


def speedrun(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("speedrun", **kw))


def test_rmsnorm_is_the_formula():
    torch.manual_seed(0)
    norm = RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 5, 16)
    want = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), want, rtol=1e-5, atol=1e-6)


def test_speedrun_under_bf16_autocast_raises_no_dtype_warning():
    """PyTorch warns "Mismatch dtype between input and weight ... Cannot dispatch to fused implementation" when
    F.rms_norm gets bf16 activations and an fp32 weight; gptlab's RMSNorm casts the weight, so no warning."""
    model = speedrun()
    x = torch.randint(0, 65, (2, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, loss = model(x, x)
        loss.backward()
    norm = model.transformer.ln_f
    assert norm.weight.dtype == torch.float32  # the parameter stays fp32 ...
    assert norm.weight.grad is not None and norm.weight.grad.dtype == torch.float32  # ... and its gradient arrives
    assert model.transformer.h[0].attn.q_norm.weight.grad.abs().sum() > 0


def test_rmsnorm_under_autocast_gives_the_input_dtype():
    norm = RMSNorm(8)
    x = torch.randn(4, 8, dtype=torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = norm(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), torch.nn.functional.rms_norm(x.float(), (8,), norm.weight, norm.eps),
                               rtol=2e-2, atol=2e-2)  # bf16: 8 bits of mantissa


def test_qk_norm_is_rmsnorm_whatever_the_block_norm():
    """QK-norm normalises each head's q and k by their RMS (with a gain), also in a LayerNorm model: no bias, no mean."""
    plain, qk = (GPT(GPTConfig.from_preset("tiny", qk_norm=flag)) for flag in (False, True))
    attn = qk.transformer.h[0].attn
    assert isinstance(attn.q_norm, RMSNorm) and isinstance(attn.k_norm, RMSNorm)
    assert isinstance(qk.transformer.h[0].ln_1, torch.nn.LayerNorm)  # the block norm is still GPT-2's
    cfg = qk.config
    assert qk.get_num_params() - plain.get_num_params() == cfg.n_layer * 2 * cfg.head_size  # one gain per q and k
    assert isinstance(make_norm(GPTConfig.from_preset("tiny", norm="rmsnorm")), RMSNorm)


class _Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.skipif(not torch.cuda.is_available() or not torch.cuda.is_bf16_supported(), reason="needs a CUDA GPU with bf16")
def test_rmsnorm_under_autocast_takes_the_fused_kernel_on_cuda():
    norm = RMSNorm(64).cuda()
    x = torch.randn(4, 16, 64, device="cuda")
    with _Ops() as rec, torch.autocast("cuda", dtype=torch.bfloat16):
        norm(x.bfloat16())
    assert any("_fused_rms_norm" in op for op in rec.ops), rec.ops
