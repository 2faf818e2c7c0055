"""Lesson 12's translation data and evaluation: the split, the prompt and loss masking,
stop-token decoding and the paired bootstrap."""


import pytest
import torch

from gptlab import finetune, metrics, seq2seq, tasks
from gptlab.config import GPTConfig
from gptlab.model import GPT
from gptlab.tokenizers import train_bpe

TSV = "\n".join(
    f"{en}\t{zh}\tCC-BY 2.0 (France) Attribution: tatoeba.org #{i} (a) & #{i + 1} (b)"
    for i, (en, zh) in enumerate(
        [("Hi.", "你好。"), ("Hi.", "嗨。"), ("Run.", "跑。"), ("Wait!", "等等！"), ("I see.", "我明白了。"),
         ("I see.", "我懂了。"), ("I see.", "我知道了。"), ("Go away.", "走开。"), ("Thanks.", "谢谢。"), ("Help!", "救命！"),
         ("Come here.", "过来。"), ("Who won?", "谁赢了？")] * 1
    )
)


def _pairs():
    return tasks.parse_translation_pairs(TSV)


def test_parse_rows_and_reject_bad_lines():
    pairs = _pairs()
    assert len(pairs) == 12 and pairs[0] == tasks.TranslationPair("Hi.", "你好。", pairs[0].attribution)
    assert pairs[0].attribution.startswith("CC-BY")
    with pytest.raises(ValueError, match="line 2"):
        tasks.parse_translation_pairs("Hi.\t你好。\tx\nno tabs here")


def test_traditional_filter():
    assert tasks.has_traditional("這個相機裡沒有膠片。")
    assert not tasks.has_traditional("这个相机里没有胶片。")
    # every listed character is traditional-only: none of them is its own simplified form
    assert len(set(tasks.TRADITIONAL_ONLY)) == len(tasks.TRADITIONAL_ONLY)


def test_split_by_source_is_disjoint_complete_and_deterministic():
    pairs = _pairs()
    s1 = tasks.split_translation_pairs(pairs, test_pairs=3, dev_pairs=2, seed=0)
    s2 = tasks.split_translation_pairs(list(pairs), test_pairs=3, dev_pairs=2, seed=0)
    assert s1 == s2
    srcs = {k: {p.en for p in v} for k, v in s1.items()}
    assert not (srcs["train"] & srcs["dev"]) and not (srcs["train"] & srcs["test"]) and not (srcs["dev"] & srcs["test"])
    assert sorted(map(repr, sum(s1.values(), []))) == sorted(map(repr, pairs))  # nothing lost or duplicated
    assert len(s1["test"]) >= 3 and len(s1["dev"]) >= 2
    # "I see." has three translations: wherever it goes, all three go together
    where = [k for k, v in s1.items() if any(p.en == "I see." for p in v)]
    assert len(where) == 1 and sum(p.en == "I see." for p in s1[where[0]]) == 3
    other = tasks.split_translation_pairs(pairs, test_pairs=3, dev_pairs=2, seed=1)
    assert other != s1  # the seed matters
    with pytest.raises(ValueError, match="test_pairs"):
        tasks.split_translation_pairs(pairs, test_pairs=0)
    with pytest.raises(ValueError, match="no training pairs"):
        tasks.split_translation_pairs(pairs, test_pairs=8, dev_pairs=4)


@pytest.fixture(scope="module")
def tok():
    text = "\n".join(p.en + "\n" + p.zh for p in _pairs())
    return train_bpe(text, 300, special_tokens=tasks.TRANSLATION_SPECIAL_TOKENS)


def test_prompt_format_and_target_only_mask(tok):
    pair = tasks.TranslationPair("Thanks.", "谢谢。", "")
    assert tasks.translation_text(pair) == "<|en|>Thanks.<|zh|>谢谢。<|end|>"
    prompt = tok.encode(tasks.translation_prompt(pair.en))
    target = tok.encode(pair.zh) + [tok.special_tokens["<|end|>"]]
    x, y = tasks.decoder_only_example(tok, pair)
    assert x + [y[-1]] == prompt + target  # one stream: source, separator, target
    # y[i] is the token after x[i]; only the Chinese tokens and <|end|> are counted
    assert y == [-100] * (len(prompt) - 1) + target
    assert y[len(prompt) - 2] == -100 and x[len(prompt) - 1] == tok.special_tokens["<|zh|>"]
    x2, y2 = tasks.decoder_only_example(tok, pair, target_only=False)
    assert x2 == x and y2 == (prompt + target)[1:]


def test_ignored_positions_do_not_change_the_loss(tok):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.n_vocab, block_size=32, n_layer=1, n_head=2, n_embd=16))
    pair = tasks.TranslationPair("Thanks.", "谢谢。", "")
    x, y = tasks.decoder_only_example(tok, pair)
    x, y = torch.tensor([x]), torch.tensor([y])
    logits, loss = model(x, y)
    keep = y[0] != -100
    manual = torch.nn.functional.cross_entropy(logits[0, keep], y[0, keep])
    torch.testing.assert_close(loss, manual)
    _, all_loss = model(x, torch.tensor([tasks.decoder_only_example(tok, pair, target_only=False)[1]]))
    assert not torch.isclose(loss, all_loss)


def test_encoder_decoder_example_uses_the_same_tokens(tok):
    pair = tasks.TranslationPair("Thanks.", "谢谢。", "")
    src, x, y = tasks.encoder_decoder_example(tok, pair)
    full = tok.encode(tasks.translation_text(pair))
    assert src + x + [y[-1]] == full and x[1:] == y[:-1]


def test_batches_pad_inputs_and_ignore_padded_targets(tok):
    ex = [tasks.decoder_only_example(tok, p) for p in _pairs()]
    gen = finetune.translation_batches(ex, 4, seed=0, pad=7)
    x, y = next(gen)
    assert x.shape == y.shape and x.shape[0] == 4
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        orig = next(e for e in ex if e[0] == row_x[: len(e[0])] and all(v == 7 for v in row_x[len(e[0]) :]))
        assert row_y[: len(orig[1])] == orig[1] and all(v == -100 for v in row_y[len(orig[1]) :])
    a = [t.tolist() for t in next(finetune.translation_batches(ex, 4, seed=3))]
    b = [t.tolist() for t in next(finetune.translation_batches(ex, 4, seed=3))]
    assert a == b


def test_source_mask():
    src = torch.tensor([[5, 6, 9, 9], [5, 9, 9, 9], [5, 6, 7, 8]])
    assert seq2seq.source_mask(src, 9).tolist() == [[True, True, False, False], [True, False, False, False], [True] * 4]


class _Chain(GPT):
    """A GPT whose next token is fixed by the last one (a lookup table), to test decoding without training."""

    def __init__(self, table, default, vocab):
        super().__init__(GPTConfig(vocab_size=vocab, block_size=32, n_layer=1, n_head=1, n_embd=8))
        self.table, self.default = table, default

    def forward(self, idx, targets=None, cache=None, last_only=False):
        if cache is not None:
            cache.advance(idx.size(1))
        logits = torch.full((idx.size(0), 1, self.config.vocab_size), -10.0)
        for b, last in enumerate(idx[:, -1].tolist()):
            logits[b, 0, self.table.get(last, self.default)] = 10.0
        return logits, None


def test_translate_stops_at_end_token(tok):
    end, zh_sep = tok.special_tokens["<|end|>"], tok.special_tokens["<|zh|>"]
    zh = tok.encode("走开。")
    assert len(set(zh)) == len(zh)
    garbage = tok.encode("x")[0]
    chain = [zh_sep, *zh, end]  # after <|zh|>: "走开。", then <|end|>, then garbage that must never appear
    model = _Chain(dict(zip(chain, chain[1:])), garbage, tok.n_vocab)
    assert tasks.translate(model, tok, ["Thanks.", "Hi.", "Go away."]) == ["走开。"] * 3
    assert tasks.translate(model, tok, ["Thanks."], num_beams=3) == ["走开。"]
    model.table.pop(zh[-1])  # never emits <|end|>: runs to max_new_tokens
    assert tasks.translate(model, tok, ["Hi."], max_new_tokens=len(zh) + 2) == ["走开。xx"]
    with pytest.raises(TypeError, match="list"):
        tasks.translate(model, tok, "Thanks.")


def _exact_stats(hyps, refs):
    """Exact-match accuracy as (correct, total) statistics per sentence."""
    return torch.tensor([[float(h == r), 1.0] for h, r in zip(hyps, refs)], dtype=torch.float64)


def _accuracy(total):
    return 100.0 * float(total[0] / total[1])


def test_paired_bootstrap():
    refs = [str(i) for i in range(200)]
    a = _exact_stats(refs[:100] + ["x"] * 100, refs)  # 50% exact
    b = _exact_stats(refs[:180] + ["x"] * 20, refs)  # 90% exact
    r = metrics.paired_bootstrap(a, b, _accuracy, n_samples=300, seed=0)
    assert r["a"] == 50.0 and r["b"] == 90.0 and r["diff"] == 40.0
    assert 25 < r["low"] < 40.0 < r["high"] < 55
    assert r["p_b_not_better"] == 0.0
    assert metrics.paired_bootstrap(a, b, _accuracy, n_samples=300, seed=0) == r  # seeded
    assert metrics.paired_bootstrap(a, b, _accuracy, n_samples=300, seed=1) != r
    same = metrics.paired_bootstrap(a, a, _accuracy, n_samples=100)
    assert same["low"] == same["high"] == 0.0 and same["p_b_not_better"] == 1.0
    # a small difference on few sentences: the interval includes 0
    c = _exact_stats(refs[:101] + ["x"] * 99, refs)
    small = metrics.paired_bootstrap(a, c, _accuracy, n_samples=300)
    assert small["low"] <= 0 < small["high"] and 0 < small["p_b_not_better"] < 1
    with pytest.raises(ValueError, match="equally long"):
        metrics.paired_bootstrap(a, b[:10], _accuracy)


def test_corpus_stats_sum_to_the_corpus_score():
    import sacrebleu

    hyps = ["我们在找他。", "他走了", "今天是几号？", "我爱这里的人们"]
    refs = [["我们在找他。"], ["他来了", "他走了。"], "今天几号？", ["我爱这里的人。"]]
    streams = [[r if isinstance(r, str) else r[0] for r in refs], [None, "他走了。", None, None]]
    stats, score = metrics.corpus_stats(hyps, refs, "bleu")
    assert stats.shape[0] == 4
    assert score(stats.sum(0)) == pytest.approx(sacrebleu.corpus_bleu(hyps, streams, tokenize="zh").score)
    stats, score = metrics.corpus_stats(hyps, refs, "chrf")
    assert score(stats.sum(0)) == pytest.approx(sacrebleu.corpus_chrf(hyps, streams).score)
    with pytest.raises(ValueError, match="metric"):
        metrics.corpus_stats(hyps, refs, "rouge")


@pytest.mark.parametrize("kind", ["gpt", "seq2seq"])
def test_training_lowers_the_loss_for_both_systems(tok, kind):
    from gptlab.config import TrainConfig
    from gptlab.seq2seq import EncoderDecoder, Seq2SeqConfig

    torch.manual_seed(0)
    pairs = _pairs()
    end = tok.special_tokens["<|end|>"]
    if kind == "gpt":
        model = GPT(GPTConfig(vocab_size=tok.n_vocab, block_size=48, n_layer=2, n_head=2, n_embd=32))
        ex = [tasks.decoder_only_example(tok, p) for p in pairs]
    else:
        model = EncoderDecoder(Seq2SeqConfig(vocab_size=tok.n_vocab, block_size=24, n_encoder_layer=1, n_decoder_layer=1,
                                             n_head=2, n_embd=32))
        ex = [tasks.encoder_decoder_example(tok, p) for p in pairs]
    before = finetune.mean_loss(model, ex, pad=end)
    seen = []
    cfg = TrainConfig(max_steps=40, batch_size=6, lr=3e-3, warmup_steps=2, progress=False)
    hist = finetune.train_translation(model, ex, cfg, dev_examples=ex, eval_every=20, pad=end, callback=lambda s, m: seen.append(s))
    assert seen == [20, 40] and hist.eval_steps == [20, 40]
    assert hist.dev_loss[-1] < 0.7 * before
    assert not model.training
    with pytest.raises(ValueError, match="block_size"):
        finetune.train_translation(model, [tuple([1] * 60 for _ in ex[0])], cfg)
    out = tasks.translate(model, tok, ["Thanks.", "Who won?"])
    assert len(out) == 2 and all(isinstance(o, str) and "<|end|>" not in o for o in out)


def test_translate_budgets_each_sentence_by_its_own_length_and_refuses_one_too_long(tok, monkeypatch):
    import re

    from gptlab.seq2seq import EncoderDecoder, Seq2SeqConfig

    garbage = tok.encode("x")[0]
    model = _Chain({}, garbage, tok.n_vocab).train()  # never emits <|end|>: every translation runs to its budget
    n_prompt = lambda s: len(tok.encode(tasks.translation_prompt(s)))  # noqa: E731
    longer = "Help!"
    while n_prompt(longer) < 24:
        longer += " Help!"
    short = ["Hi.", "Run."]
    alone = tasks.translate(model, tok, short, max_new_tokens=30)
    assert [len(tok.encode(t)) for t in alone] == [min(30, 32 - n_prompt(s)) for s in short]  # block_size 32
    assert tasks.translate(model, tok, short + [longer], max_new_tokens=30)[:2] == alone  # not cut by the long one
    assert model.training
    too_long = longer
    while n_prompt(too_long) < 32:
        too_long += " Help!"
    msg = f"sentence 2 ('Help! Help! Help! Help! Help! Help! Help'...) is {n_prompt(too_long)} tokens as a prompt, " \
          "more than the 31 the model's block_size of 32 allows; shorten or split it"
    with pytest.raises(ValueError, match=re.escape(msg)):
        tasks.translate(model, tok, short + [too_long])
    assert model.training
    assert tasks.translate(model, tok, []) == []

    def broken(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(tasks, "generate", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        tasks.translate(model, tok, short)
    assert model.training  # restored on error too
    ed = EncoderDecoder(Seq2SeqConfig(vocab_size=tok.n_vocab, block_size=8, n_encoder_layer=1, n_decoder_layer=1, n_head=2,
                                      n_embd=16))
    with pytest.raises(ValueError, match=r"sentence 0 \('Help! .*tokens as a source, more than the 8 the model's block_size"):
        tasks.translate(ed, tok, [too_long])
    assert ed.training


def test_shuffled_sources_keep_every_target_and_give_each_another_source():
    pairs = [tasks.TranslationPair(f"Sentence {i}.", f"句子{i}。", "") for i in range(30)]
    out = tasks.shuffled_sources(pairs, seed=0)
    assert [p.zh for p in out] == [p.zh for p in pairs]  # the targets, in order
    assert sorted(p.en for p in out) == sorted(p.en for p in pairs)  # every source used once
    assert all(o.en != p.en for o, p in zip(out, pairs))  # none keeps its own
    assert tasks.shuffled_sources(pairs, seed=0) == out and tasks.shuffled_sources(pairs, seed=1) != out
    with pytest.raises(ValueError, match="at least 2 pairs"):
        tasks.shuffled_sources(pairs[:1])


def test_step_flops_count_both_passes_and_leave_the_model_unchanged(tok):
    from gptlab.seq2seq import EncoderDecoder, Seq2SeqConfig

    end = tok.special_tokens["<|end|>"]
    pair = tasks.TranslationPair("Who won?", "谁赢了？", "")
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=tok.n_vocab, block_size=48, n_layer=2, n_head=2, n_embd=32))
    ex = [tasks.decoder_only_example(tok, pair)] * 8  # equal lengths: no padding, so FLOPs scale with the batch
    w = gpt.lm_head.weight.detach().clone()
    one, two = (finetune.translation_step_flops(gpt, ex, b, pad=end, n_batches=2) for b in (2, 4))
    assert two == pytest.approx(2 * one, rel=1e-6)
    T, C = len(ex[0][0]), 32
    # the linear layers alone: 2 FLOPs per multiply-add, forward + backward (grad of input and of weight) = 3x
    linear = 3 * 2 * 2 * T * (2 * 12 * C * C + tok.n_vocab * C)
    assert linear <= one < 1.2 * linear  # attention's T x T products add a little where torch counts them
    assert torch.equal(gpt.lm_head.weight, w) and all(p.grad is None for p in gpt.parameters())  # a count, not a step
    s2s = EncoderDecoder(Seq2SeqConfig(vocab_size=tok.n_vocab, block_size=24, n_encoder_layer=1, n_decoder_layer=1,
                                       n_head=2, n_embd=32))
    ed = finetune.translation_step_flops(s2s, [tasks.encoder_decoder_example(tok, pair)] * 8, 2, pad=end, n_batches=2)
    assert 0 < ed < one  # each stack sees only its own half of the tokens
    with pytest.raises(ValueError, match="n_batches"):
        finetune.translation_step_flops(gpt, ex, 2, pad=end, n_batches=0)
