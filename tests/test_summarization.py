"""Summarization (lesson 13): SciTLDR loaders, the TL;DR prompt, sentence baselines, and the source-vs-summary metrics."""

from __future__ import annotations

import json
import random

import pytest

from gptlab.datasets import DataUnavailableError
from gptlab.metrics import compression_ratio, novel_ngrams, rouge, unsupported_ngrams, words
from gptlab.tasks import (
    Paper,
    lead_sentence,
    oracle_sentence,
    parse_scitldr,
    random_sentence,
    scitldr,
    tldr_example,
    tldr_prompt,
)


def line(pid, source, target, title="T"):
    return json.dumps({"paper_id": pid, "source": source, "target": target, "title": title})


def test_parse_groups_references_per_paper():
    lines = [
        line("p1", ["First.", "Second."], ["tldr a"]),
        line("p2", ["Only one.", ""], ["x", "y", "x"]),  # empty sentence dropped, duplicate TLDR kept once
        line("p1", ["First.", "Second."], ["tldr b", "tldr a"]),  # same paper again: references join
    ]
    papers = parse_scitldr(lines)
    assert [p.paper_id for p in papers] == ["p1", "p2"]
    assert papers[0].tldrs == ("tldr a", "tldr b")
    assert papers[1].sentences == ("Only one.",) and papers[1].tldrs == ("x", "y")
    assert papers[0].abstract == "First. Second."


@pytest.mark.parametrize(
    "lines, match",
    [
        ([line("p1", ["A."], ["t"]), line("p1", ["B."], ["t"])], "different abstract"),
        ([line("p1", [], ["t"])], "source"),
        ([line("p1", ["A."], [""])], "target"),
        ([json.dumps({"source": ["A."], "target": ["t"]})], "paper_id"),
        (["{not json"], "not JSON"),
        ([""], "no papers"),
    ],
)
def test_parse_refuses_bad_files(lines, match):
    with pytest.raises(ValueError, match=match):
        parse_scitldr(lines)


@pytest.fixture(scope="module")
def splits():
    try:
        return {s: scitldr(s) for s in ("train", "dev", "test")}
    except DataUnavailableError as e:
        pytest.skip(f"SciTLDR unavailable: {e}")


def test_real_splits_sizes_and_reference_counts(splits):
    assert {s: len(p) for s, p in splits.items()} == {"train": 1992, "dev": 619, "test": 618}
    assert all(len(p.tldrs) == 1 for p in splits["train"])
    for s in ("dev", "test"):  # several references per paper, each paper once
        assert max(len(p.tldrs) for p in splits[s]) >= 3
        assert len({p.paper_id for p in splits[s]}) == len(splits[s])
    assert sum(len(p.tldrs) for p in splits["test"]) > 2 * len(splits["test"])
    ids = {s: {p.paper_id for p in ps} for s, ps in splits.items()}
    assert not ids["train"] & ids["test"] and not ids["dev"] & ids["test"]
    with pytest.raises(ValueError, match="split"):
        scitldr("validation")


def test_prompt_format():
    prompt, answer = tldr_example(" We study X. It works. ", "X works.")
    assert prompt == "We study X. It works. TL;DR:" == tldr_prompt("We study X. It works.")
    assert prompt + answer == "We study X. It works. TL;DR: X works."
    for bad in ("", "  ", None):
        with pytest.raises(ValueError):
            tldr_example("abstract", bad)
        with pytest.raises(ValueError):
            tldr_prompt(bad)


def test_sentence_baselines():
    paper = Paper("p", "t", ("We like cats.", "Dogs chase red balls in parks.", "Birds sing."),
                  ("dogs chase balls", "a dog chases a red ball"))
    assert lead_sentence(paper) == "We like cats."
    assert oracle_sentence(paper) == "Dogs chase red balls in parks."
    best = rouge([oracle_sentence(paper)], [list(paper.tldrs)])
    for s in paper.sentences:  # no sentence beats the oracle on the mean of the three ROUGEs
        assert sum(rouge([s], [list(paper.tldrs)]).values()) <= sum(best.values())
    picks = {random_sentence(paper, random.Random(seed)) for seed in range(20)}
    assert picks == set(paper.sentences)
    assert random_sentence(paper, random.Random(3)) == random_sentence(paper, random.Random(3))


def test_words_and_compression():
    assert words("GPT-2's TL;DR: 3 Models!") == ["gpt", "2", "s", "tl", "dr", "3", "models"]
    assert compression_ratio("one two", "a b c d e f") == 3.0
    with pytest.raises(ValueError, match="no words"):
        compression_ratio("!!", "a b")
    with pytest.raises(TypeError):
        words(None)


def test_novel_ngrams():
    source = "We train a small model on abstracts."
    assert novel_ngrams("We train a small model.", source, 2) == 0.0  # every bigram is copied
    assert novel_ngrams("A small model.", source, 1) == 0.0
    assert novel_ngrams("Big data helps.", source, 1) == 1.0
    assert novel_ngrams("We train big models", source, 2) == pytest.approx(2 / 3)  # "we train" copied
    with pytest.raises(ValueError, match="fewer than 3 words"):
        novel_ngrams("two words", source, 3)
    with pytest.raises(ValueError, match="n must be"):
        novel_ngrams("a b", source, 0)


def test_unsupported_ngrams_lists_candidate_hallucinations():
    source = "We evaluate on CIFAR-10 and reach 93% accuracy."
    summary = "We reach 97% accuracy on ImageNet and on CIFAR-10, and on ImageNet."
    assert unsupported_ngrams(summary, source) == ["97", "imagenet"]  # each once, in order; "and"/"on" ignored
    assert unsupported_ngrams("We reach 93% accuracy.", source) == []
    assert unsupported_ngrams(summary, source, 2)[:3] == ["we reach", "reach 97", "97 accuracy"]
    assert "the" in unsupported_ngrams("the", "x", ignore=frozenset())
