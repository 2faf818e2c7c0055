"""Lesson 11's from-scratch baseline at the pretrained model's budget: too long for the lesson.

notebooks/11_sentiment.ipynb compares a GPT fine-tuned from a pretrained body with the same GPT trained
from scratch on the labels alone. With the same 120 fine-tuning steps the comparison is unfair to the
scratch model: the pretrained one also had 240 pretraining steps. Here the scratch model gets a budget like
the pretrained model's: up to 600 steps of 32 sentences (3 epochs), and it is stopped early on validation
accuracy (an evaluation every 30 steps, patience 5: it stops after 150 steps without a better one, and
the best weights are kept). 600 steps were sized from the lesson's full run before this one (pretraining
129 CPU-s + one fine-tuning 34 CPU-s, at 0.27 CPU-s per fine-tuning step, evaluations included); measured
here, they cost less (each run's "cpu" in the results file), and 600 x 32 sentences of 32.2 tokens on
average are about 618,000 tokens, against pretraining's 240 x 32 x 96 = 737,280 + fine-tuning's ~124,000.
So the scratch model gets *less* than the pretrained one: a comparison that, if anything, favours pretraining.

Same data, split, tokenizer, model and learning rate as the lesson's full mode (SST-2's 6,385 train
sentences, 500 held out for validation, a 2,048-token BPE, a 4-layer GPT 96 wide, lr 2e-3 with 60 warm-up
steps and a cosine to 2e-4). Dev (GLUE's 872 sentences, the lesson's test set) is scored once per run,
after training; nothing is chosen by it. Each run's dev predictions are stored as a string of 0/1, so the
lesson can compute a paired bootstrap against its own models.

    python benchmarks/l11_scratch_budget.py           # seeds 0 and 1, at most ~6 CPU-minutes on one core
    python benchmarks/l11_scratch_budget.py --seed 1  # one seed (writes l11_scratch_budget_seed1): seeds in parallel processes
    python benchmarks/l11_scratch_budget.py --smoke   # seconds: checks the script (writes l11_scratch_budget_smoke)
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

torch.set_num_threads(1)
SEEDS = [int(sys.argv[sys.argv.index("--seed") + 1])] if "--seed" in sys.argv else [0, 1]
NAME = "l11_scratch_budget" + (f"_seed{SEEDS[0]}" if "--seed" in sys.argv else "")
LR, MAX_STEPS, EVAL_EVERY, PATIENCE, WARMUP = 2e-3, 600, 30, 5, 60
SMOKE = "--smoke" in sys.argv
if SMOKE:
    MAX_STEPS, EVAL_EVERY, WARMUP = 12, 4, 2

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
cfg = GPTConfig(vocab_size=tok.n_vocab, block_size=BLOCK, n_layer=4, n_head=4, n_embd=96, dropout=0.1)
figures: dict = {"setup": {"train": len(train_ids), "val": len(val_ids), "dev": len(dev_ids), "vocab": tok.n_vocab,
                           "model": "4 layers, 4 heads, 96 wide, block 96, dropout 0.1", "batch_size": 32, "lr": LR,
                           "warmup_steps": WARMUP, "max_steps": MAX_STEPS, "eval_interval": EVAL_EVERY, "patience": PATIENCE},
                 "runs": []}

for seed in SEEDS:
    torch.manual_seed(seed)
    model = GPTClassifier(GPT(cfg), 2, pool="last")
    freeze(model, "all")
    tcfg = TrainConfig(max_steps=MAX_STEPS, batch_size=32, lr=LR, min_lr=LR / 10, warmup_steps=WARMUP, eval_interval=EVAL_EVERY,
                       weight_decay=0.01, seed=seed, progress=False, device="cpu")
    t0 = time.process_time()
    hist = train_classifier(model, train_ids, val_ids, tcfg, patience=PATIENCE)
    cpu = time.process_time() - t0
    s = evaluate(model, dev_ids)
    run = {"seed": seed, "best_val": hist.best_accuracy, "best_step": hist.best_step, "stopped_early_at": hist.stopped_early_at,
           "last_step": hist.eval_steps[-1], "cpu": round(cpu, 1),
           "val_curve": [[st, round(a, 4)] for st, a in zip(hist.eval_steps, hist.dev_accuracy)],
           "dev_accuracy": s["accuracy"], "dev_macro_f1": s["macro_f1"], "confusion": s["confusion"],
           "dev_predictions": "".join(map(str, s["predictions"]))}
    figures["runs"].append(run)
    print({k: v for k, v in run.items() if k != "dev_predictions"}, flush=True)
    results.write(NAME + "_smoke" * SMOKE, figures, seeds=SEEDS[: len(figures["runs"])])
