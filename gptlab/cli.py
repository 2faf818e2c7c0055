"""The gptlab command line: fetch data, train, sample and inspect checkpoints (lessons 00, 06, 07, 08).

    gptlab data fetch tinyshakespeare          (or: all; `gptlab data list` names them)
    gptlab train --preset shakespeare-char      -> checkpoints/shakespeare-char
    gptlab generate --checkpoint checkpoints/shakespeare-char --prompt "ROMEO:"
    gptlab info --checkpoint checkpoints/shakespeare-char      (or: gptlab info checkpoints/shakespeare-char)
    gptlab attention --checkpoint checkpoints/shakespeare-char --text "To be" --out view.html
    gptlab data prepare corpus/ shards/corpus   (GPT-2 token shards; then: gptlab train --shards shards/corpus)
    torchrun --nproc_per_node=2 -m gptlab train --preset tiny --device cpu   (data-parallel; docs/scaling-out.md)

Also `python -m gptlab ...`. Errors print one line that says what to change and
exit with status 1 (2 for malformed arguments).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

# Command-line flag -> TrainConfig / GPTConfig field, for `train`.
_TRAIN_FLAGS = (
    "max_steps", "batch_size", "lr", "min_lr", "warmup_steps", "lr_decay_steps", "weight_decay", "grad_clip",
    "grad_accum", "eval_interval", "eval_iters", "log_interval", "ckpt_interval", "seed", "device",
)
_MODEL_FLAGS = ("n_layer", "n_head", "n_embd", "block_size", "dropout")
_MAX_NEW_TOKENS = 1_000_000  # a bound, so a typo cannot ask for 10**23 tokens; run again to continue further
_SEED_RANGE = 2**63
_SMALL_MODEL = 5_000_000  # parameters: below this, generate and attention use one CPU thread (see _cap_threads)
_BARELY_TRAINED = 0.75  # a last val loss above this fraction of ln(vocab) (a uniform guess) means: barely trained
_SHARD_VAL_TOKENS = 10_000_000  # with --shards, the last 10% of the tokens, at most this many, are the val split


def _rel(path: str | Path) -> str:
    """`path` relative to the current folder when it lies below it (keeps local paths out of logs)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _flagify(msg: str) -> str:
    """'TrainConfig.lr must be ...' -> '--lr must be ...' for the fields `train` sets from flags."""
    def sub(m: re.Match) -> str:
        name = m.group(2)
        return f"--{name.replace('_', '-')}" if name in _TRAIN_FLAGS + _MODEL_FLAGS else m.group(0)

    return re.sub(r"(TrainConfig|GPTConfig)\.(\w+)", sub, msg)


# ---------------------------------------------------------------- data


def cmd_data(args: argparse.Namespace) -> int:
    from gptlab.datasets import DATASETS, fetch

    if args.action == "prepare":
        return _prepare(args)
    if args.action == "list":
        for info in DATASETS.values():
            print(f"{info.name:16s} {info.size:>10,d} bytes  {info.description}")
        return 0
    if not args.names:
        raise ValueError("name a dataset to fetch, or 'all'; `gptlab data list` shows them")
    names = list(DATASETS) if args.names == ["all"] else args.names
    for name in names:
        path = fetch(name)
        print(f"{name}: {_rel(path)} ({path.stat().st_size:,} bytes, sha256 ok)")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    """`gptlab data prepare SRC OUT`: tokenize a text file or a folder of them into shards for `gptlab train --shards`."""
    from gptlab.data import TokenShards, prepare_shards
    from gptlab.datasets import DATASETS, fetch

    if len(args.names) != 2:
        raise ValueError("usage: gptlab data prepare SRC OUT, with SRC a text file, a folder of .txt files or a dataset "
                         "name (e.g. tinyshakespeare), and OUT a new folder for the shards")
    src, out = args.names
    if not Path(src).exists() and src in DATASETS:
        src = fetch(src)
    prepare_shards(src, out, args.tokenizer, shard_tokens=args.shard_tokens, pattern=args.pattern, progress=True)
    s = TokenShards(out)  # read back exactly as training will, hashes and all
    print(f"{len(s):,} tokens ({s.index['tokenizer']['type']}, {s.n_vocab:,} ids, {s.dtype.name}) in "
          f"{len(s.index['shards'])} shard(s) -> {_rel(out)}")
    return 0


# ---------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    from gptlab.checkpoint import check_save_target, writer_lock
    from gptlab.config import PRESETS
    from gptlab.course import checkpoint_dir
    from gptlab.datasets import read_text
    from gptlab.distributed import is_main

    preset_given = args.preset is not None
    args.preset = args.preset or "shakespeare-char"
    recipes = sorted(name for name, p in PRESETS.items() if "train" in p)
    if args.preset not in recipes:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {recipes}")
    shards = None
    if args.shards is not None:
        from gptlab.data import TokenShards

        if args.text_file or args.tokenizer:
            raise ValueError("--shards already holds tokenized text: drop --text-file and --tokenizer")
        shards = TokenShards(args.shards)  # validated (schema, sizes, sha256) before anything else
    kind = shards.index["tokenizer"]["type"] if shards is not None else (args.tokenizer or "char")
    if args.out is not None and not args.out.strip():
        raise ValueError("--out is empty; name the checkpoint folder (leave --out out to use the preset's default folder)")
    out = Path(args.out) if args.out is not None else checkpoint_dir() / (args.preset if kind == "char" else f"{args.preset}-{kind}")
    if args.seed is not None and not 0 <= args.seed < _SEED_RANGE:
        raise ValueError(f"--seed must be in [0, 2**63), got {args.seed}")
    # Everything that can fail without training is checked first, before minutes of work.
    main = is_main()  # under torchrun every process runs this; only rank 0 writes --out and prints
    if main:
        check_save_target(out)
    if shards is not None:
        text = shards
    elif args.text_file:
        text = _read_utf8(Path(args.text_file))
    else:
        text = read_text(args.dataset)
    if not text:
        raise ValueError("the training text is empty")
    with writer_lock(out) if main else nullcontext():  # another training into --out fails here, not after training
        return _train(args, out, text, kind, preset_given)


def _read_utf8(path: Path) -> str:
    if path.is_dir():
        raise ValueError(f"--text-file {_rel(path)} is a folder; pass a UTF-8 text file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"--text-file {_rel(path)} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
            "convert it to UTF-8 first, e.g. iconv -f LATIN1 -t UTF-8"
        ) from None


def _train(args: argparse.Namespace, out: Path, text: Any, kind: str, preset_given: bool) -> int:
    """Train on `text` (a str) or on token shards (a gptlab.data.TokenShards, whose tokenizer comes with it)."""
    import torch

    from gptlab.checkpoint import load_checkpoint_tokenizer, read_checkpoint_meta
    from gptlab.config import GPTConfig, TrainConfig
    from gptlab.data import TokenShards, split_tokens
    from gptlab.distributed import is_main, world_size
    from gptlab.model import GPT
    from gptlab.tokenizers import CharTokenizer, train_bpe
    from gptlab.training import train

    train_over = {k: getattr(args, k) for k in _TRAIN_FLAGS if getattr(args, k) is not None}
    model_over = {k: getattr(args, k) for k in _MODEL_FLAGS if getattr(args, k) is not None}
    if args.bf16 is not None:
        train_over["bf16"] = {"auto": "auto", "on": True, "off": False}[args.bf16]
    if args.compile:
        train_over["compile"] = True
    train_over["progress"] = not args.no_progress

    if args.resume:
        meta = read_checkpoint_meta(out)
        tok = load_checkpoint_tokenizer(out, meta)
        saved_kind = (meta.get("tokenizer") or {}).get("type")
        if tok is None:
            raise ValueError(f"{_rel(out)} holds no tokenizer.json, so `gptlab train --resume` cannot encode the text")
        saved_preset = (meta.get("train_config") or {}).get("preset")
        if preset_given and saved_preset is not None and saved_preset != args.preset:
            raise ValueError(
                f"{_rel(out)} was trained with --preset {saved_preset}, not {args.preset}; a resumed run keeps its recipe: "
                "drop --preset (or pass the same one), or train a new model with --out elsewhere"
            )
        if preset_given and saved_preset is None:  # an older checkpoint: at least the model's shape must be the preset's
            want = GPTConfig.from_preset(args.preset, vocab_size=meta["model_config"]["vocab_size"]).to_dict()
            have = GPTConfig.from_dict(meta["model_config"]).to_dict()  # fields added since take their defaults
            differs = sorted(k for k in want if k not in ("dropout", *model_over) and want[k] != have[k])
            if differs:
                raise ValueError(f"{_rel(out)} is not a model of --preset {args.preset} (it differs in {differs}); "
                                 "drop --preset to continue it")
        args.preset = saved_preset or args.preset
        if "max_steps" in train_over and train_over["max_steps"] <= meta["step"]:
            raise ValueError(
                f"{_rel(out)} is already at step {meta['step']}; pass --max-steps greater than {meta['step']} to train further"
            )
        if args.tokenizer and args.tokenizer != saved_kind:
            raise ValueError(
                f"{_rel(out)} was trained with the {saved_kind} tokenizer, not {args.tokenizer}; "
                f"drop --tokenizer to continue it, or train a new model with --out elsewhere"
            )
        model_cfg = GPTConfig.from_dict(meta["model_config"])
        clash = {k: (v, getattr(model_cfg, k)) for k, v in model_over.items() if getattr(model_cfg, k) != v}
        if clash:
            raise ValueError(f"cannot change the model's shape when resuming (flag, checkpoint): {clash}")
        saved = {k: v for k, v in (meta.get("train_config") or {}).items() if k not in ("progress", "ckpt_dir")}
        try:
            cfg = TrainConfig.from_dict({**saved, **train_over, "ckpt_dir": str(out)})
        except ValueError as e:
            raise ValueError(_flagify(str(e))) from None
        if cfg.max_steps <= meta["step"]:
            raise ValueError(
                f"{_rel(out)} is already at step {meta['step']} of its max_steps {cfg.max_steps}; "
                f"pass --max-steps greater than {meta['step']} to train further"
            )
    else:
        if out.exists() and any(out.iterdir()) and not args.overwrite:
            raise ValueError(
                f"{_rel(out)} already holds a checkpoint; pass --resume to continue it, --overwrite to start again, "
                "or --out to train elsewhere"
            )
        try:  # settings first (cheap), then the tokenizer (a BPE takes a while)
            cfg = TrainConfig.from_preset(args.preset, ckpt_dir=str(out), **train_over)
            GPTConfig.from_preset(args.preset, **model_over)
        except ValueError as e:
            raise ValueError(_flagify(str(e))) from None
        if isinstance(text, TokenShards):
            tok = text.tokenizer()
        elif kind == "char":
            tok = CharTokenizer.from_text(text)
        else:
            print(f"training a BPE tokenizer with {args.vocab_size} tokens on {len(text):,} characters ...", flush=True)
            tok = train_bpe(text, args.vocab_size)
        try:
            model_cfg = GPTConfig.from_preset(args.preset, vocab_size=tok.n_vocab, **model_over)
        except ValueError as e:
            raise ValueError(_flagify(str(e))) from None

    if isinstance(text, TokenShards):
        # Compared with the checkpoint's tokenizer when resuming (train() refuses a different one).
        tok = text.tokenizer()
        train_data, val_data = text.split(val_fraction=0.1, max_val_tokens=_SHARD_VAL_TOKENS)
    else:
        train_data, val_data = split_tokens(tok.encode(text), val_fraction=0.1)
    shortest = min(len(train_data), len(val_data))
    if shortest < model_cfg.block_size + 2:  # checked before the model (whose size grows with block_size) exists
        raise ValueError(
            f"the text gives {len(train_data):,} train and {len(val_data):,} val tokens, too few for one window of "
            f"--block-size {model_cfg.block_size}; use a block size below {max(shortest - 1, 1)} or a longer text"
        )
    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg)
    main, n = is_main(), world_size()
    procs = f" on {n} processes ({cfg.batch_size * model_cfg.block_size * cfg.grad_accum * n:,} tokens per step)" if n > 1 else ""
    if main:
        print(
            f"training {args.preset}: {model.get_num_params():,} parameters, {kind if not args.resume else saved_kind} tokenizer "
            f"({tok.n_vocab} tokens), {len(train_data):,} train / {len(val_data):,} val tokens, "
            f"{cfg.max_steps} steps{procs} -> {_rel(out)}",
            flush=True,
        )
    try:
        history = train(model, train_data, val_data, cfg, tokenizer=tok, resume=args.resume)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted. The last checkpoint in {_rel(out)} is intact; continue with "
            f"`gptlab train --preset {args.preset} --out {_rel(out)} --resume`",
            file=sys.stderr,
        )
        return 130
    val = f", val loss {history.val_loss:.4f}" if history.val_loss is not None else ""
    tps = f", {history.tokens_per_s[-1]:,.0f} tokens/s" if history.tokens_per_s else ""
    if main:
        print(f"saved {_rel(out)} (step {cfg.max_steps}{val}{tps})")  # train() raises unless it reached max_steps
    return 0


# ---------------------------------------------------------------- generate


def _cap_threads(model: Any, device: Any) -> None:
    """One CPU thread for a small model, unless OMP_NUM_THREADS says otherwise.

    A course-sized model's matrices are too small to share out: thread hand-offs cost more than
    they save, and on a busy machine far more (500 tokens from a 28k-parameter model: 22 s with
    the default threads on a loaded 2-core machine, 0.34 s with one).
    """
    import torch

    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ and model.get_num_params() < _SMALL_MODEL:
        torch.set_num_threads(1)


def _barely_trained_note(meta: dict) -> str | None:
    """A one-line warning if the checkpoint's last val loss is still near a uniform guess's, else None."""
    h = meta.get("history") or {}
    losses, vocab = h.get("eval_val_loss") or [], (meta.get("model_config") or {}).get("vocab_size")
    if not losses or not isinstance(vocab, int) or vocab < 2:
        return None
    uniform = math.log(vocab)
    if not losses[-1] > _BARELY_TRAINED * uniform:
        return None
    return (f"note: this model is barely trained (step {meta.get('step')}, val loss {losses[-1]:.2f}; a uniform guess "
            f"scores {uniform:.2f}), so expect gibberish; train it longer (gptlab train --resume --max-steps N --out DIR)")


def _encode(tok: Any, text: str, what: str) -> list[int]:
    """tok.encode(text), with a message for a trained model: its vocabulary is fixed, so the text must change (C3)."""
    try:
        return tok.encode(text)
    except ValueError as e:
        if "CharTokenizer" not in str(e):
            raise
        bad = next(c for c in text if c not in tok.stoi)
        raise ValueError(f"{what} holds {bad!r} (position {text.index(bad)}), which this model never saw: its vocabulary of "
                         f"{tok.n_vocab} characters was fixed when it was trained; leave that character out") from None


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from gptlab.checkpoint import load_checkpoint
    from gptlab.generation import beam_search, stream

    if not 1 <= args.max_new_tokens <= _MAX_NEW_TOKENS:
        raise ValueError(f"--max-new-tokens must be between 1 and {_MAX_NEW_TOKENS:,}, got {args.max_new_tokens}")
    if not 1 <= args.beams <= 64:
        raise ValueError(f"--beams must be between 1 and 64, got {args.beams}")
    if args.seed is not None and not 0 <= args.seed < _SEED_RANGE:
        raise ValueError(f"--seed must be in [0, 2**63), got {args.seed}")
    if args.temperature is not None and not (math.isfinite(args.temperature) and args.temperature > 0):
        raise ValueError(f"--temperature must be a number > 0, got {args.temperature}; to always take the likeliest token, use --greedy")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.repetition_penalty is not None and not (math.isfinite(args.repetition_penalty) and args.repetition_penalty > 0):
        raise ValueError(f"--repetition-penalty must be a number > 0 (1 = no penalty), got {args.repetition_penalty}")
    sampling_flags = [f for f in ("temperature", "top_k", "top_p", "repetition_penalty") if getattr(args, f) is not None]
    if args.beams > 1 and (sampling_flags or args.greedy):
        names = ", ".join("--" + f.replace("_", "-") for f in sampling_flags) or "--greedy"
        raise ValueError(f"--beams searches for the most likely text and does not sample: drop {names}")
    model, tok, meta = load_checkpoint(args.checkpoint, device=args.device)
    if tok is None:
        raise ValueError(f"{_rel(args.checkpoint)} holds no tokenizer.json, so the prompt cannot be encoded")
    note = _barely_trained_note(meta)
    if note:
        print(note, file=sys.stderr, flush=True)  # stderr: stdout stays the generated text
    prompt = args.prompt.replace("\\n", "\n").replace("\\t", "\t") if args.escapes else args.prompt
    device = next(model.parameters()).device
    _cap_threads(model, device)
    ids = _encode(tok, prompt, "the prompt")
    if args.beams > 1:
        idx = torch.tensor([ids], dtype=torch.long, device=device)
        if idx.size(1) == 0:
            raise ValueError("the prompt encodes to no tokens; give at least one character")
        out = beam_search(model, idx, args.max_new_tokens, num_beams=args.beams)
        print(prompt + tok.decode(out[0, idx.size(1):].tolist()))
        return 0
    generator = None
    if args.seed is not None:
        torch.manual_seed(args.seed)
        generator = torch.Generator(device=device).manual_seed(args.seed)
    sampling = dict(
        do_sample=not args.greedy,
        temperature=0.8 if args.temperature is None else args.temperature,
        top_k=args.top_k if args.top_k is not None else (None if args.greedy else 200),
        top_p=args.top_p,
        repetition_penalty=1.0 if args.repetition_penalty is None else args.repetition_penalty,
        generator=generator,
    )
    pieces = stream(model, tok, prompt, args.max_new_tokens, **sampling)  # checks the prompt and flags up front
    print(prompt, end="", flush=True)
    for piece in pieces:
        print(piece, end="", flush=True)
    print()
    return 0


# ---------------------------------------------------------------- info


def cmd_info(args: argparse.Namespace) -> int:
    from gptlab.checkpoint import load_checkpoint
    from gptlab.config import TrainConfig

    if args.dir and args.checkpoint and Path(args.dir) != Path(args.checkpoint):
        raise ValueError(f"two checkpoint folders given ({args.dir} and --checkpoint {args.checkpoint}); give one")
    if not (args.dir or args.checkpoint):
        raise ValueError("name the checkpoint folder: gptlab info --checkpoint DIR")
    path = Path(args.checkpoint or args.dir)
    # What generate checks (hashes, config vs weights, finite weights, tokenizer vs model), and train_state.pt's hash too.
    model, _tok, meta = load_checkpoint(path, device="cpu", verify_train_state=True)
    c = meta["model_config"]
    n_params = model.get_num_params()
    print(f"checkpoint   {_rel(path)}")
    print(f"written by   gptlab {meta.get('gptlab_version')}, torch {meta.get('torch_version')}")
    print(f"step         {meta['step']}")
    c = model.config.to_dict()
    print(f"model        GPT: {c['n_layer']} layers, {c['n_head']} heads, {c['n_embd']} dims, block {c['block_size']}, "
          f"vocab {c['vocab_size']}, dropout {c['dropout']}, bias {c['bias']}; {n_params:,} parameters")
    tok = meta.get("tokenizer")
    print(f"tokenizer    {tok['type']} ({tok['n_vocab']} tokens)" if tok else "tokenizer    none")
    t = meta.get("train_config")
    if t:
        t = TrainConfig.from_dict(t).to_dict()  # validated when the checkpoint was read; this fills in defaults
        print(f"training     lr {t['lr']:g} -> {t['min_lr']:g} (warmup {t['warmup_steps']}), batch {t['batch_size']} x "
              f"{t['grad_accum']}, weight decay {t['weight_decay']:g}, betas {tuple(t['betas'])}, clip {t['grad_clip']:g}, "
              f"max_steps {t['max_steps']}, seed {t['seed']}")
    h = meta.get("history") or {}
    if h.get("eval_steps"):
        print(f"last eval    step {h['eval_steps'][-1]}: train loss {h['eval_train_loss'][-1]:.4f}, "
              f"val loss {h['eval_val_loss'][-1]:.4f}")
    resumable = "yes" if "train_state.pt" in meta["files"] else "no (no train_state.pt)"
    print(f"resumable    {resumable}")
    for name, rec in sorted(meta["files"].items()):
        print(f"  {name:20s} {rec['bytes']:>12,d} bytes  sha256 {rec['sha256'][:16]}... ok")
    return 0


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (`gptlab generate ... | head`): not an error, stop quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader closed the pipe


# ---------------------------------------------------------------- attention


def cmd_attention(args: argparse.Namespace) -> int:
    """`gptlab attention`: the offline HTML view (--out) and/or a figure (--png) of a checkpoint's attention.

    The figure shows one head if both --layer and --head are given, that layer's heads if only
    --layer, else every head as thumbnails. A text longer than the model's context is cut to a
    window of block_size tokens (the last ones, or from --start), and both outputs say so.
    """
    from gptlab.attention import get_attention
    from gptlab.checkpoint import load_checkpoint
    from gptlab.viz import figure_format, plot_head, plot_layer, plot_overview, save_attention_html, save_figure

    if not args.out and not args.png:
        raise ValueError("nothing to write; give --out VIEW.html and/or --png FIGURE.png")
    if not args.text:
        raise ValueError("--text is empty; give the text to look at")
    fmt = figure_format(args.png) if args.png else None  # a wrong suffix fails before the model loads
    if args.start is not None and args.start < 0:
        raise ValueError(f"--start must be >= 0 (a token position), got {args.start}")
    model, tokenizer, _meta = load_checkpoint(args.checkpoint)
    if tokenizer is None:
        raise ValueError(f"{_rel(args.checkpoint)} holds no tokenizer.json, so --text cannot be encoded")
    _cap_threads(model, next(model.parameters()).device)
    for name, value, limit in (("layer", args.layer, model.config.n_layer), ("head", args.head, model.config.n_head)):
        if value is not None and not 0 <= value < limit:
            raise ValueError(f"--{name} {value} out of range; this model has {limit} {name}s (0..{limit - 1})")
    ids = _encode(tokenizer, args.text, "--text")
    n, block = len(ids), model.config.block_size
    start = max(0, n - block) if args.start is None else args.start
    if start >= n:
        raise ValueError(f"--start {start} is past the end of the text ({n} tokens); give 0..{n - 1}")
    end = min(n, start + block)
    note = ""
    if (start, end) != (0, n):
        note = (f"The text has {n} tokens but the model reads at most {block} (block_size): shown are tokens "
                f"{start}-{end - 1}. Choose the window with --start (0..{max(n - block, 0)}).")
        print(f"note: {note}")
    maps = get_attention(model, ids[start:end], tokenizer)
    if args.out:
        path = save_attention_html(maps, args.out, title=f"attention: {Path(args.checkpoint).name}",
                                   layer=args.layer, head=args.head, scale=args.scale, note=note, offset=start)
        print(f"wrote {_rel(path)}")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")  # files only: no window, no display needed
        import matplotlib.pyplot as plt

        if args.layer is not None and args.head is not None:
            fig = plot_head(maps, args.layer, args.head)
        elif args.layer is not None:
            fig = plot_layer(maps, args.layer)
        else:
            fig = plot_overview(maps, heads=[args.head] if args.head is not None else None)
        if note:
            fig.text(0.01, 0.005, f"tokens {start}-{end - 1} of {n}", fontsize=8, color="#555")
        for p in save_figure(fig, args.png, formats=(fmt,)):
            print(f"wrote {_rel(p)}")
        plt.close(fig)
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from gptlab import __version__

    p = argparse.ArgumentParser(
        prog="gptlab",
        description="Train, sample and inspect the small GPTs of the gptlab course.",
        epilog="Run `gptlab COMMAND --help` for a command's options.",
    )
    p.add_argument("--version", action="version", version=f"gptlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("data", help="list or fetch the course datasets", description="List or fetch (download, or copy from "
                       "GPTLAB_DATA_MIRROR) the course datasets; every file is checked against its sha256.")
    d.add_argument("action", choices=["fetch", "list", "prepare"])
    d.add_argument("names", nargs="*", metavar="NAME", help="fetch: dataset names, or 'all'; prepare: SRC OUT (a text file, "
                   "a folder of .txt files or a dataset name, and a new folder for the token shards)")
    d.add_argument("--tokenizer", choices=["gpt2", "char"], default="gpt2", help="prepare: GPT-2's BPE (default) or characters")
    d.add_argument("--shard-tokens", type=int, default=100_000_000, help="prepare: tokens per shard file (default 100M)")
    d.add_argument("--pattern", default="*.txt,*.jsonl", help="prepare: comma-separated globs of the files to read in a SRC "
                   "folder (default *.txt,*.jsonl; a .jsonl file holds one {\"text\": ...} document per line)")
    d.set_defaults(func=cmd_data)

    t = sub.add_parser(
        "train", help="train a GPT from a preset", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  gptlab train                                   # nanoGPT's shakespeare-char recipe, a few minutes on a CPU\n"
        "  gptlab train --tokenizer bpe --vocab-size 512  # the same model on BPE tokens\n"
        "  gptlab train --preset tiny --text-file my.txt --out checkpoints/mine\n"
        "  gptlab train --resume                          # continue a stopped run exactly where it stopped\n"
        "  torchrun --nproc_per_node=2 -m gptlab train --preset tiny --device cpu   # 2 data-parallel processes",
        description="Train a GPT on a text with a preset recipe and save checkpoints (weights, tokenizer,\n"
        "optimizer and random states) along the way; --resume continues a stopped run exactly\nwhere it stopped.",
    )
    t.add_argument("--preset", default=None, help="recipe: shakespeare-char (default; nanoGPT's CPU recipe), speedrun "
                   "(lesson 14's faster recipe), tiny (seconds) or gpt2-124m (GPT-2 small on GPUs, with --shards; "
                   "see docs/scaling-out.md)")
    t.add_argument("--tokenizer", choices=["char", "bpe"], default=None, help="char (one token per character) or a BPE "
                   "trained on the text; default char, or the checkpoint's with --resume")
    t.add_argument("--vocab-size", type=int, default=1024, help="BPE vocabulary size with --tokenizer bpe (default 1024)")
    t.add_argument("--dataset", default="tinyshakespeare", help="a registered dataset, see `gptlab data list` (default tinyshakespeare)")
    t.add_argument("--text-file", default=None, help="train on this UTF-8 text file instead of --dataset")
    t.add_argument("--shards", default=None, metavar="DIR", help="train on token shards from `gptlab data prepare` (memory-"
                   "mapped: corpora larger than RAM); the last 10%% of tokens, at most 10M, are the val split")
    t.add_argument("--out", default=None, help="checkpoint folder (default: checkpoints/PRESET, or $GPTLAB_CHECKPOINT_DIR/PRESET)")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    t.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint in --out")
    g = t.add_argument_group("training (defaults come from the preset)")
    g.add_argument("--max-steps", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--min-lr", type=float, help="learning rate at the end of the cosine")
    g.add_argument("--warmup-steps", type=int)
    g.add_argument("--lr-decay-steps", type=int)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--grad-clip", type=float, help="largest gradient norm; 0 turns clipping off")
    g.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step")
    g.add_argument("--eval-interval", type=int)
    g.add_argument("--eval-iters", type=int)
    g.add_argument("--log-interval", type=int)
    g.add_argument("--ckpt-interval", type=int, help="save every N steps (default: at every evaluation)")
    g.add_argument("--seed", type=int)
    g.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    g.add_argument("--bf16", choices=["auto", "on", "off"], help="bfloat16 autocast; auto: where the hardware has it")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (slow start; opt-in)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    m = t.add_argument_group("model shape (defaults come from the preset)")
    m.add_argument("--n-layer", type=int)
    m.add_argument("--n-head", type=int)
    m.add_argument("--n-embd", type=int)
    m.add_argument("--block-size", type=int)
    m.add_argument("--dropout", type=float)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser(
        "generate", help="sample text from a checkpoint",
        description="Continue a prompt with a trained model, printing the text as it is generated.",
    )
    s.add_argument("--checkpoint", required=True, help="checkpoint folder (from `gptlab train`)")
    s.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    s.add_argument("--escapes", action="store_true", help="turn \\n and \\t in --prompt into a newline and a tab")
    s.add_argument("--max-new-tokens", type=int, default=500, help="how many tokens to add (default 500)")
    s.add_argument("--temperature", type=float, default=None, help="<1 sharper, >1 more random (default 0.8)")
    s.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens (default 200)")
    s.add_argument("--top-p", type=float, default=None, help="sample among the likeliest tokens holding this much probability")
    s.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    s.add_argument("--repetition-penalty", type=float, default=None, help=">1 discourages repeating tokens (default 1.0)")
    s.add_argument("--seed", type=int, default=None, help="make sampling repeatable")
    s.add_argument("--beams", type=int, default=1, help="beam search with this many beams instead of sampling; prints at the end")
    s.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    s.set_defaults(func=cmd_generate)

    i = sub.add_parser("info", help="describe a checkpoint and verify its files",
                       description="Print a checkpoint's model, tokenizer, training settings and last losses, after "
                       "checking every file against the sha256 recorded when it was saved.")
    i.add_argument("--checkpoint", help="checkpoint folder (from `gptlab train`), as for generate and attention")
    i.add_argument("dir", nargs="?", metavar="DIR", help="the same, without --checkpoint")
    i.set_defaults(func=cmd_info)

    a = sub.add_parser("attention", help="draw a checkpoint's attention maps for a text",
                       description="Write an offline HTML view (and optionally a figure) of every layer's and head's "
                       "attention. A text longer than the model's context (block_size tokens) is cut to a window: "
                       "the last block_size tokens, or those from --start; both outputs say which.")
    a.add_argument("--checkpoint", required=True, help="checkpoint folder (from `gptlab train`)")
    a.add_argument("--text", required=True, help="the text to look at")
    a.add_argument("--out", default=None, help="HTML file to write, e.g. view.html")
    a.add_argument("--png", default=None, metavar="FIGURE", help="also write a figure; the suffix picks the format "
                   "(.png, .svg, .pdf, .jpg, .jpeg, .webp; none: .png)")
    a.add_argument("--layer", type=int, default=None, help="the layer to draw (and open the HTML view on)")
    a.add_argument("--head", type=int, default=None, help="the head to draw (and open the HTML view on)")
    a.add_argument("--start", type=int, default=None, help="first token of the window for a text longer than "
                   "block_size (default: the last block_size tokens)")
    a.add_argument("--scale", choices=["absolute", "relative"], default="absolute", help="the HTML view's colour "
                   "scale: absolute (weight 0..1, default) or relative (to the row's largest weight); switchable on the page")
    a.set_defaults(func=cmd_attention)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, OSError, RuntimeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"gptlab {args.command}: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
