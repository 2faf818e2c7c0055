"""Task data for the application lessons, in one place: loaders and prompt formats.

Each application lesson (11 sentiment, 12 translation, 13 summarization) reads its
examples from here, so a split or a prompt format is defined once and the tests
check it once. Datasets come through `gptlab.data.fetch` (cache, mirror, sha256).
"""

from __future__ import annotations

import functools
import re
from typing import Iterable, NamedTuple

from gptlab.data import read_text


# --- SST-2 sentiment (lesson 11) -------------------------------------------------

SST2_LABELS = ("negative", "positive")  # label 0, label 1


class LabeledText(NamedTuple):
    """One example: `text, label = example` unpacks it."""

    text: str
    label: int


def _read_sst2_tsv(name: str) -> list[LabeledText]:
    """Rows of a GLUE SST-2 file (header `sentence<TAB>label`), text stripped of the trailing space."""
    lines = read_text(name).splitlines()
    if not lines or lines[0].split("\t") != ["sentence", "label"]:
        raise ValueError(f"{name}: expected the GLUE header 'sentence<TAB>label', got {lines[:1]!r}")
    rows = []
    for i, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != 2 or parts[1].strip() not in ("0", "1"):
            raise ValueError(f"{name} line {i}: expected 'sentence<TAB>0 or 1', got {line[:80]!r}")
        rows.append(LabeledText(parts[0].strip(), int(parts[1])))
    return rows


def normalize_text(text: str) -> str:
    """Lowercase letters and digits only, single spaces: 'Bad .' and 'bad' compare equal."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def maximal_phrases(texts: Iterable[str]) -> set[str]:
    """The texts that are not a word span of a longer text in the collection.

    GLUE's SST-2 train file holds every labelled node of each sentence's parse tree:
    "a charming and often affecting journey" next to "charming", "often affecting", ...
    A sub-phrase lies inside its sentence, so the whole sentences are exactly the
    texts no other text contains. Longest first, and a text already found inside a
    longer one adds no spans of its own (its spans are spans of that one too).
    """
    words = {t: tuple(t.split()) for t in texts}
    have = set(words.values())
    inside: set[tuple[str, ...]] = set()
    for w in sorted(have, key=len, reverse=True):
        if w in inside:
            continue
        n = len(w)
        for i in range(n):
            for j in range(i + 1, min(n + 1, i + n)):  # every span but w itself
                if w[i:j] in have:
                    inside.add(w[i:j])
    return {t for t, w in words.items() if w not in inside}


@functools.lru_cache(maxsize=2)
def _sst2(phrases: bool) -> tuple[tuple[LabeledText, ...], tuple[LabeledText, ...]]:
    train_rows, dev = _read_sst2_tsv("sst2_train"), _read_sst2_tsv("sst2_dev")
    labels: dict[str, set[int]] = {}
    for text, label in train_rows:
        labels.setdefault(text, set()).add(label)
    keep = set(labels) if phrases else maximal_phrases(labels)
    dev_norm = {normalize_text(t) for t, _ in dev}
    train, seen = [], set()
    for text, _ in train_rows:  # file order; each text once
        if text in seen or text not in keep:
            continue
        seen.add(text)
        if len(labels[text]) > 1 or normalize_text(text) in dev_norm:
            continue  # contradictory labels, or the same words as a dev sentence
        train.append(LabeledText(text, next(iter(labels[text]))))
    return tuple(train), tuple(dev)


def sst2(phrases: bool = False) -> tuple[list[LabeledText], list[LabeledText]]:
    """(train, dev) of SST-2 (Socher et al. 2013; GLUE), label 1 = positive.

    Texts are as GLUE ships them: lowercased, tokenized Penn-Treebank style ("it 's").
    dev: GLUE's 872 dev sentences (the test labels are not public, so dev is the test here).

    train: by default the 6,885 *whole sentences* of GLUE's 67,349 train rows. The
    other rows are their sub-phrases ("charming", "not good") with their own labels:
    more supervision, but 60,000 short fragments of the same 6,900 sentences, while
    dev holds whole sentences only. Sentences-only keeps train and dev alike, makes
    every epoch ~10x cheaper, and is the unlabeled text a language model pretrains
    on without repeating itself. phrases=True returns every distinct phrase instead
    (the usual GLUE setup; a bag-of-words model gains from it).

    Either way no dev sentence leaks into train: rows whose normalize_text() equals
    a dev sentence's are dropped (with phrases=True that removes 'cool', 'bad', which
    match dev's 'cool ?' and 'bad .'), as are rows whose copies carry both labels.
    """
    if not isinstance(phrases, bool):
        raise TypeError(f"phrases must be True or False, got {phrases!r}")
    train, dev = _sst2(phrases)
    return list(train), list(dev)


# --- Tatoeba English -> Chinese translation (lesson 12) --------------------------



# --- SciTLDR summarization (lesson 13) -------------------------------------------

SCITLDR_SPLITS = ("train", "dev", "test")
TLDR_PROMPT = " TL;DR:"  # Radford et al. (2019): GPT-2 summarizes when a text is followed by "TL;DR:"


class Paper(NamedTuple):
    """One SciTLDR-A paper: its abstract (one sentence per item) and *every* reference TLDR.

    train has one TLDR per paper (the author's); dev and test have 1-5 (the
    author's and peer reviewers' rewrites), kept together because a summary is
    scored against the closest of them (the maximum over references).
    """

    paper_id: str
    title: str
    sentences: tuple[str, ...]
    tldrs: tuple[str, ...]

    @property
    def abstract(self) -> str:
        return " ".join(self.sentences)


def _strings(value: object, what: str) -> tuple[str, ...]:
    """The stripped non-empty strings of a list (SciTLDR has a few empty sentences); at least one."""
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError(f"{what} must be a list of strings, got {str(value)[:80]!r}")
    out = tuple(s.strip() for s in value if s.strip())
    if not out:
        raise ValueError(f"{what} holds no non-empty string")
    return out


def parse_scitldr(lines: Iterable[str], name: str = "scitldr") -> list[Paper]:
    """Papers of a SciTLDR JSONL file, in file order, the TLDRs of one paper_id grouped.

    Each line holds {"paper_id", "source": [sentences], "target": [TLDRs], ...}.
    SciTLDR-A already puts all of a paper's TLDRs on one line; a paper_id seen on
    several lines (as in other SciTLDR variants) must repeat the same abstract,
    and its TLDRs are appended to the first line's (duplicates kept once).
    """
    import json

    papers: dict[str, Paper] = {}
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{name} line {i}: not JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("paper_id"), str) or not row["paper_id"]:
            raise ValueError(f"{name} line {i}: expected an object with a non-empty string 'paper_id'")
        pid = row["paper_id"]
        sentences = _strings(row.get("source"), f"{name} line {i} ('{pid}'): 'source'")
        tldrs = _strings(row.get("target"), f"{name} line {i} ('{pid}'): 'target'")
        title = row.get("title") if isinstance(row.get("title"), str) else ""
        if pid in papers:
            old = papers[pid]
            if old.sentences != sentences:
                raise ValueError(f"{name} line {i}: paper '{pid}' appears again with a different abstract")
            tldrs = old.tldrs + tuple(t for t in tldrs if t not in old.tldrs)
            papers[pid] = old._replace(tldrs=tldrs)
        else:
            papers[pid] = Paper(pid, title, sentences, tuple(dict.fromkeys(tldrs)))
    if not papers:
        raise ValueError(f"{name}: no papers found")
    return list(papers.values())


@functools.lru_cache(maxsize=3)
def _scitldr(split: str) -> tuple[Paper, ...]:
    name = f"scitldr_a_{split}"
    return tuple(parse_scitldr(read_text(name).splitlines(), name))


def scitldr(split: str) -> list[Paper]:
    """SciTLDR-A (Cachola et al., 2020) papers of `split`: "train" (1,992), "dev" (619) or "test" (618)."""
    if split not in SCITLDR_SPLITS:
        raise ValueError(f"split must be one of {SCITLDR_SPLITS}, got {split!r}")
    return list(_scitldr(split))


def tldr_prompt(abstract: str) -> str:
    """'<abstract> TL;DR:', the text a model continues with its summary."""
    if not isinstance(abstract, str) or not abstract.strip():
        raise ValueError("abstract must be a non-empty str")
    return abstract.strip() + TLDR_PROMPT


def tldr_example(abstract: str, summary: str) -> tuple[str, str]:
    """(prompt, answer) for fine-tuning: prompt + answer == '<abstract> TL;DR: <summary>'.

    The answer starts with the space, so a byte-level BPE sees ' We' exactly as it
    does inside running text; the loss is taken on the answer only
    (gptlab.finetune.target_only_batch).
    """
    if not isinstance(summary, str) or not summary.strip():
        raise ValueError("summary must be a non-empty str")
    return tldr_prompt(abstract), " " + summary.strip()


def lead_sentence(paper: Paper) -> str:
    """The lead-1 baseline: the abstract's first sentence."""
    return paper.sentences[0]


def random_sentence(paper: Paper, rng) -> str:
    """A sentence of the abstract drawn with `rng` (a random.Random): the floor for copying one sentence."""
    return paper.sentences[rng.randrange(len(paper.sentences))]


def oracle_sentence(paper: Paper) -> str:
    """The extractive oracle: the abstract sentence with the best mean of ROUGE-1/2/L F1 against the TLDRs.

    Each ROUGE is the maximum over the references (gptlab.metrics.rouge). It is
    the ceiling for any summarizer that copies one sentence; ties go to the earlier one.
    """
    from gptlab.metrics import rouge

    def score(s: str) -> float:
        return sum(rouge([s], [list(paper.tldrs)]).values())

    return max(paper.sentences, key=score)
