"""OpenAI's GPT-2 weights in gptlab's GPT, read from a Hugging Face folder (lesson 09).

OpenAI released GPT-2 as TensorFlow checkpoints; Hugging Face converted them to
PyTorch and publishes them as `model.safetensors` next to a `config.json`. We
read that folder and nothing else: safetensors is a flat table of tensors, so
loading it cannot run code, unlike a pickled `pytorch_model.bin`.

gptlab's parameter names already follow GPT-2's (`transformer.h.0.attn.c_attn`
...), so the mapping is one-to-one with a single twist: GPT-2's projections are
`Conv1D` layers that store their weight as (in_features, out_features) and
compute `x @ W`, while `nn.Linear` stores (out_features, in_features) and
computes `x @ W.T`. The four such weights per block (c_attn, attn.c_proj, c_fc,
mlp.c_proj) are transposed on the way in and on the way out.

    model = load_hf_gpt2("path/to/gpt2")          # config.json + model.safetensors
    folder = gpt2_folder("gpt2")                   # GPTLAB_GPT2_DIR, the cache, or a download
    export_hf_gpt2(model, "out/")                  # and back, for transformers
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import torch

from gptlab.config import GPTConfig
from gptlab.model import GPT

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
CONFIG_NAME = "config.json"

# HF Conv1D weights, stored (in, out): these four are transposed for nn.Linear.
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Buffers older GPT-2 files carry: the causal mask (1, 1, n_ctx, n_ctx) and -1e4. Not
# weights; gptlab builds its mask on the fly, so they are skipped.
_IGNORED = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")
# The four released sizes, under the organisation Hugging Face now keeps them in.
GPT2_REPOS = {name: f"openai-community/{name}" for name in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")}
HF_URL = "https://huggingface.co/{repo}/resolve/main/{filename}"


def is_conv1d(name: str) -> bool:
    """True for the weights GPT-2 stores as (in, out), whatever the prefix."""
    return name.endswith(CONV1D_WEIGHTS)


# ----------------------------------------------------------------------------- config


def config_from_hf(hf: dict[str, Any], *, dropout: float = 0.0, source: str = CONFIG_NAME) -> GPTConfig:
    """A GPTConfig from a Hugging Face GPT-2 `config.json` dict.

    Only settings gptlab's model computes exactly are accepted; anything else
    raises instead of loading into a model that silently computes something
    different. Dropout is 0 unless asked for: loaded weights are for inference
    or fine-tuning, and GPT-2's 0.1 is a choice for the latter.
    """

    def need(key: str, *fallbacks: str) -> int:
        for k in (key, *fallbacks):
            if hf.get(k) is not None:
                return hf[k]
        raise ValueError(f"{source}: missing {key!r}; a GPT-2 config needs n_positions, n_embd, n_layer, n_head and vocab_size")

    if hf.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"{source}: model_type is {hf['model_type']!r}; load_hf_gpt2 reads GPT-2 checkpoints only (model_type 'gpt2')")
    n_embd = need("n_embd")
    # n_ctx is the pre-2020 name of the context length; n_positions (the size of wpe) wins.
    cfg = dict(
        vocab_size=need("vocab_size"), block_size=need("n_positions", "n_ctx"),
        n_layer=need("n_layer"), n_head=need("n_head"), n_embd=n_embd,
    )
    checks = [
        # (key, default when absent, accepted values, why)
        ("activation_function", "gelu_new", ("gelu_new", "gelu_pytorch_tanh"),
         "gptlab's MLP uses GELU with the tanh approximation (HF 'gelu_new')"),
        ("n_inner", None, (None, 4 * n_embd), f"gptlab's MLP is 4 * n_embd = {4 * n_embd} wide"),
        ("scale_attn_weights", True, (True,), "gptlab scales attention scores by 1/sqrt(head_size)"),
        ("scale_attn_by_inverse_layer_idx", False, (False,), "gptlab does not scale attention by 1/(layer + 1)"),
        ("reorder_and_upcast_attn", False, (False,), "gptlab does not implement the upcast attention variant"),
        ("add_cross_attention", False, (False,), "gptlab is decoder-only, with no cross-attention"),
        ("tie_word_embeddings", True, (True,), "gptlab ties lm_head to the token embedding wte"),
    ]
    for key, default, ok, why in checks:
        value = hf.get(key, default)
        if value not in ok:
            raise ValueError(f"{source}: {key}={value!r} is not supported ({why}); expected {' or '.join(map(repr, ok))}")
    eps = hf.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isclose(eps, _LAYER_NORM_EPS, rel_tol=1e-6):
        raise ValueError(f"{source}: layer_norm_epsilon={eps!r} is not supported; gptlab's nn.LayerNorm uses eps={_LAYER_NORM_EPS}")
    try:
        return GPTConfig(**cfg, dropout=dropout, bias=True)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from e


# The eps every LayerNorm in gptlab.model uses (PyTorch's default), read rather than assumed.
_LAYER_NORM_EPS = torch.nn.LayerNorm(1).eps


def config_to_hf(config: GPTConfig) -> dict[str, Any]:
    """The `config.json` transformers needs to rebuild `config` as a GPT2LMHeadModel."""
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": config.vocab_size, "n_positions": config.block_size, "n_ctx": config.block_size,
        "n_embd": config.n_embd, "n_layer": config.n_layer, "n_head": config.n_head, "n_inner": None,
        "activation_function": "gelu_new", "layer_norm_epsilon": _LAYER_NORM_EPS,
        "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.dropout,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        # <|endoftext|> in GPT-2's vocabulary; other vocabularies have no agreed id.
        "bos_token_id": 50256 if config.vocab_size == 50257 else None,
        "eos_token_id": 50256 if config.vocab_size == 50257 else None,
    }


# ----------------------------------------------------------------------------- reading


def _confined(folder: Path, p: Path) -> Path:
    """`p` if it resolves (symlinks followed) to a file inside `folder`: a loader opens nothing elsewhere."""
    real = p.resolve()
    try:
        real.relative_to(folder.resolve())
    except ValueError:
        raise ValueError(f"{p} resolves to {real}, outside the folder {folder}; "
                         "gptlab only reads files inside the folder it is given") from None
    return p


def _check_folder(path: Path) -> tuple[Path, list[Path]]:
    """config.json and the safetensors file(s) of a folder, or an error that says what is missing."""
    if not path.exists():
        raise FileNotFoundError(f"GPT-2 folder {path} does not exist; it should hold {CONFIG_NAME} and {WEIGHTS_NAME} (see download_gpt2)")
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is a file; pass the folder that holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    config = path / CONFIG_NAME
    if not config.is_file():
        raise FileNotFoundError(f"{config} not found: a Hugging Face GPT-2 folder needs {CONFIG_NAME} next to {WEIGHTS_NAME}")
    _confined(path, config)
    if (path / WEIGHTS_NAME).is_file():
        return config, [_confined(path, path / WEIGHTS_NAME)]
    if (path / INDEX_NAME).is_file():
        try:
            weight_map = json.loads(_confined(path, path / INDEX_NAME).read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, KeyError, TypeError) as e:
            raise ValueError(f"{path / INDEX_NAME} is not a safetensors index (a JSON object with a 'weight_map'): {e}") from None
        if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
            raise ValueError(f"{path / INDEX_NAME}: 'weight_map' must map tensor names to shard file names")
        names = sorted(set(weight_map.values()))
        for name in names:
            if Path(name).name != name or name in ("", ".", ".."):
                raise ValueError(f"{path / INDEX_NAME} lists the shard {name!r}, which is not a file name inside {path}; refused")
        shards = [path / name for name in names]
        for shard in shards:
            if not shard.is_file():
                raise FileNotFoundError(f"{shard} not found: {INDEX_NAME} lists it as a shard")
            _confined(path, shard)
        return config, shards
    if (path / "pytorch_model.bin").is_file():
        raise FileNotFoundError(
            f"{path} has pytorch_model.bin but no {WEIGHTS_NAME}. gptlab does not unpickle .bin files (loading a pickle can run "
            "arbitrary code). Download model.safetensors instead, or convert the .bin once, if you trust it:\n"
            "  python -c \"import torch; from safetensors.torch import save_file; "
            "sd = torch.load('pytorch_model.bin', weights_only=True); "
            "save_file({k: v.contiguous().clone() for k, v in sd.items()}, 'model.safetensors', metadata={'format': 'pt'})\""
        )
    raise FileNotFoundError(f"{path / WEIGHTS_NAME} not found (nor a sharded {INDEX_NAME}); download it next to {CONFIG_NAME}")


def read_hf_config(path: str | os.PathLike) -> dict[str, Any]:
    """The raw `config.json` of a Hugging Face folder, as a dict."""
    config = Path(path) / CONFIG_NAME
    try:
        hf = json.loads(_confined(Path(path), config).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{config} not found: a Hugging Face GPT-2 folder needs {CONFIG_NAME} next to {WEIGHTS_NAME}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"{config} is not valid JSON: {e}") from None
    if not isinstance(hf, dict):
        raise ValueError(f"{config} should hold a JSON object, got {type(hf).__name__}")
    return hf


def read_hf_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor in a Hugging Face folder's safetensors file(s), under the names stored there."""
    from safetensors import SafetensorError, safe_open

    _, files = _check_folder(Path(path))
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            with safe_open(file, framework="pt") as f:
                for key in f.keys():
                    if key in tensors:
                        raise ValueError(f"{file}: tensor {key!r} appears in more than one shard")
                    tensors[key] = f.get_tensor(key)
        except SafetensorError as e:
            raise ValueError(f"{file} is not a readable safetensors file ({e}); it may be truncated: download it again") from e
    return tensors


def convert_hf_state_dict(hf_tensors: dict[str, torch.Tensor], model: GPT, source: str = WEIGHTS_NAME) -> dict[str, torch.Tensor]:
    """Hugging Face GPT-2 tensors -> a state dict for `model` (gptlab names, Linear layout).

    Accepts names with the `transformer.` prefix (GPT2LMHeadModel) or without
    (GPT2Model, as in OpenAI's original upload); skips the attention-mask
    buffers; checks that every weight is there once, with the right shape.
    """
    expected = {k: v.shape for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied to wte
    out: dict[str, torch.Tensor] = {}
    unexpected, lm_head = [], None
    for key, tensor in hf_tensors.items():
        bare = key.removeprefix("transformer.")
        if _IGNORED.match(bare):
            continue
        if key == "lm_head.weight":
            lm_head = tensor
            continue
        name = "transformer." + bare
        if name not in expected:
            unexpected.append(key)
            continue
        if name in out:
            raise ValueError(f"{source}: {name!r} is stored twice (with and without the 'transformer.' prefix)")
        want = expected[name]
        if not tensor.is_floating_point():
            raise ValueError(f"{source}: {key!r} is {tensor.dtype}; GPT-2 weights are floating point (float32, float16 or bfloat16)")
        if is_conv1d(name):
            want_hf = torch.Size((want[1], want[0]))  # Conv1D: (in, out)
            if tensor.shape != want_hf:
                raise ValueError(f"{source}: {key!r} has shape {tuple(tensor.shape)}, expected {tuple(want_hf)} "
                                 f"(Conv1D layout (in, out) for n_embd={model.config.n_embd}); is config.json from the same model?")
            tensor = tensor.t()
        elif tensor.shape != want:
            raise ValueError(f"{source}: {key!r} has shape {tuple(tensor.shape)}, "
                             f"expected {tuple(want)} for the model config.json describes")
        out[name] = tensor
    if unexpected:
        raise ValueError(f"{source}: unexpected tensor(s) {sorted(unexpected)[:5]}{' ...' if len(unexpected) > 5 else ''} "
                         f"({len(unexpected)} in all); not a GPT-2 checkpoint gptlab can map, or config.json has too few layers")
    missing = sorted(set(expected) - set(out))
    if missing:
        raise ValueError(f"{source}: missing tensor(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)} in all); "
                         "the file is incomplete or config.json has more layers than the weights")
    if lm_head is not None and not torch.equal(lm_head, out["transformer.wte.weight"]):
        raise ValueError(f"{source}: lm_head.weight differs from wte.weight; gptlab ties the two, so an untied head cannot be loaded")
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


def load_hf_gpt2(path: str | os.PathLike, device: str | torch.device | None = None, *, dropout: float = 0.0) -> GPT:
    """A gptlab GPT (eval mode, float32, on `device`, default CPU) from a Hugging Face GPT-2 folder.

    The folder holds `config.json` and `model.safetensors` (or shards listed in
    `model.safetensors.index.json`), as `save_pretrained` writes and as
    https://huggingface.co/openai-community/gpt2 serves. `pytorch_model.bin` is
    refused: unpickling can run code (the error says how to convert it).
    """
    path = Path(path)
    _check_folder(path)
    config = config_from_hf(read_hf_config(path), dropout=dropout, source=str(path / CONFIG_NAME))
    hf_tensors = read_hf_state_dict(path)
    device = torch.device(device if device is not None else "cpu")
    # Build on the meta device (shapes only, no random init: 1.5B parameters for gpt2-xl
    # would take seconds to initialise just to be overwritten), then allocate and fill.
    with torch.device("meta"):
        model = GPT(config)
    state = convert_hf_state_dict(hf_tensors, model, source=str(path))
    model.to_empty(device=device)
    model.transformer.wte.weight = model.lm_head.weight  # to_empty gives each a new tensor: tie again
    with torch.no_grad():
        for name, p in model.named_parameters():  # the tied matrix once, as transformer.wte.weight
            if is_conv1d(name):
                # Keep the checkpoint's (in, out) memory order: the weight still has nn.Linear's
                # shape (out, in), but stored column-major, so F.linear's x @ W.t() reads W.t()
                # row by row. For one token at a time (decoding on a CPU) that matrix-vector
                # product runs ~10% faster than with row-major weights. Values are identical.
                p.data = torch.empty_strided(p.shape, (1, p.shape[0]), dtype=p.dtype, device=device)
            p.copy_(state[name])
        for name, _ in model.named_buffers():  # none today; garbage if a future buffer were left unfilled
            raise RuntimeError(f"load_hf_gpt2 does not know how to fill the buffer {name!r} of gptlab.model.GPT")
    return model.eval()


# ----------------------------------------------------------------------------- writing


def export_hf_gpt2(model: GPT, path: str | os.PathLike) -> Path:
    """Write `model` as a Hugging Face GPT-2 folder (config.json + model.safetensors).

    transformers.GPT2LMHeadModel.from_pretrained(path) then computes the same
    logits, and load_hf_gpt2(path) gives the model back.
    """
    from safetensors.torch import save_file

    if not model.config.bias:
        raise ValueError("GPT-2 has biases in every Linear and LayerNorm; export a model built with GPTConfig(bias=True)")
    if not model.config.is_gpt2:
        c = model.config
        raise ValueError(
            f"GPT-2's layout has learned positions, LayerNorm, a GELU MLP, no QK-norm and a tied head; this model has "
            f"pos_emb={c.pos_emb!r}, norm={c.norm!r}, mlp={c.mlp!r}, qk_norm={c.qk_norm}, tie_weights={c.tie_weights}"
        )
    if model.lm_head.weight is not model.transformer.wte.weight:
        raise ValueError("lm_head.weight is no longer tied to transformer.wte.weight; GPT-2's layout has one shared matrix")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied: transformers re-ties it from wte
        t = t.detach().cpu()
        tensors[name] = (t.t() if is_conv1d(name) else t).contiguous().clone()
    save_file(tensors, path / WEIGHTS_NAME, metadata={"format": "pt"})
    hf = config_to_hf(model.config)
    hf["dtype"] = str(model.lm_head.weight.dtype).removeprefix("torch.")
    (path / CONFIG_NAME).write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- download


def gpt2_cache_dir(name: str = "gpt2", cache_dir: str | os.PathLike | None = None) -> Path:
    """Where download_gpt2 keeps `name`: <cache>/hf/<org>--<model> (cache: gptlab.datasets.data_dir())."""
    if cache_dir is None:
        from gptlab.datasets import data_dir

        cache_dir = data_dir()
    return Path(cache_dir) / "hf" / GPT2_REPOS.get(name, name).replace("/", "--")


def download_gpt2(name: str = "gpt2", cache_dir: str | os.PathLike | None = None, *, timeout: float = 60.0) -> Path:
    """Fetch `config.json` and `model.safetensors` of a Hugging Face GPT-2 once; return the folder.

    `name`: gpt2 (124M, 548 MB), gpt2-medium (355M), gpt2-large (774M),
    gpt2-xl (1.5B), or any "org/model" repo id. Files already in the folder are
    not fetched again. Offline, raises RuntimeError saying which files to put where.
    """
    repo = GPT2_REPOS.get(name, name)
    folder = gpt2_cache_dir(name, cache_dir)
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        target = folder / filename
        if target.is_file():
            continue
        url = HF_URL.format(repo=repo, filename=filename)
        try:
            _download(url, target, timeout)
        except OSError as e:  # URLError, HTTPError, timeouts, disk errors
            raise RuntimeError(f"could not download {url} ({getattr(e, 'reason', e)}). {_instructions(name, folder)}") from e
    return folder


def gpt2_folder(name: str = "gpt2", *, download: bool = True, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder to pass to load_hf_gpt2, found in this order:

    1. for name "gpt2", the folder in the environment variable GPTLAB_GPT2_DIR;
    2. the download cache (gpt2_cache_dir), if it holds both files;
    3. a download (download_gpt2), unless download=False.
    Raises RuntimeError, saying what to download and where to put it, if none works.
    """
    env = os.environ.get("GPTLAB_GPT2_DIR")
    if name == "gpt2" and env:
        folder = Path(env).expanduser()
        _check_folder(folder)
        return folder
    folder = gpt2_cache_dir(name, cache_dir)
    if (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file():
        return folder
    if not download:
        raise RuntimeError(f"{name} weights are not in {_show(folder)} and downloading is off. {_instructions(name, folder)}")
    return download_gpt2(name, cache_dir)


def _instructions(name: str, folder: Path) -> str:
    repo = GPT2_REPOS.get(name, name)
    urls = "\n".join(f"  {HF_URL.format(repo=repo, filename=f)}" for f in (CONFIG_NAME, WEIGHTS_NAME))
    env = " (or any folder, then set GPTLAB_GPT2_DIR to it)" if name == "gpt2" else ""
    return f"On a machine that is online, download\n{urls}\nand put both files in {_show(folder)}{env}."


def _download(url: str, target: Path, timeout: float) -> None:
    """Stream `url` to `target` through a temporary file, so a broken download never looks complete."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "gptlab"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        target.parent.mkdir(parents=True, exist_ok=True)  # only once the server answers: offline leaves no trace
        total = int(response.headers.get("Content-Length") or 0) or None
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=target.name,
                                                  disable=total is None or total < 1 << 20) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
            if total is not None and os.path.getsize(tmp) != total:
                raise OSError(f"download of {url} stopped after {os.path.getsize(tmp)} of {total} bytes")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def _show(path: Path) -> str:
    """`path` relative to the checkout when inside it (no local paths in notebook outputs)."""
    try:
        return str(path.resolve().relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return str(path)
