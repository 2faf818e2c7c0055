"""Tests for bugs a mutation test put into gptlab and the rest of the suite did not notice (issue 21).

Each test names the bug it catches. Every one was checked by putting that bug
into the package by hand and watching the test fail. `make mutants` (tools/mutants.py)
looks for more such gaps.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import html
import itertools
import math
import random
import re

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from gptlab import GPT, GPTConfig, cli, data, datasets
from gptlab import tokenizers as toks
from gptlab import checkpoint as C
from gptlab import training as T
from gptlab.generation import beam_search, generate
from gptlab.model import KVCache
from gptlab.tokenizers import BPETokenizer, CharTokenizer


pytestmark = pytest.mark.usefixtures("one_thread")


class LastTokenModel(nn.Module):
    """A stand-in GPT whose next-token logits are `table[last token]`: the decoding code runs
    unchanged on it, and every sequence's probability can be computed by hand."""

    def __init__(self, table: torch.Tensor, block: int = 64) -> None:
        super().__init__()
        self.table = table
        self.config = GPTConfig(vocab_size=table.size(0), block_size=block, n_layer=1, n_head=1, n_embd=4)
        self.dummy = nn.Parameter(torch.zeros(1))

    def new_cache(self, max_len: int | None = None) -> KVCache:
        return KVCache(self.config, max_len)

    def forward(self, idx, targets=None, cache=None, last_only=False):
        if cache is not None:
            cache.advance(idx.size(1))
        logits = self.table[idx]
        return (logits[:, -1:] if last_only else logits), None


# ----------------------------------------------------------------------------- sampling: temperature once


def filtered_probs(logits: torch.Tensor, t: float, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """The distribution sampling must follow, written out independently of gptlab:
    softmax(logits / t), keep the top_k likeliest, renormalise, keep the smallest set
    of the likeliest reaching top_p, renormalise."""
    p = F.softmax(logits.double() / t, dim=-1)
    order = p.argsort(descending=True).tolist()
    keep = order[:top_k] if top_k is not None else order
    if top_p is not None:
        q = p[keep] / p[keep].sum()
        cum, nucleus = 0.0, []
        for tok, prob in zip(keep, q.tolist()):
            nucleus.append(tok)
            cum += prob
            if cum >= top_p:
                break
        keep = nucleus
    out = torch.zeros_like(p)
    out[keep] = p[keep] / p[keep].sum()
    return out


@pytest.mark.parametrize("t, top_k, top_p", [(2.0, None, None), (2.0, 4, None), (0.7, None, 0.8), (2.0, None, 0.8)])
def test_generate_samples_from_the_filtered_softmax_at_temperature_t(t, top_k, top_p):
    """Bug caught: temperature applied twice (in generate's loop or in sample_next).

    Each of n = 20,000 rows draws one token; a token of probability p is drawn with
    frequency p +- 4.5 binomial standard errors sqrt(p (1 - p) / n) (0.017 at most);
    the same sampler at temperature t**2 is more than twice that far away.
    """
    probs = torch.tensor([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    table = probs.log().expand(6, 6).clone()
    n = 20_000
    out = generate(LastTokenModel(table), torch.zeros(n, 1, dtype=torch.long), 1, temperature=t, top_k=top_k, top_p=top_p,
                   generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(out[:, 1], minlength=6).double() / n
    want = filtered_probs(table[0], t, top_k, top_p)
    tol = 4.5 * (want * (1 - want) / n).sqrt()
    assert torch.all((freq - want).abs() <= tol), (freq, want)
    twice = filtered_probs(table[0], t * t, top_k, top_p)
    assert ((twice - want).abs() > 2 * tol).any()  # the test can tell t from t**2


# ----------------------------------------------------------------------------- beam search: length normalisation


def enumerate_best(logp: torch.Tensor, prompt: list[int], max_new: int, stop: int, length_penalty: float) -> list[int]:
    """Score every possible continuation by brute force: a sequence ends at its first stop
    token or after max_new tokens; score = total log-probability / (new tokens) ** length_penalty."""
    best, best_score = None, -math.inf
    V = logp.size(0)
    for n in range(1, max_new + 1):
        for new in itertools.product(range(V), repeat=n):
            if stop in new[:-1] or (n < max_new and new[-1] != stop):
                continue  # stopped earlier, or neither stopped nor at the length limit
            seq = prompt + list(new)
            total = sum(logp[a, b].item() for a, b in zip(seq[len(prompt) - 1 : -1], seq[len(prompt) :]))
            if total / n**length_penalty > best_score:
                best, best_score = seq, total / n**length_penalty
    return best


def test_beam_search_equals_brute_force_with_beams_that_stop_early_and_beams_that_go_on():
    """Bug caught: finished (or running) beams normalised by the wrong length (e.g. counting
    the prompt, or not counting the stop token).

    With more beams than there are sequences nothing is pruned, so beam search must
    return exactly the best-scoring sequence of a brute-force enumeration. A prompt of
    3 tokens makes 'new tokens' and 'all tokens' differ; the random tables make short
    (stopped) and long winners both occur.
    """
    V, stop, max_new, prompt = 4, 3, 4, [1, 2, 0]
    g = torch.Generator().manual_seed(0)
    winners = set()
    for case in range(10):
        logp = F.log_softmax(1.5 * torch.randn(V, V, generator=g), dim=-1)
        model = LastTokenModel(logp)
        for lp in (0.0, 0.5, 1.0, 2.0):
            want = enumerate_best(logp, prompt, max_new, stop, lp)
            got = beam_search(model, torch.tensor([prompt]), max_new, num_beams=V**max_new, stop_tokens=stop,
                              length_penalty=lp, use_cache=case % 2 == 0)
            assert got[0].tolist() == want, (case, lp)
            winners.add("stopped early" if len(want) - len(prompt) < max_new else "full length")
    assert winners == {"stopped early", "full length"}


# ----------------------------------------------------------------------------- tokenizers: overlapping special tokens


def leftmost_longest(text: str, specials: list[str]) -> list[tuple[str, bool]]:
    """The rule, by hand: scan left to right; where special tokens start, take the longest."""
    out, i, plain = [], 0, ""
    while i < len(text):
        match = max((s for s in specials if text.startswith(s, i)), key=len, default=None)
        if match is None:
            plain += text[i]
            i += 1
            continue
        if plain:
            out.append((plain, False))
            plain = ""
        out.append((match, True))
        i += len(match)
    if plain:
        out.append((plain, False))
    return out


def test_overlapping_special_tokens_take_the_longest_match_in_both_encoders():
    """Bug caught: encode (tiktoken) and encode_slow disagreeing when one special token is a
    prefix of another; the rule is leftmost, then longest."""
    for order in (["<|a|>", "<|a|>b"], ["<|a|>b", "<|a|>"]):  # the id order must not matter
        tok = BPETokenizer([(120, 120)], special_tokens={s: 257 + i for i, s in enumerate(order)})
        long_id, short_id = tok.special_tokens["<|a|>b"], tok.special_tokens["<|a|>"]
        assert tok.encode("x<|a|>b") == tok.encode_slow("x<|a|>b") == [120, long_id]
        assert tok.encode("<|a|><|a|>bb") == tok.encode_slow("<|a|><|a|>bb") == [short_id, long_id, 98]
        assert tok.decode(tok.encode("x<|a|>b")) == "x<|a|>b"

    rng = random.Random(0)
    pieces = ["<|", "|>", "a", "b", "x", " ", "<|a|>", "<|a|>b", "<|a|>bc", "<|b|>", "é"]
    for _ in range(200):
        specials = rng.sample(["<|a|>", "<|a|>b", "<|a|>bc", "<|b|>", "|>", "a|>b"], rng.randint(1, 4))
        tok = BPETokenizer([(120, 120), (60, 124)], special_tokens={s: 258 + i for i, s in enumerate(specials)})
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        want = []
        for part, is_special in leftmost_longest(text, specials):
            want += [tok.special_tokens[part]] if is_special else tok.encoding.encode_ordinary(part)
        assert tok.encode(text) == tok.encode_slow(text) == want, (specials, text)


# ----------------------------------------------------------------------------- files with the right size and wrong bytes


def fake_ranks_file(path) -> bytes:
    """A well-formed ranks file (the 256 single bytes) that is not GPT-2's."""
    raw = b"".join(base64.b64encode(bytes([b])) + f" {b}\n".encode() for b in range(256))
    path.write_bytes(raw)
    return raw


@pytest.fixture
def fresh_gpt2():
    toks.gpt2.cache_clear()
    yield
    toks.gpt2.cache_clear()  # never leave a tokenizer built from a test file cached


def test_gpt2_ranks_file_is_checked_whoever_provides_it(tmp_path, monkeypatch, fresh_gpt2):
    """Bug caught: the GPT-2 ranks file accepted without its sha256 when it does not come
    through fetch's own checks (here fetch is replaced by something that hands back a file)."""
    fake = tmp_path / "gpt2.tiktoken"
    fake_ranks_file(fake)
    monkeypatch.setattr(toks, "fetch", lambda name, **kw: fake)
    with pytest.raises(ValueError, match="sha256"):
        toks.gpt2()
    with pytest.raises(ValueError, match="sha256"):
        toks.tiktoken_offline_cache(tmp_path / "cache")


@pytest.fixture
def small_dataset(tmp_path, monkeypatch):
    """A registered dataset of a few bytes, with a good mirror copy and no network."""
    good = b"the right bytes\n" * 8
    info = datasets.DatasetInfo("tiny_test", "tiny_test.txt", "https://example.invalid/tiny_test.txt",
                            hashlib.sha256(good).hexdigest(), len(good), "test", "test", "test")
    monkeypatch.setitem(datasets.DATASETS, info.name, info)

    def refuse(*a, **k):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", refuse)
    monkeypatch.delenv("GPTLAB_DATA_MIRROR", raising=False)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / info.filename).write_bytes(good)
    return info, good, mirror


def test_cached_file_with_the_right_size_but_wrong_bytes_is_fetched_again(tmp_path, small_dataset):
    """Bug caught: a cached data file accepted because its size matches, without its sha256."""
    info, good, mirror = small_dataset
    cache = tmp_path / "cache"
    cache.mkdir()
    bad = bytes([good[0] ^ 1]) + good[1:]  # one bit flipped: same size
    (cache / info.filename).write_bytes(bad)
    with pytest.raises(datasets.DataUnavailableError):  # offline, no mirror: refused, not served
        datasets.fetch(info.name, cache_dir=cache)
    assert datasets.fetch(info.name, cache_dir=cache, mirror=mirror).read_bytes() == good  # replaced by a checked copy
    assert datasets.fetch(info.name, cache_dir=cache) == cache / info.filename  # and now served from the cache


# ----------------------------------------------------------------------------- the explorer's status line


def status_text(value: str) -> str:
    """The text of a status line whose only markup may be gptlab's own <code>, <i>, <div> and <span>
    (with style attributes): any other '<' or '>' is text that was not escaped."""
    rest = re.sub(r"</?(code|i|div|span)(\s[^<>]*)?>", "", value)
    assert "<" not in rest and ">" not in rest, value
    return html.unescape(rest)


def test_explorer_status_line_escapes_tokens_and_messages():
    """Bug caught: a token such as <b> (or an error message quoting '<') written into the
    status line as HTML. The only markup there is gptlab's own <code>, <i>, <div> and <span>."""
    from gptlab import viz

    tok = BPETokenizer([], special_tokens={"<b>": 256})  # "<b>" is one token
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=tok.n_vocab))
    ex = viz.AttentionExplorer(model, tok, "x<b>y", render=False)
    assert ex.maps.tokens == ["x", "<b>", "y"]
    for i in range(3):
        ex.select(i)
        assert ("<b>" in status_text(ex.status_w.value)) == (i > 0)  # shown as text wherever it is listed

    chars = CharTokenizer.from_text("abc")  # cannot encode '<': the error message quotes it
    ex = viz.AttentionExplorer(GPT(GPTConfig.from_preset("tiny", vocab_size=3)), chars, "", render=False)
    for text, shown in [("<b>", "'<'"), ("abc", "2 ‹c›"), ("a<b>", "'<'")]:  # error with no map yet, good prompt, error after it
        ex.set_text(text)
        assert shown in status_text(ex.status_w.value)
    assert ex.maps.T == 3


# ----------------------------------------------------------------------------- training: grad_accum and bf16


def tiny_run(**kw) -> T.TrainConfig:
    base = dict(max_steps=3, batch_size=4, lr=0.05, min_lr=0.0, warmup_steps=0, grad_clip=0.0, eval_interval=100, eval_iters=1,
                log_interval=1, progress=False, seed=3, device="cpu", bf16=False)
    return T.TrainConfig(**{**base, **kw})


def tiny_data() -> torch.Tensor:
    return torch.randint(0, 20, (600,), generator=torch.Generator().manual_seed(1))


def tiny_model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("tiny", vocab_size=20, block_size=16, dropout=0.0))


def test_grad_accum_averages_micro_batches(monkeypatch):
    """Bug caught: the loss (for backward or for the record) not divided by grad_accum.

    Two micro-batches of 4 draw the same windows as one batch of 8 (same generator), so
    with plain SGD (whose step is proportional to the gradient, unlike Adam's) both runs
    must record the same losses and end with the same weights.
    """
    monkeypatch.setattr(T, "make_optimizer", lambda model, cfg, device: torch.optim.SGD(model.parameters(), lr=cfg.lr))
    data_ = tiny_data()
    a, b = tiny_model(), tiny_model()
    ha = T.train(a, data_[:500], data_[500:], tiny_run(batch_size=4, grad_accum=2))
    hb = T.train(b, data_[:500], data_[500:], tiny_run(batch_size=8, grad_accum=1))
    assert len(ha.train_loss) == 3
    torch.testing.assert_close(torch.tensor(ha.train_loss), torch.tensor(hb.train_loss), rtol=1e-5, atol=0)
    assert not torch.equal(a.lm_head.weight, tiny_model().lm_head.weight)  # it trained
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6, msg=name)


# ----------------------------------------------------------------------------- the CLI passes every flag on


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("to be or not to be, that is the question.\n" * 20, encoding="utf-8")
    return p


def test_cli_train_flags_reach_the_training_config(text_file, tmp_path, monkeypatch):
    """Bug caught: a `gptlab train` flag (e.g. --grad-accum) parsed but never passed on."""
    seen = {}

    def fake_train(model, train_data, val_data, cfg, tokenizer=None, resume=False):
        seen.update(cfg=cfg, model=model)
        return T.History()

    monkeypatch.setattr(T, "train", fake_train)
    flags = dict(max_steps=7, batch_size=5, lr=0.02, min_lr=0.001, warmup_steps=2, lr_decay_steps=6, weight_decay=0.3,
                 grad_clip=0.5, grad_accum=3, eval_interval=4, eval_iters=2, log_interval=2, ckpt_interval=3, seed=11, device="cpu")
    shape = dict(n_layer=1, n_head=2, n_embd=16, block_size=24, dropout=0.25)
    assert set(flags) == set(cli._TRAIN_FLAGS) and set(shape) == set(cli._MODEL_FLAGS)
    argv = ["train", "--preset", "tiny", "--text-file", str(text_file), "--out", str(tmp_path / "ck"), "--no-progress", "--bf16", "off"]
    for k, v in {**flags, **shape}.items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    assert cli.main(argv) == 0
    cfg, model = seen["cfg"], seen["model"]
    assert {k: getattr(cfg, k) for k in flags} == flags
    assert cfg.bf16 is False and cfg.progress is False and cfg.ckpt_dir == str(tmp_path / "ck")
    assert {k: getattr(model.config, k) for k in shape} == shape


@pytest.fixture
def ckpt(tmp_path):
    tok = CharTokenizer.from_text("ROMEO: what light\n")
    torch.manual_seed(0)
    C.save_checkpoint(tmp_path / "ck", GPT(GPTConfig.from_preset("tiny", vocab_size=tok.n_vocab)), tokenizer=tok)
    return tmp_path / "ck"


def test_cli_generate_flags_reach_the_sampler(ckpt, monkeypatch, capsys):
    """Bug caught: `gptlab generate` dropping --top-p, --repetition-penalty (or another sampling flag)."""
    import gptlab.generation

    calls = []

    def fake_stream(model, tok, prompt, max_new_tokens, **kw):
        calls.append(dict(kw, prompt=prompt, max_new_tokens=max_new_tokens))
        return iter(["!"])

    monkeypatch.setattr(gptlab.generation, "stream", fake_stream)
    base = ["generate", "--checkpoint", str(ckpt), "--device", "cpu", "--prompt", "ROMEO:", "--max-new-tokens", "9"]
    assert cli.main([*base, "--temperature", "0.6", "--top-k", "7", "--top-p", "0.85", "--repetition-penalty", "1.3", "--seed", "5"]) == 0
    assert capsys.readouterr().out == "ROMEO:!\n"
    kw = calls[-1]
    assert (kw["prompt"], kw["max_new_tokens"], kw["do_sample"]) == ("ROMEO:", 9, True)
    assert (kw["temperature"], kw["top_k"], kw["top_p"], kw["repetition_penalty"]) == (0.6, 7, 0.85, 1.3)
    assert kw["generator"].initial_seed() == 5
    assert cli.main(base) == 0  # the documented defaults
    kw = calls[-1]
    assert (kw["temperature"], kw["top_k"], kw["top_p"], kw["repetition_penalty"], kw["generator"]) == (0.8, 200, None, 1.0, None)
    assert cli.main([*base, "--greedy"]) == 0
    assert calls[-1]["do_sample"] is False and calls[-1]["top_k"] is None

    beams = []
    monkeypatch.setattr(gptlab.generation, "beam_search", lambda model, idx, n, num_beams: beams.append((n, num_beams)) or idx)
    assert cli.main([*base, "--beams", "3"]) == 0
    assert beams == [(9, 3)]


# ----------------------------------------------------------------------------- gaps found by `make mutants`


def naive_bpe(text: str, n_merges: int) -> list[tuple[int, int]]:
    """The textbook algorithm with no bookkeeping: recount every pair over the chunks each
    time, merge the most frequent (ties: the smallest pair)."""
    import regex

    chunks = collections.Counter(regex.findall(toks.GPT2_SPLIT_PATTERN, text))
    words = [(list(w.encode("utf-8")), f) for w, f in chunks.items()]
    merges = []
    for new_id in range(256, 256 + n_merges):
        counts: collections.Counter = collections.Counter()
        for w, f in words:
            for pair in zip(w, w[1:]):
                counts[pair] += f
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges.append(pair)
        words = [(toks.merge(w, pair, new_id), f) for w, f in words]
    return merges


def test_train_bpe_equals_the_textbook_algorithm():
    """train_bpe's heap and its per-pair chunk sets are bookkeeping: the merges must be
    exactly those of recounting everything after every merge."""
    rng = random.Random(0)
    text = " ".join("".join(rng.choice("aaabbcdé中") for _ in range(rng.randint(1, 7))) for _ in range(500))
    merges = toks.train_bpe(text, 256 + 80).merges
    assert len(merges) == 80 and merges == naive_bpe(text, 80)


def test_bpe_merge_may_only_use_ids_that_exist_already():
    with pytest.raises(ValueError, match="merge 1 .* does not exist yet"):
        BPETokenizer([(97, 98), (257, 97)])  # id 257 would be merge 1 itself
    assert BPETokenizer([(97, 98), (256, 97)]).vocab[257] == b"aba"


def test_training_loader_is_shuffled_by_its_seed_and_val_is_in_order():
    ids = torch.arange(400)
    first = {s: next(iter(data.make_loaders(ids, block_size=4, batch_size=8, seed=s)[0]))[0][:, 0].tolist() for s in (0, 1)}
    assert first[0] != first[1] and first[0] != sorted(first[0])  # shuffled, differently per seed
    _, val = data.make_loaders(ids, block_size=4, batch_size=8, seed=0)
    assert torch.cat([x[:, 0] for x, _ in val]).tolist() == list(range(360, 396, 4))  # in order


def test_top_p_one_keeps_everything():
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1])
    model = LastTokenModel(probs.log().expand(4, 4).clone())
    idx = torch.zeros(500, 1, dtype=torch.long)
    a = generate(model, idx, 1, top_p=1.0, generator=torch.Generator().manual_seed(0))
    b = generate(model, idx, 1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and set(a[:, 1].tolist()) == {0, 1, 2, 3}


def test_train_refuses_two_dimensional_token_data():
    with pytest.raises(ValueError, match="train_data must be a 1-D sequence"):
        T.train(tiny_model(), tiny_data().view(20, 30), tiny_data(), tiny_run())


def test_checkpoint_json_of_another_format_is_refused(tmp_path):
    C.save_checkpoint(tmp_path / "ck", tiny_model())
    meta = (tmp_path / "ck" / "checkpoint.json")
    meta.write_text(meta.read_text().replace('"gptlab-checkpoint"', '"something-else"'))
    with pytest.raises(C.CheckpointError, match="not a gptlab checkpoint"):
        C.load_checkpoint(tmp_path / "ck", device="cpu")


def test_tokens_per_second_is_tokens_over_busy_time(monkeypatch):
    """A fake clock that advances 0.5 s per reading: each step is timed as 0.5 s, so every
    record must say 2 x (tokens per step) per second, however many steps it spans."""

    class Clock:
        now = 0.0

        @classmethod
        def perf_counter(cls):
            cls.now += 0.5
            return cls.now

    monkeypatch.setattr(T, "time", Clock)
    h = T.train(tiny_model(), tiny_data()[:500], tiny_data()[500:], tiny_run(max_steps=5, log_interval=2, grad_accum=2))
    assert h.steps == [0, 2, 4]
    assert h.tokens_per_s == [2 * 4 * 16 * 2] * 3  # batch 4 x block 16 x grad_accum 2, per 0.5 s


def test_history_val_loss_is_the_last_evaluation():
    assert T.History(eval_steps=[0, 5, 9], evals={"val_loss": [4.0, 3.0, 2.5]}).val_loss == 2.5
    assert T.History().val_loss is None
