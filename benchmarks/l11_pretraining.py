"""Lesson 11's pretraining experiments, too long for the lesson: does more pretraining help, at equal budget?

Same data, split, tokenizer, model and fine-tuning recipe as notebooks/11_sentiment.ipynb (its full mode):
SST-2's 6,385 train sentences (500 more held out for validation), a 2,048-token BPE, a 4-layer GPT 96 wide.

1. Pretrain the language model for 240 steps (the lesson's run), keeping snapshots at steps 0, 60, 120, 240.
2. Fine-tune all layers from each snapshot (120 steps, lr 1e-3, the lesson's recipe), seeds 0 and 1:
   accuracy against the amount of pretraining, a measured curve.
3. The from-scratch baseline at an equal CPU budget: the CPU seconds of pretraining + fine-tuning, up to
   600 steps (3 epochs), stopped early on validation accuracy (patience 5 evaluations of 30 steps), seeds 0, 1.
4. A learning-rate check on validation only (seed 0, 120 steps): scratch at 1e-3 / 2e-3 / 4e-3,
   pretrained all layers at 5e-4 / 1e-3 / 2e-3. Dev is never scored here.

Dev (GLUE's 872 sentences, the lesson's test set) is scored once per run of parts 2 and 3, after training;
nothing is chosen by it. Each run's dev predictions are stored (as a string of 0/1) so the lesson can
compute a paired bootstrap. The results file is rewritten after each part, so a stopped run keeps what is done.

    python benchmarks/l11_pretraining.py          # about 15 CPU-minutes on one core
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import results  # noqa: E402  (benchmarks/results.py)
import torch  # noqa: E402

from gptlab import GPT, GPTConfig  # noqa: E402
from gptlab.config import TrainConfig  # noqa: E402
from gptlab.finetune import GPTClassifier, evaluate, freeze, train_classifier  # noqa: E402
from gptlab.tasks import sst2  # noqa: E402
from gptlab.tokenizers import train_bpe  # noqa: E402
from gptlab.training import train  # noqa: E402

torch.set_num_threads(1)
SEEDS = [0, 1]
PRE_STEPS, FT_STEPS, FT_LR, SCRATCH_LR = 240, 120, 1e-3, 2e-3
SNAPSHOTS = [0, 60, 120, 240]
MATCHED_MAX_STEPS, MATCHED_EVAL, MATCHED_PATIENCE = 600, 30, 5
SMOKE = "--smoke" in sys.argv  # a seconds-long run of every part, to check the script (writes l11_pretraining_smoke)
if SMOKE:
    PRE_STEPS, FT_STEPS, SNAPSHOTS, MATCHED_MAX_STEPS, MATCHED_EVAL = 8, 8, [0, 2, 4, 8], 12, 4

# ---- the lesson's data, split, tokenizer and model (its full mode)
sentences, dev = sst2()
perm = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(0)).tolist()
val = [sentences[i] for i in perm[:500]]
train_rows = [sentences[i] for i in perm[500:]]
tok = train_bpe("\n".join(t for t, _ in train_rows), 2048, special_tokens=["<|endoftext|>"])
EOT, BLOCK = tok.n_vocab - 1, 96


def encode(rows):
    return [(tok.encode(t)[: BLOCK - 1] + [EOT], y) for t, y in rows]


train_ids, val_ids, dev_ids = encode(train_rows), encode(val), encode(dev)
if SMOKE:
    train_ids, val_ids, dev_ids = train_ids[:200], val_ids[:50], dev_ids[:50]
torch.manual_seed(0)
cfg = GPTConfig(vocab_size=tok.n_vocab, block_size=BLOCK, n_layer=4, n_head=4, n_embd=96, dropout=0.1)
figures: dict = {"setup": {"train": len(train_ids), "val": len(val_ids), "dev": len(dev_ids), "vocab": tok.n_vocab,
                           "model": "4 layers, 4 heads, 96 wide, block 96, dropout 0.1", "fine_tune_steps": FT_STEPS,
                           "fine_tune_lr": FT_LR, "batch_size": 32}}


def save(part: str) -> None:
    results.write("l11_pretraining" + "_smoke" * SMOKE, figures, seeds=SEEDS, notes=f"parts done: {part}")
    print(f"[{time.strftime('%H:%M:%S')}] wrote results after {part}", flush=True)


def finetune(state: dict | None, seed: int, lr: float, steps: int = FT_STEPS, *, eval_interval: int | None = None,
             patience: int = 3, warmup: int | None = None, score_dev: bool = True) -> dict:
    """The lesson's run(): a classifier on a body (random when state is None), all layers trained."""
    torch.manual_seed(seed)
    body = GPT(cfg)
    if state is not None:
        body.load_state_dict(state)
    model = GPTClassifier(body, 2, pool="last")
    freeze(model, "all")
    tcfg = TrainConfig(max_steps=steps, batch_size=32, lr=lr, min_lr=lr / 10, warmup_steps=warmup if warmup is not None else steps // 10,
                       eval_interval=eval_interval or steps // 4, weight_decay=0.01, seed=seed, progress=False, device="cpu")
    t0 = time.process_time()
    hist = train_classifier(model, train_ids, val_ids, tcfg, patience=patience)
    out = {"seed": seed, "lr": lr, "best_val": hist.best_accuracy, "best_step": hist.best_step,
           "stopped_early_at": hist.stopped_early_at, "last_step": hist.eval_steps[-1],
           "val_curve": [[s, round(a, 4)] for s, a in zip(hist.eval_steps, hist.dev_accuracy)]}
    if score_dev:
        s = evaluate(model, dev_ids)
        out.update(dev_accuracy=s["accuracy"], dev_macro_f1=s["macro_f1"], confusion=s["confusion"],
                   dev_predictions="".join(map(str, s["predictions"])))
    out["cpu"] = round(time.process_time() - t0, 1)
    print({k: v for k, v in out.items() if k not in ("dev_predictions", "val_curve")}, flush=True)
    return out


# ---- 1. pretraining with snapshots
stream = [i for ids, _ in train_ids for i in ids]
val_stream = [i for ids, _ in val_ids for i in ids]
pre_cfg = TrainConfig(max_steps=PRE_STEPS, batch_size=32, lr=2e-3, min_lr=2e-4, warmup_steps=PRE_STEPS // 20,
                      eval_interval=PRE_STEPS // 4, eval_iters=10, seed=0, progress=False, device="cpu")
torch.manual_seed(0)
lm = GPT(cfg)
snapshots: dict[int, dict] = {}
t0 = time.process_time()
lm_history = train(lm, stream, val_stream, pre_cfg, callback=lambda step, m, h: snapshots.__setitem__(step, {k: v.clone() for k, v in m.state_dict().items()}))
pre_cpu = time.process_time() - t0
figures["pretraining"] = {"steps": PRE_STEPS, "cpu": round(pre_cpu, 1), "tokens_per_step": 32 * BLOCK,
                          "val_loss": dict(zip(map(str, lm_history.eval_steps), [round(v, 3) for v in lm_history.eval_val_loss]))}
assert set(SNAPSHOTS) <= set(snapshots), sorted(snapshots)
save("pretraining")
if not SMOKE:  # for the lesson's author to try things on (checkpoints/ is git-ignored)
    from safetensors.torch import save_file
    Path("checkpoints/l11_snapshots").mkdir(parents=True, exist_ok=True)
    for step, state in snapshots.items():
        save_file({k: v.contiguous() for k, v in state.items()}, f"checkpoints/l11_snapshots/step{step}.safetensors")

# ---- 2. the lesson's headline row, from the last snapshot, then 3. scratch at an equal CPU budget
figures["curve"] = {str(PRE_STEPS): [finetune(snapshots[PRE_STEPS], s, FT_LR) for s in SEEDS]}
save("curve at 240")
ft_cpu = sum(r["cpu"] for r in figures["curve"][str(PRE_STEPS)]) / len(SEEDS)
figures["scratch_matched"] = {
    "budget_cpu": round(pre_cpu + ft_cpu, 1), "max_steps": MATCHED_MAX_STEPS, "eval_interval": MATCHED_EVAL,
    "patience": MATCHED_PATIENCE, "lr": SCRATCH_LR,
    "runs": [finetune(None, s, SCRATCH_LR, MATCHED_MAX_STEPS, eval_interval=MATCHED_EVAL, patience=MATCHED_PATIENCE, warmup=60)
             for s in SEEDS],
}
save("scratch at equal budget")

# ---- 2 (rest). the curve from the earlier snapshots (step 0: the random init the LM started from)
for step in SNAPSHOTS[:-1]:
    figures["curve"][str(step)] = [finetune(snapshots[step], s, FT_LR) for s in SEEDS]
    save(f"curve at {step}")

# ---- 4. learning rates, validation only
figures["lr_check"] = {
    "scratch": [finetune(None, 0, lr, score_dev=False) for lr in (1e-3, 2e-3, 4e-3)],
    "pretrained_all_layers": [finetune(snapshots[PRE_STEPS], 0, lr, score_dev=False) for lr in (5e-4, 1e-3, 2e-3)],
}
save("all")
