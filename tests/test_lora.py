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


# ---------------------------------------------------------------- hostile adapter folders (probe D17-D21)


def _saved(tmp_path, r=4, alpha=8.0):
    m = model()
    apply_lora(m, r=r, alpha=alpha, targets=("c_attn",))
    train_b(m)
    return m, save_lora(m, tmp_path / "adapters")


def _craft(folder, edit=None, tensors=None):
    """Rewrite the adapter folder's metadata and/or tensors, then fix its recorded hashes as an attacker would."""
    import json

    from safetensors.torch import load_file, save_file

    from gptlab.datasets import sha256_file

    if tensors is not None:
        t = load_file(folder / "adapters.safetensors")
        tensors(t)
        save_file(t, folder / "adapters.safetensors", metadata={"format": "pt"})
    meta = json.loads((folder / "checkpoint.json").read_text())
    if edit is not None:
        edit(meta)
    for name, rec in meta["files"].items():
        rec["bytes"], rec["sha256"] = (folder / name).stat().st_size, sha256_file(folder / name)
    (folder / "checkpoint.json").write_text(json.dumps(meta))


def _untouched(m, grads=None):
    return not lora_layers(m) and all(p.requires_grad for p in m.parameters())


def test_D17_an_adapter_on_a_tied_lm_head_is_refused():
    m = model()
    wte = m.transformer.wte.weight.detach().clone()
    with pytest.raises(ValueError, match="lm_head shares its weight with transformer.wte"):
        apply_lora(m, r=2, targets=("lm_head",))
    assert _untouched(m) and torch.equal(m.transformer.wte.weight, wte)
    untied = GPT(GPTConfig.from_dict({**CFG.to_dict(), "tie_weights": False}))
    apply_lora(untied, r=2, targets=("lm_head",))  # an untied head may be adapted, and merged
    train_b(untied)
    before = untied(IDX)[0]
    merge_lora(untied)
    torch.testing.assert_close(untied(IDX)[0], before, rtol=1e-5, atol=1e-5)


def test_D21_the_rank_is_bounded_by_the_layer():
    m = model()
    with pytest.raises(ValueError, match="r=33 is larger than transformer.h.0.attn.c_attn allows"):
        apply_lora(m, r=33)
    assert _untouched(m)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["lora"].update(r=10**8), "'lora' must be"),  # D21: a 10 KB folder asking for 12.8 GB
    (lambda m: m["lora"].update(r=64), "r=64 is larger than"),
    (lambda m: m["lora"].update(r=5), "lora_A has shape \\(4, 32\\), the config needs \\(5, 32\\)"),  # D18
    (lambda m: m["lora"].update(alpha=float("inf")), "'lora' must be"),  # D19
    (lambda m: m["lora"].update(alpha=-1), "'lora' must be"),
    (lambda m: m["lora"].update(targets=["transformer.h.9.attn.c_attn"]), "claims n_layer=2, the file holds|does not have"),
    (lambda m: m["lora"].update(targets=["lm_head"]), "tied embeddings"),
    (lambda m: m.update(lora=[1, 2]), "'lora' must be"),
    (lambda m: m["model_config"].update(n_embd=64, n_head=4), "another base model"),
])
def test_D18_D19_D21_load_lora_checks_the_whole_folder_before_changing_the_model(tmp_path, edit, message):
    _, folder = _saved(tmp_path)
    _craft(folder, edit)
    m = model()
    with pytest.raises(CheckpointError, match=message):
        load_lora(m, folder)
    assert _untouched(m)  # no adapters added, nothing frozen


def test_D19_non_finite_adapter_tensors_are_refused(tmp_path):
    _, folder = _saved(tmp_path)
    _craft(folder, tensors=lambda t: t["transformer.h.0.attn.c_attn.lora_B"].__setitem__((0, 0), float("nan")))
    m = model()
    with pytest.raises(CheckpointError, match="NaN or inf"):
        load_lora(m, folder)
    assert _untouched(m)


def test_D20_a_model_adapted_with_another_alpha_is_refused(tmp_path):
    saved, folder = _saved(tmp_path, alpha=8.0)
    m = model()
    apply_lora(m, r=4, alpha=1.0, targets=("c_attn",))
    a = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(CheckpointError, match="already has others"):
        load_lora(m, folder)
    assert all(torch.equal(v, a[k]) for k, v in m.state_dict().items())
    same = model()
    apply_lora(same, r=4, alpha=8.0, targets=("c_attn",))  # the same settings: loads into the existing adapters
    load_lora(same, folder)
    torch.testing.assert_close(same(IDX)[0], saved(IDX)[0], rtol=0, atol=0)
