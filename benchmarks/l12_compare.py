"""Lesson 12: the decoder-only GPT against the encoder-decoder at equal training compute, beyond the lesson's budget.

Two parts, each run writing one results file that lesson 12 loads and tables:

  python benchmarks/l12_compare.py tune gpt|ed I  -> benchmarks/results/l12_tune_{gpt|ed}_I.json (I = 0, 1, 2)
  python benchmarks/l12_compare.py seed gpt|ed S  -> benchmarks/results/l12_seedS_{gpt|ed}.json (S = 1, 2)

`tune`: equal tuning effort on dev only. Each system is trained at its full
equal-compute budget from seed 0 (the tuning seed, the lesson's own run) with setting I
of TUNE (peak learning rate, warm-up steps): the recipe both systems shared before,
found in trial runs of the GPT, a longer warm-up, and a lower peak. Scored on the 601
dev pairs (loss) and the lesson's 200 dev sentences (BLEU); the test set is not read.
The setting with the lowest dev loss is the system's recipe (chosen by dev loss, the
more precise of the two dev measures, fixed before any run).
`seed`: the full-budget run of one system from another seed with its chosen recipe,
scored as the lesson scores its seed-0 run: dev loss with the true and with shuffled
sources, dev BLEU, and test BLEU / chrF once at the end (per-system bootstrap
intervals, and BLEU on the test sentences whose reference is also a training target and
on the rest). Seeds 1 and 2 were not used for tuning.

Budgets: the GPT trains 1,600 steps of 32 pairs; the encoder-decoder the number of
steps whose training FLOPs (forward + backward, counted by
gptlab.finetune.translation_step_flops) equal the GPT's. One thread, CPU time recorded.
The data, tokenizer and models are built exactly as in the lesson.
"""

from __future__ import annotations

import json
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
TUNE = ((2e-3, 200), (2e-3, 600), (1e-3, 200))  # (peak lr, warm-up steps), tried on dev from seed 0
RESULTS = Path(__file__).resolve().parent / "results"


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
        out[f"{metric}_ci"] = [round(v, 2) for v in metrics.bootstrap_interval(stats, score, n_samples=1000, seed=0)]
        out[f"{metric}_overlap"] = round(score(stats[overlap].sum(0)), 2)
        out[f"{metric}_clean"] = round(score(stats[~overlap].sum(0)), 2)
    return out


def chosen(system):
    """The tuned setting of `system`: the TUNE entry with the lowest dev loss (needs every tune file)."""
    runs = []
    for i in range(len(TUNE)):
        path = RESULTS / f"l12_tune_{system}_{i}.json"
        if not path.exists():
            raise SystemExit(f"{path.name} is missing: run `python benchmarks/l12_compare.py tune {system} {i}` first")
        runs.append(json.loads(path.read_text())["figures"]["run"])
    best = min(runs, key=lambda r: r["dev_loss"])
    return best["lr"], best["warmup"]


def main(argv):
    torch.set_num_threads(1)
    if len(argv) != 3 or argv[0] not in ("tune", "seed") or argv[1] not in ("gpt", "ed") or not argv[2].isdigit() \
            or (argv[0] == "tune" and int(argv[2]) >= len(TUNE)):
        raise SystemExit(__doc__)
    part, system, n = argv[0], argv[1], int(argv[2])
    lr, warmup = TUNE[n] if part == "tune" else chosen(system)
    d = data()
    t0 = time.time()
    flops, steps = budgets(d)
    figures = {"flops_per_step": flops, "steps": steps, "batch_size": BATCH}
    seed = 0 if part == "tune" else n
    m, row = train(system, d, steps[system], lr, warmup, seed)
    pad = d["tok"].special_tokens[tasks.END]
    row["dev_loss_shuffled"] = round(finetune.mean_loss(m, examples(system, d["tok"], tasks.shuffled_sources(d["dev"])), pad=pad), 4)
    if part == "seed":
        row.update(test_scores(m, d))
    figures.update(run=row)
    print(f"{part} {system} {n}: {time.time() - t0:.0f} s wall", {k: v for k, v in row.items() if k != "hyps"}, flush=True)
    name = f"l12_tune_{system}_{n}" if part == "tune" else f"l12_seed{n}_{system}"
    results.write(name, figures, seeds=[seed], notes=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    main(sys.argv[1:])
