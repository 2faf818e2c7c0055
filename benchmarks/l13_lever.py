"""Lesson 13: is the small summarizer short of steps or short of text? Measured, not asserted.

Lesson 13 pretrains a 0.9M-parameter GPT on the 1,992 SciTLDR train abstracts for 300 steps
(0.9 epochs) and fine-tunes it for one epoch on the 1,992 (abstract, TLDR) pairs. Both curves
are still falling when they stop, so "the fix is more text, not more steps" needs a test:

- steps, same text: fine-tuning for 2 epochs of the 1,992 pairs (500 steps) instead of 1 (250);
  pretraining for 600 steps (1.8 epochs of the abstracts) instead of 300 (0.9), then 1 epoch;
- text, same steps: 250 fine-tuning steps on half the pairs (996 papers, 2 epochs) against
  250 on all 1,992 (1 epoch), from the 300-step pretraining.

Everything is scored on dev only (the lesson scores the test set once, at its end): the loss per
token on every dev abstract, the loss per summary token on the authors' TLDRs of 300 dev papers,
and ROUGE-1/2/L of greedy summaries (no repeated trigram) of the first 200 dev papers.
The recipe is the lesson's (its cells 'A GPT trained on abstracts' to 'The test set'); seed s
seeds the initialisation, the pretraining batches and the fine-tuning batches.

    python benchmarks/l13_lever.py --seed 0 --pretrain 300 --finetune 1992x250,996x250,1992x500
    python benchmarks/l13_lever.py --seed 0 --pretrain 600 --finetune 1992x250
    (and the same with --seed 1): one results file per fine-tuning,
    results/l13_lever_s{seed}_p{pretraining steps}_{papers}x{fine-tuning steps}.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402  (benchmarks/results.py)

from gptlab import GPT, GPTConfig  # noqa: E402
from gptlab.config import TrainConfig  # noqa: E402
from gptlab.finetune import answer_loss, train_summarization  # noqa: E402
from gptlab.generation import generate  # noqa: E402
from gptlab.metrics import rouge, words  # noqa: E402
from gptlab.tasks import TLDR_PROMPT, scitldr, tldr_example  # noqa: E402
from gptlab.tokenizers import train_bpe  # noqa: E402
from gptlab.training import train  # noqa: E402

EOT_TEXT = "<|endoftext|>"
PROMPT_LEN, ANSWER_LEN = 152, 56
BLOCK = PROMPT_LEN + ANSWER_LEN


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pretrain", type=int, default=300, help="pretraining steps")
    ap.add_argument("--finetune", default="1992x250", help="fine-tunings from that pretraining, PAPERSxSTEPS,...")
    ap.add_argument("--smoke", action="store_true", help="every run 30x shorter, nothing written (checks the script)")
    args = ap.parse_args()
    k = 30 if args.smoke else 1
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="rouge-score's default tokenizer")

    train_papers, dev_papers = scitldr("train"), scitldr("dev")
    tok = train_bpe("\n".join(p.abstract for p in train_papers), 2048, special_tokens=[EOT_TEXT])
    eot = tok.special_tokens[EOT_TEXT]
    pre_ids = torch.tensor([i for p in train_papers for i in tok.encode(p.abstract) + [eot]])
    dev_ids = torch.tensor([i for p in dev_papers for i in tok.encode(p.abstract) + [eot]])

    def prompt_ids(abstract: str) -> list[int]:
        prompt, _ = tldr_example(abstract, "x")
        tail = tok.encode(TLDR_PROMPT)
        body = tok.encode(prompt[: -len(TLDR_PROMPT)])[: PROMPT_LEN - len(tail)]
        return [eot] * (PROMPT_LEN - len(body) - len(tail)) + body + tail

    def answer_ids(summary: str) -> list[int]:
        _, answer = tldr_example("x", summary)
        return tok.encode(answer)[: ANSWER_LEN - 1] + [eot]

    train_pairs = [(prompt_ids(p.abstract), answer_ids(p.tldrs[0])) for p in train_papers]
    dev_pairs = [(prompt_ids(p.abstract), answer_ids(p.tldrs[0])) for p in dev_papers[:300]]
    rouge_papers = dev_papers[:200]
    config = GPTConfig(vocab_size=tok.n_vocab, block_size=BLOCK, n_layer=3, n_head=4, n_embd=128, dropout=0.1)

    @torch.no_grad()
    def stream_loss(model: GPT, ids: torch.Tensor) -> float:
        """Mean loss per token over every whole block of `ids` (deterministic, unlike sampled batches)."""
        model.eval()
        n = (len(ids) - 1) // BLOCK
        x, y = ids[: n * BLOCK].view(n, BLOCK), ids[1 : n * BLOCK + 1].view(n, BLOCK)
        total = sum(model(x[i : i + 32], y[i : i + 32])[1].item() * len(x[i : i + 32]) for i in range(0, n, 32))
        return total / n

    def dev_rouge(model: GPT) -> dict[str, float]:
        model.eval()
        outs = []
        for i in range(0, len(rouge_papers), 32):
            idx = torch.tensor([prompt_ids(p.abstract) for p in rouge_papers[i : i + 32]])
            rows = generate(model, idx, ANSWER_LEN, do_sample=False, stop_tokens=eot, no_repeat_ngram_size=3)
            for r in rows[:, PROMPT_LEN:].tolist():
                r = r[: r.index(eot)] if eot in r else r
                outs.append(tok.decode(r).strip())
        r = rouge([o or "." for o in outs], [list(p.tldrs) for p in rouge_papers])
        r["words"] = statistics.mean(len(words(o)) for o in outs)
        r["empty"] = sum(not o for o in outs) / len(outs)
        return {k: round(v, 3) for k, v in r.items()}

    def pretrain(steps: int, seed: int) -> GPT:
        torch.manual_seed(seed)
        model = GPT(config)
        cfg = TrainConfig(max_steps=steps, batch_size=8, lr=2e-3, min_lr=2e-4, warmup_steps=steps // 10,
                          eval_interval=max(1, steps), eval_iters=1, seed=seed, bf16=False, device="cpu", progress=False)
        train(model, pre_ids, dev_ids, cfg)
        return model

    def finetune(state: dict, pairs: list, steps: int, seed: int) -> tuple[GPT, list[float]]:
        model = GPT(config)
        model.load_state_dict(state)
        cfg = TrainConfig(max_steps=steps, batch_size=8, lr=1e-3, min_lr=1e-4, warmup_steps=steps // 10,
                          eval_interval=max(25, steps // 6), seed=seed, bf16=False, device="cpu", progress=False)
        hist = train_summarization(model, pairs, dev_pairs[:48], cfg, pad_id=eot)
        return model, [round(v, 4) for v in hist.dev_loss]

    # One pretraining, then one forked child per fine-tuning (each child one thread): on a shared 2-core
    # machine this is what lets the grid finish; the CPU seconds of every child are counted (RUSAGE_CHILDREN).
    c0 = results.cpu_seconds()
    lm = pretrain(args.pretrain // k, args.seed)
    state = {n: v.clone() for n, v in lm.state_dict().items()}
    pre_loss, pre_cpu = stream_loss(lm, dev_ids), results.cpu_seconds() - c0
    print(f"seed {args.seed} pretrain {args.pretrain}: dev-abstract loss {pre_loss:.3f} ({pre_cpu:.0f} CPU-s)", flush=True)
    plan = [tuple(int(v) for v in item.split("x")) for item in args.finetune.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="l13_lever_"))
    kids = []
    for j, (n_papers, ft_steps) in enumerate(plan):
        pid = os.fork()
        if pid == 0:
            try:
                torch.manual_seed(args.seed)
                c1 = results.cpu_seconds()
                model, curve = finetune(state, train_pairs[:n_papers], ft_steps // k, args.seed)
                row = {"seed": args.seed, "pretrain_steps": args.pretrain,
                       "pretrain_epochs": round(args.pretrain * 8 * BLOCK / len(pre_ids), 2),
                       "dev_abstract_loss": round(pre_loss, 4), "pretrain_cpu_seconds": round(pre_cpu, 1),
                       "finetune_papers": n_papers, "finetune_steps": ft_steps,
                       "finetune_epochs": round(ft_steps * 8 / n_papers, 2),
                       "dev_summary_loss": round(answer_loss(model, dev_pairs, pad_id=eot), 4),
                       "dev_summary_loss_curve_48": curve, "dev_rouge_200": dev_rouge(model)}
                row["finetune_cpu_seconds"] = round(results.cpu_seconds() - c1, 1)
                (tmp / f"{j}.json").write_text(json.dumps(row))
                print(row, flush=True)
                if not args.smoke:  # each fine-tuning writes its own file as soon as it ends
                    results.write(f"l13_lever_s{args.seed}_p{args.pretrain}_{n_papers}x{ft_steps}",
                                  {"run": row, "prompt_len": PROMPT_LEN, "answer_len": ANSWER_LEN,
                                   "dev_summary_pairs": len(dev_pairs), "dev_rouge_papers": len(rouge_papers)},
                                  seeds=[args.seed], notes="dev only; cpu_seconds: this fine-tuning and its scoring "
                                  "(the pretraining's CPU time is the row's pretrain_cpu_seconds)")
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    runs = [json.loads((tmp / f"{j}.json").read_text()) for j in range(len(plan)) if (tmp / f"{j}.json").exists()]
    print(f"{len(runs)} of {len(plan)} fine-tunings finished", flush=True)


if __name__ == "__main__":
    main()
