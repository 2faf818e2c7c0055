"""Train a GPT, and anything built on one, with one loop that resumes exactly (lessons 06 and 11-14).

`fit` is nanoGPT's loop, and the only one in gptlab: set the scheduled learning rate
(linear warmup, then a cosine or warmup-stable-decay), accumulate the gradients of
grad_accum micro-batches, clip their norm, take an AdamW (or Muon) step, now and then
record the loss, evaluate and save. What it trains is told by two functions: how to
draw a batch and how to score it. `train` (pretraining: random windows of a token
stream) is the first such adapter; gptlab.finetune has the classifier, translation
and summarization ones. Everything that decides what happens next (the weights,
AdamW's moment estimates, the step, the states of the random generators that pick
batches and dropout masks, a classifier's best weights) goes into the checkpoint,
so a run stopped at any step and resumed produces the same losses, bit for bit, as
one that never stopped; a loss or weight that turns NaN stops the run before it
can overwrite the last good checkpoint.

The same loop runs data-parallel under torchrun (see gptlab.distributed and
docs/scaling-out.md): each process draws its own batches from a generator
seeded seed + rank, DistributedDataParallel averages the gradients, and rank 0
alone saves, logs and shows the progress bar. 2 processes with batch b take
the same steps as 1 process with batch 2b drawing the same windows.

The checkpoint folder itself (its files, atomic saves,
validation on load) is gptlab.checkpoint's business; its names are re-exported
here because lessons import them from gptlab.training.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gptlab import distributed
from gptlab.checkpoint import (
    CheckpointError,
    check_save_target,
    check_train_state,
    load_checkpoint_tokenizer,
    load_train_state,
    load_weights,
    read_checkpoint_meta,
    save_checkpoint,
    writer_lock,
)
from gptlab.config import GPTConfig, TrainConfig
from gptlab.data import draw_batch
from gptlab.device import autocast, eval_mode, get_device, resolve_bf16
from gptlab.distributed import World
from gptlab.lora import lora_config
from gptlab.model import GPT
from gptlab.tokenizers import tokenizer_to_dict

# ---------------------------------------------------------------- configuration


def set_lr(optimizer: torch.optim.Optimizer, step: int, cfg: TrainConfig) -> float:
    """Put lr_at(step) into every parameter group (the schedule drives the optimizer); return it."""
    lr = lr_at(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)  # Muon's matrices run at their own multiple of lr
    return lr


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate for update `step` (0-based): linear warmup, then cosine decay to min_lr.

    Warmup: Adam divides by a running estimate of the gradient's size, which is
    poor for the first few steps, so large early steps could wreck the init.
    Cosine: big steps while far from a good solution, small ones to settle in.
    schedule="wsd" (warmup-stable-decay; Hu et al., 2024; Hägele et al., 2024)
    holds lr until the last decay_frac of the steps, then falls linearly to min_lr.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / (cfg.warmup_steps + 1)
    decay_steps = cfg.lr_decay_steps if cfg.lr_decay_steps is not None else cfg.max_steps
    if step >= decay_steps:
        return cfg.min_lr
    if cfg.schedule == "wsd":
        decay_start = max(cfg.warmup_steps, decay_steps - round(cfg.decay_frac * decay_steps))
        if step < decay_start:
            return cfg.lr
        return cfg.lr + (cfg.min_lr - cfg.lr) * (step - decay_start) / (decay_steps - decay_start)
    ratio = (step - cfg.warmup_steps) / (decay_steps - cfg.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


# ---------------------------------------------------------------- batches, precision, evaluation


@torch.no_grad()
def estimate_loss(
    model: nn.Module,
    splits: dict[str, torch.Tensor],
    *,
    block_size: int | None = None,
    batch_size: int = 12,
    eval_iters: int = 20,
    seed: int = 0,
    bf16: bool = False,
) -> dict[str, float]:
    """Mean loss over `eval_iters` random batches of each split, e.g. {"train": 1.62, "val": 1.80}.

    One batch's loss is noisy; the mean of k is a usable estimate. The batches come
    from a generator seeded afresh each time, so every estimate in a run sees the
    same batches (curves compare like with like) and evaluating never changes
    which batches training draws.
    """
    device = next(model.parameters()).device
    block_size = block_size or model.config.block_size
    out = {}
    with eval_mode(model):
        for name, data in splits.items():
            g = torch.Generator().manual_seed(seed)
            total = torch.zeros((), device=device)
            for _ in range(eval_iters):
                x, y = draw_batch(data, block_size, batch_size, g, device)
                with autocast(device, bf16):
                    _, loss = model(x, y)
                total += loss.float()
            out[name] = (total / eval_iters).item()
    return out


# ---------------------------------------------------------------- history


@dataclass
class History:
    """What a run of fit recorded, whatever it trained (a language model, a classifier, a translator).

    steps / train_loss / lr (/ tokens_per_s when the loop knows its tokens per step): one record
    every log_interval steps, the loss of that step's batch (noisy). eval_steps and `evals`, one list
    per score by name: "train_loss"/"val_loss" for pretraining (a mean over eval_iters batches),
    "dev_accuracy"/"dev_macro_f1"/"dev_loss" for a classifier, "dev_loss" for translation.
    best_step/best_score/stopped_early_at: early stopping on one score (classifiers).
    """

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)  # training throughput since the previous record
    eval_steps: list[int] = field(default_factory=list)
    evals: dict[str, list[float]] = field(default_factory=dict)
    best_step: int | None = None
    best_score: float | None = None
    stopped_early_at: int | None = None  # the step where patience ran out, else None

    # the names lessons read: pretraining's two estimates, a classifier's dev scores
    eval_train_loss = property(lambda self: self.evals.setdefault("train_loss", []))
    eval_val_loss = property(lambda self: self.evals.setdefault("val_loss", []))
    dev_accuracy = property(lambda self: self.evals.setdefault("dev_accuracy", []))
    dev_macro_f1 = property(lambda self: self.evals.setdefault("dev_macro_f1", []))
    dev_loss = property(lambda self: self.evals.setdefault("dev_loss", []))
    best_accuracy = property(lambda self: self.best_score)

    @property
    def val_loss(self) -> float | None:
        """The last evaluated val loss."""
        return self.eval_val_loss[-1] if self.eval_val_loss else None

    def record_eval(self, step: int, scores: dict[str, float]) -> None:
        self.eval_steps.append(step)
        for name, value in scores.items():
            self.evals.setdefault(name, []).append(value)

    def to_dict(self) -> dict[str, Any]:
        """Flat and JSON-ready: each score becomes a list "eval_<name>" (the checkpoint format's history)."""
        d: dict[str, Any] = {"steps": self.steps, "train_loss": self.train_loss, "lr": self.lr,
                             "tokens_per_s": self.tokens_per_s, "eval_steps": self.eval_steps}
        d.update({f"eval_{name}": list(v) for name, v in self.evals.items()})
        for name in ("best_step", "best_score", "stopped_early_at"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        h = cls(**{k: list(d.get(k, [])) for k in ("steps", "train_loss", "lr", "tokens_per_s", "eval_steps")})
        h.evals = {k[5:]: list(v) for k, v in d.items() if k.startswith("eval_") and k != "eval_steps"}
        h.best_step, h.best_score, h.stopped_early_at = d.get("best_step"), d.get("best_score"), d.get("stopped_early_at")
        return h

    def plot(self, title: str = "Loss curves"):
        """A matplotlib Figure: the losses against the step, and the other scores beside them (end the cell with plt.show())."""
        import matplotlib.pyplot as plt

        others = [n for n in self.evals if not n.endswith("loss")]
        fig, axes = plt.subplots(1, 1 + bool(others), figsize=(7 + 4 * bool(others), 4), squeeze=False)
        ax = axes[0][0]
        if self.steps:
            ax.plot(self.steps, self.train_loss, color="tab:blue", alpha=0.3, lw=1, label="train (one batch)")
        for name, values in self.evals.items():
            if name.endswith("loss"):
                ax.plot(self.eval_steps, values, "o-", label=f"{name.replace('_', ' ')} (evaluation)")
        ax.set(title=title, xlabel="step (optimizer updates)", ylabel="cross-entropy loss (nats per token)")
        if others:
            a2 = axes[0][1]
            for name in others:
                a2.plot(self.eval_steps, self.evals[name], "o-", label=name.replace("_", " "))
            if self.best_step is not None:
                a2.axvline(self.best_step, color="gray", ls="--", label=f"best: step {self.best_step}")
            a2.set(title=f"{title}: scores", xlabel="step")
        for a in axes[0]:
            a.grid(alpha=0.3)
            a.legend()
        fig.tight_layout()
        return fig


# ---------------------------------------------------------------- the loop


class MuonAdamW:
    """Muon (Jordan et al., 2024) for the blocks' matrices and AdamW for the rest, stepped as one optimizer.

    Muon orthogonalises each matrix's momentum (a few Newton-Schulz iterations), so
    every direction of the update moves at the same rate; embeddings, the head and
    1-D gains do not suit that and stay with AdamW, as in modded-nanoGPT.
    """

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer) -> None:
        self.optimizers = (muon, adamw)
        self.param_groups = muon.param_groups + adamw.param_groups

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW | MuonAdamW:
    """AdamW with weight decay on matrices (Linear weights, embeddings) only.

    Decay pulls weights towards zero; on a bias or a LayerNorm gain that only
    fights the job those few numbers do, so they (all 1-D tensors) get none.
    fused=True updates every tensor in one kernel (CUDA, and CPU since torch 2.4).
    cfg.optimizer="muon" hands the blocks' matrices to Muon instead (MuonAdamW).
    """
    if cfg.optimizer == "muon":
        blocks = {id(p) for name, p in model.named_parameters() if ".h." in f".{name}" and p.dim() == 2}
        matrices = [p for p in model.parameters() if p.requires_grad and id(p) in blocks]
        muon = torch.optim.Muon(matrices, lr=cfg.muon_lr, weight_decay=0.0)
        for g in muon.param_groups:
            g["lr_scale"] = cfg.muon_lr / cfg.lr  # the loop sets lr_at(step) * lr_scale
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in blocks]
        adamw_cfg = dataclasses.replace(cfg, optimizer="adamw", ckpt_dir=None)
        return MuonAdamW(muon, make_optimizer(_Params(rest), adamw_cfg, device))
    params = [p for p in model.parameters() if p.requires_grad]  # the tied wte/lm_head matrix appears once
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused or None, foreach=None if fused else True)


class _Params:
    """A list of parameters that answers .parameters(), so make_optimizer can take a subset."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params

    def parameters(self) -> list[torch.Tensor]:
        return self.params


def _as_tokens(data: Any, name: str, block_size: int, vocab_size: int) -> Any:
    if not isinstance(data, torch.Tensor) and callable(getattr(data, "get_batch", None)):  # a batch source (TokenShards)
        if len(data) < block_size + 2:
            raise ValueError(f"{name} has {len(data)} tokens; it needs more than block_size + 1 = {block_size + 1} to cut one window")
        n_vocab = getattr(data, "n_vocab", None)
        if n_vocab is not None and n_vocab > vocab_size:
            raise ValueError(f"{name} was tokenized with {n_vocab} tokens but the model's vocab_size is {vocab_size}; "
                             f"build the model with vocab_size={n_vocab}")
        return data
    try:
        t = torch.as_tensor(data)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{name} must be a 1-D sequence of integer token ids: {e}") from None
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer token ids, got {t.dtype}; convert it with torch.as_tensor(ids, dtype=torch.long) "
                         "if the values are whole numbers (floats would be truncated silently)")
    t = t.long()
    if t.dim() != 1:
        raise ValueError(f"{name} must be a 1-D sequence of token ids, got shape {tuple(t.shape)}")
    if len(t) < block_size + 2:
        raise ValueError(f"{name} has {len(t)} tokens; it needs more than block_size + 1 = {block_size + 1} to cut one window")
    if int(t.min()) < 0 or int(t.max()) >= vocab_size:
        raise ValueError(
            f"{name} holds token ids in [{int(t.min())}, {int(t.max())}] but the model's vocab_size is {vocab_size}; "
            "make GPTConfig.vocab_size at least the tokenizer's n_vocab"
        )
    return t


def _rng_state(batch_gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    state = {"batch": batch_gen.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any], batch_gen: torch.Generator, device: torch.device) -> None:
    batch_gen.set_state(state["batch"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    elif device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"])


def _fork_rng(device: torch.device):
    """Run the callback on a copy of the random state: sampling text there must not change the training run."""
    if device.type in ("cuda", "mps"):
        return torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [0], device_type=device.type)
    return torch.random.fork_rng(devices=[])


def train(
    model: GPT,
    train_data: torch.Tensor | Sequence[int],
    val_data: torch.Tensor | Sequence[int],
    cfg: TrainConfig,
    tokenizer: Any = None,
    resume: bool = False,
    callback: Callable[[int, GPT, History], None] | None = None,
) -> History:
    """Pretrain `model` in place for cfg.max_steps updates and return the History.

    train_data / val_data: 1-D token ids. resume=True continues from the checkpoint
    in cfg.ckpt_dir (weights, optimizer, step, random states, history).
    callback(step, model, history) runs after each evaluation, e.g. to print a
    sample; it gets its own copy of the random state, so it cannot change the run.
    train_data / val_data may also be batch sources with a get_batch method, such
    as gptlab.data.TokenShards (a corpus on disk, larger than memory).

    Under torchrun (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in the environment)
    or in an initialised process group, this runs data-parallel: every process
    calls train() with the same arguments, cfg.batch_size is per process, and
    rank 0 saves the checkpoint (cfg.ckpt_dir must be a folder every process can
    read, to resume). The callback runs on rank 0 only.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    device = get_device(cfg.device)
    block_size, vocab_size = model.config.block_size, model.config.vocab_size
    train_data = _as_tokens(train_data, "train_data", block_size, vocab_size)
    val_data = _as_tokens(val_data, "val_data", block_size, vocab_size)
    if tokenizer is not None and tokenizer.n_vocab > vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.n_vocab} tokens but the model's vocab_size is {vocab_size}; "
                         f"build the model with vocab_size={tokenizer.n_vocab}")
    if cfg.ckpt_dir is None and resume:
        raise ValueError("resume=True needs TrainConfig.ckpt_dir: the folder of the checkpoint to continue")
    world = distributed.setup(device)
    try:
        if world.size > 1 and device.type == "cuda":
            device = torch.device("cuda", world.local_rank)  # one GPU per process
        use_bf16 = resolve_bf16(cfg.bf16, device)

        def next_batch(step: int, micro: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            return draw_batch(train_data, block_size, cfg.batch_size, gen, device)

        def evaluate(fwd: nn.Module) -> dict[str, float]:
            losses = estimate_loss(  # each process on its own batches (seed + rank), then averaged over processes
                fwd, {"train": train_data, "val": val_data}, block_size=block_size,
                batch_size=cfg.batch_size, eval_iters=cfg.eval_iters, seed=cfg.seed + world.rank, bf16=use_bf16,
            )
            if world.size > 1:
                pair = distributed.mean_over_ranks(torch.tensor([losses["train"], losses["val"]], device=device), world)
                losses = {"train": pair[0].item(), "val": pair[1].item()}
            return {"train_loss": losses["train"], "val_loss": losses["val"]}

        return fit(model, next_batch, lambda net, batch: net(*batch)[1], cfg, evaluate=evaluate, device=device,
                   world=world, resume=resume, tokenizer=tokenizer, callback=callback,
                   tokens_per_step=cfg.batch_size * block_size * cfg.grad_accum * world.size)
    finally:
        distributed.teardown(world)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf: training stopped, and the last good checkpoint was kept."""


def _params_finite(model: nn.Module) -> bool:
    return bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all())


def fit(
    model: nn.Module,
    next_batch: Callable[[int, int, torch.Generator], Any],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    cfg: TrainConfig,
    *,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_at_start: bool = True,
    eval_interval: int | None = None,
    best: str | None = None,
    patience: int | None = None,
    restore_best: bool = True,
    device: torch.device | None = None,
    world: World = World(),
    resume: bool = False,
    tokenizer: Any = None,
    head: dict[str, Any] | None = None,
    callback: Callable[..., None] | None = None,
    tokens_per_step: int | None = None,
    desc: str = "training",
) -> History:
    """The one training loop of gptlab (nanoGPT's): every kind of training is this loop plus batches and a loss.

    Each step: set the scheduled lr; for each of cfg.grad_accum micro-batches,
    batch = next_batch(step, micro, generator), and the gradient of loss_fn(model, batch) is accumulated
    (bf16 autocast around the forward); clip the gradient norm; optimizer step; every
    log_interval steps record the loss (the only host sync). Every eval_interval steps
    (default cfg.eval_interval) and at the end, evaluate(model) -> {name: score} is
    recorded in the History, and with cfg.ckpt_dir the run is saved (every cfg.ckpt_interval
    steps if set): weights, AdamW's moments, the generator's and torch's random states,
    history, best weights. resume=True continues from there bit for bit.

    A NaN or inf loss or weight stops the run (TrainingDiverged) before anything is saved,
    so the last good checkpoint stays. best="dev_accuracy" keeps the trainable weights of
    the best evaluation of that score (restored at the end with restore_best) and, with
    `patience`, stops after that many evaluations without a better one.
    eval_at_start=False skips the evaluation before the first step. head: metadata of a
    head on top of a GPT body, saved with the checkpoint (see gptlab.checkpoint); resume
    refuses a checkpoint whose head, adapters or trainable parameters differ.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    device = device if device is not None else get_device(cfg.device)
    use_bf16 = resolve_bf16(cfg.bf16, device)
    eval_interval = eval_interval or cfg.eval_interval
    if best is not None and evaluate is None:
        raise ValueError("best= names an evaluation score, so fit needs evaluate=")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("no parameter of the model requires grad: nothing would train (see gptlab.finetune.freeze)")
    with ExitStack() as stack:
        def claim_folder() -> None:  # only rank 0 writes the checkpoint
            if cfg.ckpt_dir is None or not world.is_main:
                return
            # Everything a save needs is checked now, not at the first save after minutes of training.
            check_save_target(cfg.ckpt_dir)
            if tokenizer is not None:
                tokenizer_to_dict(tokenizer)  # raises if the tokenizer cannot be written to tokenizer.json
            stack.enter_context(writer_lock(cfg.ckpt_dir))  # a second training into the same folder fails here

        if resume and cfg.ckpt_dir is None:
            raise ValueError("resume=True needs TrainConfig.ckpt_dir: the folder of the checkpoint to continue")
        distributed.run_together(claim_folder, world)

        model.to(device)
        model.train()
        optimizer = make_optimizer(model, cfg, device)
        # Picks the batches; its state is checkpointed. One stream per process: seed + rank.
        batch_gen = torch.Generator().manual_seed(cfg.seed + world.rank)
        history, step, best_weights = History(), 0, None
        if resume:  # every process reads the checkpoint: weights, its own AdamW state and its own random states
            step, history, tokenizer, best_weights = distributed.run_together(
                lambda: _restore(cfg, model, optimizer, batch_gen, tokenizer, device, world, head), world)
            if step >= cfg.max_steps and history.stopped_early_at is None:
                raise ValueError(
                    f"{cfg.ckpt_dir} is already at step {step}, so max_steps={cfg.max_steps} leaves nothing to train; "
                    f"pass a larger max_steps (--max-steps) to continue it"
                )
        else:
            torch.manual_seed(cfg.seed + world.rank)  # dropout masks
        start = step
        ckpt_every = cfg.ckpt_interval or eval_interval
        fwd = torch.compile(model) if cfg.compile is True or (cfg.compile == "auto" and device.type == "cuda") else model
        # DDP broadcasts rank 0's weights now and averages gradients during backward; evaluation uses fwd directly.
        net = fwd if world.size == 1 else DDP(fwd, device_ids=[device.index] if device.type == "cuda" else None)
        show = cfg.progress and world.is_main
        params = [p for _, p in trainable]
        bad = 0 if history.best_step is None else sum(s > history.best_step for s in history.eval_steps)

        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_steps, initial=step, disable=not show, desc=desc, unit="step", dynamic_ncols=True)
        busy, busy_steps = 0.0, 0  # seconds spent in training steps since the last record (no eval, no saving)
        finite = torch.ones((), dtype=torch.bool, device=device)  # all losses so far finite (checked without a sync per step)
        saved_step = start if resume else None
        stop = history.stopped_early_at is not None

        def diverged(at: int) -> TrainingDiverged:
            bar.close()
            kept = (f"the last good checkpoint (step {saved_step}) in {cfg.ckpt_dir} is kept" if saved_step is not None
                    else "nothing was saved")
            return TrainingDiverged(
                f"training diverged by step {at}: the loss became NaN or inf; stopped, and {kept}. "
                "Lower the learning rate (lr, --lr), lengthen the warmup (--warmup-steps) or clip gradients (--grad-clip)"
            )

        while True:
            at_eval = (evaluate is not None and (step % eval_interval == 0 or step == cfg.max_steps)
                       and (step > 0 or eval_at_start) and not (resume and step == start))
            at_save = cfg.ckpt_dir is not None and step > start and (step % ckpt_every == 0 or step == cfg.max_steps)
            checked = (at_eval or at_save or step == cfg.max_steps) and step > start
            if checked and not distributed.all_true(bool(finite) and _params_finite(model), world):
                raise diverged(step)
            if at_eval:
                scores = evaluate(fwd)
                history.record_eval(step, scores)
                if not all(math.isfinite(v) for v in scores.values()):
                    raise diverged(step)
                if best is not None:
                    if history.best_score is None or scores[best] > history.best_score:
                        history.best_step, history.best_score, bad = step, scores[best], 0
                        best_weights = {n: p.detach().to("cpu", copy=True) for n, p in trainable}
                    else:
                        bad += 1
                    if patience is not None and bad >= patience and step < cfg.max_steps:
                        history.stopped_early_at, stop = step, True
                if show:
                    bar.write(f"step {step:5d}: " + ", ".join(f"{n.replace('_', ' ')} {v:.4f}" for n, v in scores.items()))
                if callback is not None and world.is_main:
                    with _fork_rng(device):
                        callback(step, model, history)
                    model.train()
            if cfg.ckpt_dir is not None and step > start and (at_save or stop):
                rngs = distributed.gather_to_main(_rng_state(batch_gen, device), world)  # every rank's batch stream
                if world.is_main:
                    state = {"rng": rngs[0]} if world.size == 1 else {"rng": rngs[0], "rng_ranks": rngs, "world_size": world.size}
                    if best_weights is not None:
                        state["best"] = best_weights
                    save_checkpoint(
                        cfg.ckpt_dir, model, tokenizer=tokenizer, optimizer=optimizer, train_config=cfg, step=step,
                        history=history, train_state=state, head=head, lora=lora_config(model),
                    )
                saved_step = step
            if step >= cfg.max_steps or stop:
                break

            t0 = time.perf_counter()
            lr = set_lr(optimizer, step, cfg)
            loss_sum = _step(net, params, optimizer, next_batch, step, batch_gen, loss_fn, cfg, device, use_bf16, world)
            finite &= torch.isfinite(loss_sum)
            busy_steps += 1
            if step % cfg.log_interval == 0:
                # the only host sync of a training step, and only every log_interval (averaged over processes)
                loss_value = distributed.mean_over_ranks(loss_sum, world).item()
                if not math.isfinite(loss_value):
                    raise diverged(step + 1)
                busy += time.perf_counter() - t0
                history.steps.append(step)
                history.train_loss.append(loss_value)
                history.lr.append(lr)
                if tokens_per_step is not None:
                    history.tokens_per_s.append(tokens_per_step * busy_steps / busy)
                    bar.set_postfix(loss=f"{loss_value:.4f}", tok_s=f"{history.tokens_per_s[-1]:,.0f}", refresh=False)
                else:
                    bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
                busy, busy_steps = 0.0, 0
            else:
                busy += time.perf_counter() - t0
            step += 1
            bar.update(1)
        bar.close()
    if restore_best and best_weights is not None:
        with torch.no_grad():
            for n, p in trainable:
                p.copy_(best_weights[n])
    return history


def _step(net: nn.Module, params: list[torch.Tensor], optimizer, next_batch: Callable[[int, int, torch.Generator], Any],
          step: int, gen: torch.Generator, loss_fn: Callable[[nn.Module, Any], torch.Tensor], cfg: TrainConfig,
          device: torch.device, use_bf16: bool, world: World) -> torch.Tensor:
    """One optimizer update: accumulate grad_accum micro-batches' gradients, clip, step. Returns the mean loss (no sync)."""
    loss_sum = torch.zeros((), device=device)
    for micro in range(cfg.grad_accum):
        b = next_batch(step, micro, gen)
        # DDP all-reduces gradients in backward; between micro-batches that would be wasted traffic.
        last = micro == cfg.grad_accum - 1
        with net.no_sync() if world.size > 1 and not last else nullcontext():
            with autocast(device, use_bf16):
                loss = loss_fn(net, b)
            loss = loss / cfg.grad_accum  # gradients add up over micro-batches: average them
            loss.backward()
        loss_sum += loss.detach()
    if cfg.grad_clip > 0:
        nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum


def _restore(cfg: TrainConfig, model: nn.Module, optimizer, batch_gen, tokenizer, device, world: World = World(),
             head: dict[str, Any] | None = None) -> tuple[int, History, Any, dict[str, torch.Tensor] | None]:
    path = Path(cfg.ckpt_dir)
    meta = read_checkpoint_meta(path)
    if "train_state.pt" not in meta["files"]:
        raise CheckpointError(
            f"{path} holds weights but no train_state.pt (optimizer and random states), so the run cannot be resumed exactly; "
            "load it with load_checkpoint and start a new run instead"
        )
    saved_config = GPTConfig.from_dict(meta["model_config"]).to_dict()  # fields added since it was saved take their defaults
    if saved_config != model.config.to_dict():
        diff = {k: (v, model.config.to_dict().get(k)) for k, v in saved_config.items() if model.config.to_dict().get(k) != v}
        raise ValueError(f"cannot resume {path}: the model's config differs from the checkpoint's (checkpoint, model): {diff}")
    now = {"head": head, "lora": lora_config(model),
           "trainable": [n for n, p in model.named_parameters() if p.requires_grad]}
    for key, value in now.items():
        saved = meta.get(key, None if key != "trainable" else now["trainable"])
        if saved != value:
            raise ValueError(f"cannot resume {path}: its {key} is {str(saved)[:200]}, this model's is {str(value)[:200]}; "
                             "build (and freeze) the model as the checkpoint's run did, or start a new run")
    saved_tok = load_checkpoint_tokenizer(path, meta)
    if tokenizer is None:
        tokenizer = saved_tok
    elif saved_tok is not None and tokenizer_to_dict(tokenizer) != tokenizer_to_dict(saved_tok):
        raise ValueError(
            f"cannot resume {path}: the tokenizer given differs from the one the checkpoint was trained with "
            f"({meta['tokenizer'].get('type')}, {meta['tokenizer'].get('n_vocab')} tokens); token ids would mean different things"
        )
    old = meta.get("train_config") or {}
    changed = [k for k in ("batch_size", "lr", "min_lr", "warmup_steps", "lr_decay_steps", "weight_decay", "betas", "grad_clip",
                           "grad_accum", "seed")
               if k in old and old[k] != cfg.to_dict()[k]]
    if old.get("lr_decay_steps", 0) is None and cfg.lr_decay_steps is None and old.get("max_steps") != cfg.max_steps:
        changed.append("max_steps (with lr_decay_steps=None it sets the cosine's length)")
    if changed and world.is_main:
        warnings.warn(f"resuming {path} with changed settings {changed}: the run will not match an uninterrupted one", stacklevel=6)
    # names, shapes, dtypes and finiteness checked against this model's own state dict first
    weights = load_weights(path, meta, lambda _meta: {k: tuple(v.shape) for k, v in model.state_dict().items()})
    state = load_train_state(path / "train_state.pt")
    check_train_state(state, optimizer, path / "train_state.pt", meta["step"], trainable=dict(_trainable(model)))
    saved_world = state.get("world_size", 1)
    if saved_world != world.size:
        raise ValueError(
            f"cannot resume {path} with {world.size} process(es): it was trained by {saved_world}, and each process's batch "
            f"stream is part of the run; resume with the same number (torchrun --nproc_per_node={saved_world} ..., or plain "
            "python for 1), or start a new run from its weights with load_checkpoint"
        )
    model.load_state_dict(weights)
    optimizer.load_state_dict(state["optimizer"])
    try:
        _set_rng_state(state["rng_ranks"][world.rank] if world.size > 1 else state["rng"], batch_gen, device)
    except (RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path / 'train_state.pt'} holds random states this machine cannot use: {e}") from None
    return int(meta["step"]), History.from_dict(meta.get("history") or {}), tokenizer, state.get("best")


def _trainable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, parameter) of the parameters that train: the names best weights are saved under."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


__all__ = ["History", "TrainingDiverged", "estimate_loss", "fit", "lr_at", "make_optimizer", "set_lr", "train"]
