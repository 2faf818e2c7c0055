"""Fine-tune a GPT: a classification head on its body, freezing, and the adapters of the one training loop (lessons 11-13).

Radford et al. (2018) fine-tuned GPT-1 by putting one linear layer on the hidden
state of a sequence's last token: with causal attention that is the only position
that has seen the whole text. Batches of texts of different lengths are padded
on the right, so each row's last *real* token sits at its own position
(lengths - 1); padding comes after it and a causal model never looks ahead, so
padding cannot change a prediction. (Lesson 11.)

Training is gptlab.training.fit, the loop pretraining uses; each task here only
says how to draw a batch and score it: `train_classifier` (labelled texts, dev
accuracy for early stopping, lesson 11), `train_translation` (padded sentence pairs
for a GPT or an encoder-decoder, lesson 12) and `train_summarization` (prompt and
answer pairs scored on the answer only, lesson 13). So bf16, gradient accumulation,
clipping, the schedule, divergence detection, progress bars, devices and the
checkpoint (gptlab.checkpoint's folder: body, head and adapters with their settings,
resumed exactly) are the same for every task. Every batch is padded by the one `pad_batch`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from gptlab.checkpoint import CheckpointError, check_best, load_trained
from gptlab.config import GPTConfig, TrainConfig
from gptlab.data import pad_batch, target_only_batch
from gptlab.device import autocast, eval_mode, get_device, resolve_bf16
from gptlab.lora import apply_lora, count_parameters
from gptlab.model import GPT, IGNORE_INDEX
from gptlab.seq2seq import source_mask
from gptlab.training import History, fit

Example = tuple[Sequence[int], int]  # (token ids, label)

# ---------------------------------------------------------------- the classifier


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
        self.head.to(device=model.lm_head.weight.device, dtype=model.lm_head.weight.dtype)  # a bf16 body gets a bf16 head

    @property
    def config(self) -> GPTConfig:
        return self.gpt.config

    def pooled(self, idx: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_embd): the vector the head reads. idx is checked as GPT.forward checks it."""
        h = self.gpt.hidden_states(idx)
        B, T = idx.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        lengths = torch.as_tensor(lengths, device=idx.device)
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must be integers (the count of real tokens in each row), got {lengths.dtype}")
        if lengths.shape != (B,):
            raise ValueError(f"lengths must have shape ({B},), one per row, got {tuple(lengths.shape)}")
        if idx.device.type == "cpu" and (int(lengths.min()) < 1 or int(lengths.max()) > T):
            raise ValueError(f"lengths must lie in [1, {T}] (the padded width), got [{int(lengths.min())}, {int(lengths.max())}]")
        if self.pool == "last":
            return h[torch.arange(B, device=idx.device), lengths - 1]
        mask = (torch.arange(T, device=idx.device)[None, :] < lengths[:, None]).to(h.dtype)
        return (h * mask[..., None]).sum(1) / lengths[:, None].to(h.dtype)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.pooled(idx, lengths).to(self.head.weight.dtype))


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
            raise ValueError(f"trainable={trainable!r}: K in 'last_n:K' must be an integer in [1, {n_layer}] "
                             f"(the model has {n_layer} blocks)")
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


def classification_scores(y_true: Sequence[int] | torch.Tensor, y_pred: Sequence[int] | torch.Tensor,
                          num_classes: int = 2) -> dict[str, Any]:
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


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


@torch.no_grad()
def predict_logits(clf: GPTClassifier, seqs: Sequence[Sequence[int]], batch_size: int = 64, pad_id: int = 0,
                   bf16: bool = False) -> torch.Tensor:
    """(N, num_classes) float32 logits, in the order of `seqs`. Batches group similar lengths (less padding)."""
    _check_batch_size(batch_size)
    device = clf.head.weight.device
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = torch.empty(len(seqs), clf.num_classes)
    with eval_mode(clf):
        for s in range(0, len(order), batch_size):
            rows = order[s : s + batch_size]
            idx, lengths = pad_batch([seqs[i] for i in rows], pad_id, clf.config.block_size)
            with autocast(device, bf16):
                logits = clf(idx.to(device), lengths.to(device))
            out[rows] = logits.float().cpu()
    return out


def evaluate(clf: GPTClassifier, examples: Sequence[Example], batch_size: int = 64, pad_id: int = 0, bf16: bool = False) -> dict[str, Any]:
    """{"accuracy", "macro_f1", "confusion", "loss", "predictions"} of `clf` on (token ids, label) examples."""
    _check_batch_size(batch_size)
    _check_examples(examples, "examples", clf.num_classes)
    logits = predict_logits(clf, [ids for ids, _ in examples], batch_size, pad_id, bf16)
    labels = torch.tensor([y for _, y in examples])
    pred = logits.argmax(-1)
    scores = classification_scores(labels, pred, clf.num_classes)
    scores["loss"] = float(F.cross_entropy(logits, labels))
    scores["predictions"] = pred.tolist()
    return scores


# ---------------------------------------------------------------- training

def _epoch_rows(step: int, micro: int, cfg: TrainConfig, n: int, perms: dict[int, torch.Tensor]) -> torch.Tensor:
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


def _check_cfg(cfg: Any, n_train: int) -> None:
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if cfg.batch_size > n_train:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the {n_train} training examples")


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
) -> History:
    """Fine-tune `clf` in place on (token ids, label) examples; return the History.

    Only parameters with requires_grad train (see freeze, gptlab.lora.apply_lora).
    Every cfg.eval_interval steps (and at the end) the dev set is scored
    (history.dev_accuracy, dev_macro_f1, dev_loss); the best accuracy's weights are
    kept, and with `patience` training stops after that many evaluations without a
    better one. restore_best=True leaves the best weights in `clf`. cfg.eval_iters is
    unused (the whole dev set is scored). resume=True continues from cfg.ckpt_dir
    exactly: same batches, dropout masks, AdamW state, early-stopping state and
    history as a run that never stopped. The loop is gptlab.training.fit.
    """
    if not isinstance(clf, GPTClassifier):
        raise TypeError(f"clf must be a GPTClassifier, got {type(clf).__name__}")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be None or a positive integer (evaluations without improvement), got {patience!r}")
    _check_examples(train, "train", clf.num_classes)
    _check_examples(dev, "dev", clf.num_classes)
    _check_cfg(cfg, len(train))
    device = get_device(cfg.device)
    use_bf16 = resolve_bf16(cfg.bf16, device)
    block, perms = clf.config.block_size, {}

    def next_batch(step: int, micro: int, _gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        rows = _epoch_rows(step, micro, cfg, len(train), perms)
        idx, lengths = pad_batch([train[i][0] for i in rows], pad_id, block)
        return idx.to(device), lengths.to(device), torch.tensor([train[i][1] for i in rows], device=device)

    def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        idx, lengths, y = batch
        return F.cross_entropy(net(idx, lengths).float(), y)

    def score_dev(_fwd: nn.Module) -> dict[str, float]:
        s = evaluate(clf, dev, pad_id=pad_id, bf16=use_bf16)
        return {"dev_accuracy": s["accuracy"], "dev_macro_f1": s["macro_f1"], "dev_loss": s["loss"]}

    return fit(clf, next_batch, loss_fn, cfg, evaluate=score_dev, eval_at_start=False, best="dev_accuracy", patience=patience,
               restore_best=restore_best, device=device, resume=resume, head=_head(clf), desc="fine-tuning")


def _head(clf: GPTClassifier) -> dict[str, Any]:
    return {"num_classes": clf.num_classes, "pool": clf.pool}


def _build_classifier(meta: dict[str, Any]) -> GPTClassifier:
    clf = GPTClassifier(GPT(GPTConfig.from_dict(meta["model_config"])), meta["head"]["num_classes"], meta["head"]["pool"])
    if meta.get("lora"):
        lc = meta["lora"]
        apply_lora(clf, lc["r"], lc["alpha"], lc["targets"], freeze_rest=False)  # targets: full names in the classifier
    return clf


def load_classifier(path: str | Path, device: str | torch.device | None = None, *,
                    best: bool = True) -> tuple[GPTClassifier, dict[str, Any]]:
    """(classifier in eval mode, checkpoint.json) from a checkpoint folder of train_classifier.

    best=True gives the weights of the best dev evaluation so far (what
    restore_best leaves in memory), False those of the checkpoint's last step.
    Everything is checked before the classifier is built (gptlab.checkpoint):
    the folder's files, the head and adapter settings, every shape against the
    safetensors header, finiteness.
    """
    def expected(meta: dict[str, Any]) -> dict[str, tuple]:
        if not meta.get("head"):
            raise CheckpointError(f"{path} is not a classifier checkpoint (it has no head); load it with gptlab.checkpoint.load_checkpoint")
        with torch.device("meta"):
            return {k: tuple(v.shape) for k, v in _build_classifier(meta).state_dict().items()}

    meta, weights, state = load_trained(path, expected, train_state=best)
    clf = _build_classifier(meta)
    clf.load_state_dict(weights)
    if best and state is not None and state.get("best"):
        params = dict(clf.named_parameters())
        check_best(state["best"], {n: params[n] for n in state["best"] if n in params}, Path(path) / "train_state.pt")
        with torch.no_grad():
            for n, v in state["best"].items():
                params[n].copy_(v)
    device = device if isinstance(device, torch.device) else get_device(device)
    return clf.to(device).eval(), meta


# ---------------------------------------------------------------- sequence-to-sequence fine-tuning (lesson 12)


def _pad_columns(rows: list, pad: int) -> tuple[torch.Tensor, ...]:
    """Rows of (inputs..., targets) id lists -> one padded tensor per column: inputs padded with
    `pad`, targets with IGNORE_INDEX so padding adds nothing to the loss."""
    cols = list(zip(*rows))
    return tuple(pad_batch(c, pad if j < len(cols) - 1 else IGNORE_INDEX)[0] for j, c in enumerate(cols))


def translation_batches(examples: list[tuple[list[int], ...]], batch_size: int, *, seed: int = 0,
                        pad: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
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
    _check_batch_size(batch_size)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(examples), batch_size):
            batch = tuple(t.to(device) for t in _pad_columns(examples[i : i + batch_size], pad))
            n = int((batch[-1] != IGNORE_INDEX).sum())
            total += float(translation_loss(model, batch, pad)) * n
            count += n
    if count == 0:
        raise ValueError("the examples hold no target token (every target is -100): there is no loss to average")
    return total / count


def translation_step_flops(model: nn.Module, examples: list, batch_size: int, *, pad: int = 0, seed: int = 0,
                           n_batches: int = 50) -> float:
    """Mean floating-point operations of one training step (forward and backward) on `examples`.

    Lesson 12 compares a GPT and an encoder-decoder at equal training compute: a GPT block
    sees every token of source and target, an encoder block only the source and a decoder
    block only the target, so a step of the same batch costs the two different amounts.
    Counted by torch's FlopCounterMode (the matrix products of the linear layers; this
    torch does not count the fused attention kernel's T x T products on the CPU, a few per
    cent at lesson 12's sentence lengths) on the first `n_batches` batches of the same
    seeded stream train_translation draws, so the figure is the same on every machine,
    unlike a timing. The model's weights and gradients do not change.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if isinstance(n_batches, bool) or not isinstance(n_batches, int) or n_batches < 1:
        raise ValueError(f"n_batches must be a positive integer, got {n_batches!r}")
    _check_pairs(examples, "examples", model.config.block_size)
    _check_batch_size(batch_size)
    batches = translation_batches(examples, batch_size, seed=seed, pad=pad)
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.train()
    try:  # autograd.grad: the backward pass a step runs, without touching .grad (this is a count, not training)
        with FlopCounterMode(display=False) as counter:
            for _ in range(n_batches):
                torch.autograd.grad(translation_loss(model, next(batches), pad), params)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / n_batches


def _check_pairs(examples: Any, name: str, block: int) -> None:
    """Refuse, before any training step, what would fail later: no examples, or one longer than block_size."""
    if not isinstance(examples, (list, tuple)) or len(examples) == 0:
        raise ValueError(f"{name} must be a non-empty list of examples (tuples of token-id lists)")
    longest = max(len(part) for e in examples for part in e[:-1])
    if longest > block:  # fail now, not an hour into training when the long pair comes up
        raise ValueError(
            f"{name} has an example of {longest} tokens but the model's block_size is {block}; "
            f"build the model with block_size >= {longest} or leave the longest pairs out"
        )


def train_translation(
    model: nn.Module, examples: list, cfg: TrainConfig, *, dev_examples: list | None = None,
    eval_every: int | None = None, pad: int = 0, callback: Callable[[int, nn.Module], None] | None = None,
) -> History:
    """Train a GPT or an EncoderDecoder on translation examples (gptlab.tasks) for cfg.max_steps updates.

    gptlab.training.fit (AdamW without decay on 1-D tensors, warmup then cosine,
    gradient clipping, cfg.device, bf16, grad_accum, log_interval) on padded batches of
    whole sentence pairs instead of windows of one long text. A step budget, not a time
    budget: the same run on any machine. history.dev_loss is scored every `eval_every`
    steps and at the end (when dev_examples are given); callback(step, model) runs
    after each evaluation. Batches come from a seeded stream (translation_batches),
    so a run is reproducible but is not saved: cfg.ckpt_dir must be None.
    """
    block = model.config.block_size
    _check_pairs(examples, "examples", block)
    _check_cfg(cfg, len(examples))
    if cfg.ckpt_dir is not None:
        raise ValueError("train_translation does not save checkpoints (its batch stream cannot be resumed); set ckpt_dir=None")
    if dev_examples is not None:
        _check_pairs(dev_examples, "dev_examples", block)
    device = get_device(cfg.device)
    batches = translation_batches(examples, cfg.batch_size, seed=cfg.seed, pad=pad)

    def next_batch(step: int, micro: int, _gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        return tuple(t.to(device) for t in next(batches))

    history = fit(
        model, next_batch, lambda net, batch: translation_loss(net, batch, pad), cfg, device=device,
        evaluate=None if dev_examples is None else (lambda _fwd: {"dev_loss": mean_loss(model, dev_examples, pad=pad)}),
        eval_at_start=False, eval_interval=eval_every or cfg.max_steps,
        callback=None if callback is None else (lambda step, m, _h: callback(step, m)), desc="translation",
    )
    model.eval()
    return history


@torch.no_grad()
def answer_loss(model: nn.Module, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int = 16, pad_id: int = 0) -> float:
    """Mean loss per answer token of (prompt, answer) pairs, as target_only_batch scores them (lesson 13)."""
    _check_batch_size(batch_size)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(pairs), batch_size):
            x, y = target_only_batch(pairs[i : i + batch_size], pad_id=pad_id)
            _, loss = model(x.to(device), y.to(device))
            n = int((y != IGNORE_INDEX).sum())
            total, count = total + loss.item() * n, count + n
    if count == 0:
        raise ValueError("answer_loss needs at least one (prompt, answer) pair")
    return total / count


def _answer_rows(step: int, micro: int, n: int, batch_size: int, seed: int, perms: dict[int, list[int]], grad_accum: int) -> list[int]:
    """Pair indices of one micro-batch: epoch e takes its pairs from the end of the (e + 2)-th randperm of a
    generator seeded `seed` (the first picks the training probe), a function of the step alone."""
    epoch, j = divmod(step * grad_accum + micro, n // batch_size)
    if epoch not in perms:
        g = torch.Generator().manual_seed(seed)
        for _ in range(epoch + 1):  # the probe's draw, then one per earlier epoch
            torch.randperm(n, generator=g)
        perms.clear()
        perms[epoch] = torch.randperm(n, generator=g).tolist()
    order = perms[epoch]
    return [order[n - 1 - j * batch_size - i] for i in range(batch_size)]


def train_summarization(
    model: GPT, pairs: list, dev_pairs: list, cfg: TrainConfig, *, pad_id: int = 0, resume: bool = False,
) -> History:
    """Fine-tune a GPT on (prompt ids, answer ids) pairs, scoring the answer tokens only (lesson 13).

    gptlab.training.fit on target_only_batch batches: epochs of seeded permutations
    (cfg.seed), so a resumed run (cfg.ckpt_dir) draws the same batches. Every
    cfg.eval_interval steps, at step 0 and at the end, history.evals holds
    "train_loss" (answer loss on len(dev_pairs) training pairs chosen once) and "dev_loss".
    """
    if not isinstance(model, GPT):
        raise TypeError(f"train_summarization fine-tunes a gptlab GPT, got {type(model).__name__}")
    _check_cfg(cfg, len(pairs) if isinstance(pairs, (list, tuple)) else 0)
    for name, ps in (("pairs", pairs), ("dev_pairs", dev_pairs)):
        if not isinstance(ps, (list, tuple)) or not ps:
            raise ValueError(f"{name} must be a non-empty list of (prompt ids, answer ids) pairs")
        target_only_batch(ps, pad_id)  # every pair has a prompt and an answer: checked now, not at its first batch
    device = get_device(cfg.device)
    probe_order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(cfg.seed))
    train_probe = [pairs[i] for i in probe_order[: len(dev_pairs)].tolist()]
    perms: dict[int, list[int]] = {}

    def next_batch(step: int, micro: int, _gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        rows = _answer_rows(step, micro, len(pairs), cfg.batch_size, cfg.seed, perms, cfg.grad_accum)
        x, y = target_only_batch([pairs[i] for i in rows], pad_id=pad_id)
        return x.to(device), y.to(device)

    def score(_fwd: nn.Module) -> dict[str, float]:
        return {"train_loss": answer_loss(model, train_probe, pad_id=pad_id), "dev_loss": answer_loss(model, dev_pairs, pad_id=pad_id)}

    history = fit(model, next_batch, lambda net, batch: net(*batch)[1], cfg, evaluate=score, device=device,
                  resume=resume, desc="fine-tuning")
    model.eval()
    return history
