"""gptlab.generation: samplers, the decoding loop, beam search, streaming, bad inputs."""

from __future__ import annotations

import itertools
import math

import pytest
import tiktoken
import torch
import torch.nn as nn
from torch.nn import functional as F

from gptlab.config import GPTConfig
from gptlab.generation import (
    apply_repetition_penalty,
    apply_temperature,
    beam_search,
    generate,
    sample_next,
    stream,
    top_k_filter,
    top_p_filter,
)
from gptlab.model import GPT, KVCache

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_gpt(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.from_preset("tiny", **overrides))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class TableModel(nn.Module):
    """A stand-in GPT whose next-token logits are a fixed function of the last token
    (`table[last]`) or, with `script`, of the position (`script[pos]` gets a high logit).
    It follows GPT's forward/new_cache contract, so it drives the real decoding code."""

    def __init__(self, table: torch.Tensor | None = None, script: list[int] | None = None, vocab: int = 0, block: int = 64):
        super().__init__()
        vocab = table.size(0) if table is not None else vocab
        self.config = GPTConfig(vocab_size=vocab, block_size=block, n_layer=1, n_head=1, n_embd=4)
        self.table = table
        self.script = script
        self.dummy = nn.Parameter(torch.zeros(1))  # so next(model.parameters()) gives a device

    def new_cache(self, max_len: int | None = None) -> KVCache:
        return KVCache(self.config, max_len)

    def forward(self, idx, targets=None, cache=None, last_only=False):
        logits, loss = self._forward(idx, cache)
        return (logits[:, -1:] if last_only else logits), loss

    def _forward(self, idx, cache):
        B, T = idx.shape
        start = cache.pos if cache is not None else 0
        if cache is not None:
            cache.advance(T)
        if self.table is not None:
            return self.table[idx], None
        logits = torch.zeros(B, T, self.config.vocab_size)
        for i in range(T):
            logits[:, i, self.script[min(start + i, len(self.script) - 1)]] = 10.0
        return logits, None


def log_table(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows).clamp_min(1e-9).log()


# ----------------------------------------------------------------------------- the filters


def test_temperature_divides_and_rejects_nonpositive():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    torch.testing.assert_close(apply_temperature(logits, 0.5), logits * 2)
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="do_sample=False"):
            apply_temperature(logits, bad)


def test_top_k_keeps_exactly_the_k_largest():
    torch.manual_seed(0)
    logits = torch.randn(3, 50)
    out = top_k_filter(logits, 5)
    kept = torch.isfinite(out)
    assert kept.sum(dim=-1).tolist() == [5, 5, 5]
    assert torch.equal(kept, torch.zeros_like(kept).scatter(-1, logits.topk(5).indices, True))
    assert torch.equal(out[kept], logits[kept])  # kept logits unchanged
    assert torch.equal(top_k_filter(logits, 500), logits)  # k beyond the vocabulary keeps all


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])  # sorted: 0.5, 0.3, 0.15, 0.05
    logits = probs.log()[None]

    def kept(p):
        return torch.isfinite(top_p_filter(logits, p))[0].nonzero().flatten().tolist()

    assert kept(0.01) == [1]  # the top token always stays
    assert kept(0.5) == [1]  # 0.5 alone already reaches 0.5
    assert kept(0.75) == [1, 3]
    assert kept(0.9) == [0, 1, 3]
    assert kept(1.0) == [0, 1, 2, 3]
    torch.testing.assert_close(top_p_filter(logits, 0.75)[0, [1, 3]], logits[0, [1, 3]])


def test_top_p_per_row_and_in_vocab_order():
    torch.manual_seed(1)
    logits = torch.randn(4, 30)
    out = top_p_filter(logits, 0.6)
    for row_l, row_o in zip(logits, out):
        p = F.softmax(row_l, -1)
        keep = torch.isfinite(row_o)
        assert p[keep].sum() >= 0.6  # the kept set reaches p ...
        assert p[keep].sum() - p[keep].min() < 0.6  # ... and no smaller set of the top tokens would
        assert p[keep].min() >= p[~keep].max()  # it is the most likely tokens


def test_repetition_penalty_ctrl_rule():
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0, 0.5]])
    idx = torch.tensor([[0, 1, 1, 3, 4]])  # tokens 0, 1, 3, 4 present (1 twice: penalised once)
    out = apply_repetition_penalty(logits, idx, 2.0)
    torch.testing.assert_close(out, torch.tensor([[1.0, -4.0, 1.0, -2.0, 0.25]]))  # any positive logit is divided
    assert torch.equal(apply_repetition_penalty(logits, idx, 1.0), logits)
    assert torch.equal(logits, torch.tensor([[2.0, -2.0, 1.0, -1.0, 0.5]]))  # input untouched


def test_sample_next_draws_from_the_filtered_softmax():
    """Frequencies of n = 20,000 draws vs the distribution written out by hand, within 4.5
    binomial standard errors sqrt(p (1 - p) / n) (at most 0.016): tight enough to tell
    temperature 2 (p ** 0.5, normalised) from temperature 4 (p ** 0.25)."""
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    n = 20000
    logits = probs.log().float().expand(n, 4)

    def check(want, **kw):
        draws = sample_next(logits, do_sample=True, generator=gen(0), **kw).flatten()
        freq = torch.bincount(draws, minlength=4).double() / n
        tol = 4.5 * (want * (1 - want) / n).sqrt()
        assert torch.all((freq - want).abs() <= tol), (kw, freq, want)
        return tol

    check(probs)
    check(torch.tensor([0.625, 0.375, 0.0, 0.0], dtype=torch.float64), top_k=2)
    t2, t4 = probs**0.5 / (probs**0.5).sum(), probs**0.25 / (probs**0.25).sum()
    tol = check(t2, temperature=2.0)
    assert torch.all((t4 - t2).abs()[[0, 3]] > 3 * tol[[0, 3]])  # t=4 would fail this check
    check(torch.cat([t2[:3], t2.new_zeros(1)]) / t2[:3].sum(), temperature=2.0, top_p=0.7)  # nucleus of the *tempered* probs
    assert sample_next(logits[:2], do_sample=False).flatten().tolist() == [0, 0]


# ----------------------------------------------------------------------------- generate


def test_cached_equals_uncached_within_the_block():
    model = tiny_gpt()
    idx = torch.randint(0, 96, (3, 5), generator=gen(1))
    a = generate(model, idx, 20, do_sample=False)
    b = generate(model, idx, 20, do_sample=False, use_cache=False)
    assert a.shape == (3, 25)
    assert torch.equal(a, b)
    assert torch.equal(a[:, :5], idx)


def test_cached_equals_uncached_past_the_block_and_long_prompt():
    model = tiny_gpt(block_size=8)
    for T in (3, 13):  # a short prompt that grows past block_size, and one longer than it
        idx = torch.randint(0, 96, (2, T), generator=gen(T))
        for kw in (dict(do_sample=False), dict(temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.3)):
            a = generate(model, idx, 40, generator=gen(7), **kw)
            b = generate(model, idx, 40, generator=gen(7), use_cache=False, **kw)
            assert a.shape == (2, T + 40)
            assert torch.equal(a, b), (T, kw)


def test_crop_rule_is_the_last_block_size_tokens():
    model = tiny_gpt(block_size=8)
    idx = torch.randint(0, 96, (1, 12), generator=gen(3))
    out = generate(model, idx, 1, do_sample=False)
    with torch.no_grad():
        expect = model(idx[:, -8:])[0][:, -1].argmax(-1)
    assert out[0, -1] == expect


def test_greedy_matches_a_hand_loop_and_batch_rows_are_independent():
    model = tiny_gpt().eval()
    idx = torch.randint(0, 96, (2, 4), generator=gen(2))
    seq = idx.clone()
    with torch.no_grad():
        for _ in range(10):
            seq = torch.cat([seq, model(seq)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(generate(model, idx, 10, do_sample=False), seq)
    assert torch.equal(generate(model, idx[1:], 10, do_sample=False), seq[1:])


def test_temperature_to_zero_equals_greedy():
    model = tiny_gpt()
    idx = torch.randint(0, 96, (2, 4), generator=gen(4))
    greedy = generate(model, idx, 25, do_sample=False)
    cold = generate(model, idx, 25, temperature=1e-6, generator=gen(0))
    assert torch.equal(cold, greedy)
    hot = generate(model, idx, 25, temperature=1.0, generator=gen(0))
    assert not torch.equal(hot, greedy)  # sampling at t=1 from a random model wanders off


def test_same_seed_same_tokens():
    model = tiny_gpt()
    idx = torch.zeros(1, 1, dtype=torch.long)
    a = generate(model, idx, 30, top_k=40, generator=gen(123))
    b = generate(model, idx, 30, top_k=40, generator=gen(123))
    c = generate(model, idx, 30, top_k=40, generator=gen(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # every sampled token is one of the model's 40 likeliest at its step (top_k is applied)
    with torch.no_grad():
        logits = model(a[:, :-1])[0][0]  # (30, V): the prediction for each new token
    top40 = logits.topk(40, dim=-1).indices
    assert all(int(tok) in top40[i] for i, tok in enumerate(a[0, 1:]))
    assert not all(int(tok) in top40[i, :5] for i, tok in enumerate(a[0, 1:]))  # sampled, not near-greedy


def test_top_k_one_and_tiny_top_p_are_greedy():
    model = tiny_gpt()
    idx = torch.randint(0, 96, (2, 3), generator=gen(5))
    greedy = generate(model, idx, 15, do_sample=False)
    assert torch.equal(generate(model, idx, 15, top_k=1, generator=gen(0)), greedy)
    assert torch.equal(generate(model, idx, 15, top_p=1e-6, generator=gen(0)), greedy)


def test_repetition_penalty_changes_the_choice():
    # after token 0 the model prefers 1 (logit 2.0) over 2 (1.5); 1 is already in the prompt
    table = torch.zeros(3, 3)
    table[0] = torch.tensor([-5.0, 2.0, 1.5])
    table[1] = torch.tensor([3.0, -5.0, -5.0])
    table[2] = torch.tensor([3.0, -5.0, -5.0])
    model = TableModel(table)
    idx = torch.tensor([[1, 0]])
    assert generate(model, idx, 1, do_sample=False)[0, -1] == 1
    assert generate(model, idx, 1, do_sample=False, repetition_penalty=2.0)[0, -1] == 2  # 2.0 / 2 < 1.5


def test_stop_tokens_pad_finished_rows_and_end_early():
    nxt = {0: 4, 1: 2, 2: 3, 3: 4, 4: 0}  # 0 -> 4 (stop) at once; 1 -> 2 -> 3 -> 4
    table = torch.full((5, 5), -10.0)
    for a, b in nxt.items():
        table[a, b] = 10.0
    model = TableModel(table)
    idx = torch.tensor([[0], [1]])
    out = generate(model, idx, 10, do_sample=False, stop_tokens=4)
    assert out.tolist() == [[0, 4, 4, 4], [1, 2, 3, 4]]
    out = generate(model, idx, 10, do_sample=False, stop_tokens=[3, 4])
    assert out.tolist() == [[0, 4, 4], [1, 2, 3]]  # each row padded with its own stop token
    assert generate(model, idx, 10, do_sample=False).shape == (2, 11)


def test_restores_training_mode_and_max_new_tokens_zero():
    model = tiny_gpt()
    model.train()
    idx = torch.tensor([[1, 2, 3]])
    assert torch.equal(generate(model, idx, 0), idx)
    generate(model, idx, 3, do_sample=False)
    beam_search(model, idx, 3, num_beams=2)
    assert model.training
    model.eval()
    generate(model, idx, 3)
    assert not model.training


def test_gpt_generate_delegates():
    model = tiny_gpt()
    idx = torch.tensor([[5, 6]])
    assert torch.equal(model.generate(idx, 8, do_sample=False), generate(model, idx, 8, do_sample=False))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(idx=torch.zeros(1, 0, dtype=torch.long)), "empty.*<\\|endoftext\\|>"),
        (dict(idx=torch.tensor([1, 2, 3])), "2-D.*unsqueeze"),
        (dict(idx=torch.tensor([[1.0, 2.0]])), "torch.long"),
        (dict(idx=[[1, 2]]), "LongTensor"),
        (dict(temperature=0.0), "do_sample=False"),
        (dict(temperature=-1.0), "do_sample=False"),
        (dict(top_k=0), "top_k"),
        (dict(top_k=2.5), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(repetition_penalty=0.0), "repetition_penalty"),
        (dict(max_new_tokens=-1), "max_new_tokens"),
        (dict(stop_tokens=[1, 999]), "stop_tokens"),
        (dict(stop_tokens=True), "stop_tokens"),  # a bool is not a token id
        (dict(generator=123), "generator"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, match):
    model = tiny_gpt()
    args = dict(idx=torch.tensor([[1, 2]]), max_new_tokens=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        generate(model, args.pop("idx"), args.pop("max_new_tokens"), **args)


def test_greedy_allows_any_temperature():
    model = tiny_gpt()
    idx = torch.tensor([[1, 2]])
    assert torch.equal(generate(model, idx, 4, do_sample=False, temperature=0.0), generate(model, idx, 4, do_sample=False))


# ----------------------------------------------------------------------------- beam search


def test_beam_search_one_beam_is_greedy():
    model = tiny_gpt()
    idx = torch.randint(0, 96, (1, 4), generator=gen(6))
    assert torch.equal(beam_search(model, idx, 15, num_beams=1), generate(model, idx, 15, do_sample=False))


def test_beam_search_beats_greedy_on_a_hand_built_model():
    # from 0: 1 (0.6) or 2 (0.4); after 1 everything is unsure (best 0.3); after 2, 3 is sure (0.9)
    table = log_table([
        [0.0, 0.6, 0.4, 0.0],
        [0.3, 0.25, 0.25, 0.2],
        [0.05, 0.05, 0.0, 0.9],
        [0.25, 0.25, 0.25, 0.25],
    ])
    model = TableModel(table)
    idx = torch.tensor([[0]])

    def logprob(seq):
        return sum(table[a, b].item() for a, b in zip(seq[:-1], seq[1:]))

    best = max(([0, a, b] for a, b in itertools.product(range(4), repeat=2)), key=logprob)
    assert best == [0, 2, 3]
    greedy = generate(model, idx, 2, do_sample=False)[0].tolist()
    assert greedy == [0, 1, 0] and logprob(greedy) < logprob(best)  # 0.18 < 0.36
    assert beam_search(model, idx, 2, num_beams=2)[0].tolist() == best


def test_beam_search_exhaustive_two_steps_on_a_gpt():
    # With num_beams = vocab_size, two steps of beam search score every pair of tokens.
    model = tiny_gpt(2).eval()
    idx = torch.randint(0, 96, (1, 3), generator=gen(8))
    out = beam_search(model, idx, 2, num_beams=96)
    with torch.no_grad():
        first = F.log_softmax(model(idx)[0][0, -1], -1)  # (V,)
        pairs = torch.cat([idx.expand(96, 3), torch.arange(96)[:, None]], dim=1)
        second = F.log_softmax(model(pairs)[0][:, -1], -1)  # (V, V)
    total = first[:, None] + second
    a, b = divmod(int(total.argmax()), 96)
    assert out[0, 3:].tolist() == [a, b]


def test_beam_search_cache_reorder_matches_uncached():
    for block in (32, 6):  # 6: the beams grow past block_size and the cache is rebuilt
        model = tiny_gpt(3, block_size=block)
        idx = torch.randint(0, 96, (1, 3), generator=gen(9))
        a = beam_search(model, idx, 12, num_beams=4)
        b = beam_search(model, idx, 12, num_beams=4, use_cache=False)
        assert a.shape == (1, 15)
        assert torch.equal(a, b)


def test_beam_search_stops_and_normalises_length():
    nxt = {0: 4, 1: 2, 2: 3, 3: 4, 4: 0}
    table = torch.full((5, 5), -10.0)
    for a, b in nxt.items():
        table[a, b] = 10.0
    model = TableModel(table)
    assert beam_search(model, torch.tensor([[1]]), 10, num_beams=2, stop_tokens=4).tolist() == [[1, 2, 3, 4]]
    # two continuations of 0: stop at once (p=0.5), or 1 then stop with certainty (p=0.5 * 0.9)
    t2 = log_table([[0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.0, 0.9], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    t2[1, :3] = math.log(0.1 / 3)
    model = TableModel(t2)
    short = beam_search(model, torch.tensor([[0]]), 5, num_beams=2, stop_tokens=3, length_penalty=0.0)
    assert short.tolist() == [[0, 3]]  # raw totals: log 0.5 > log 0.45
    longer = beam_search(model, torch.tensor([[0]]), 5, num_beams=2, stop_tokens=3, length_penalty=1.0)
    assert longer.tolist() == [[0, 1, 3]]  # per token: log(0.45)/2 > log(0.5)


def test_beam_search_bad_inputs():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="batch 1"):
        beam_search(model, torch.zeros(2, 3, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="num_beams"):
        beam_search(model, torch.zeros(1, 3, dtype=torch.long), 3, num_beams=0)
    with pytest.raises(ValueError, match="empty"):
        beam_search(model, torch.zeros(1, 0, dtype=torch.long), 3)


# ----------------------------------------------------------------------------- streaming


class ByteTokenizer:
    """One token per UTF-8 byte: 'é' is two tokens, '中' three."""

    n_vocab = 256

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode(self, ids):
        return bytes(ids).decode("utf-8", errors="replace")


def byte_tiktoken() -> tiktoken.Encoding:
    return tiktoken.Encoding(
        name="bytes-only",
        pat_str=r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        mergeable_ranks={bytes([i]): i for i in range(256)},
        special_tokens={"<|endoftext|>": 256},
    )


@pytest.mark.parametrize("tokenizer", [ByteTokenizer(), byte_tiktoken()], ids=["bytes", "tiktoken"])
def test_stream_holds_back_half_characters(tokenizer):
    text = "hé 中!"
    script = list(text.encode("utf-8"))  # 8 tokens for 5 characters
    model = TableModel(script=script, vocab=257)  # the token after position p is script[p]
    pieces = list(stream(model, tokenizer, "A", len(script), do_sample=False))
    assert pieces == ["h", "é", " ", "中", "!"]
    assert "".join(pieces) == tokenizer.decode(script)


def test_stream_flushes_an_unfinished_character_at_the_end():
    script = list("ok".encode()) + [0xE4, 0xB8]  # the first two bytes of a three-byte character
    model = TableModel(script=script, vocab=256)
    tok = ByteTokenizer()
    pieces = list(stream(model, tok, "A", len(script), do_sample=False))
    assert pieces == ["o", "k", "\ufffd"]
    assert "".join(pieces) == tok.decode(script)


def test_stream_equals_generate_and_stops_early_cleanly():
    alphabet = "".join(chr(c) for c in range(32, 32 + 96))

    class Chars:
        def encode(self, s):
            return [alphabet.index(c) for c in s]

        def decode(self, ids):
            return "".join(alphabet[i] for i in ids)

    tok, model = Chars(), tiny_gpt()
    pieces = list(stream(model, tok, "Hi", 30, top_k=20, generator=gen(11)))
    ids = generate(model, torch.tensor([tok.encode("Hi")]), 30, top_k=20, generator=gen(11))[0, 2:].tolist()
    assert pieces and "".join(pieces) == tok.decode(ids)
    assert len(pieces) == 30  # one character per token: nothing held back

    model.train()
    it = stream(model, tok, "Hi", 30)
    next(it)
    assert not model.training  # eval while streaming
    it.close()
    assert model.training  # restored when the caller stops early
    with pytest.raises(ValueError, match="empty"):
        stream(model, tok, "", 5)
    with pytest.raises(ValueError, match="do_sample=False"):
        stream(model, tok, "Hi", 5, temperature=0)  # checked at the call, not at the first next()


def test_stream_with_gptlab_char_tokenizer():
    from gptlab.tokenizers import CharTokenizer

    tok = CharTokenizer.from_text("".join(chr(c) for c in range(32, 32 + 95)) + "\n")
    model = tiny_gpt()
    out = "".join(stream(model, tok, "\n", 20, do_sample=False))
    ids = generate(model, torch.tensor([tok.encode("\n")]), 20, do_sample=False)[0, 1:].tolist()
    assert out == tok.decode(ids) and len(out) == 20


# ----------------------------------------------------------------------------------------------------
# Moved here from test_hardening.py and test_mutation_gaps.py (tests by module): hostile input and mutation-test gaps.
# ----------------------------------------------------------------------------------------------------



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


def test_tiny_temperatures_sample_the_argmax(model_tok):
    from gptlab.generation import sample_next

    logits = torch.tensor([[1.0, 3.0, 2.0], [5.0, -1.0, 0.0]])
    for t in (1e-45, 1e-30, 1e-8):
        assert sample_next(logits, temperature=t).flatten().tolist() == [1, 0]


def test_huge_max_new_tokens_allocates_nothing_up_front(model_tok):
    from gptlab.generation import stream

    model, tok = model_tok
    pieces = stream(model, tok, "ROMEO:", 10**23, generator=torch.Generator().manual_seed(0))
    got = [next(pieces) for _ in range(5)]
    pieces.close()
    assert len("".join(got)) == 5


def test_batch_size_0_is_a_value_error_in_forward_and_generate(model_tok):
    from gptlab.generation import generate

    model, _ = model_tok
    empty = torch.zeros(0, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="batch size 0"):
        model(empty)
    with pytest.raises(ValueError, match="batch size 0"):
        generate(model, empty, 3)


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


def test_top_p_one_keeps_everything():
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1])
    model = LastTokenModel(probs.log().expand(4, 4).clone())
    idx = torch.zeros(500, 1, dtype=torch.long)
    a = generate(model, idx, 1, top_p=1.0, generator=torch.Generator().manual_seed(0))
    b = generate(model, idx, 1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and set(a[:, 1].tolist()) == {0, 1, 2, 3}
