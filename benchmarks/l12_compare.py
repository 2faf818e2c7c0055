"""Lesson 12: the decoder-only GPT against the encoder-decoder at equal training compute, beyond the lesson's budget.

Two parts, each writing one results file that lesson 12 loads and tables:

  python benchmarks/l12_compare.py lr ed I [STEPS] -> benchmarks/results/l12_lr_ed_I.json (setting I of CHECK)
  python benchmarks/l12_compare.py seed gpt S  -> benchmarks/results/l12_seedS_gpt.json (S = 0, 1)
  python benchmarks/l12_compare.py seed ed S   -> benchmarks/results/l12_seedS_ed.json

`lr ed`: the encoder-decoder's own learning-rate / warm-up check, on dev only: does the
recipe both systems share (peak 2e-3, warm-up 200 steps, found in trial runs of the GPT)
hold the encoder-decoder back? Peak 1e-3, 2e-3, 4e-3 at warm-up 200, and warm-up
600 at 2e-3, each trained for a quarter of its equal-compute budget (seed 0); dev loss
on the 601 dev pairs and dev BLEU on the lesson's 200 dev sentences. `seed`: the
full-budget run of one system from another seed, with the shared recipe, scored as the
lesson scores its seed-0 run: dev loss with the true and with shuffled sources, dev
BLEU, and test BLEU / chrF once at the end (per-system bootstrap intervals, and BLEU
on the test sentences whose reference is also a training target and on the rest).

Budgets: the GPT trains 1,600 steps of 32 pairs; the encoder-decoder the number of
steps whose training FLOPs (forward + backward, counted by
gptlab.finetune.translation_step_flops) equal the GPT's. One thread, CPU time recorded.
The data, tokenizer and models are built exactly as in the lesson.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402  (benchmarks/results.py)

from gptlab import finetune, metrics, tasks  # noqa: E402
from gptlab.config import GPTConfig, TrainConfig  # noqa: E402
from gptlab.model import GPT  # noqa: E402
from gptlab.seq2seq import EncoderDecoder, Seq2SeqConfig  # noqa: E402
from gptlab.tokenizers import train_bpe  # noqa: E402

GPT_STEPS, BATCH, VOCAB, N_EMBD, N_HEAD = 1600, 32, 3000, 128, 4
CHAR_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{Han}| ?[^\s\p{L}\p{N}\p{Han}]+| ?\p{L}+| ?\p{N}+|\s+(?!\S)|\s+"""
LR, WARMUP = 2e-3, 200  # the shared recipe
CHECK = ((1e-3, 200), (2e-3, 200), (4e-3, 200), (2e-3, 600))  # (peak lr, warm-up) on dev


def data():
    """The lesson's split, tokenizer, examples and dev sentences."""
    pairs = tasks.translation_pairs()
    split = tasks.split_translation_pairs(pairs, test_pairs=1200, dev_pairs=600, seed=0)
    train, dev, test = split["train"], split["dev"], split["test"]
    tok = train_bpe("\n".join(f"{p.en}\n{p.zh}" for p in train), VOCAB,
                    special_tokens=tasks.TRANSLATION_SPECIAL_TOKENS, pattern=CHAR_PATTERN)
    refs = {}
    for name, rows in (("dev", dev), ("test", test)):
        refs[name] = {}
        for p in rows:
            refs[name].setdefault(p.en, []).append(p.zh)
    dev_src = [list(refs["dev"])[i * len(refs["dev"]) // 200] for i in range(200)]
    return dict(train=train, dev=dev, test=test, tok=tok, refs=refs, dev_src=dev_src)


def examples(system, tok, rows):
    make = tasks.decoder_only_example if system == "gpt" else tasks.encoder_decoder_example
    return [make(tok, p) for p in rows]


def model(system, seed):
    torch.manual_seed(seed)
    if system == "gpt":
        return GPT(GPTConfig(vocab_size=VOCAB, block_size=128, n_layer=6, n_head=N_HEAD, n_embd=N_EMBD))
    return EncoderDecoder(Seq2SeqConfig(vocab_size=VOCAB, block_size=64, n_encoder_layer=2, n_decoder_layer=3,
                                        n_head=N_HEAD, n_embd=N_EMBD))


def budgets(d):
    """Training FLOPs per step of each system and the encoder-decoder's equal-compute step count."""
    pad = d["tok"].special_tokens[tasks.END]
    flops = {s: finetune.translation_step_flops(model(s, 0), examples(s, d["tok"], d["train"]), BATCH, pad=pad)
             for s in ("gpt", "ed")}
    return flops, {"gpt": GPT_STEPS, "ed": round(GPT_STEPS * flops["gpt"] / flops["ed"])}


def train(system, d, steps, lr, warmup, seed):
    tok, pad = d["tok"], d["tok"].special_tokens[tasks.END]
    m = model(system, seed)
    cfg = TrainConfig(max_steps=steps, batch_size=BATCH, lr=lr, min_lr=lr / 20, warmup_steps=warmup, weight_decay=0.1,
                      grad_clip=1.0, seed=seed, device="cpu", bf16=False, progress=False)
    c0 = results.cpu_seconds()
    finetune.train_translation(m, examples(system, tok, d["train"]), cfg, pad=pad)
    cpu = results.cpu_seconds() - c0
    dev_loss = finetune.mean_loss(m, examples(system, tok, d["dev"]), pad=pad)
    hyps = tasks.translate(m, tok, d["dev_src"], max_new_tokens=48)
    dev_bleu = metrics.bleu(hyps, [d["refs"]["dev"][s] for s in d["dev_src"]], tokenize="zh")
    return m, {"steps": steps, "lr": lr, "warmup": warmup, "seed": seed, "train_cpu_s": round(cpu, 1),
               "dev_loss": round(dev_loss, 4), "dev_bleu": round(dev_bleu, 2)}


def bootstrap(stats, score, n=1000, seed=0):
    """Percentile 95% interval of one system's corpus score over resampled test sets."""
    g = torch.Generator().manual_seed(seed)
    vals = sorted(score(torch.bincount(torch.randint(0, len(stats), (len(stats),), generator=g),
                                       minlength=len(stats)).to(stats.dtype) @ stats) for _ in range(n))
    return [round(vals[int(0.025 * n)], 2), round(vals[int(0.975 * n) - 1], 2)]


def test_scores(m, d):
    """Test BLEU / chrF with intervals, and BLEU on the test sentences whose references overlap training targets."""
    src = list(d["refs"]["test"])
    refs = [d["refs"]["test"][s] for s in src]
    hyps = tasks.translate(m, d["tok"], src, max_new_tokens=48)
    train_zh = {p.zh for p in d["train"]}
    overlap = torch.tensor([any(r in train_zh for r in rs) for rs in refs])
    out = {"n_test": len(src), "n_overlap": int(overlap.sum()), "hyps": hyps}
    for metric in ("bleu", "chrf"):
        stats, score = metrics.corpus_stats(hyps, refs, metric)
        out[metric] = round(score(stats.sum(0)), 2)
        out[f"{metric}_ci"] = bootstrap(stats, score)
        out[f"{metric}_overlap"] = round(score(stats[overlap].sum(0)), 2)
        out[f"{metric}_clean"] = round(score(stats[~overlap].sum(0)), 2)
    return out


def main(argv):
    torch.set_num_threads(1)
    part, system = argv[0], argv[1]
    if part not in ("lr", "seed") or system not in ("gpt", "ed") or (part == "seed" and len(argv) != 3) \
            or (part == "lr" and (system != "ed" or len(argv) not in (3, 4))):
        raise SystemExit(__doc__)
    d = data()
    t0 = time.time()
    if part == "lr":  # one setting per process (they run side by side); STEPS skips the FLOP count when known
        quarter = int(argv[3]) if len(argv) == 4 else budgets(d)[1][system] // 4
        lr, wu = CHECK[int(argv[2])]
        figures = {"check_steps": quarter, "batch_size": BATCH, "run": train(system, d, quarter, lr, wu, 0)[1]}
        seeds = [0]
    else:
        seed = int(argv[2])
        flops, steps = budgets(d)
        figures = {"flops_per_step": flops, "steps": steps, "batch_size": BATCH}
        m, row = train(system, d, steps[system], LR, WARMUP, seed)
        pad = d["tok"].special_tokens[tasks.END]
        row["dev_loss_shuffled"] = round(finetune.mean_loss(m, examples(system, d["tok"], tasks.shuffled_sources(d["dev"])), pad=pad), 4)
        row.update(test_scores(m, d))
        figures.update(run=row)
        seeds = [seed]
    print(f"{part} {system}: {time.time() - t0:.0f} s wall", {k: v for k, v in figures["run"].items() if k != "hyps"}, flush=True)
    name = f"l12_lr_{system}_{argv[2]}" if part == "lr" else f"l12_seed{argv[2]}_{system}"
    results.write(name, figures, seeds=seeds, notes=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    main(sys.argv[1:])
