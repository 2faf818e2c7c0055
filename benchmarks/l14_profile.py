"""Where a training step's CPU time goes: the speedrun preset against nanoGPT's model (torch.profiler, one thread).

Lesson 14 quotes it for what is left to gain once the race is run (benchmarks/l14_race.py):
the operators that take the most self CPU time in --steps steps of each recipe, after warm-up,
the speedrun as its preset trains (bf16 autocast where the CPU has it), nanoGPT in fp32.

    python benchmarks/l14_profile.py --steps 20   # -> results/l14_profile.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from l14_race import BLOCK, load_data  # noqa: E402
from nanogpt_peer import NanoConfig, NanoGPT, nano_batch  # noqa: E402
from results import write  # noqa: E402

from gptlab import GPT, GPTConfig  # noqa: E402
from gptlab.config import TrainConfig  # noqa: E402
from gptlab.data import get_batch  # noqa: E402
from gptlab.device import autocast, resolve_bf16  # noqa: E402
from gptlab.training import make_optimizer  # noqa: E402

GROUPS = {  # aten operator names -> what they are
    "matrix products": {"mm", "addmm", "bmm", "matmul", "linear"},
    "elementwise and reductions": {"mul", "add", "add_", "pow", "div", "sub", "neg", "relu", "where", "rsqrt", "mean",
                                   "sum", "cat", "_softmax", "_softmax_backward_data", "threshold_backward", "gelu",
                                   "gelu_backward", "mul_", "div_", "fill_", "all", "zero_", "native_layer_norm",
                                   "native_layer_norm_backward", "masked_fill", "masked_fill_"},
    "copies and dtype casts": {"copy_", "_to_copy", "clone", "empty_like", "contiguous"},
    "optimizer": {"_fused_adamw_", "_foreach_mul_", "_foreach_add_", "_foreach_lerp_", "_foreach_addcmul_",
                  "_foreach_sqrt", "_foreach_div_", "_foreach_addcdiv_", "_foreach_norm", "_foreach_mul", "lerp_", "addcmul_",
                  "addcdiv_", "sqrt"},
}


def step_fn(name: str, train_data):
    device = torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    if name == "nanoGPT":
        torch.manual_seed(0)
        model = NanoGPT(NanoConfig(vocab_size=65))
        opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")

        def step():
            _, loss = model(*nano_batch(train_data, BLOCK, 12, g))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step, 12
    cfg = TrainConfig.from_preset("speedrun")
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("speedrun"))
    opt = make_optimizer(model, cfg, device)
    bf16 = resolve_bf16(cfg.bf16, device)

    def step():
        x, y = get_batch(train_data, BLOCK, cfg.batch_size, g)
        with autocast(device, bf16):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, cfg.batch_size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    _, train_data, _ = load_data()
    figures = {}
    for name in ("speedrun", "nanoGPT"):
        step, batch = step_fn(name, train_data)
        for _ in range(3):
            step()
        c0 = time.process_time()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
        total_ms = 1000 * (time.process_time() - c0) / args.steps
        events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
        all_self = sum(e.self_cpu_time_total for e in events)
        top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
        groups = {g: 0.0 for g in [*GROUPS, "other"]}
        for e in events:
            op = e.key.replace("aten::", "")
            groups[next((g for g, names in GROUPS.items() if op in names), "other")] += e.self_cpu_time_total
        figures[name] = {
            "batch": batch, "ms_per_step_cpu": round(total_ms, 1),
            "share_by_group": {g: round(v / all_self, 3) for g, v in groups.items()},
            "top_ops": [[e.key, round(e.self_cpu_time_total / all_self, 3), e.count // args.steps] for e in top],
        }
        print(name, figures[name]["ms_per_step_cpu"], "ms/step;", figures[name]["share_by_group"])
        for row in figures[name]["top_ops"]:
            print("   ", row)
    write("l14_profile", figures, notes=f"torch.profiler, {args.steps} steps after 3 warm-up steps, one thread; shares "
          "are of the profiled self CPU time (the profiler's own overhead inflates ms_per_step)")


if __name__ == "__main__":
    main()
