"""gptlab.generation's no_repeat_ngram_size: no n-gram of the output twice, in greedy, sampling and beam search."""

from __future__ import annotations

import pytest
import torch

from gptlab.config import GPTConfig
from gptlab.generation import ban_repeated_ngrams, beam_search, generate, stream
from gptlab.model import GPT

pytestmark = pytest.mark.usefixtures("one_thread")


def looping_gpt() -> GPT:
    """A random tiny GPT over 12 tokens: greedy decoding from it falls into a loop within a few tokens."""
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("tiny", vocab_size=12, block_size=64)).eval()


def repeated(row: list[int], n: int) -> list[tuple[int, ...]]:
    grams = [tuple(row[i : i + n]) for i in range(len(row) - n + 1)]
    return [g for i, g in enumerate(grams) if g in grams[:i]]


PROMPT = torch.tensor([[1, 2, 3, 1, 2, 3, 4]])  # the prompt repeats itself: it does not count


def test_ban_repeated_ngrams_by_hand():
    logits = torch.zeros(2, 6)
    gen = torch.tensor([[1, 2, 5, 1, 2], [3, 4, 3, 4, 0]])
    out = ban_repeated_ngrams(logits, gen, 3)  # row 0 ends in (1, 2), seen before followed by 5
    assert out[0].isinf().nonzero().flatten().tolist() == [5]
    assert not out[1].isinf().any()  # row 1 ends in (4, 0): new
    out2 = ban_repeated_ngrams(logits, gen, 2)  # row 1 ends in 0: never seen before; row 0 ends in 2 -> 5
    assert out2[0].isinf().nonzero().flatten().tolist() == [5] and not out2[1].isinf().any()
    assert ban_repeated_ngrams(logits, gen, 1)[1].isinf().nonzero().flatten().tolist() == [0, 3, 4]
    assert torch.equal(ban_repeated_ngrams(logits, gen[:, :2], 3), logits)  # too short to repeat a trigram
    assert not logits.isinf().any()  # the input is not modified


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3"])
def test_bad_size_is_refused(bad):
    model = looping_gpt()
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        generate(model, PROMPT, 5, do_sample=False, no_repeat_ngram_size=bad)
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        beam_search(model, PROMPT, 5, no_repeat_ngram_size=bad)


def test_greedy_loops_without_the_ban_and_not_with_it():
    model = looping_gpt()
    plain = generate(model, PROMPT, 30, do_sample=False)[0, PROMPT.size(1) :].tolist()
    assert repeated(plain, 3), "the test model should loop under greedy decoding"
    for n in (2, 3, 4):
        outs = [
            generate(model, PROMPT, 30, do_sample=False, no_repeat_ngram_size=n, use_cache=c)[0, PROMPT.size(1) :].tolist()
            for c in (True, False)
        ]
        assert outs[0] == outs[1]  # cached == uncached
        assert repeated(outs[0], n) == [] and len(outs[0]) == 30
        assert outs[0][: n] == plain[: n]  # nothing can be banned before n tokens exist


def test_sampling_never_repeats_and_cache_agrees():
    model = looping_gpt()
    prompt = PROMPT.repeat(4, 1)
    for n in (2, 3):
        outs = []
        for c in (True, False):
            g = torch.Generator().manual_seed(7)
            outs.append(generate(model, prompt, 25, temperature=0.5, no_repeat_ngram_size=n, use_cache=c, generator=g))
        assert torch.equal(outs[0], outs[1])
        for row in outs[0][:, PROMPT.size(1) :].tolist():
            assert repeated(row, n) == []


def test_beam_search_never_repeats_and_cache_agrees():
    model = looping_gpt()
    plain = beam_search(model, PROMPT, 25, num_beams=3)[0, PROMPT.size(1) :].tolist()
    assert repeated(plain, 3)
    for n in (2, 3):
        outs = [
            beam_search(model, PROMPT, 25, num_beams=3, no_repeat_ngram_size=n, use_cache=c)[0, PROMPT.size(1) :].tolist()
            for c in (True, False)
        ]
        assert outs[0] == outs[1] and repeated(outs[0], n) == []


def test_stop_token_and_stream_pass_the_option_through():
    model = looping_gpt()
    out = generate(model, PROMPT, 30, do_sample=False, no_repeat_ngram_size=2, stop_tokens=[11])[0, PROMPT.size(1) :].tolist()
    before_stop = out[: out.index(11) + 1] if 11 in out else out
    assert repeated(before_stop, 2) == []

    class Ids:  # a tokenizer whose text is the ids
        def encode(self, s):
            return [int(t) for t in s.split()]

        def decode(self, ids):
            return "".join(f" {i}" for i in ids)

    text = "".join(stream(model, Ids(), "1 2 3 1 2 3 4", 20, do_sample=False, no_repeat_ngram_size=2))
    ids = generate(model, PROMPT, 20, do_sample=False, no_repeat_ngram_size=2)[0, PROMPT.size(1) :].tolist()
    assert text == Ids().decode(ids)


# ---------------------------------------------------------------- the ban that leaves no token (issue 26: D29, D30)


@pytest.mark.parametrize("opts", [dict(do_sample=False), dict(), dict(top_k=1), dict(top_p=0.5, temperature=0.7)],
                         ids=["greedy", "sampling", "top_k=1", "top_p"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_once_the_ban_leaves_no_token_decoding_stops_and_says_so(opts, use_cache):
    model = looping_gpt()  # 12 tokens: n=1 bans each one once used, so at most 12 new tokens can exist
    g = torch.Generator().manual_seed(0)
    out = generate(model.train(), PROMPT.repeat(2, 1), 30, no_repeat_ngram_size=1, use_cache=use_cache, generator=g, **opts)
    assert out.stopped_because == "no_repeat_ngram_size" and model.training  # mode restored
    assert out.shape == (2, PROMPT.size(1) + 12)  # ended where the first row ran out, for both rows
    for row in out[:, PROMPT.size(1):].tolist():
        assert sorted(row) == list(range(12))  # every token once: none banned was emitted
    pieces = "".join(stream(model, _Ids(), "1 2 3", 30, no_repeat_ngram_size=1, do_sample=False, use_cache=use_cache))
    assert sorted(int(t) for t in pieces.split()) == list(range(12))  # the stream ends there too


class _Ids:
    """A tokenizer whose text is space-separated ids (the 12-token model has no real one)."""
    def encode(self, s: str) -> list[int]:
        return [int(t) for t in s.split()]

    def decode(self, ids: list[int]) -> str:
        return "".join(f" {i}" for i in ids)


def test_the_result_says_why_decoding_ended_otherwise():
    model = looping_gpt()
    out = generate(model, PROMPT, 5, do_sample=False)
    assert out.shape == (1, PROMPT.size(1) + 5) and out.stopped_because == "max_new_tokens"
    first = int(out[0, PROMPT.size(1)])
    out = generate(model, PROMPT, 5, do_sample=False, stop_tokens=first, no_repeat_ngram_size=1)
    assert out.shape == (1, PROMPT.size(1) + 1) and out.stopped_because == "stop_tokens"
    assert generate(model, PROMPT, 0).stopped_because == "max_new_tokens"


@pytest.mark.parametrize("use_cache", [True, False])
def test_beam_search_returns_the_best_unfinished_beam_when_the_ban_leaves_none(use_cache):
    model = looping_gpt()
    ok = beam_search(model, PROMPT, 12, num_beams=3, no_repeat_ngram_size=1, use_cache=use_cache)
    assert ok.stopped_because == "max_new_tokens" and ok.size(1) == PROMPT.size(1) + 12
    out = beam_search(model, PROMPT, 13, num_beams=3, no_repeat_ngram_size=1, use_cache=use_cache)  # 13 cannot be reached
    assert out.stopped_because == "no_repeat_ngram_size"
    assert torch.equal(out, ok)  # the best beam of 12 tokens, not the prompt alone
    assert sorted(out[0, PROMPT.size(1):].tolist()) == list(range(12))
    assert beam_search(model, PROMPT, 0).stopped_because == "max_new_tokens"
