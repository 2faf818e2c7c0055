"""Checkpoint folders: save them atomically, read them back as untrusted input.

A checkpoint is a folder:
    model.safetensors   the weights (safetensors: loading it runs no code)
    checkpoint.json     model and training config, step, history, sha256 of each file
    tokenizer.json      the tokenizer, if one was given
    train_state.pt      optimizer and random-generator states, read with weights_only=True

Why a module of its own: the training loop (gptlab.training) writes checkpoints,
but the CLI, the course helpers and the notebooks only read them, and reading
must not pull in the loop. Saving swaps a finished folder in with renames, so a
reader sees the old checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from gptlab.config import GPTConfig
from gptlab.data import sha256_file
from gptlab.device import get_device
from gptlab.model import GPT

FORMAT = "gptlab-checkpoint"
FORMAT_VERSION = 1
_OUR_FILES = ("model.safetensors", "tokenizer.json", "train_state.pt", "checkpoint.json")


class CheckpointError(RuntimeError):
    """A checkpoint folder is damaged: a file is truncated, altered, or not what checkpoint.json records."""



def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _siblings(path: Path) -> tuple[Path, Path]:
    return path.parent / f".{path.name}.tmp", path.parent / f".{path.name}.old"


def _recover(path: Path) -> None:
    """Finish a save that was killed between its two renames (see save_checkpoint)."""
    tmp, old = _siblings(path)
    if path.exists():
        return
    if (tmp / "checkpoint.json").exists():  # written last: the new checkpoint is complete
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    elif old.exists():
        os.replace(old, path)


def _untie(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Keep one copy of tensors that share memory (GPT's wte and lm_head): safetensors refuses shared tensors."""
    kept: dict[str, torch.Tensor] = {}
    tied: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in state.items():
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if key in seen:
            tied[name] = seen[key]
        else:
            seen[key] = name
            kept[name] = t.detach().to("cpu").contiguous()
    return kept, tied


def tokenizer_to_dict(tok: Any) -> dict:
    """The tokenizer as its tokenizer.json holds it: two tokenizers are the same when these are equal."""
    from gptlab.tokenizers import save_tokenizer

    with tempfile.TemporaryDirectory() as d:
        save_tokenizer(tok, Path(d) / "tok.json")
        return json.loads((Path(d) / "tok.json").read_text(encoding="utf-8"))


def save_checkpoint(
    path: str | Path,
    model: GPT,
    *,
    tokenizer: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
    train_config: Any = None,
    step: int = 0,
    history: Any = None,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically: readers see the old one or the new one, never a mix.

    Everything is written into a hidden sibling folder first, then swapped in with
    two renames; a save killed between them is completed by the next load.
    train_state: extra tensors/plain values for train_state.pt (random states);
    with `optimizer` it makes the checkpoint resumable.
    """
    from safetensors.torch import save_file

    from gptlab import __version__

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot save a checkpoint to {path}: it is a file, not a folder")
    if path.is_dir():
        strangers = sorted(p.name for p in path.iterdir() if p.name not in _OUR_FILES)
        if strangers:
            raise ValueError(f"refusing to replace {path}: it holds files that are not part of a gptlab checkpoint ({strangers[:5]}); choose another folder")
    _recover(path)
    tmp, old = _siblings(path)
    shutil.rmtree(tmp, ignore_errors=True)  # debris of a save that died while writing
    tmp.mkdir(parents=True)

    weights, tied = _untie(model.state_dict())
    save_file(weights, tmp / "model.safetensors", metadata={"format": "pt"})
    tok_ref = None
    if tokenizer is not None:
        from gptlab.tokenizers import save_tokenizer

        save_tokenizer(tokenizer, tmp / "tokenizer.json")
        tok_type = json.loads((tmp / "tokenizer.json").read_text(encoding="utf-8")).get("type")
        tok_ref = {"file": "tokenizer.json", "type": tok_type, "n_vocab": int(tokenizer.n_vocab)}
    if optimizer is not None or train_state is not None:
        state = dict(train_state or {})
        state["step"] = int(step)
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        torch.save(state, tmp / "train_state.pt")
    files = {}
    umask = os.umask(0)
    os.umask(umask)
    for p in sorted(tmp.iterdir()):
        p.chmod(0o666 & ~umask)  # safetensors creates its file private (0600); make it like the others
        _fsync(p)
        files[p.name] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gptlab_version": __version__,
        "torch_version": torch.__version__,
        "step": int(step),
        "model_config": model.config.to_dict(),
        "tied_weights": tied,
        "train_config": train_config.to_dict() if train_config is not None else None,
        "tokenizer": tok_ref,
        "history": history.to_dict() if history is not None else None,
        "files": files,
    }
    (tmp / "checkpoint.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    _fsync(tmp / "checkpoint.json")

    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)  # <- the moment the new checkpoint becomes the checkpoint
    shutil.rmtree(old, ignore_errors=True)
    return path


def read_checkpoint_meta(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """checkpoint.json of the folder `path`, after checking every file against its recorded size and sha256."""
    path = Path(path)
    _recover(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint at {path}: the folder does not exist")
    jpath = path / "checkpoint.json"
    if not jpath.exists():
        raise FileNotFoundError(f"{path} is not a gptlab checkpoint: checkpoint.json is missing")
    try:
        meta = json.loads(jpath.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{jpath} is corrupt or truncated (not valid JSON: {e}); the checkpoint cannot be read") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{jpath} is not a gptlab checkpoint description (no \"format\": \"{FORMAT}\")")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer gptlab (format {meta['format_version']}); upgrade gptlab to read it")
    for key in ("files", "model_config", "step"):
        if key not in meta:
            raise CheckpointError(f"{jpath} is damaged: it has no {key!r} entry")
    if "model.safetensors" not in meta["files"]:
        raise CheckpointError(f"{jpath} is damaged: it lists no model.safetensors")
    for name, rec in meta["files"].items():
        p = path / name
        if not p.exists():
            raise FileNotFoundError(f"checkpoint {path} is incomplete: {name} is missing")
        if not verify:
            continue
        size = p.stat().st_size
        if size != rec["bytes"]:
            raise CheckpointError(
                f"checkpoint file {p} is truncated or damaged: {size} bytes, checkpoint.json records {rec['bytes']}; "
                "use another copy or train again"
            )
        if sha256_file(p) != rec["sha256"]:
            raise CheckpointError(
                f"checkpoint file {p} is corrupt: its sha256 differs from the one checkpoint.json records; use another copy or train again"
            )
    return meta


def load_weights(path: Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict in `path`/model.safetensors, with the tied aliases checkpoint.json records filled in."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(path / "model.safetensors", device="cpu")
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path / 'model.safetensors'} cannot be read as safetensors: {e}") from None
    for alias, target in (meta.get("tied_weights") or {}).items():
        state[alias] = state[target]
    return state


def load_train_state(p: Path) -> dict[str, Any]:
    """train_state.pt read with weights_only=True: tensors and plain containers, never code."""
    try:
        return torch.load(p, map_location="cpu", weights_only=True)  # plain tensors and containers only: no code runs
    except Exception as e:  # truncated zip, or a pickle that asks for anything but tensors and plain types
        raise CheckpointError(f"{p} cannot be read safely (weights_only=True): {e}") from None


def load_checkpoint_tokenizer(path: Path, meta: dict[str, Any]) -> Any:
    """The tokenizer checkpoint.json names, or None when the checkpoint holds none."""
    ref = meta.get("tokenizer")
    if not ref:
        return None
    from gptlab.tokenizers import load_tokenizer

    try:
        return load_tokenizer(path / ref["file"])
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path / ref['file']} is not a readable tokenizer: {e}") from None


def load_checkpoint(path: str | Path, device: str | torch.device | None = None, *, verify: bool = True) -> tuple[GPT, Any, dict[str, Any]]:
    """(model in eval mode on `device`, tokenizer or None, checkpoint.json as a dict).

    device None picks the best available (see gptlab.device.get_device). Every
    file is checked against the sha256 recorded at save time first, so a
    truncated or altered file fails here with its name, not later as nonsense.
    """
    path = Path(path)
    meta = read_checkpoint_meta(path, verify=verify)
    try:
        config = GPTConfig.from_dict(meta["model_config"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path / 'checkpoint.json'} holds an invalid model config: {e}") from None
    model = GPT(config)
    try:
        model.load_state_dict(load_weights(path, meta))
    except RuntimeError as e:
        raise CheckpointError(f"{path / 'model.safetensors'} does not fit the model config in checkpoint.json: {e}") from None
    tokenizer = load_checkpoint_tokenizer(path, meta)
    device = device if isinstance(device, torch.device) else get_device(device)
    return model.to(device).eval(), tokenizer, meta
