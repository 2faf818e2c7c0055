"""How long it takes to picture every attention head of a GPT-2 124M-shaped model.

    python benchmarks/bench_viz.py [--tokens 128] [--naive-heads 3] [--device cpu]

Times gptlab's path — capture all 12 x 12 heads on 128 tokens, the overview
figure, the 12 per-layer grids, the offline HTML — rendered to PNG as a user
would export them. The peer is the naive way people write it first (and what
many tutorials show): one `plt.subplots` figure per head with the weight printed
in every cell. The peer is timed on a few heads and scaled to all 144 (it is
linear in heads; running all of it takes many minutes), printed side by side.

Weights are random (GPT-2's shapes, no download): rendering cost does not depend
on what the heads learned.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from gptlab import GPT, GPTConfig  # noqa: E402
from gptlab.attention import get_attention  # noqa: E402
from gptlab.device import get_device, seed_everything  # noqa: E402
from gptlab.viz import plot_layer, plot_overview, save_attention_html  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def naive_head_figure(w: torch.Tensor, tokens: list[str], path: Path) -> None:
    """The peer: a figure per head, every cell annotated with its weight."""
    T = w.size(0)
    fig, ax = plt.subplots(figsize=(12, 12))
    ax.imshow(w.numpy(), cmap="viridis")
    for i in range(T):
        for j in range(T):
            ax.text(j, i, f"{w[i, j].item():.2f}", ha="center", va="center", fontsize=2)
    ax.set_xticks(range(T))
    ax.set_xticklabels(tokens, rotation=90, fontsize=4)
    ax.set_yticks(range(T))
    ax.set_yticklabels(tokens, fontsize=4)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--naive-heads", type=int, default=3, help="heads to time the naive peer on (scaled to all)")
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    seed_everything(0)
    device = get_device(args.device)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = GPT(GPTConfig.from_preset("gpt2")).to(device).eval()
    L, H, T = model.config.n_layer, model.config.n_head, args.tokens
    ids = torch.randint(0, model.config.vocab_size, (T,))
    tokens = [f"tok{i}" for i in range(T)]
    print(f"GPT-2 124M shapes: {L} layers x {H} heads = {L * H} heads, {T} tokens, device {device.type}")

    get_attention(model, ids[:8])  # warm up (first-call allocations)
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        maps, t_capture = timed(lambda: get_attention(model, ids))
        maps.tokens = tokens

        def overview():
            fig = plot_overview(maps)
            fig.savefig(out / "overview.png", dpi=100)
            plt.close(fig)

        def grids():
            for layer in range(L):
                fig = plot_layer(maps, layer)
                fig.savefig(out / f"layer{layer}.png", dpi=100)
                plt.close(fig)

        _, t_overview = timed(overview)
        _, t_grids = timed(grids)
        html, t_html = timed(lambda: save_attention_html(maps, out / "view.html"))
        size_mb = html.stat().st_size / 1e6

        k = max(1, min(args.naive_heads, L * H))
        pairs = [(i // H, i % H) for i in range(k)]
        _, t_naive_k = timed(lambda: [naive_head_figure(maps.weights[a, b], tokens, out / f"naive{a}_{b}.png") for a, b in pairs])
        t_naive = t_naive_k / k * L * H

    ours = t_capture + t_overview + t_grids + t_html
    print(f"{'step':44s} {'seconds':>9s}")
    print(f"{'capture all weights (1 forward)':44s} {t_capture:9.2f}")
    print(f"{'overview figure, all heads (PNG)':44s} {t_overview:9.2f}")
    print(f"{'per-layer grids, 12 figures (PNG)':44s} {t_grids:9.2f}")
    print(f"{'offline HTML view (' + f'{size_mb:.1f} MB)':44s} {t_html:9.2f}")
    print(f"{'gptlab total':44s} {ours:9.2f}")
    print(f"{'naive peer: figure per head + cell text':44s} {t_naive:9.1f}  (measured {k} heads: {t_naive_k:.1f} s, x{L * H / k:.0f})")
    print(f"speed-up: {t_naive / ours:.0f}x")


if __name__ == "__main__":
    main()
