"""One process of a small data-parallel run, for tests/test_distributed.py (which forks it) or torchrun:

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/_ddp_worker.py '{"out": "some/folder"}'

Every process builds the same tiny model and token stream and calls
gptlab.training.train, which finds RANK/WORLD_SIZE in the environment, joins
the gloo process group and wraps the model in DDP. Each rank writes what it saw
(its history and a fingerprint of its final weights) to OUT/rankR.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from gptlab.config import GPTConfig, TrainConfig
from gptlab.model import GPT
from gptlab.training import train

MODEL = dict(vocab_size=32, block_size=16, n_layer=1, n_head=2, n_embd=32, dropout=0.0)
PER_RANK_BATCH = 4


def tokens() -> tuple[torch.Tensor, torch.Tensor]:
    """A stream with structure to learn (a noisy counter), split into train and val."""
    g = torch.Generator().manual_seed(0)
    ids = (torch.arange(3000) * 3 + torch.randint(0, 3, (3000,), generator=g)) % MODEL["vocab_size"]
    return ids[:2700], ids[2700:]


def train_config(batch_size: int = PER_RANK_BATCH, **over) -> TrainConfig:
    base = dict(max_steps=6, batch_size=batch_size, grad_accum=2, lr=1e-2, min_lr=1e-3, warmup_steps=2, lr_decay_steps=6,
                eval_interval=3, eval_iters=2, log_interval=1, bf16=False, device="cpu", progress=False, seed=7)
    return TrainConfig(**{**base, **over})


def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**MODEL))


def main(spec: dict) -> None:
    torch.set_num_threads(1)  # two processes share two cores
    train_data, val_data = tokens()
    net = model()
    history = train(net, train_data, val_data, train_config(**spec.get("cfg", {})), resume=spec.get("resume", False))
    fingerprint = sum(float(p.detach().double().sum()) for p in net.parameters())
    rank = int(os.environ["RANK"])
    Path(spec["out"], f"rank{rank}.json").write_text(json.dumps({"history": history.to_dict(), "weights": fingerprint}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
