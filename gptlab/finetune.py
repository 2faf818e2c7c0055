"""Fine-tune a GPT: a classification head on its body, freezing, and training loops.

Radford et al. (2018) fine-tuned GPT-1 by putting one linear layer on the hidden
state of a sequence's last token: with causal attention that is the only position
that has seen the whole text. Batches of texts of different lengths are padded
on the right, so each row's last *real* token sits at its own position
(lengths - 1); padding comes after it and a causal model never looks ahead, so
padding cannot change a prediction.

The loop reuses the pretraining trainer's pieces (gptlab.training: AdamW groups,
warmup + cosine, bf16 autocast, TrainConfig) and adds what classification needs:
epochs over labelled examples, dev accuracy for early stopping, and a checkpoint
that resumes exactly. Checkpoint folder:

    model.safetensors     every parameter of the classifier (a tied tensor once)
    state.safetensors     AdamW's moments, the random state, the best weights so far
    classifier.json       configs, step, history, early-stopping state, sha256 of each file

Nothing in it is a pickle: loading runs no code.

`train_translation` is the sequence-to-sequence loop of lesson 12: the same recipe on
padded sentence pairs (`translation_batches`, `translation_loss`, `mean_loss`), for a
decoder-only GPT or an encoder-decoder. Every batch is padded by the one `pad_batch`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from gptlab.config import GPTConfig
from gptlab.data import pad_batch
from gptlab.datasets import sha256_file
from gptlab.device import autocast, get_device, resolve_bf16
from gptlab.lora import apply_lora, count_parameters, lora_config
from gptlab.model import GPT, IGNORE_INDEX
from gptlab.seq2seq import source_mask
from gptlab.training import TrainConfig, make_optimizer, set_lr

Example = tuple[Sequence[int], int]  # (token ids, label)

# ---------------------------------------------------------------- batches


# ---------------------------------------------------------------- the classifier


def hidden_states(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """(B, T, n_embd): the final LayerNorm's output, i.e. GPT.forward without the lm_head matmul."""
    T = idx.size(1)
    if T > model.config.block_size:
        raise ValueError(f"cannot run {T} positions: block_size is {model.config.block_size}; crop with pad_batch(max_len=...)")
    pos = torch.arange(T, device=idx.device)
    x = model.transformer.drop(model.transformer.wte(idx) + model.transformer.wpe(pos))
    for i, block in enumerate(model.transformer.h):
        x = block(x, None, i)
    return model.transformer.ln_f(x)


class GPTClassifier(nn.Module):
    """A linear head on a GPT body: idx (B, T) right-padded, lengths (B,) -> logits (B, num_classes).

    pool="last": the hidden state of each row's last real token (GPT-1's choice).
    pool="mean": the mean over each row's real tokens. Position t has only seen
    tokens 0..t, so early positions know little of the sentence; the mean mixes
    partial and complete views, which can help a small model trained on few labels.
    """

    def __init__(self, model: GPT, num_classes: int = 2, pool: str = "last") -> None:
        super().__init__()
        if not isinstance(model, GPT):
            raise TypeError(f"GPTClassifier wraps a gptlab GPT, got {type(model).__name__}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if pool not in ("last", "mean"):
            raise ValueError(f"pool must be 'last' or 'mean', got {pool!r}")
        self.gpt, self.num_classes, self.pool = model, num_classes, pool
        self.head = nn.Linear(model.config.n_embd, num_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.head.to(model.lm_head.weight.device)

    @property
    def config(self) -> GPTConfig:
        return self.gpt.config

    def pooled(self, idx: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_embd): the vector the head reads."""
        B, T = idx.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        lengths = torch.as_tensor(lengths, device=idx.device)
        if lengths.shape != (B,):
            raise ValueError(f"lengths must have shape ({B},), one per row, got {tuple(lengths.shape)}")
        if idx.device.type == "cpu" and (int(lengths.min()) < 1 or int(lengths.max()) > T):
            raise ValueError(f"lengths must lie in [1, {T}] (the padded width), got [{int(lengths.min())}, {int(lengths.max())}]")
        h = hidden_states(self.gpt, idx)
        if self.pool == "last":
            return h[torch.arange(B, device=idx.device), lengths - 1]
        mask = (torch.arange(T, device=idx.device)[None, :] < lengths[:, None]).to(h.dtype)
        return (h * mask[..., None]).sum(1) / lengths[:, None].to(h.dtype)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.pooled(idx, lengths))


def freeze(model: GPTClassifier | GPT, trainable: str = "all") -> tuple[int, int]:
    """Choose what trains; return (trainable, total) parameter counts.

    trainable: "all"; "head" (the classifier head alone: the body is a fixed feature
    extractor); "last" = "last_n:1" (the last Transformer block, the final LayerNorm
    and the head, as LLMs-from-scratch ch. 6 does); "last_n:K" (the last K blocks too).
    On a bare GPT the output layer is its (tied) token embedding, so "head" is refused.
    """
    clf = model if isinstance(model, GPTClassifier) else None
    gpt = clf.gpt if clf is not None else model
    if not isinstance(gpt, GPT):
        raise TypeError(f"freeze expects a GPTClassifier or a GPT, got {type(model).__name__}")
    n_layer = len(gpt.transformer.h)
    if trainable == "all":
        keep: list[nn.Module] = [model]
    elif trainable == "head":
        if clf is None:
            raise ValueError("a bare GPT has no separate head (lm_head is tied to the token embedding); use 'last', 'last_n:K' or 'all'")
        keep = [clf.head]
    elif trainable == "last" or (isinstance(trainable, str) and trainable.startswith("last_n:")):
        k_str = "1" if trainable == "last" else trainable.split(":", 1)[1]
        if not k_str.isdigit() or not 1 <= int(k_str) <= n_layer:
            raise ValueError(f"trainable={trainable!r}: K in 'last_n:K' must be an integer in [1, {n_layer}] (the model has {n_layer} blocks)")
        keep = [*gpt.transformer.h[n_layer - int(k_str):], gpt.transformer.ln_f] + ([clf.head] if clf is not None else [])
    else:
        raise ValueError(f"trainable must be 'all', 'head', 'last' or 'last_n:K', got {trainable!r}")
    for p in model.parameters():
        p.requires_grad_(False)
    for m in keep:
        for p in m.parameters():
            p.requires_grad_(True)
    return count_parameters(model)


# ---------------------------------------------------------------- evaluation


def classification_scores(y_true: Sequence[int] | torch.Tensor, y_pred: Sequence[int] | torch.Tensor, num_classes: int = 2) -> dict[str, Any]:
    """{"accuracy", "macro_f1", "confusion"}: confusion[i][j] counts true class i predicted as j.

    Macro-F1 averages each class's F1, so a model that always says the majority
    class scores about 1 / num_classes of a perfect F1 even when its accuracy looks fine.
    """
    t, p = torch.as_tensor(y_true, dtype=torch.long).flatten(), torch.as_tensor(y_pred, dtype=torch.long).flatten()
    if t.shape != p.shape or t.numel() == 0:
        raise ValueError(f"y_true and y_pred must be equally long and non-empty, got {t.numel()} and {p.numel()}")
    for name, v in (("y_true", t), ("y_pred", p)):
        if int(v.min()) < 0 or int(v.max()) >= num_classes:
            raise ValueError(f"{name} holds labels outside [0, {num_classes}): [{int(v.min())}, {int(v.max())}]")
    conf = torch.bincount(t * num_classes + p, minlength=num_classes**2).view(num_classes, num_classes)
    tp = conf.diag().double()
    precision = tp / conf.sum(0).clamp(min=1)
    recall = tp / conf.sum(1).clamp(min=1)
    f1 = torch.where(tp > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), torch.zeros_like(tp))
    return {"accuracy": float(tp.sum() / t.numel()), "macro_f1": float(f1.mean()), "confusion": conf.tolist()}


def _check_examples(examples: Sequence[Example], name: str, num_classes: int) -> None:
    if len(examples) == 0:
        raise ValueError(f"{name} is empty")
    for i, ex in enumerate(examples):
        if not (isinstance(ex, (tuple, list)) and len(ex) == 2):
            raise TypeError(f"{name}[{i}] must be a (token ids, label) pair, got {type(ex).__name__}")
        ids, label = ex
        if isinstance(ids, str):
            raise TypeError(f"{name}[{i}] holds a string; encode the text into token ids first")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_classes:
            raise ValueError(f"{name}[{i}] has label {label!r}; labels must be integers in [0, {num_classes})")
        if len(ids) == 0:
            raise ValueError(f"{name}[{i}] has no tokens")


@torch.no_grad()
def predict_logits(clf: GPTClassifier, seqs: Sequence[Sequence[int]], batch_size: int = 64, pad_id: int = 0, bf16: bool = False) -> torch.Tensor:
    """(N, num_classes) float32 logits, in the order of `seqs`. Batches group similar lengths (less padding)."""
    was_training = clf.training
    clf.eval()
    device = clf.head.weight.device
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = torch.empty(len(seqs), clf.num_classes)
    for s in range(0, len(order), batch_size):
        rows = order[s : s + batch_size]
        idx, lengths = pad_batch([seqs[i] for i in rows], pad_id, clf.config.block_size)
        with autocast(device, bf16):
            logits = clf(idx.to(device), lengths.to(device))
        out[rows] = logits.float().cpu()
    clf.train(was_training)
    return out


def evaluate(clf: GPTClassifier, examples: Sequence[Example], batch_size: int = 64, pad_id: int = 0, bf16: bool = False) -> dict[str, Any]:
    """{"accuracy", "macro_f1", "confusion", "loss", "predictions"} of `clf` on (token ids, label) examples."""
    _check_examples(examples, "examples", clf.num_classes)
    logits = predict_logits(clf, [ids for ids, _ in examples], batch_size, pad_id, bf16)
    labels = torch.tensor([y for _, y in examples])
    pred = logits.argmax(-1)
    scores = classification_scores(labels, pred, clf.num_classes)
    scores["loss"] = float(F.cross_entropy(logits, labels))
    scores["predictions"] = pred.tolist()
    return scores


# ---------------------------------------------------------------- training


@dataclass
class ClassifierHistory:
    """What train_classifier recorded: batch losses every log_interval steps, dev scores at each evaluation."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    dev_accuracy: list[float] = field(default_factory=list)
    dev_macro_f1: list[float] = field(default_factory=list)
    dev_loss: list[float] = field(default_factory=list)
    best_step: int | None = None
    best_accuracy: float | None = None
    stopped_early_at: int | None = None  # the step where patience ran out, else None
    train_seconds: float = 0.0  # time in training steps (not evaluation or saving)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClassifierHistory":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def plot(self, title: str = "Fine-tuning"):
        """Training loss and dev accuracy against the step (end the cell with plt.show())."""
        import matplotlib.pyplot as plt

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
        a1.plot(self.steps, self.train_loss, color="tab:blue", alpha=0.6, label="train (one batch)")
        if self.eval_steps:
            a1.plot(self.eval_steps, self.dev_loss, "o-", color="tab:orange", label="dev")
            a2.plot(self.eval_steps, self.dev_accuracy, "o-", color="tab:orange")
        if self.best_step is not None:
            a2.axvline(self.best_step, color="gray", ls="--", label=f"best: step {self.best_step}")
            a2.legend()
        a1.set(title=f"{title}: loss", xlabel="step", ylabel="cross-entropy")
        a2.set(title=f"{title}: dev accuracy", xlabel="step", ylabel="accuracy")
        a1.legend()
        for a in (a1, a2):
            a.grid(alpha=0.3)
        fig.tight_layout()
        return fig


def _batch_rows(step: int, micro: int, cfg: TrainConfig, n: int, perms: dict[int, torch.Tensor]) -> torch.Tensor:
    """Example indices of one micro-batch: epochs of fixed permutations, a function of the step alone.

    Epoch e shuffles with seed (cfg.seed, e), so a resumed run draws the same batches
    without storing any sampler state; a last partial batch of an epoch is skipped.
    """
    per_epoch = n // cfg.batch_size
    epoch, j = divmod(step * cfg.grad_accum + micro, per_epoch)
    if epoch not in perms:
        perms.clear()
        perms[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    return perms[epoch][j * cfg.batch_size : (j + 1) * cfg.batch_size]


def _rng(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"rng.torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["rng.cuda"] = torch.cuda.get_rng_state(device)
    return state


def train_classifier(
    clf: GPTClassifier,
    train: Sequence[Example],
    dev: Sequence[Example],
    cfg: TrainConfig,
    *,
    patience: int | None = None,
    pad_id: int = 0,
    restore_best: bool = True,
    resume: bool = False,
) -> ClassifierHistory:
    """Fine-tune `clf` in place on (token ids, label) examples; return the history.

    Only parameters with requires_grad train (see freeze, gptlab.lora.apply_lora).
    Every cfg.eval_interval steps (and at the end) the dev set is scored; the best
    accuracy's weights are kept, and with `patience` training stops after that many
    evaluations without a better one. restore_best=True leaves the best weights in
    `clf`. cfg.eval_iters is unused (the whole dev set is scored). resume=True
    continues from cfg.ckpt_dir exactly: same batches, dropout masks, AdamW state,
    early-stopping state and history as a run that never stopped.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(clf, GPTClassifier):
        raise TypeError(f"clf must be a GPTClassifier, got {type(clf).__name__}")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be None or a positive integer (evaluations without improvement), got {patience!r}")
    _check_examples(train, "train", clf.num_classes)
    _check_examples(dev, "dev", clf.num_classes)
    if cfg.batch_size > len(train):
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the {len(train)} training examples")
    trainable = [(n, p) for n, p in clf.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("no parameter of clf requires grad: nothing would train (see freeze)")

    device = get_device(cfg.device)
    use_bf16 = resolve_bf16(cfg.bf16, device)
    clf.to(device).train()
    optimizer = make_optimizer(clf, cfg, device)
    history, step, best, bad = ClassifierHistory(), 0, None, 0
    if resume:
        step, history, best, bad = _restore(cfg, clf, optimizer, device)
    else:
        torch.manual_seed(cfg.seed)  # dropout masks
    start, perms = step, {}
    ckpt_every = cfg.ckpt_interval or cfg.eval_interval
    block = clf.config.block_size

    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.max_steps, initial=step, disable=not cfg.progress, desc="fine-tuning", unit="step", dynamic_ncols=True)
    stop = history.stopped_early_at is not None
    while not stop:
        if step > 0 and (step % cfg.eval_interval == 0 or step == cfg.max_steps) and not (resume and step == start):
            s = evaluate(clf, dev, pad_id=pad_id, bf16=use_bf16)
            history.eval_steps.append(step)
            history.dev_accuracy.append(s["accuracy"])
            history.dev_macro_f1.append(s["macro_f1"])
            history.dev_loss.append(s["loss"])
            if history.best_accuracy is None or s["accuracy"] > history.best_accuracy:
                history.best_step, history.best_accuracy, bad = step, s["accuracy"], 0
                best = {n: p.detach().to("cpu", copy=True) for n, p in trainable}
            else:
                bad += 1
            if patience is not None and bad >= patience and step < cfg.max_steps:
                history.stopped_early_at = stop = step
            if cfg.progress:
                bar.write(f"step {step:5d}: dev accuracy {s['accuracy']:.4f}, dev loss {s['loss']:.4f}")
        if cfg.ckpt_dir is not None and step > start and (step % ckpt_every == 0 or step == cfg.max_steps or stop):
            _save(cfg, clf, optimizer, step, history, best, bad, device)
        if step >= cfg.max_steps or stop:
            break

        t0 = time.perf_counter()
        lr = set_lr(optimizer, step, cfg)
        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            rows = _batch_rows(step, micro, cfg, len(train), perms)
            idx, lengths = pad_batch([train[i][0] for i in rows], pad_id, block)
            y = torch.tensor([train[i][1] for i in rows], device=device)
            with autocast(device, use_bf16):
                logits = clf(idx.to(device), lengths.to(device))
            loss = F.cross_entropy(logits.float(), y) / cfg.grad_accum
            loss.backward()
            loss_sum += loss.detach()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_([p for _, p in trainable], cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % cfg.log_interval == 0:
            history.steps.append(step)
            history.train_loss.append(loss_sum.item())
            history.lr.append(lr)
            bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}", refresh=False)
        history.train_seconds += time.perf_counter() - t0
        step += 1
        bar.update(1)
    bar.close()
    if restore_best and best is not None:
        with torch.no_grad():
            params = dict(clf.named_parameters())
            for n, v in best.items():
                params[n].copy_(v)
    return history


# ---------------------------------------------------------------- checkpoints

FORMAT = "gptlab-classifier"
_FILES = ("model.safetensors", "state.safetensors", "classifier.json")


def _weights(clf: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters by name; named_parameters() yields a tied tensor once, which is what safetensors wants."""
    return {n: p.detach().cpu().contiguous() for n, p in clf.named_parameters()}


def _save(cfg: TrainConfig, clf: GPTClassifier, optimizer, step: int, history: ClassifierHistory, best, bad: int, device) -> None:
    """Write the checkpoint into a fresh sibling folder, then swap it in (a crash leaves the old one whole)."""
    from safetensors.torch import save_file

    path = Path(cfg.ckpt_dir)
    if path.is_dir() and any(p.name not in _FILES for p in path.iterdir()):
        raise ValueError(f"refusing to overwrite {path}: it holds files that are not a gptlab classifier checkpoint")
    tmp, old = path.parent / f".{path.name}.tmp", path.parent / f".{path.name}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_weights(clf), tmp / "model.safetensors")
    opt = optimizer.state_dict()
    state = {f"opt.{i}.{k}": v.detach().cpu().contiguous() for i, s in opt["state"].items() for k, v in s.items()}
    state.update({k: v.contiguous() for k, v in _rng(device).items()})
    state.update({f"best.{n}": v.contiguous() for n, v in (best or {}).items()})
    save_file(state, tmp / "state.safetensors")
    meta = {
        "format": FORMAT,
        "step": step,
        "model_config": clf.config.to_dict(),
        "num_classes": clf.num_classes,
        "pool": clf.pool,
        "lora": lora_config(clf.gpt),
        "trainable": [n for n, p in clf.named_parameters() if p.requires_grad],
        "train_config": cfg.to_dict(),
        "param_groups": opt["param_groups"],
        "history": history.to_dict(),
        "bad_evals": bad,
        "files": {p.name: sha256_file(p) for p in sorted(tmp.iterdir())},
    }
    (tmp / "classifier.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    jpath = path / "classifier.json"
    if not jpath.is_file():
        raise FileNotFoundError(f"no classifier checkpoint at {path}: classifier.json is missing")
    meta = json.loads(jpath.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{jpath} is not a gptlab classifier checkpoint")
    for name, digest in meta["files"].items():
        if not (path / name).is_file() or sha256_file(path / name) != digest:
            raise ValueError(f"checkpoint file {path / name} is missing or does not match the sha256 in classifier.json")
    return meta, load_file(path / "model.safetensors"), load_file(path / "state.safetensors")


def _load_weights(clf: nn.Module, weights: dict[str, torch.Tensor], where: Path) -> None:
    params = dict(clf.named_parameters())
    if set(params) != set(weights) or any(params[n].shape != w.shape for n, w in weights.items()):
        raise ValueError(f"{where} does not fit this classifier (different model size, pooling head or LoRA targets)")
    with torch.no_grad():
        for n, w in weights.items():
            params[n].copy_(w)


def _restore(cfg: TrainConfig, clf: GPTClassifier, optimizer, device) -> tuple[int, ClassifierHistory, Any, int]:
    if cfg.ckpt_dir is None:
        raise ValueError("resume=True needs TrainConfig.ckpt_dir: the folder of the checkpoint to continue")
    path = Path(cfg.ckpt_dir)
    meta, weights, state = _read(path)
    if meta["trainable"] != [n for n, p in clf.named_parameters() if p.requires_grad]:
        raise ValueError(f"cannot resume {path}: it trained other parameters than clf has trainable now; freeze it the same way first")
    _load_weights(clf, weights, path)
    groups = meta["param_groups"]
    for g in groups:
        g["betas"] = tuple(g["betas"])
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in state.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            opt_state.setdefault(int(i), {})[name] = v.to(device)
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    torch.set_rng_state(state["rng.torch"])
    if device.type == "cuda" and "rng.cuda" in state:
        torch.cuda.set_rng_state(state["rng.cuda"], device)
    best = {k[5:]: v for k, v in state.items() if k.startswith("best.")} or None
    return int(meta["step"]), ClassifierHistory.from_dict(meta["history"]), best, int(meta["bad_evals"])


def load_classifier(path: str | Path, device: str | torch.device | None = None, *, best: bool = True) -> tuple[GPTClassifier, dict[str, Any]]:
    """(classifier in eval mode, classifier.json) from a checkpoint folder of train_classifier.

    best=True gives the weights of the best dev evaluation so far (what
    restore_best leaves in memory), False those of the checkpoint's last step.
    """
    path = Path(path)
    meta, weights, state = _read(path)
    if best:
        weights.update({k[5:]: v for k, v in state.items() if k.startswith("best.")})
    clf = GPTClassifier(GPT(GPTConfig.from_dict(meta["model_config"])), meta["num_classes"], meta["pool"])
    if meta.get("lora"):
        lc = meta["lora"]
        apply_lora(clf.gpt, lc["r"], lc["alpha"], lc["targets"])
    _load_weights(clf, weights, path)
    device = device if isinstance(device, torch.device) else get_device(device)
    return clf.to(device).eval(), meta


# ---------------------------------------------------------------- sequence-to-sequence fine-tuning (lesson 12)


def _pad_columns(rows: list, pad: int) -> tuple[torch.Tensor, ...]:
    """Rows of (inputs..., targets) id lists -> one padded tensor per column: inputs padded with
    `pad`, targets with IGNORE_INDEX so padding adds nothing to the loss."""
    cols = list(zip(*rows))
    return tuple(pad_batch(c, pad if j < len(cols) - 1 else IGNORE_INDEX)[0] for j, c in enumerate(cols))


def translation_batches(examples: list[tuple[list[int], ...]], batch_size: int, *, seed: int = 0, pad: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless padded batches of examples (tuples of id lists, all but the last padded with `pad`,
    the last -- the targets -- with -100), in a seeded order.

    Each pass shuffles, then sorts within chunks of 50 batches by length, so a batch holds
    sentences of similar length and little compute goes on padding.
    """
    if not examples:
        raise ValueError("translation_batches needs at least one example")
    rng = random.Random(seed)
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        chunk = 50 * batch_size
        batches = []
        for c in range(0, len(order), chunk):
            part = sorted(order[c : c + chunk], key=lambda i: len(examples[i][-1]))
            batches += [part[b : b + batch_size] for b in range(0, len(part), batch_size)]
        rng.shuffle(batches)
        for b in batches:
            rows = [examples[i] for i in b]
            yield _pad_columns(rows, pad)


def translation_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], pad: int = 0) -> torch.Tensor:
    """Mean cross-entropy of one batch: (x, y) for a GPT, (src, x, y) for an EncoderDecoder
    (source padding, equal to `pad` after the real tokens, is masked from the encoder)."""
    if len(batch) == 2:
        return model(batch[0], batch[1])[1]
    src, x, y = batch
    return model(src, x, y, src_mask=source_mask(src, pad))[1]


@torch.no_grad()
def mean_loss(model: torch.nn.Module, examples: list, batch_size: int = 64, pad: int = 0) -> float:
    """Loss over all of `examples`, weighted by counted target tokens (the dev loss)."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        rows = examples[i : i + batch_size]
        batch = _pad_columns(rows, pad)
        n = int((batch[-1] != IGNORE_INDEX).sum())
        total += float(translation_loss(model, batch, pad)) * n
        count += n
    model.train(was)
    return total / count


def train_translation(
    model: nn.Module, examples: list, cfg: TrainConfig, *, dev_examples: list | None = None,
    eval_every: int | None = None, pad: int = 0, callback: Callable[[int, nn.Module], None] | None = None,
) -> dict[str, list]:
    """Train a GPT or an EncoderDecoder on translation examples (gptlab.tasks) for cfg.max_steps updates.

    gptlab.training's recipe (AdamW without decay on 1-D tensors, warmup then cosine,
    gradient clipping), on padded batches of whole sentence pairs instead of windows of
    one long text. A step budget, not a time budget: the same run on any machine.
    Returns {"step", "train_loss"} every 10 steps and {"eval_step", "dev_loss"} every
    `eval_every` steps and at the end; callback(step, model) runs after each evaluation.
    """
    block = model.config.block_size
    longest = max(len(part) for e in examples for part in e[:-1])
    if longest > block:  # fail now, not an hour into training when the long pair comes up
        raise ValueError(
            f"an example has {longest} tokens but the model's block_size is {block}; "
            f"build the model with block_size >= {longest} or leave the longest pairs out"
        )
    torch.manual_seed(cfg.seed)
    device = torch.device("cpu")
    opt = make_optimizer(model, cfg, device)
    batches = translation_batches(examples, cfg.batch_size, seed=cfg.seed, pad=pad)
    hist: dict[str, list] = {"step": [], "train_loss": [], "eval_step": [], "dev_loss": []}
    model.train()
    for step in range(cfg.max_steps):
        set_lr(opt, step, cfg)
        loss = translation_loss(model, next(batches), pad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if step % 10 == 0:
            hist["step"].append(step)
            hist["train_loss"].append(loss.item())
        last = step == cfg.max_steps - 1
        if dev_examples is not None and ((eval_every and (step + 1) % eval_every == 0) or last):
            hist["eval_step"].append(step + 1)
            hist["dev_loss"].append(mean_loss(model, dev_examples, pad=pad))
            if callback is not None:
                callback(step + 1, model)
            model.train()
    model.eval()
    return hist
