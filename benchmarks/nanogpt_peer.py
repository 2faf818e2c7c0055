"""nanoGPT's model, optimizer and CPU training loop, re-stated for benchmarking (nanoGPT itself is not installed).

What is reproduced from karpathy/nanoGPT (model.py, train.py, the README's CPU
command for shakespeare-char), because it decides speed and quality:
- the model: pre-LN blocks, one fused qkv Linear, F.scaled_dot_product_attention
  with is_causal=True, exact (erf) nn.GELU, LayerNorm through F.layer_norm with an
  optional bias, a tied lm_head, GPT-2 init with the 1/sqrt(2 n_layer) c_proj
  scaling; train.py's default bias=False and the README's dropout=0.0;
- the optimizer: AdamW with decay 0.1 on >= 2-D tensors only, betas (0.9, 0.99),
  `fused` only on CUDA (so PyTorch's default on a CPU: a for-loop over the tensors, not for-each);
- the loop: fp32 on a CPU (nanoGPT's autocast context is a nullcontext there),
  linear warmup (it + 1) / (warmup + 1) then a cosine to min_lr, grad clip 1.0,
  an estimate of the train and val loss on 20 batches every 250 steps.
The code is written for this benchmark, not copied.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class NanoConfig:
    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False  # nanoGPT train.py's default


class _LayerNorm(nn.Module):
    def __init__(self, n: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class _Block(nn.Module):
    def __init__(self, c: NanoConfig) -> None:
        super().__init__()
        self.n_head = c.n_head
        self.ln_1 = _LayerNorm(c.n_embd, c.bias)
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.attn_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.ln_2 = _LayerNorm(c.n_embd, c.bias)
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.gelu = nn.GELU()
        self.mlp_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp_proj(self.gelu(self.c_fc(self.ln_2(x))))


class NanoGPT(nn.Module):
    def __init__(self, c: NanoConfig) -> None:
        super().__init__()
        self.config = c
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.h = nn.ModuleList([_Block(c) for _ in range(c.n_layer)])
        self.ln_f = _LayerNorm(c.n_embd, c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layer))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    def configure_optimizers(self, weight_decay: float, lr: float, betas: tuple[float, float], device_type: str):
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        extra = dict(fused=True) if device_type == "cuda" else {}
        return torch.optim.AdamW(groups, lr=lr, betas=betas, **extra)


def nano_lr(it: int, lr: float = 1e-3, min_lr: float = 1e-4, warmup: int = 100, decay_iters: int = 2000) -> float:
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def nano_batch(data: torch.Tensor, block: int, batch: int, g: torch.Generator):
    ix = torch.randint(len(data) - block, (batch,), generator=g)
    x = torch.stack([data[i : i + block] for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + block] for i in ix])
    return x, y


def nano_train(train_data: torch.Tensor, val_data: torch.Tensor, vocab_size: int, seed: int = 1337, max_iters: int = 2000,
               batch_size: int = 12, eval_interval: int = 250, eval_iters: int = 20, on_eval=None):
    """nanoGPT's README CPU run -> ([(step, CPU seconds, wall seconds, val loss)] at each evaluation, model).

    The seconds count from the start, evaluations included, as nanoGPT runs them.
    on_eval(step, model), if given, replaces nanoGPT's own estimate at each evaluation
    (benchmarks/l14_race.py scores every recipe with one estimator, off the clock); val is then nan."""
    torch.manual_seed(seed)
    c = NanoConfig(vocab_size=vocab_size)
    model = NanoGPT(c)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    g = torch.Generator().manual_seed(seed)
    out, c0, w0 = [], time.process_time(), time.perf_counter()
    for it in range(max_iters + 1):
        if on_eval is not None and (it % eval_interval == 0 or it == max_iters):
            on_eval(it, model)
            out.append((it, time.process_time() - c0, time.perf_counter() - w0, float("nan")))
        elif it % eval_interval == 0 or it == max_iters:
            model.eval()
            with torch.no_grad():  # nanoGPT estimates both splits
                losses = []
                for split in (train_data, val_data):
                    ge = torch.Generator().manual_seed(seed)
                    losses.append(sum(model(*nano_batch(split, c.block_size, batch_size, ge))[1].item() for _ in range(eval_iters))
                                  / eval_iters)
                val = losses[1]
            model.train()
            out.append((it, time.process_time() - c0, time.perf_counter() - w0, val))
        if it == max_iters:
            break
        for group in opt.param_groups:
            group["lr"] = nano_lr(it)
        x, y = nano_batch(train_data, c.block_size, batch_size, g)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return out, model
