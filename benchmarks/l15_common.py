"""What lesson 15's benchmark scripts share with the lesson: its training loop and its data, verbatim.

The lesson defines the same `fit` in a cell (a dozen lines a reader should see); the scripts
`l15_scaling.py` and `l15_recall.py` run more seeds, steps and learning rates than fit in the
lesson's budget, so they must train exactly as the lesson does: seed 0 here reproduces the
lesson's own run.
"""

from __future__ import annotations

import time

import torch

from gptlab.data import get_batch, split_tokens
from gptlab.datasets import read_text
from gptlab.tokenizers import CharTokenizer
from gptlab.training import estimate_loss

T = 64  # the lesson's block size


def shakespeare():
    """(tokenizer, train ids, val ids): the lesson's character split of Tiny Shakespeare."""
    text = read_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)
    train, val = split_tokens(tok.encode(text), val_fraction=0.1)
    return tok, train, val


def fit(model, steps, batch_fn, *, lr=2e-3, warmup=20, eval_every=None, eval_fn=None, seed=0, on_eval=None):
    """The lesson's loop: AdamW at a constant lr after a linear warmup; returns [(step, cpu seconds, eval)].

    on_eval(model, step) is called at each evaluation (the recall script measures gradients there).
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    log, seconds = [], 0.0
    model.train()
    for step in range(1, steps + 1):
        t0 = time.process_time()
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, step / warmup)
        x, y = batch_fn(g)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seconds += time.process_time() - t0
        if eval_every and (step % eval_every == 0 or step == steps):
            log.append((step, seconds, eval_fn(model)))
            if on_eval:
                on_eval(model, step)
            model.train()
    return log


def val_loss_fn(val, fast=False):
    return lambda model: estimate_loss(model, {"val": val}, block_size=T, batch_size=32, eval_iters=4 if fast else 10)["val"]


def batch_fn(train, batch_size=16):
    return lambda g: get_batch(train, T, batch_size, g)
