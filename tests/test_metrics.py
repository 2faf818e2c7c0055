"""gptlab.metrics: equal to sacreBLEU / rouge-score, sliding-window perplexity, n-gram statistics, bad inputs."""

from __future__ import annotations

import math
import warnings

import pytest
import sacrebleu
import torch
from rouge_score import rouge_scorer
from torch.nn import functional as F

from gptlab import metrics as M
from gptlab.config import GPTConfig
from gptlab.model import GPT
from gptlab.tokenizers import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


HYPS = [
    "the cat sat on the mat",
    "there is a cat on the mat today",
    "a dog barked loudly at the postman",
]
REFS2 = [  # two references per hypothesis
    ["the cat is on the mat", "a cat sat on the mat"],
    ["there is a cat on the mat", "the cat lies on the mat"],
    ["the dog barked at the mailman", "a dog was barking at the postman loudly"],
]


# ----------------------------------------------------------------------------- BLEU / chrF against sacreBLEU


def test_bleu_multi_reference_equals_sacrebleu():
    streams = [[r[0] for r in REFS2], [r[1] for r in REFS2]]
    want = sacrebleu.corpus_bleu(HYPS, streams).score
    assert M.bleu(HYPS, REFS2) == pytest.approx(want, abs=1e-12)
    # a second reference can only add matches: multi-reference BLEU >= single-reference BLEU
    assert M.bleu(HYPS, REFS2) > M.bleu(HYPS, [r[0] for r in REFS2])


def test_bleu_variable_number_of_references_equals_sacrebleu():
    refs = [REFS2[0], [REFS2[1][0]], REFS2[2]]  # the middle hypothesis has one reference
    streams = [[r[0] for r in refs], [REFS2[0][1], "", REFS2[2][1]]]  # sacreBLEU: '' marks a missing reference
    assert M.bleu(HYPS, refs) == pytest.approx(sacrebleu.corpus_bleu(HYPS, streams).score, abs=1e-12)


def test_bleu_single_references_as_plain_strings():
    refs = [r[0] for r in REFS2]
    assert M.bleu(HYPS, refs) == pytest.approx(sacrebleu.corpus_bleu(HYPS, [refs]).score, abs=1e-12)
    assert M.bleu(["the cat is on the mat"], ["the cat is on the mat"]) == pytest.approx(100.0)


def test_bleu_empty_hypothesis_equals_sacrebleu():
    hyps = ["", HYPS[1], HYPS[2]]
    streams = [[r[0] for r in REFS2]]
    got = M.bleu(hyps, [r[0] for r in REFS2])
    assert got == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score, abs=1e-12)
    assert got < M.bleu(HYPS, [r[0] for r in REFS2])  # a missing translation costs (brevity penalty)
    assert M.bleu([""], ["a reference"]) == 0.0


def test_bleu_and_chrf_unicode_equal_sacrebleu():
    hyps = ["Das Mädchen isst einen Apfel.", "Ça coûte très cher, n'est-ce pas ?", "Ὁ βίος βραχύς"]
    refs = [["Das Mädchen isst den Apfel.", "Ein Mädchen isst einen Apfel."], ["Ça coûte cher, non ?"], ["ὁ βίος βραχύς, ἡ δὲ τέχνη μακρή"]]
    streams = [[r[0] for r in refs], [refs[0][1], None, None]]
    assert M.bleu(hyps, refs) == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score, abs=1e-12)
    assert M.chrf(hyps, refs) == pytest.approx(sacrebleu.corpus_chrf(hyps, streams).score, abs=1e-12)
    assert M.chrf(hyps, refs, word_order=2) == pytest.approx(sacrebleu.corpus_chrf(hyps, streams, word_order=2).score, abs=1e-12)


def test_bleu_chinese_uses_zh_tokenizer():
    hyps = ["我们今天去公园散步。", "他喜欢喝茶。"]
    refs = [["我们今天去公园散步了。", "今天我们去公园散步。"], ["他很喜欢喝茶。"]]
    streams = [[r[0] for r in refs], [refs[0][1], None]]
    got = M.bleu(hyps, refs, tokenize="zh")
    assert got == pytest.approx(sacrebleu.corpus_bleu(hyps, streams, tokenize="zh").score, abs=1e-12)
    with pytest.warns(UserWarning, match="tokenize='zh'"):
        as_words = M.bleu(hyps, refs)  # 13a: each unspaced sentence is (almost) one word
    assert as_words == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score, abs=1e-12)
    assert got > 30 and as_words < got
    assert M.chrf(hyps, refs) == pytest.approx(sacrebleu.corpus_chrf(hyps, streams).score, abs=1e-12)


def test_chrf_multi_reference_equals_sacrebleu():
    streams = [[r[0] for r in REFS2], [r[1] for r in REFS2]]
    assert M.chrf(HYPS, REFS2) == pytest.approx(sacrebleu.corpus_chrf(HYPS, streams).score, abs=1e-12)


# ----------------------------------------------------------------------------- ROUGE against rouge-score


def _rouge_by_hand(hyps, refs):
    """Max over references per metric (SciTLDR), then the mean over hypotheses, x100."""
    sc = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    out = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for h, rs in zip(hyps, refs):
        scores = [sc.score(r, h) for r in ([rs] if isinstance(rs, str) else rs)]
        for k in out:
            out[k] += max(s[k].fmeasure for s in scores)
    return {k: 100 * v / len(hyps) for k, v in out.items()}


def test_rouge_multi_reference_is_max_over_references():
    got = M.rouge(HYPS, REFS2)
    want = _rouge_by_hand(HYPS, REFS2)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12)
    single = M.rouge(HYPS, [r[1] for r in REFS2])
    assert all(got[k] >= single[k] for k in got)


def test_rouge_stems_and_handles_empty_hypothesis():
    assert M.rouge(["the models were trained"], ["the model was training"])["rouge1"] == pytest.approx(
        100 * rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
            .score("the model was training", "the models were trained")["rouge1"].fmeasure
    )
    got = M.rouge(["", HYPS[0]], [REFS2[0], REFS2[0]])
    want = _rouge_by_hand(["", HYPS[0]], [REFS2[0], REFS2[0]])
    assert got == pytest.approx(want)
    assert M.rouge([""], ["anything at all"]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_rouge_unicode_drops_non_ascii_like_rouge_score_and_warns():
    hyps = ["Le café est très bon", "我们去公园"]
    refs = ["Le café était bon", "我们去公园"]
    with pytest.warns(UserWarning, match="non-ASCII"):
        got = M.rouge(hyps, refs)
    assert got == pytest.approx(_rouge_by_hand(hyps, refs))
    with pytest.warns(UserWarning, match="non-ASCII"):
        assert M.rouge(["我们去公园"], ["我们去公园"])["rouge1"] == 0.0  # every character dropped: identical texts score 0


def test_rouge_custom_tokenizer_scores_chinese():
    class Chars:
        def tokenize(self, text):
            return [c for c in text if not c.isspace()]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert M.rouge(["我们去公园"], ["我们去公园"], tokenizer=Chars())["rougeL"] == pytest.approx(100.0)


# ----------------------------------------------------------------------------- diversity, repetition, memorization


def test_distinct_n_counts_pooled_ngrams():
    assert M.distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert M.distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)  # ab, bc, ab, bd
    assert M.distinct_n([[1, 2, 1, 2]], 2) == pytest.approx(2 / 3)
    assert M.distinct_n(["x", "a b"], 2) == 1.0  # a text shorter than n adds nothing


def test_repetition_rate():
    assert M.repetition_rate("a b a b a b", 2) == pytest.approx(3 / 5)  # ab ba [ab ba ab]
    assert M.repetition_rate("one two three four", 1) == 0.0
    assert M.repetition_rate(torch.tensor([5, 5, 5, 5]), 1) == pytest.approx(3 / 4)
    assert M.repetition_rate(list("abcabc"), 3) == pytest.approx(1 / 4)  # abc bca cab [abc]


def test_self_bleu_equals_mean_sentence_bleu_against_the_others():
    texts = ["the cat sat on the mat", "the cat sat on a mat", "a dog ran in the park", "the dog sat on the mat"]
    want = sum(sacrebleu.sentence_bleu(t, texts[:i] + texts[i + 1 :]).score for i, t in enumerate(texts)) / len(texts)
    assert M.self_bleu(texts) == pytest.approx(want, abs=1e-12)
    assert M.self_bleu(["same words here ok", "same words here ok"]) == pytest.approx(100.0)
    assert M.self_bleu(texts, n=2) > M.self_bleu(texts, n=4)  # fewer long n-grams are shared


def test_memorized_fraction():
    corpus = "to be or not to be that is the question"
    assert M.memorized_fraction(["to be or not"], corpus, n=2) == 1.0
    assert M.memorized_fraction(["to be or maybe"], corpus, n=2) == pytest.approx(2 / 3)
    assert M.memorized_fraction(["to be or maybe", "the question"], corpus, n=2) == pytest.approx(3 / 4)
    assert M.memorized_fraction([list("to bee")], list(corpus), n=4) == pytest.approx(2 / 3)  # "to b" "o be" ["  bee"]


def test_memorized_fraction_indexes_a_large_corpus_once():
    words = [f"w{i % 5000}" for i in range(200_000)]  # ~1 MB of text
    corpus = " ".join(words)
    M._corpus_index.cache_clear()
    sample = " ".join(words[100:140])
    assert M.memorized_fraction([sample], corpus, n=8) == 1.0
    assert M.memorized_fraction([sample + " zzz"], corpus, n=8) == pytest.approx(33 / 34)
    info = M._corpus_index.cache_info()
    assert (info.misses, info.hits) == (1, 1)


# ----------------------------------------------------------------------------- perplexity and bits per character


def tiny_gpt(block: int = 16, dropout: float = 0.0) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("tiny", block_size=block, dropout=dropout)).eval()


def _ids(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 96, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("stride", [None, 1, 5, 16])
def test_perplexity_of_short_text_is_the_plain_full_context_loss(stride):
    model = tiny_gpt(block=16)
    for n in (2, 9, 17):  # 17 tokens = 16 inputs + 1: exactly one window
        ids = _ids(n)
        _, loss = model(ids[None, :-1], ids[None, 1:])
        assert M.perplexity(model, ids, stride=stride) == pytest.approx(math.exp(loss.item()), rel=1e-6)
        with torch.no_grad():
            logits, _ = model(ids[None, :-1])
        nll = F.cross_entropy(logits[0], ids[1:], reduction="none").double()  # per-token, summed in float64
        assert M.perplexity(model, ids, stride=stride) == pytest.approx(math.exp(nll.mean().item()), rel=1e-12)


def _hand_nll_full_context(model, ids):
    """Each token t >= 1 predicted from its last block_size tokens, one forward per token."""
    block = model.config.block_size
    out = []
    with torch.no_grad():
        for t in range(1, len(ids)):
            logits, _ = model(ids[None, max(0, t - block) : t])
            out.append(-F.log_softmax(logits[0, -1].double(), -1)[ids[t]].item())
    return out


def _hand_nll_strided(model, ids, stride):
    """Hugging Face's sliding-window recipe ("Perplexity of fixed-length models"), the last window aligned to the end."""
    block = model.config.block_size
    out, prev_end, seq_len = [], 0, len(ids) - 1  # prev_end counts scored targets
    with torch.no_grad():
        for begin in range(0, seq_len, stride):
            end = min(begin + block, seq_len)
            begin = end - min(block, end)  # the last window ends at the text's end and is a full block
            new = end - prev_end
            logits, _ = model(ids[None, begin:end])
            logp = F.log_softmax(logits[0].double(), -1)
            targets = ids[begin + 1 : end + 1]
            out += [-logp[j, targets[j]].item() for j in range(end - begin - new, end - begin)]
            prev_end = end
            if end == seq_len:
                break
    return out


def test_perplexity_long_text_matches_hand_loops():
    model = tiny_gpt(block=16)
    ids = _ids(70)
    full = _hand_nll_full_context(model, ids)
    assert len(full) == 69
    got = M.token_nlls(model, ids)
    torch.testing.assert_close(got, torch.tensor(full, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    assert M.perplexity(model, ids) == pytest.approx(math.exp(sum(full) / len(full)), rel=1e-5)
    for stride in (1, 3, 7, 16):
        hand = _hand_nll_strided(model, ids, stride)
        assert len(hand) == 69
        for bs in (1, 4, 100):
            torch.testing.assert_close(M.token_nlls(model, ids, stride=stride, batch_size=bs), torch.tensor(hand, dtype=torch.float64),
                                       rtol=1e-5, atol=1e-5)
    # stride = block_size: non-overlapping windows, so tokens right after a window boundary get no context
    assert M.perplexity(model, ids, stride=16) != pytest.approx(M.perplexity(model, ids), rel=1e-9)


def test_perplexity_eval_mode_no_grad_and_mode_restored():
    model = tiny_gpt(block=16, dropout=0.5)
    ids = _ids(40)
    want = M.perplexity(model, ids, stride=4)  # eval mode: deterministic
    model.train()
    assert M.perplexity(model, ids, stride=4) == want  # dropout off inside, and the same value
    assert model.training
    model.eval()
    M.perplexity(model, ids)
    assert not model.training
    assert not M.token_nlls(model, ids).requires_grad


def test_bits_per_char_is_log2_perplexity_for_a_char_model_and_counts_characters_otherwise():
    text = "First Citizen: we are accounted poor citizens."
    tok = CharTokenizer.from_text(text)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.n_vocab, block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    ids = tok.encode(text)
    assert M.bits_per_char(model, text, tok) == pytest.approx(math.log2(M.perplexity(model, ids)), rel=1e-12)

    class Pairs:  # two characters per token: half as many tokens, same text
        def __init__(self, text):
            self.vocab = sorted({text[i : i + 2] for i in range(0, len(text), 2)})

        def encode(self, s):
            return [self.vocab.index(s[i : i + 2]) for i in range(0, len(s), 2)]

        def decode(self, ids):
            return "".join(self.vocab[i] for i in ids)

    pairs = Pairs(text)
    torch.manual_seed(0)
    model2 = GPT(GPTConfig(vocab_size=len(pairs.vocab), block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    nll = M.token_nlls(model2, pairs.encode(text))
    assert M.bits_per_char(model2, text, pairs) == pytest.approx(nll.sum().item() / math.log(2) / (len(text) - 2), rel=1e-12)


# ----------------------------------------------------------------------------- bad inputs


def test_reference_metrics_reject_bad_inputs():
    for fn in (M.bleu, M.chrf, M.rouge):
        with pytest.raises(TypeError, match="list of strings"):
            fn("a hypothesis", ["a reference"])
        with pytest.raises(ValueError, match="empty"):
            fn([], [])
        with pytest.raises(ValueError, match="2 entries but there are 1 hypotheses"):
            fn(["a"], ["a", "b"])
        with pytest.raises(ValueError, match=r"references\[0\] is empty"):
            fn(["a"], [[]])
        with pytest.raises(TypeError, match=r"hypotheses\[1\] must be a str"):
            fn(["a", 3], ["a", "b"])
        with pytest.raises(TypeError, match=r"references\[0\]\[1\] must be a str"):
            fn(["a"], [["a", None]])
        with pytest.raises(TypeError, match="references must be a list"):
            fn(["a"], "a")
    with pytest.raises(ValueError, match="unknown tokenize='zh-cn'"):
        M.bleu(["a"], ["a"], tokenize="zh-cn")
    with pytest.raises(ValueError, match="word_order"):
        M.chrf(["a"], ["a"], word_order=-1)
    with pytest.raises(TypeError, match="tokenize"):
        M.rouge(["a"], ["a"], tokenizer=str)


def test_ngram_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        M.distinct_n(["a b"], 0)
    with pytest.raises(TypeError, match="texts must be a list"):
        M.distinct_n("a b c", 1)
    with pytest.raises(ValueError, match="texts is empty"):
        M.distinct_n([], 1)
    with pytest.raises(ValueError, match="no text has 3"):
        M.distinct_n(["a b"], 3)
    with pytest.raises(ValueError, match="fewer than 2 tokens"):
        M.repetition_rate("word", 2)
    with pytest.raises(TypeError, match="text_or_ids must be a str"):
        M.repetition_rate(42, 1)
    with pytest.raises(ValueError, match="at least 2 texts"):
        M.self_bleu(["only one"])
    with pytest.raises(ValueError, match="corpus is empty"):
        M.memorized_fraction(["a b"], "   ", n=1)
    with pytest.raises(ValueError, match="no text has 8"):
        M.memorized_fraction(["a b"], "a b c", n=8)


def test_perplexity_rejects_bad_inputs():
    model = tiny_gpt(block=16)
    with pytest.raises(ValueError, match="at least 2"):
        M.perplexity(model, [3])
    with pytest.raises(ValueError, match="1-D tensor"):
        M.perplexity(model, torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        M.perplexity(model, torch.zeros(5))
    with pytest.raises(TypeError, match="encode text"):
        M.perplexity(model, ["a", "b"])
    with pytest.raises(TypeError, match="ids must be"):
        M.perplexity(model, "some text")
    with pytest.raises(TypeError, match="model must be"):
        M.perplexity(lambda x: x, [1, 2])
    for stride in (0, 17, 2.0, True):
        with pytest.raises(ValueError, match="stride must be None or an integer in"):
            M.perplexity(model, [1, 2, 3], stride=stride)
    with pytest.raises(ValueError, match="batch_size"):
        M.perplexity(model, [1, 2, 3], batch_size=0)
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(TypeError, match="text must be a str"):
        M.bits_per_char(model, [1, 2], tok)
    with pytest.raises(ValueError, match="at least 2"):
        M.bits_per_char(model, "a", tok)
    with pytest.raises(TypeError, match="encode/decode"):
        M.bits_per_char(model, "abc", object())


# ----------------------------------------------------------------------------- lesson 10's judge model


def test_judge_model_uses_the_speedrun_recipe_saved_under_its_own_name_and_loaded_not_retrained(tmp_path, monkeypatch):
    from gptlab import course
    from gptlab import training as T
    from gptlab.checkpoint import save_checkpoint

    monkeypatch.setenv("GPTLAB_CHECKPOINT_DIR", str(tmp_path))
    chars = "".join(chr(c) for c in range(40, 105))  # 65 characters, as Tiny Shakespeare
    monkeypatch.setattr("gptlab.datasets.read_text", lambda name: chars * 20)
    calls = []

    def fake_train(model, tr, va, cfg, **kw):
        calls.append((model.config.pos_emb, model.config.norm, cfg.preset, cfg.schedule, cfg.max_steps, cfg.seed, cfg.ckpt_dir))
        save_checkpoint(cfg.ckpt_dir, model, tokenizer=kw["tokenizer"], step=cfg.max_steps, history=T.History())
        return T.History()

    monkeypatch.setattr(T, "train", fake_train)
    judge, tok, _ = course.judge_model(fast=True)
    assert judge.config == GPTConfig.from_preset("speedrun") and tok.n_vocab == 65
    assert calls == [("rotary", "rmsnorm", "speedrun", "wsd", 120, 2024, str(tmp_path / "shakespeare-char-judge-fast"))]
    # the second call loads what the first saved, and the full judge lives elsewhere
    monkeypatch.setattr(T, "train", lambda *a, **k: pytest.fail("retrained although a checkpoint exists"))
    again, _, _ = course.judge_model(fast=True)
    torch.testing.assert_close(again.lm_head.weight, judge.lm_head.weight)
    assert not (tmp_path / "shakespeare-char-judge").exists() and not (tmp_path / "shakespeare-char-fast").exists()
    # the full judge trains the speedrun preset's own steps
    monkeypatch.setattr(T, "train", fake_train)
    course.judge_model(fast=False)
    assert calls[-1][4] == 850 and calls[-1][6] == str(tmp_path / "shakespeare-char-judge")


# ----------------------------------------------------------------------------- non-words, bootstrap intervals, Spearman


def test_nonword_rate_counts_words_missing_from_the_corpus_pooled_over_texts():
    corpus = "To be, or not to be: that is the question.\nWhether 'tis nobler"
    assert M.nonword_rate(["to be or not"], corpus) == 0.0
    assert M.nonword_rate(["To winge or BE"], corpus) == 0.25  # lowercased, punctuation dropped
    assert M.nonword_rate(["grasin allout", "to be"], corpus) == 0.5  # pooled: 2 of 4 words
    assert M.nonword_rate(["'tis"], corpus) == 0.0  # words() splits "'tis" into "tis", in both


@pytest.mark.parametrize("texts, corpus, err, match", [
    ("to be", "to be", TypeError, "list of str"),
    ([], "to be", ValueError, "texts is empty"),
    (["to be"], "  ", ValueError, "corpus must be the training text"),
    (["... !!"], "to be", ValueError, "no words"),
])
def test_nonword_rate_refuses_bad_input_by_name(texts, corpus, err, match):
    with pytest.raises(err, match=match):
        M.nonword_rate(texts, corpus)


def test_average_ranks_share_ties_and_spearman_matches_the_textbook_formula():
    assert M.average_ranks([3, 1, 3]) == [2.5, 1.0, 2.5]
    assert M.average_ranks([5, 5, 5, 5]) == [2.5] * 4
    assert M.spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert M.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # without ties: 1 - 6 sum d^2 / (n (n^2 - 1)); d = (0, -2, 1, 1) -> 1 - 36/60
    assert M.spearman([1, 2, 3, 4], [1, 4, 2, 3]) == pytest.approx(0.4, rel=1e-12)
    # with ties the order of tied items in the list must not matter
    a = [4, 7, 7, 9, 12, 7]
    b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    perm = [0, 5, 2, 3, 4, 1]  # swaps the first and last of the tied 7s
    assert M.spearman(a, b) == pytest.approx(M.spearman([a[i] for i in perm], [b[i] for i in perm]), rel=1e-12)
    # by hand: ranks of a = (1, 3, 3, 5, 6, 3); Pearson of (ranks - 3.5): 10.5 / sqrt(15.5 * 17.5)
    assert M.spearman(a, b) == pytest.approx(10.5 / math.sqrt(15.5 * 17.5), rel=1e-12)
    assert math.isnan(M.spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="equally long"):
        M.spearman([1, 2], [1, 2, 3])


def test_bootstrap_interval_brackets_the_score_and_narrows_with_more_items():
    torch.manual_seed(0)
    small = torch.stack([torch.rand(20), torch.ones(20)], 1).double()  # (value, count) per item: score = mean
    big = torch.stack([torch.rand(2000), torch.ones(2000)], 1).double()
    mean = lambda row: (row[0] / row[1]).item()  # noqa: E731
    lo, hi = M.bootstrap_interval(small, mean, n_samples=400)
    assert lo < mean(small.sum(0)) < hi
    lo2, hi2 = M.bootstrap_interval(big, mean, n_samples=400)
    assert lo2 < mean(big.sum(0)) < hi2 and (hi2 - lo2) < (hi - lo) / 4  # ~ 1/sqrt(n): 10x more precise
    assert M.bootstrap_interval(small, mean, n_samples=400, seed=3) == M.bootstrap_interval(small, mean, n_samples=400, seed=3)
    with pytest.raises(ValueError, match=r"\(n, k\) table"):
        M.bootstrap_interval(torch.zeros(5), mean)
    with pytest.raises(ValueError, match="n_samples"):
        M.bootstrap_interval(small, mean, n_samples=0)


def test_rouge_refuses_texts_too_long_for_its_lcs_table_by_name():
    long = "w " * 20_000
    with pytest.raises(ValueError, match=r"rouge: hypothesis 1 has 20,000 tokens and its reference 20,000; ROUGE-L's table "
                                         r"would need 400,000,000 cells, more than the 4,000,000"):
        M.rouge(["a summary", long], ["a summary", long])
    with pytest.raises(ValueError, match="hypothesis 0 has 3,000 tokens and its reference 2,000"):
        M.rouge(["w " * 3000], [["short", "w " * 2000]])  # any reference counts
    ok = "w " * 1500  # 2,250,000 cells: scored
    assert M.rouge([ok], [ok]) == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}


@pytest.mark.parametrize("alpha", [-0.5, 0, 1, 2, float("nan"), float("inf"), "0.05", True, None])
def test_paired_bootstrap_refuses_an_alpha_outside_0_1(alpha):
    a = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\), e\.g\. 0\.05 for a 95% interval, got"):
        M.paired_bootstrap(a, a, lambda t: float(t[0] / t[1]), n_samples=10, alpha=alpha)
