"""gptlab.pretrained: Hugging Face GPT-2 folders in and out, checked against transformers itself."""

from __future__ import annotations

import io
import json
import os
import shutil
import urllib.error
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402
from test_model import make  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from gptlab import GPT, GPTConfig, pretrained  # noqa: E402
from gptlab.pretrained import config_from_hf, convert_hf_state_dict, download_gpt2, export_hf_gpt2, load_hf_gpt2  # noqa: E402

SMALL = dict(n_layer=2, n_head=4, n_embd=64, n_positions=128, vocab_size=1000)


def hf_config(**overrides) -> GPT2Config:
    # No bos/eos: GPT-2's 50256 lies outside the small vocabulary (transformers warns), and
    # without an eos HF's greedy search runs all max_new_tokens, as the reference loop does.
    return GPT2Config(**{**SMALL, "bos_token_id": None, "eos_token_id": None, **overrides})


@pytest.fixture(scope="module")
def hf_model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(hf_config()).eval()
    with torch.no_grad():  # HF zero-inits biases and sets LayerNorm to 1/0: randomise them so a swap would show
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def hf_dir(hf_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hf_gpt2")
    hf_model.save_pretrained(path)
    assert (path / "model.safetensors").is_file()
    return path


def copy_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def rewrite_weights(folder: Path, edit) -> None:
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


# ----------------------------------------------------------------------------- equality with transformers


def test_logits_match_transformers(hf_model, hf_dir):
    model = load_hf_gpt2(hf_dir)
    assert not model.training
    assert model.config == GPTConfig(vocab_size=1000, block_size=128, n_layer=2, n_head=4, n_embd=64, dropout=0.0, bias=True)
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied after loading
    assert model.get_num_params() == sum(p.numel() for p in hf_model.parameters())
    idx = torch.randint(0, 1000, (3, 128), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, _ = model(idx)
        theirs = hf_model(idx).logits
    assert ours.shape == theirs.shape == (3, 128, 1000)
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_conv1d_weights_are_transposed(hf_model, hf_dir):
    model = load_hf_gpt2(hf_dir)
    hf_w = hf_model.transformer.h[1].attn.c_attn.weight  # Conv1D: (in, out) = (64, 192)
    ours = model.transformer.h[1].attn.c_attn.weight  # Linear: (out, in) = (192, 64)
    assert hf_w.shape == (64, 192) and ours.shape == (192, 64)
    torch.testing.assert_close(ours, hf_w.t(), rtol=0, atol=0)
    torch.testing.assert_close(model.transformer.h[0].ln_1.bias, hf_model.transformer.h[0].ln_1.bias, rtol=0, atol=0)


def test_loaded_weights_keep_the_checkpoint_memory_order_and_still_save_train_and_cast(hf_dir, tmp_path):
    """Conv1D weights stay (in, out) in memory (column-major (out, in) tensors, faster CPU decoding);
    checkpoints, training steps and dtype casts must not care."""
    from gptlab.checkpoint import load_checkpoint, save_checkpoint

    model = load_hf_gpt2(hf_dir)
    w = model.transformer.h[0].mlp.c_fc.weight
    assert w.shape == (256, 64) and w.stride() == (1, 256) and w.t().is_contiguous()
    idx = torch.randint(0, 1000, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, _ = model(idx)
    save_checkpoint(tmp_path / "ckpt", model)
    again, _, _ = load_checkpoint(tmp_path / "ckpt", device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(again(idx)[0], ref, rtol=0, atol=0)
    assert model.to(torch.bfloat16).transformer.h[0].mlp.c_fc.weight.stride() == (1, 256)
    model.float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model(idx, idx)[1]
    loss.backward()
    opt.step()
    assert torch.isfinite(model(idx, idx)[1])


def greedy(model: GPT, idx: torch.Tensor, n: int) -> torch.Tensor:
    """Reference greedy decoding without a cache: argmax of the full-prefix logits, n times."""
    for _ in range(n):
        logits, _ = model(idx)
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


def hf_greedy(hf_model, idx: torch.Tensor, n: int) -> torch.Tensor:
    out = hf_model.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=n, do_sample=False, pad_token_id=0)
    assert out.shape == (idx.size(0), idx.size(1) + n)
    return out


def test_greedy_generation_matches_transformers(hf_model, hf_dir):
    model = load_hf_gpt2(hf_dir)
    idx = torch.randint(0, 1000, (2, 5), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = greedy(model, idx, 20)
    theirs = hf_greedy(hf_model, idx, 20)
    assert ours.shape == (2, 25)
    assert torch.equal(ours, theirs)


def test_gptlab_generate_matches_transformers(hf_model, hf_dir):
    generation = pytest.importorskip("gptlab.generation")
    model = load_hf_gpt2(hf_dir)
    idx = torch.randint(0, 1000, (2, 5), generator=torch.Generator().manual_seed(3))
    theirs = hf_greedy(hf_model, idx, 20)
    assert torch.equal(generation.generate(model, idx, 20, do_sample=False), theirs)
    assert torch.equal(model.generate(idx, 20, do_sample=False), theirs)


# ----------------------------------------------------------------------------- other layouts


def test_original_layout_without_prefix_with_mask_buffers(hf_model, hf_dir, tmp_path):
    """OpenAI's upload: GPT2Model names (no 'transformer.'), causal-mask buffers, a tied lm_head."""
    folder = copy_dir(hf_dir, tmp_path / "original")

    def edit(t):
        for k in list(t):
            t[k.removeprefix("transformer.")] = t.pop(k)
        for i in range(2):
            t[f"h.{i}.attn.bias"] = torch.ones(1, 1, 128, 128).tril()
            t[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        t["lm_head.weight"] = t["wte.weight"].clone()

    rewrite_weights(folder, edit)
    idx = torch.randint(0, 1000, (1, 32), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(load_hf_gpt2(folder)(idx)[0], hf_model(idx).logits, rtol=0, atol=1e-5)


def test_sharded_folder(hf_model, tmp_path):
    hf_model.save_pretrained(tmp_path, max_shard_size="100KB")
    assert not (tmp_path / "model.safetensors").exists() and (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    idx = torch.randint(0, 1000, (1, 16), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(load_hf_gpt2(tmp_path)(idx)[0], hf_model(idx).logits, rtol=0, atol=1e-5)


def test_export_round_trip(tmp_path):
    torch.manual_seed(6)
    model = GPT(GPTConfig(vocab_size=300, block_size=40, n_layer=2, n_head=2, n_embd=32)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    export_hf_gpt2(model, tmp_path)
    hf = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, model(idx)[0], rtol=0, atol=1e-5)
    back = load_hf_gpt2(tmp_path)
    assert back.config == model.config
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), name


def test_export_refuses_models_without_bias(tmp_path):
    with pytest.raises(ValueError, match="bias=True"):
        export_hf_gpt2(GPT(GPTConfig.from_preset("tiny", bias=False)), tmp_path)


# ----------------------------------------------------------------------------- GPT-2 124M shapes


def test_gpt2_124m_config_and_shapes():
    """The real GPT-2 config maps to the 'gpt2' preset, and every tensor of the real layout maps
    onto gptlab's shapes (meta tensors: shapes without memory, so all 12 layers cost nothing)."""
    hf_cfg = GPT2Config()  # transformers' defaults are GPT-2 124M
    cfg = config_from_hf(hf_cfg.to_dict())
    assert cfg == GPTConfig.from_preset("gpt2", dropout=0.0)
    with torch.device("meta"):
        hf = GPT2LMHeadModel(hf_cfg)
        model = GPT(cfg)
    hf_sd = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    assert hf_sd["transformer.h.0.attn.c_attn.weight"].shape == (768, 2304)
    assert hf_sd["transformer.h.0.mlp.c_proj.weight"].shape == (3072, 768)
    state = convert_hf_state_dict(hf_sd, model)
    assert state["transformer.h.0.attn.c_attn.weight"].shape == (2304, 768)
    assert state["transformer.h.11.mlp.c_proj.weight"].shape == (768, 3072)
    assert set(state) == set(model.state_dict())
    assert model.get_num_params() == sum(p.numel() for p in hf.parameters()) == 124_439_808


# ----------------------------------------------------------------------------- bad inputs


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_hf_gpt2(tmp_path / "nope")


def test_missing_weights_file(hf_dir, tmp_path):
    folder = copy_dir(hf_dir, tmp_path / "noweights")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors not found"):
        load_hf_gpt2(folder)


def test_missing_config(hf_dir, tmp_path):
    folder = copy_dir(hf_dir, tmp_path / "noconfig")
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        load_hf_gpt2(folder)


def test_truncated_safetensors(hf_dir, tmp_path):
    folder = copy_dir(hf_dir, tmp_path / "truncated")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors is not a readable safetensors file.*truncated"):
        load_hf_gpt2(folder)


def test_pytorch_bin_only_is_refused_without_unpickling(hf_dir, tmp_path):
    folder = copy_dir(hf_dir, tmp_path / "bin")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle")  # never opened
    with pytest.raises(FileNotFoundError, match="(?s)pytorch_model.bin but no model.safetensors.*weights_only=True"):
        load_hf_gpt2(folder)


def test_missing_key_is_named(hf_dir, tmp_path):
    folder = copy_dir(hf_dir, tmp_path / "missing")
    rewrite_weights(folder, lambda t: t.pop("transformer.h.1.mlp.c_fc.bias"))
    with pytest.raises(ValueError, match=r"missing tensor\(s\) \['transformer.h.1.mlp.c_fc.bias'\]"):
        load_hf_gpt2(folder)


def test_unexpected_key_is_named(hf_dir, tmp_path):
    folder = copy_dir(hf_dir, tmp_path / "extra")
    rewrite_weights(folder, lambda t: t.update({"transformer.h.2.ln_1.weight": torch.ones(64)}))
    with pytest.raises(ValueError, match=r"unexpected tensor\(s\) \['transformer.h.2.ln_1.weight'\]"):
        load_hf_gpt2(folder)


def test_wrong_shape_is_named(hf_dir, tmp_path):
    folder = copy_dir(hf_dir, tmp_path / "shape")
    # an nn.Linear-layout (out, in) weight where GPT-2's Conv1D (in, out) belongs
    rewrite_weights(folder, lambda t: t.update({
        "transformer.h.0.attn.c_attn.weight": t["transformer.h.0.attn.c_attn.weight"].t().contiguous()}))
    with pytest.raises(ValueError, match=r"'transformer.h.0.attn.c_attn.weight' has shape \(192, 64\), expected \(64, 192\)"):
        load_hf_gpt2(folder)
    rewrite_weights(folder, lambda t: t.update({"transformer.h.0.attn.c_attn.weight": torch.zeros(64, 192),
                                                "transformer.wpe.weight": torch.zeros(64, 64)}))
    with pytest.raises(ValueError, match=r"'transformer.wpe.weight' has shape \(64, 64\), expected \(128, 64\)"):
        load_hf_gpt2(folder)


def test_untied_lm_head_is_refused(hf_dir, tmp_path):
    folder = copy_dir(hf_dir, tmp_path / "untied")
    rewrite_weights(folder, lambda t: t.update({"lm_head.weight": torch.zeros(1000, 64)}))
    with pytest.raises(ValueError, match="lm_head.weight differs from wte.weight"):
        load_hf_gpt2(folder)


@pytest.mark.parametrize(
    "key, value",
    [
        ("activation_function", "relu"),
        ("layer_norm_epsilon", 1e-6),
        ("scale_attn_by_inverse_layer_idx", True),
        ("reorder_and_upcast_attn", True),
        ("n_inner", 100),
        ("tie_word_embeddings", False),
        ("model_type", "gpt_neo"),
    ],
)
def test_unsupported_config_is_refused(hf_dir, tmp_path, key, value):
    folder = copy_dir(hf_dir, tmp_path / "cfg")
    cfg = json.loads((folder / "config.json").read_text())
    cfg[key] = value
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=key):
        load_hf_gpt2(folder)


def test_config_without_n_positions_uses_n_ctx():
    cfg = config_from_hf({"n_ctx": 64, "n_embd": 32, "n_layer": 1, "n_head": 2, "vocab_size": 10})
    assert cfg.block_size == 64
    with pytest.raises(ValueError, match="missing 'n_head'"):
        config_from_hf({"n_positions": 64, "n_embd": 32, "n_layer": 1, "vocab_size": 10})


# ----------------------------------------------------------------------------- download (no network: urlopen faked)


def test_download_offline_says_what_to_fetch(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(pretrained.urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError) as e:
        download_gpt2("gpt2", tmp_path)
    msg = str(e.value)
    assert "https://huggingface.co/openai-community/gpt2/resolve/main/config.json" in msg
    assert "https://huggingface.co/openai-community/gpt2/resolve/main/model.safetensors" in msg
    assert str(tmp_path / "hf" / "openai-community--gpt2") in msg
    assert not any((tmp_path / "hf" / "openai-community--gpt2").glob("*"))  # nothing half-written


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, length: int | None = None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_fetches_once_and_loads(hf_dir, tmp_path, monkeypatch):
    files = {name: (hf_dir / name).read_bytes() for name in ("config.json", "model.safetensors")}
    urls = []

    def fake_urlopen(request, timeout):
        urls.append(request.full_url)
        return FakeResponse(files[request.full_url.rsplit("/", 1)[1]])

    monkeypatch.setattr(pretrained.urllib.request, "urlopen", fake_urlopen)
    folder = download_gpt2("someone/tiny-gpt2", tmp_path)
    assert folder == tmp_path / "hf" / "someone--tiny-gpt2"
    assert urls == [f"https://huggingface.co/someone/tiny-gpt2/resolve/main/{n}" for n in ("config.json", "model.safetensors")]
    assert load_hf_gpt2(folder).config.n_layer == 2
    download_gpt2("someone/tiny-gpt2", tmp_path)
    assert len(urls) == 2  # already there: not fetched again


def test_download_cut_short_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained.urllib.request, "urlopen", lambda request, timeout: FakeResponse(b"{}", length=100))
    with pytest.raises(RuntimeError, match="stopped after 2 of 100 bytes"):
        download_gpt2("someone/x", tmp_path)
    assert list((tmp_path / "hf" / "someone--x").iterdir()) == []


def test_gpt2_folder_order(hf_dir, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise AssertionError("gpt2_folder must not download here")

    monkeypatch.setattr(pretrained.urllib.request, "urlopen", offline)
    monkeypatch.setenv("GPTLAB_GPT2_DIR", str(hf_dir))
    assert pretrained.gpt2_folder("gpt2", cache_dir=tmp_path) == hf_dir  # 1. the env folder
    monkeypatch.setenv("GPTLAB_GPT2_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="does not exist"):  # a wrong env folder is an error, not a silent download
        pretrained.gpt2_folder("gpt2", cache_dir=tmp_path)
    monkeypatch.delenv("GPTLAB_GPT2_DIR")
    with pytest.raises(RuntimeError, match="(?s)downloading is off.*resolve/main/model.safetensors.*GPTLAB_GPT2_DIR"):
        pretrained.gpt2_folder("gpt2", download=False, cache_dir=tmp_path)
    cached = copy_dir(hf_dir, tmp_path / "hf" / "openai-community--gpt2")  # 2. the cache
    assert pretrained.gpt2_folder("gpt2", download=False, cache_dir=tmp_path) == cached


# ----------------------------------------------------------------------------------------------------
# Moved here from test_hardening.py (tests by module): hostile input and mutation-test gaps.
# ----------------------------------------------------------------------------------------------------


def shard(folder: Path, names: tuple[str, str]) -> None:
    """Split model.safetensors into two shards named `names` (paths relative to the folder) plus an index."""
    tensors = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    keys = sorted(tensors)
    parts = {names[0]: keys[: len(keys) // 2], names[1]: keys[len(keys) // 2 :]}
    for name, ks in parts.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: tensors[k] for k in ks}, target)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {k: n for n, ks in parts.items() for k in ks}}))


def test_a_sharded_folder_inside_loads(hf_folder):
    from gptlab.pretrained import load_hf_gpt2

    shard(hf_folder, ("a.safetensors", "b.safetensors"))
    assert load_hf_gpt2(hf_folder).config.n_layer == 2


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_shards_outside_the_folder_are_refused(hf_folder, tmp_path, kind):
    from gptlab.pretrained import load_hf_gpt2

    outside = tmp_path / "elsewhere" / "b.safetensors"
    names = {"dotdot": ("a.safetensors", "../elsewhere/b.safetensors"),
             "absolute": ("a.safetensors", str(outside)),
             "symlink": ("a.safetensors", "../elsewhere/b.safetensors")}[kind]
    shard(hf_folder, names)
    if kind == "symlink":  # a name that looks local but is a link out of the folder
        os.symlink(outside, hf_folder / "b.safetensors")
        index = json.loads((hf_folder / "model.safetensors.index.json").read_text())
        index["weight_map"] = {k: Path(v).name for k, v in index["weight_map"].items()}
        (hf_folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="outside the folder|not a file name inside"):
        load_hf_gpt2(hf_folder)


def test_config_symlinked_out_of_the_folder_is_refused(hf_folder, tmp_path):
    from gptlab.pretrained import load_hf_gpt2

    shutil.move(hf_folder / "config.json", tmp_path / "config.json")
    os.symlink(tmp_path / "config.json", hf_folder / "config.json")
    with pytest.raises(ValueError, match="outside the folder"):
        load_hf_gpt2(hf_folder)


def test_int32_weights_are_refused_by_load_hf_gpt2(hf_folder):
    from gptlab.pretrained import load_hf_gpt2

    w = load_file(hf_folder / "model.safetensors")
    w["transformer.wpe.weight"] = w["transformer.wpe.weight"].to(torch.int32)
    save_file(w, hf_folder / "model.safetensors")
    with pytest.raises(ValueError, match="int32"):
        load_hf_gpt2(hf_folder)


# ----------------------------------------------------------------------------------------------------
# Moved here from test_model_switches.py (tests by module).
# ----------------------------------------------------------------------------------------------------


def test_export_rejects_switched_model(tmp_path):
    from gptlab.pretrained import export_hf_gpt2

    with pytest.raises(ValueError, match="GPT-2's layout"):
        export_hf_gpt2(make(norm="rmsnorm"), tmp_path / "x")
