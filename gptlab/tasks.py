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
