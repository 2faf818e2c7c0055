"""Checkpoint folders: save them atomically, read them back as untrusted input (lesson 06; fine-tuned models and adapters, 11-14).

A checkpoint is a folder, the same for everything gptlab trains (a language model,
a classifier = GPT body + head, a model with LoRA adapters, or the adapters alone):
    model.safetensors     the weights of the whole trained module (safetensors: loading it runs no code)
    adapters.safetensors  instead of model.safetensors: LoRA adapters alone (gptlab.lora.save_lora)
    checkpoint.json       model and training config, head and adapter settings, step, history, sha256 of each file
    tokenizer.json        the tokenizer, if one was given
    train_state.pt        optimizer and random-generator states (and a classifier's best weights so far),
                          read with weights_only=True
Format 1 (gptlab before the classifier and adapters joined) is format 2 without head, lora and trainable.

Why a module of its own: the training loop (gptlab.training) writes checkpoints,
but the CLI, the course helpers and the notebooks only read them, and reading
must not pull in the loop.

Why so many checks: matching sha256s only prove that the files are the ones
checkpoint.json names, and anyone can rewrite checkpoint.json together with
its hashes. So every file is treated as hostile input: checkpoint.json is
validated against one schema (validate_meta), every file must be a regular
file inside the folder, the weights must fit the config before any model is
built from them, and the optimizer state must fit the parameters before
AdamW's fused kernel touches it.

Concurrency: a writer holds a lock file (`.NAME.lock` beside the folder, with
fcntl.flock) for as long as it trains into the folder, so two trainings never
race. A save writes a hidden sibling folder and swaps it in with renames;
readers never rename anything, and a reader that sees the folder change under
it reads again rather than calling a save in progress "corrupt".
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from gptlab.config import GPTConfig, TrainConfig
from gptlab.datasets import sha256_file
from gptlab.device import get_device
from gptlab.files import folder_id, folder_lock
from gptlab.model import GPT
from gptlab.tokenizers import tokenizer_to_dict

FORMAT = "gptlab-checkpoint"
FORMAT_VERSION = 2
_OUR_FILES = ("model.safetensors", "adapters.safetensors", "tokenizer.json", "train_state.pt", "checkpoint.json")
_MAX_JSON_BYTES = 64 << 20  # checkpoint.json holds configs and a loss history: kilobytes, never this
_SAVE_WAIT_S = 10.0  # how long a reader waits for a save in progress to finish
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


class CheckpointError(RuntimeError):
    """A checkpoint folder is damaged: a file is truncated, altered, or not what checkpoint.json records."""


# ---------------------------------------------------------------- files and folders


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _siblings(path: Path) -> tuple[Path, Path]:
    return path.parent / f".{path.name}.tmp", path.parent / f".{path.name}.old"


def _recover(path: Path) -> None:
    """Finish a save that was killed between its two renames (see save_checkpoint). Writers only, under the lock."""
    tmp, old = _siblings(path)
    if path.exists():
        return
    if (tmp / "checkpoint.json").exists():  # written last: the new checkpoint is complete
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    elif old.exists():
        os.replace(old, path)


def _readable_folder(path: Path) -> Path:
    """The folder a reader should read for `path`, without renaming anything.

    A save swaps folders with two renames; between them `path` is missing for an
    instant (wait for it), or for good if the saving process was killed there:
    then the complete new copy (or the old one) is read where it lies.
    """
    tmp, old = _siblings(path)
    deadline = time.monotonic() + 1.0
    while not path.exists() and (tmp.exists() or old.exists()) and time.monotonic() < deadline:
        time.sleep(0.02)
    if path.exists():
        return path
    if (tmp / "checkpoint.json").is_file():
        return tmp
    if old.is_dir():
        return old
    return path


def _inside(folder: Path, p: Path, what: str) -> Path:
    """`p`, after checking that it is a regular file that resolves inside `folder` (symlinks followed)."""
    try:
        real = p.resolve(strict=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {folder} is incomplete: {p.name} is missing") from None
    except (OSError, RuntimeError) as e:  # a symlink loop
        raise CheckpointError(f"{p} cannot be opened ({e})") from None
    if real.parent != folder.resolve():
        raise CheckpointError(f"{p} points outside the checkpoint folder (to {real}); {what} refuses files elsewhere")
    if not stat.S_ISREG(real.stat().st_mode):
        raise CheckpointError(f"{p} is not a regular file; a checkpoint holds plain files only")
    return p


@contextmanager
def writer_lock(path: str | Path) -> Iterator[None]:
    """Hold checkpoint folder `path`'s writer lock (gptlab.files.folder_lock): a second writer gets
    CheckpointBusyError at once. Under the lock, a save killed between its two renames is finished first."""
    with folder_lock(path):
        _recover(Path(path))
        yield


def check_save_target(path: str | Path) -> Path:
    """Raise ValueError now if a checkpoint could not be saved to `path`, instead of after training.

    Refuses an empty path, a file, a folder under a file, a folder that cannot be
    written, and a non-empty folder that is not a gptlab checkpoint (it would be replaced).
    """
    if str(path).strip() == "":
        raise ValueError("the checkpoint folder is an empty string; name a folder to save to")
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ValueError(f"cannot save a checkpoint to {str(path)!r}: name a folder of its own (e.g. {str(path / 'checkpoint')!r}), "
                         "a save replaces the whole folder")
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot save a checkpoint to {path}: it is a file, not a folder")
    if path.is_dir():
        names = sorted(p.name for p in path.iterdir())
        strangers = [n for n in names if n not in _OUR_FILES]
        if strangers:
            raise ValueError(
                f"refusing to replace {path}: it holds files that are not part of a gptlab checkpoint ({strangers[:5]}); "
                "choose another folder"
            )
        if names and "checkpoint.json" not in names:
            raise ValueError(f"refusing to replace {path}: it is not a gptlab checkpoint (no checkpoint.json); choose another folder")
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot save a checkpoint to {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot save a checkpoint to {path}: the folder {parent} is not writable; choose another folder")
    return path


# ---------------------------------------------------------------- checkpoint.json: one schema, checked in one place

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HISTORY_INTS = ("steps", "eval_steps")
_HISTORY_FLOATS = ("train_loss", "lr", "tokens_per_s")  # and one list "eval_<score>" per evaluated score
_HISTORY_SCALARS = {"best_step": "an integer >= 0", "stopped_early_at": "an integer >= 0", "best_score": "a finite number"}
_EVAL_NAME = re.compile(r"eval_[a-z0-9_]{1,40}")
_MAX_LORA_RANK = 1 << 16


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# key -> (required, check, what it must be)
_SCHEMA: dict[str, tuple[bool, Any, str]] = {
    "format": (True, lambda v: v == FORMAT, f'"{FORMAT}"'),
    "format_version": (True, lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "gptlab_version": (False, lambda v: v is None or isinstance(v, str), "a string"),
    "torch_version": (False, lambda v: v is None or isinstance(v, str), "a string"),
    "step": (True, lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "model_config": (True, lambda v: isinstance(v, dict), "an object (GPTConfig fields)"),
    "tied_weights": (False, lambda v: v is None or (isinstance(v, dict)
                                                    and all(isinstance(k, str) and isinstance(t, str) for k, t in v.items())),
                     "an object {alias: tensor name}"),
    "train_config": (False, lambda v: v is None or isinstance(v, dict), "null or an object (TrainConfig fields)"),
    "tokenizer": (False, lambda v: v is None or (isinstance(v, dict) and v.get("file") == "tokenizer.json"
                                                 and v.get("type") in ("char", "bpe", "gpt2") and _is_int(v.get("n_vocab"))
                                                 and v["n_vocab"] >= 1),
                  'null or {"file": "tokenizer.json", "type": "char"|"bpe"|"gpt2", "n_vocab": positive integer}'),
    "history": (False, lambda v: v is None or isinstance(v, dict), "null or an object of lists"),
    "head": (False, lambda v: v is None or (isinstance(v, dict) and set(v) == {"num_classes", "pool"} and _is_int(v["num_classes"])
                                            and 2 <= v["num_classes"] <= 1 << 20 and v["pool"] in ("last", "mean")),
             'null or {"num_classes": integer >= 2, "pool": "last" | "mean"}'),
    "lora": (False, lambda v: v is None or (isinstance(v, dict) and set(v) == {"r", "alpha", "targets"} and _is_int(v["r"])
                                            and 1 <= v["r"] <= _MAX_LORA_RANK and _is_num(v["alpha"]) and math.isfinite(v["alpha"])
                                            and v["alpha"] > 0 and isinstance(v["targets"], list) and 0 < len(v["targets"]) <= 10_000
                                            and all(isinstance(t, str) and 0 < len(t) <= 200 for t in v["targets"])),
             f'null or {{"r": integer in [1, {_MAX_LORA_RANK}], "alpha": finite number > 0, "targets": list of module names}}'),
    "trainable": (False, lambda v: v is None or (isinstance(v, list) and all(isinstance(t, str) for t in v)),
                  "null or a list of parameter names"),
    "files": (True, lambda v: isinstance(v, dict) and all(
        k in _OUR_FILES[:4] and isinstance(r, dict) and _is_int(r.get("bytes")) and r["bytes"] >= 0
        and isinstance(r.get("sha256"), str) and _HEX64.fullmatch(r["sha256"]) for k, r in v.items()),
        'an object {"model.safetensors" | "adapters.safetensors" | "tokenizer.json" | "train_state.pt": '
        '{"bytes": integer, "sha256": 64 hex digits}}'),
}


def validate_meta(meta: Any, source: str | Path = "checkpoint.json") -> dict[str, Any]:
    """`meta` (a parsed checkpoint.json) if it has the shape and types gptlab writes; CheckpointError otherwise.

    The one place checkpoint.json's schema is checked: every reader (load_checkpoint,
    `gptlab info`, resuming) goes through it, so a wrong type is a sentence naming
    the field, never a KeyError or TypeError deep inside.
    """
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{source} is damaged: {what}; use another copy of the checkpoint or train again")

    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not a gptlab checkpoint description (no \"format\": \"{FORMAT}\")")
    if _is_int(meta.get("format_version")) and meta["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{source} was written by a newer gptlab (format {meta['format_version']}); upgrade gptlab to read it")
    for key, (required, ok, want) in _SCHEMA.items():
        if key not in meta:
            if required:
                raise bad(f"it has no {key!r} entry")
            continue
        if not ok(meta[key]):
            raise bad(f"{key!r} must be {want}, got {_short(meta[key])}")
    if ("model.safetensors" in meta["files"]) == ("adapters.safetensors" in meta["files"]):
        raise bad("it must list exactly one of model.safetensors and adapters.safetensors")
    if "adapters.safetensors" in meta["files"] and (not meta.get("lora") or meta.get("head") or "train_state.pt" in meta["files"]):
        raise bad("an adapters.safetensors checkpoint holds LoRA adapters alone: a lora entry, no head, no train_state.pt")
    if meta.get("tokenizer") and "tokenizer.json" not in meta["files"]:
        raise bad("it names a tokenizer but lists no tokenizer.json")
    try:
        GPTConfig.from_dict(meta["model_config"])
    except (ValueError, TypeError) as e:
        raise bad(f"invalid model_config ({e})") from None
    if meta.get("train_config") is not None:
        try:
            TrainConfig.from_dict({k: v for k, v in meta["train_config"].items() if k != "ckpt_dir"})
        except (ValueError, TypeError) as e:
            raise bad(f"invalid train_config ({e})") from None
        if not (meta["train_config"].get("ckpt_dir") is None or isinstance(meta["train_config"].get("ckpt_dir"), str)):
            raise bad("train_config['ckpt_dir'] must be null or a string")
    history = meta.get("history") or {}
    for key, value in history.items():
        if key in _HISTORY_SCALARS:
            ok = _is_int(value) and value >= 0 if key in ("best_step", "stopped_early_at") else (
                _is_num(value) and math.isfinite(value))
            if not ok:
                raise bad(f"history[{key!r}] must be {_HISTORY_SCALARS[key]}")
            continue
        if key not in _HISTORY_INTS + _HISTORY_FLOATS and not (_EVAL_NAME.fullmatch(key)):
            raise bad(f"history has an unknown entry {key!r}")
        ok = _is_int if key in _HISTORY_INTS else _is_num
        if not isinstance(value, list) or not all(ok(v) for v in value):
            raise bad(f"history[{key!r}] must be a list of {'integers' if key in _HISTORY_INTS else 'numbers'}")
    logged = ("steps", "train_loss", "lr") + (("tokens_per_s",) if history.get("tokens_per_s") else ())
    for group in (logged, tuple(k for k in history if _EVAL_NAME.fullmatch(k))):  # eval_steps and one list per score
        if len({len(history.get(k, [])) for k in group}) > 1:
            raise bad(f"the history lists {group} have different lengths")
    return meta


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


# ---------------------------------------------------------------- saving


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
    head: dict[str, Any] | None = None,
    lora: dict[str, Any] | None = None,
    adapters: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint folder atomically: readers see the old one or the new one, never a mix.

    Everything is written into a hidden sibling folder first, then swapped in with
    two renames; a save killed between them is completed by the next save (readers
    read the complete copy where it lies). train_config / history: a TrainConfig
    and a History (anything with to_dict()). train_state: extra tensors/plain
    values for train_state.pt (random states); with `optimizer` it makes the
    checkpoint resumable. Weights that are not finite are refused: a diverged
    run must not replace a good checkpoint.

    model: a GPT, or a module with a GPT body and a head (gptlab.finetune.GPTClassifier):
    `model.config` is the body's GPTConfig, `head` ({"num_classes", "pool"}) describes the
    head, `lora` ({"r", "alpha", "targets"}, gptlab.lora.lora_config) the adapters inside.
    The names of the parameters that train are recorded, so a resume can refuse a model
    frozen differently. adapters: LoRA tensors to save alone (adapters.safetensors, no
    model.safetensors, nothing to resume): gptlab.lora.save_lora.
    """
    from safetensors.torch import save_file

    from gptlab import __version__

    path = check_save_target(path)
    if adapters is not None and (lora is None or head is not None or optimizer is not None or train_state is not None):
        raise ValueError("adapters= saves LoRA adapters alone: give lora=, and no head, optimizer or train_state")
    with writer_lock(path):
        weights, tied = _untie(model.state_dict() if adapters is None else adapters)
        bad = [name for name, t in weights.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if bad:
            raise ValueError(f"refusing to save {path}: the weights hold NaN or inf ({bad[:3]}); training diverged")
        tok_dict = tokenizer_to_dict(tokenizer) if tokenizer is not None else None
        _recover(path)
        tmp, old = _siblings(path)
        shutil.rmtree(tmp, ignore_errors=True)  # debris of a save that died while writing
        tmp.mkdir(parents=True)

        save_file(weights, tmp / ("model.safetensors" if adapters is None else "adapters.safetensors"), metadata={"format": "pt"})
        tok_ref = None
        if tokenizer is not None:
            from gptlab.tokenizers import save_tokenizer

            save_tokenizer(tokenizer, tmp / "tokenizer.json")
            tok_ref = {"file": "tokenizer.json", "type": tok_dict.get("type"), "n_vocab": int(tokenizer.n_vocab)}
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
            "head": head,
            "lora": lora,
            "trainable": [n for n, p in model.named_parameters() if p.requires_grad] if adapters is None else None,
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


# ---------------------------------------------------------------- reading


def _read_consistently(path: Path, read: Any) -> Any:
    """read(folder), done again if a save swapped the folder meanwhile: a save in progress is not damage."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} is a file, not a checkpoint folder; pass the folder that holds checkpoint.json")
    deadline = time.monotonic() + _SAVE_WAIT_S
    while True:
        folder = _readable_folder(path)
        before = folder_id(folder)
        try:
            result = read(folder)
        except (CheckpointError, FileNotFoundError):
            if before is None or folder_id(folder) == before:
                raise  # nothing moved while we read: the damage (or absence) is real
        else:
            if folder_id(folder) == before:
                return result
        if time.monotonic() > deadline:
            raise CheckpointError(f"{path} is being replaced by a save in progress (another process is writing it); try again in a moment")
        time.sleep(0.05)


def _read_meta(folder: Path, verify: bool, files: tuple[str, ...] | None) -> dict[str, Any]:
    if not folder.is_dir():
        raise FileNotFoundError(f"no checkpoint at {folder}: the folder does not exist")
    jpath = folder / "checkpoint.json"
    if not jpath.exists() and not jpath.is_symlink():
        raise FileNotFoundError(f"{folder} is not a gptlab checkpoint: checkpoint.json is missing")
    _inside(folder, jpath, "gptlab")
    if jpath.stat().st_size > _MAX_JSON_BYTES:
        raise CheckpointError(f"{jpath} is {jpath.stat().st_size:,} bytes, far more than a checkpoint description holds; refused")
    try:
        meta = json.loads(jpath.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{jpath} is corrupt or truncated (not valid JSON: {e}); the checkpoint cannot be read") from None
    validate_meta(meta, jpath)
    unlisted = [n for n in _OUR_FILES[:4] if n not in meta["files"] and ((folder / n).exists() or (folder / n).is_symlink())]
    if unlisted:
        raise CheckpointError(f"{jpath} is damaged or altered: the folder holds {unlisted} that it does not record; "
                              "use another copy of the checkpoint or train again")
    for name, rec in meta["files"].items():
        p = folder / name
        if not p.exists() and not p.is_symlink():
            if files is not None and name not in files:
                continue  # not needed here (generate does not need train_state.pt)
            raise FileNotFoundError(f"checkpoint {folder} is incomplete: {name} is missing")
        _inside(folder, p, "gptlab")
        if not verify or (files is not None and name not in files):
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


def read_checkpoint_meta(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """checkpoint.json of the folder `path`, validated, after checking every file against its recorded size and sha256.

    Never modifies the folder. A save in progress by another process is waited for, not reported as damage.
    """
    path = Path(path)
    return _read_consistently(path, lambda folder: _read_meta(folder, verify, None))


def model_config(meta: dict[str, Any]) -> GPTConfig:
    """The GPTConfig a validated checkpoint.json describes."""
    return GPTConfig.from_dict(meta["model_config"])


def load_weights(path: Path, meta: dict[str, Any],
                 expected: Callable[[dict[str, Any]], dict[str, tuple]] | None = None) -> dict[str, torch.Tensor]:
    """The state dict in `path`/model.safetensors (or adapters.safetensors), checked before anything is built.

    Names, shapes and dtypes are read from the file's header first, so weights that
    do not fit the config fail with a sentence (and a crafted config cannot make us
    allocate a huge model: the layer count and widths checkpoint.json claims are
    compared with the header before even a meta-device model is built); then every
    value must be finite. The tied aliases checkpoint.json records are filled in.
    expected(meta) -> {name: shape}: the state dict the caller will load into (a
    classifier, adapters); default: a plain GPT of the checkpoint's config.
    """
    from safetensors import safe_open

    path = Path(path)
    name = "adapters.safetensors" if "adapters.safetensors" in meta["files"] else "model.safetensors"
    file = _inside(path, path / name, "gptlab")
    config = model_config(meta)
    tied = meta.get("tied_weights") or {}
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(file), framework="pt") as f:
            header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
            claim = _claims_misfit(header, config, adapters_only=name == "adapters.safetensors")
            if claim:
                raise CheckpointError(f"{file} does not fit the model config in checkpoint.json: {claim}")
            if expected is None:
                with torch.device("meta"):
                    want = {k: tuple(v.shape) for k, v in GPT(config).state_dict().items()}
            else:
                want = expected(meta)
            misfit = _misfit(header, want, tied)
            if misfit:
                raise CheckpointError(f"{file} does not fit the model config in checkpoint.json: {misfit}")
            for k in header:
                state[k] = f.get_tensor(k)
    except CheckpointError:
        raise
    except Exception as e:  # SafetensorError, OSError, a header safetensors itself cannot parse
        raise CheckpointError(f"{file} cannot be read as safetensors: {e}") from None
    bad = [k for k, t in state.items() if not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(
            f"this checkpoint holds non-finite weights (NaN or inf in {bad[:3]}): the run that saved {file} had diverged; "
            "use an earlier copy or train again with a lower learning rate"
        )
    for alias, target in tied.items():
        state[alias] = state[target]
    return state


_BLOCK = re.compile(r"(?:^|\.)transformer\.h\.(\d+)\.")


def _claims_misfit(header: dict[str, tuple], config: GPTConfig, adapters_only: bool) -> str:
    """What checkpoint.json's config claims that the header plainly contradicts ('' if nothing).

    Cheap arithmetic on the header alone, before any model (even on the meta device)
    is built from the claimed config: a checkpoint.json claiming 200,000 layers over a
    file holding 2 is refused at once instead of after minutes of building.
    """
    blocks = {int(m.group(1)) for k in header for m in [_BLOCK.search(k)] if m}
    top = max(blocks, default=-1) + 1
    if top > config.n_layer or (not adapters_only and top != config.n_layer):
        return f"checkpoint.json claims n_layer={config.n_layer}, the file holds {top} blocks"
    for k, (shape, _) in header.items():
        if k.endswith("transformer.wte.weight") and shape != (config.vocab_size, config.n_embd):
            return f"checkpoint.json claims vocab_size={config.vocab_size} and n_embd={config.n_embd}, {k} is {shape}"
    return ""


def _misfit(header: dict[str, tuple], expected: dict[str, tuple], tied: dict[str, str]) -> str:
    """'' when the safetensors header holds exactly the model's tensors; else what is wrong."""
    for alias, target in tied.items():
        if alias not in expected or target not in expected or expected[alias] != expected[target]:
            return f"tied_weights {alias!r} -> {target!r} are not two same-shaped weights of this model"
        if target not in header or alias in header:
            return f"tied_weights says {alias!r} is stored as {target!r}, but the file does not hold it that way"
    missing = sorted(set(expected) - set(header) - set(tied))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        return f"missing {missing[:3]}, unexpected {unexpected[:3]}"
    for k, (shape, dtype) in header.items():
        if shape != expected[k]:
            return f"{k} has shape {shape}, the config needs {expected[k]}"
        if dtype not in _FLOAT_DTYPES:
            return f"{k} is {dtype}; weights must be floating point"
    return ""


def load_train_state(p: Path) -> dict[str, Any]:
    """train_state.pt read with weights_only=True: tensors and plain containers, never code."""
    p = Path(p)
    _inside(p.parent, p, "gptlab")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)  # plain tensors and containers only: no code runs
    except pickle.UnpicklingError as e:  # asks for a global that is not a tensor or a plain type
        what = re.search(r"GLOBAL (\S+)", str(e))
        raise CheckpointError(
            f"{p} holds Python code or objects that are not tensors{f' ({what.group(1)})' if what else ''}; "
            "gptlab refuses to load it (it reads train_state.pt with weights_only=True and never runs code from a file). "
            "Do not use this checkpoint unless you know where it came from"
        ) from None
    except Exception as e:  # a truncated or altered zip
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{p} cannot be read as a train state ({first}); use another copy or train again") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{p} is damaged: it holds a {type(state).__name__}, not the dict gptlab saves")
    return state


def check_train_state(state: dict[str, Any], optimizer: torch.optim.Optimizer, file: str | Path, step: int,
                      trainable: dict[str, torch.Tensor] | None = None) -> None:
    """Raise CheckpointError unless train_state.pt's contents fit `optimizer` exactly.

    AdamW's fused kernel trusts its state: a moment tensor of the wrong shape is a
    crash or a silent write past the end of a buffer. So every state tensor is
    checked against its parameter (shape, dtype, layout, finiteness) first. A
    classifier's best weights so far ("best") must be finite and fit `trainable`.
    """
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{file} is damaged: {what}; it cannot resume this run (use another copy or train again)")

    if state.get("step") != step or not _is_int(state.get("step")):
        raise bad(f"its step {_short(state.get('step'))} is not checkpoint.json's step {step}")
    ref = torch.Generator().get_state()

    def check_rng(rng: Any, whose: str) -> None:
        if not isinstance(rng, dict) or not all(
            isinstance(rng.get(k), torch.Tensor) and rng[k].dtype == torch.uint8 and rng[k].shape == ref.shape for k in ("batch", "torch")
        ):
            raise bad(f"{whose}random-generator states are not the tensors gptlab saves")
        for k in ("cuda", "mps"):
            if k in rng and not (isinstance(rng[k], torch.Tensor) and rng[k].dtype == torch.uint8 and rng[k].dim() == 1):
                raise bad(f"{whose}{k} random state is not a byte tensor")

    check_rng(state.get("rng"), "its ")
    if "best" in state:
        check_best(state["best"], trainable or {}, file)
    # A data-parallel run (gptlab.distributed) also keeps every process's states: one batch stream per rank.
    if "world_size" in state or "rng_ranks" in state:
        n, ranks = state.get("world_size"), state.get("rng_ranks")
        if not (_is_int(n) and 2 <= n <= 1 << 20):
            raise bad(f"its world_size {_short(n)} is not a number of processes >= 2")
        if not isinstance(ranks, list) or len(ranks) != n:
            raise bad(f"it should hold the random states of {n} processes, not {_short(ranks)[:40]}")
        for r, rng in enumerate(ranks):
            check_rng(rng, f"rank {r}'s ")
    saved = state.get("optimizer")
    want = optimizer.state_dict()
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        raise bad("it holds no optimizer state of the form AdamW saves")
    groups = saved["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(want["param_groups"]):
        raise bad(f"the optimizer has {len(want['param_groups'])} parameter groups, the file {_short(groups)[:40]}")
    for i, (g, w) in enumerate(zip(groups, want["param_groups"])):
        if not isinstance(g, dict) or set(g) != set(w) or g["params"] != w["params"]:
            raise bad(f"parameter group {i} does not list this model's parameters")
        for k, v in w.items():
            if k == "params":
                continue
            got = g[k]
            if isinstance(v, tuple):
                ok = isinstance(got, tuple) and len(got) == len(v) and all(_is_num(x) and math.isfinite(x) for x in got)
            elif _is_num(v):
                ok = _is_num(got) and math.isfinite(got)
            else:  # flags: True, False or None (foreach/fused differ between devices)
                ok = got is None or isinstance(got, bool)
            if not ok:
                raise bad(f"parameter group {i}'s {k!r} is {_short(g[k])}")
    params = {i: p for w in want["param_groups"] for i, p in zip(w["params"], _group_params(optimizer, w))}
    moments = saved["state"]
    if not isinstance(moments, dict):
        raise bad("the optimizer's per-parameter state is not a mapping")
    for i, s in moments.items():
        if i not in params:
            raise bad(f"optimizer state for parameter {_short(i)}, which this model does not have")
        p = params[i]
        if not isinstance(s, dict) or set(s) != {"step", "exp_avg", "exp_avg_sq"}:
            raise bad(f"the optimizer state of parameter {i} is not AdamW's (step, exp_avg, exp_avg_sq)")
        for k, t in s.items():
            shape, dtype = ((), torch.float32) if k == "step" else (tuple(p.shape), p.dtype)
            if not isinstance(t, torch.Tensor) or t.layout != torch.strided or not t.is_contiguous():
                raise bad(f"{k} of parameter {i} is not a plain tensor")
            if tuple(t.shape) != shape or t.dtype != dtype or t.device.type != "cpu":
                raise bad(f"{k} of parameter {i} is {tuple(t.shape)} {t.dtype}, the parameter needs {shape} {dtype}")
            if not bool(torch.isfinite(t).all()) or (k != "exp_avg" and bool((t < 0).any())):
                raise bad(f"{k} of parameter {i} holds values AdamW never produces (NaN, inf or negative)")


def check_best(best: Any, params: dict[str, torch.Tensor], file: str | Path) -> None:
    """Raise CheckpointError unless `best` (train_state.pt's best weights so far) fits `params` by name, shape and dtype, finite."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{file} is damaged: {what}; use another copy or train again")

    if not isinstance(best, dict) or set(best) != set(params):
        raise bad("its best weights are not those of this model's trainable parameters")
    for n, t in best.items():
        p = params[n]
        if not isinstance(t, torch.Tensor) or t.layout != torch.strided or tuple(t.shape) != tuple(p.shape) or t.dtype != p.dtype:
            raise bad(f"its best weight {n} is not a {tuple(p.shape)} {p.dtype} tensor")
        if not bool(torch.isfinite(t).all()):
            raise bad(f"its best weight {n} holds NaN or inf")


def _group_params(optimizer: torch.optim.Optimizer, want_group: dict) -> list:
    # optimizer.state_dict() numbers parameters 0, 1, ... across groups in order
    flat = [p for g in optimizer.param_groups for p in g["params"]]
    return [flat[i] for i in want_group["params"]]


def load_checkpoint_tokenizer(path: Path, meta: dict[str, Any]) -> Any:
    """The tokenizer checkpoint.json names (checked against its recorded n_vocab), or None when it holds none."""
    ref = meta.get("tokenizer")
    if not ref:
        return None
    from gptlab.tokenizers import load_tokenizer

    file = _inside(Path(path), Path(path) / "tokenizer.json", "gptlab")
    try:
        tok = load_tokenizer(file)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{file} is not a readable tokenizer: {e}") from None
    if tok.n_vocab != ref["n_vocab"] or tok.n_vocab > meta["model_config"]["vocab_size"]:
        raise CheckpointError(
            f"{file} holds {tok.n_vocab} tokens, but checkpoint.json records {ref['n_vocab']} and the model has "
            f"{meta['model_config']['vocab_size']} outputs; the tokenizer does not belong to this model"
        )
    return tok


def load_trained(
    path: str | Path, expected: Callable[[dict[str, Any]], dict[str, tuple]], *, train_state: bool = False,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any] | None]:
    """(checkpoint.json, weights, train_state.pt or None) of a folder, for a caller that builds its own module.

    expected(meta) -> {name: shape}: the state dict of the module the caller will
    build (a classifier, adapters), computed on the meta device; it runs after
    checkpoint.json is validated and its claims are compared with the safetensors
    header, and nothing is allocated before the header fits it. Never modifies the folder.
    """
    path = Path(path)

    def read(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any] | None]:
        meta = _read_meta(folder, True, None)
        weights = load_weights(folder, meta, expected)
        state = load_train_state(folder / "train_state.pt") if train_state and "train_state.pt" in meta["files"] else None
        return meta, weights, state

    return _read_consistently(path, read)


def load_checkpoint(
    path: str | Path, device: str | torch.device | None = None, *, verify: bool = True, verify_train_state: bool = False
) -> tuple[GPT, Any, dict[str, Any]]:
    """(model in eval mode on `device`, tokenizer or None, checkpoint.json as a dict).

    device None picks the best available (see gptlab.device.get_device). The files
    it uses are checked against the sha256 recorded at save time first, so a
    truncated or altered file fails here with its name, not later as nonsense;
    then the weights against the config and the tokenizer against the model.
    train_state.pt is only needed to resume training, so it may be missing
    (verify_train_state=True checks it too, as `gptlab info` does). Never modifies the folder.
    """
    path = Path(path)
    files = None if verify_train_state else ("model.safetensors", "tokenizer.json")

    def read(folder: Path) -> tuple[dict[str, torch.Tensor], Any, dict[str, Any]]:
        meta = _read_meta(folder, verify, files)
        for key, use in (("head", "gptlab.finetune.load_classifier"), ("lora", "gptlab.lora.load_lora (adapters) or load_classifier")):
            if meta.get(key):
                raise CheckpointError(f"{folder} is not a plain language model: it holds a {key} ({meta[key]}); load it with {use}")
        return load_weights(folder, meta), load_checkpoint_tokenizer(folder, meta), meta

    state, tokenizer, meta = _read_consistently(path, read)
    model = GPT(model_config(meta))
    model.load_state_dict(state)  # names and shapes were checked against this config in load_weights
    device = device if isinstance(device, torch.device) else get_device(device)
    return model.to(device).eval(), tokenizer, meta
