"""gptlab.lora: zero-init equality, merge equality, parameter counts, adapter save/load."""

import pytest
import torch

from gptlab import GPT, GPTConfig
from gptlab.checkpoint import CheckpointError
from gptlab.lora import LoRALinear, apply_lora, count_parameters, load_lora, lora_layers, merge_lora, save_lora

CFG = GPTConfig.from_preset("tiny", vocab_size=20, block_size=16, n_layer=2, n_embd=32)  # C = 32
IDX = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]])


def model(seed=0):
    torch.manual_seed(seed)
    return GPT(CFG).eval()


def train_b(m):
    """Give every B a non-zero value, as training would."""
    with torch.no_grad():
        for layer in lora_layers(m).values():
            layer.lora_B.normal_(std=0.05)


def test_zero_init_leaves_the_outputs_unchanged():
    m = model()
    before, _ = m(IDX)
    wrapped = apply_lora(m, r=4, alpha=8, targets=("c_attn", "c_fc"))
    assert wrapped == ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_fc", "transformer.h.1.attn.c_attn", "transformer.h.1.mlp.c_fc"]
    after, _ = m(IDX)
    assert torch.equal(before, after)  # B = 0: exactly the same numbers
    assert all(float(layer.lora_A.detach().abs().sum()) > 0 for layer in lora_layers(m).values())  # A is random, not zero


def test_parameter_counts():
    m = model()
    total = count_parameters(m)[1]
    apply_lora(m, r=4, alpha=8)  # c_attn: 32 -> 96 in each of 2 blocks
    trainable, new_total = count_parameters(m)
    assert trainable == 2 * 4 * (32 + 96)
    assert new_total == total + trainable
    assert {n for n, p in m.named_parameters() if p.requires_grad} == {
        f"transformer.h.{i}.attn.c_attn.lora_{x}" for i in (0, 1) for x in "AB"
    }


def test_freeze_rest_false_keeps_other_parameters_trainable():
    m = model()
    apply_lora(m, r=2, alpha=2, freeze_rest=False)
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen == {f"transformer.h.{i}.attn.c_attn.base.{w}" for i in (0, 1) for w in ("weight", "bias")}


def test_merge_gives_the_same_outputs_with_plain_linears():
    m = model()
    apply_lora(m, r=4, alpha=8, targets=("c_attn", "attn.c_proj"))
    train_b(m)
    before, _ = m(IDX)
    base_before, _ = model()(IDX)
    assert not torch.allclose(before, base_before)  # the adapters do change the model
    merge_lora(m)
    assert not lora_layers(m) and isinstance(m.transformer.h[0].attn.c_attn, torch.nn.Linear)
    after, _ = m(IDX)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    assert set(m.state_dict()) == set(model().state_dict())  # a plain GPT again: loads anywhere


def test_hand_written_update_matches():
    lin = torch.nn.Linear(5, 7)
    layer = LoRALinear(lin, r=3, alpha=6)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(2, 5)
    want = x @ lin.weight.T + lin.bias + (6 / 3) * (x @ layer.lora_A.T @ layer.lora_B.T)
    torch.testing.assert_close(layer(x), want)


def test_adapter_save_load_round_trip(tmp_path):
    m = model()
    apply_lora(m, r=4, alpha=8, targets=("c_attn", "c_fc"))
    train_b(m)
    want, _ = m(IDX)
    path = save_lora(m, tmp_path / "adapter.safetensors")
    assert sum(f.stat().st_size for f in path.iterdir()) < 30_000  # the adapters alone, not the model
    fresh = model()  # the same base weights, no adapters yet: load_lora adds them from the file's metadata
    load_lora(fresh, path)
    got, _ = fresh(IDX)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert count_parameters(fresh)[0] == count_parameters(m)[0]


def test_bad_input_fails_clearly(tmp_path):
    m = model()
    with pytest.raises(ValueError, match="no nn.Linear matches"):
        apply_lora(m, targets=("q_proj",))
    with pytest.raises(ValueError, match="r"):
        apply_lora(m, r=0)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        save_lora(m, tmp_path / "a.safetensors")
    apply_lora(m, r=4, alpha=8)
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(m, r=4)
    save_lora(m, tmp_path / "a.safetensors")
    other = model()
    apply_lora(other, r=2, alpha=8)
    with pytest.raises(CheckpointError, match="already has others"):
        load_lora(other, tmp_path / "a.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not an adapter folder"):
        load_lora(model(), tmp_path / "junk.safetensors")
