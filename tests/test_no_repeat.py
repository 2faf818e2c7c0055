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
