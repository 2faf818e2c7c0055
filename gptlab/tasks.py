"""Task data for the application lessons (11-13), in one place: loaders, prompt formats, and translate().

Each application lesson (11 sentiment, 12 translation, 13 summarization) reads its
examples from here, so a split or a prompt format is defined once and the tests
check it once. Datasets come through `gptlab.datasets.fetch` (cache, mirror, sha256).
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import torch

from gptlab import data
from gptlab.datasets import read_text
from gptlab.device import eval_mode
from gptlab.generation import beam_search, generate
from gptlab.metrics import rouge
from gptlab.seq2seq import EncoderDecoder, source_mask

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
    the train sentence "frida is n't that much different from many a hollywood romance ."
    next to its word spans "many a hollywood romance", "is n't", ... (runs of whole
    words: "romance" is inside it, "roman" is not). A sub-phrase lies inside its
    sentence, so the whole sentences are exactly the
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
    other rows are their sub-phrases ("many a hollywood romance", "is n't") with their own labels:
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

# Tatoeba mixes the two Chinese scripts (roughly a third of the cmn pairs are written in
# traditional characters). A model that sees both learns to hedge between them, and a
# simplified hypothesis scored against a traditional reference loses every differing
# character. We keep the simplified-script pairs: a pair is dropped when its Chinese side
# contains any of these common traditional-only characters (each has a different simplified
# form). A short list, not a converter, so it misses rare ones; no extra dependency.
TRADITIONAL_ONLY = (
    "們這個說來時會對還過沒麼為國開車東見電話長間門問題學習裡後讓請謝應該愛經歡氣書買賣錢飯聽寫讀語"
    "讚當從實現點動種頭樣樂義務發變幾條嗎媽歲給認識覺鐘機親邊員總帶無與壞辦難處歷別錯決館隻雙貓魚鳥"
    "週級紅藍綠黃並兒裏妳麵幫劃"
)

EN, ZH, END = "<|en|>", "<|zh|>", "<|end|>"
TRANSLATION_SPECIAL_TOKENS = (EN, ZH, END)  # mark the languages and the end of a translation


@dataclass(frozen=True)
class TranslationPair:
    en: str
    zh: str
    attribution: str  # Tatoeba's CC-BY line: sentence ids and their authors


def has_traditional(text: str) -> bool:
    """True if `text` contains one of the TRADITIONAL_ONLY characters."""
    return any(ch in _TRADITIONAL_SET for ch in text)


_TRADITIONAL_SET = frozenset(TRADITIONAL_ONLY)


def parse_translation_pairs(text: str) -> list[TranslationPair]:
    """Rows `English<TAB>Chinese<TAB>attribution` -> pairs (all rows, both scripts)."""
    pairs = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 3 or not cols[0].strip() or not cols[1].strip():
            raise ValueError(f"line {i}: expected 'English<TAB>Chinese<TAB>attribution', got {line[:80]!r}")
        pairs.append(TranslationPair(cols[0].strip(), cols[1].strip(), cols[2].strip()))
    return pairs


def translation_pairs(*, simplified_only: bool = True) -> list[TranslationPair]:
    """The Tatoeba English-Mandarin pairs (registry name `cmn`, CC BY 2.0 FR), in file order.

    simplified_only=True (the lesson's choice) drops pairs whose Chinese side uses a
    traditional-only character (see TRADITIONAL_ONLY).
    """
    pairs = parse_translation_pairs(read_text("cmn"))
    return [p for p in pairs if not (simplified_only and has_traditional(p.zh))]


def split_translation_pairs(
    pairs: list[TranslationPair], *, test_pairs: int = 1200, dev_pairs: int = 600, seed: int = 0
) -> dict[str, list[TranslationPair]]:
    """A seeded train/dev/test split made by unique English source sentence.

    Tatoeba often has several translations of one English sentence; if they landed in
    different splits the test set would score memorised sentences. So the distinct
    sources are shuffled (random.Random(seed), from sorted order: the same split on every
    machine), test takes whole sources until it holds >= test_pairs pairs, dev likewise,
    and train the rest. Pairs keep their file order within each split.
    """
    for name, v in (("test_pairs", test_pairs), ("dev_pairs", dev_pairs)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    by_source: dict[str, int] = {}
    for p in pairs:
        by_source[p.en] = by_source.get(p.en, 0) + 1
    if test_pairs + dev_pairs >= len(pairs):
        raise ValueError(f"test_pairs + dev_pairs = {test_pairs + dev_pairs} leaves no training pairs out of {len(pairs)}")
    sources = sorted(by_source)
    random.Random(seed).shuffle(sources)
    where: dict[str, str] = {}
    counts = {"test": 0, "dev": 0}
    for s in sources:
        split = "test" if counts["test"] < test_pairs else "dev" if counts["dev"] < dev_pairs else "train"
        where[s] = split
        if split != "train":
            counts[split] += by_source[s]
    out: dict[str, list[TranslationPair]] = {"train": [], "dev": [], "test": []}
    for p in pairs:
        out[where[p.en]].append(p)
    return out


def translation_prompt(en: str) -> str:
    """The decoder-only model's prompt: `<|en|>English<|zh|>`; the model continues with Chinese and <|end|>."""
    return f"{EN}{en}{ZH}"


def translation_text(pair: TranslationPair) -> str:
    """One training example for the decoder-only model: `<|en|>English<|zh|>Chinese<|end|>`."""
    return f"{translation_prompt(pair.en)}{pair.zh}{END}"


def decoder_only_example(tokenizer, pair: TranslationPair, *, target_only: bool = True) -> tuple[list[int], list[int]]:
    """(x, y) ids for next-token training on one pair: y is x shifted left by one.

    target_only=True sets y to IGNORE_INDEX (-100, skipped by GPT's loss) wherever the
    next token is still part of the prompt, so the loss counts only the Chinese tokens
    and <|end|>: the model is trained to translate, not to model English.
    """
    prompt = tokenizer.encode(translation_prompt(pair.en))
    answer = tokenizer.encode(pair.zh) + [tokenizer.special_tokens[END]]
    if target_only:
        return data.target_only(prompt, answer)
    ids = prompt + answer
    return ids[:-1], ids[1:]


def encoder_decoder_example(tokenizer, pair: TranslationPair) -> tuple[list[int], list[int], list[int]]:
    """(src, x, y) ids for the encoder-decoder: the encoder reads `<|en|>English`, the decoder
    reads `<|zh|>Chinese` and predicts `Chinese<|end|>` -- the same tokens the decoder-only
    model sees, split into two streams."""
    src = tokenizer.encode(f"{EN}{pair.en}")
    tgt = [tokenizer.special_tokens[ZH]] + tokenizer.encode(pair.zh) + [tokenizer.special_tokens[END]]
    return src, tgt[:-1], tgt[1:]


def shuffled_sources(pairs: list[TranslationPair], seed: int = 0) -> list[TranslationPair]:
    """The same Chinese targets, each given the English of another pair (a seeded derangement).

    Lesson 12's test of how much a model uses the source: its loss on the true targets
    with the wrong sources rises by as much as the source helps it predict them. The
    pairs are shuffled (random.Random(seed)) and each takes the English of the next one
    in that order, so no pair keeps its own position's source.
    """
    if len(pairs) < 2:
        raise ValueError(f"shuffled_sources needs at least 2 pairs to give each another's source, got {len(pairs)}")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    source_of = {order[k]: order[(k + 1) % len(order)] for k in range(len(order))}
    return [TranslationPair(pairs[source_of[i]].en, pairs[i].zh, "") for i in range(len(pairs))]


def _strip_translation(tokenizer, ids: list[int]) -> str:
    end = tokenizer.special_tokens[END]
    if end in ids:
        ids = ids[: ids.index(end)]
    return tokenizer.decode(ids).strip()


@torch.no_grad()
def translate(
    model: torch.nn.Module, tokenizer, sources: list[str], *, num_beams: int = 1, length_penalty: float = 1.0,
    max_new_tokens: int = 48, batch_size: int = 128,
) -> list[str]:
    """Translate English sentences with a decoder-only GPT or an EncoderDecoder; stop at <|end|>.

    num_beams=1 is greedy decoding, batched: for the GPT, prompts of equal token length go
    in one batch (no padding, so no attention mask is needed); for the EncoderDecoder the
    sources are padded and masked. num_beams>1 runs gptlab.generation.beam_search (with
    `length_penalty`) one sentence at a time. Both systems decode through gptlab.generation;
    the EncoderDecoder via its ConditionedDecoder.
    """
    if isinstance(sources, str):
        raise TypeError("sources must be a list of English sentences, got one str; wrap it: [sentence]")
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be a positive integer (1 = greedy), got {num_beams!r}")
    if not sources:
        return []
    end = tokenizer.special_tokens[END]
    seq2seq = isinstance(model, EncoderDecoder)
    block = model.config.block_size
    if seq2seq:
        prompts = [tokenizer.encode(f"{EN}{s}") for s in sources]
        start = [tokenizer.special_tokens[ZH]]
    else:
        prompts = [tokenizer.encode(translation_prompt(s)) for s in sources]
    limit = block if seq2seq else block - 1  # the encoder reads block_size tokens; a GPT's prompt must leave room for one
    for i, p in enumerate(prompts):
        if len(p) > limit:
            raise ValueError(f"sentence {i} ({sources[i][:40]!r}{'...' if len(sources[i]) > 40 else ''}) is {len(p)} tokens "
                             f"as a {'source' if seq2seq else 'prompt'}, more than the {limit} the model's block_size of "
                             f"{block} allows; shorten or split it")
    # each sentence's budget from its own length: a long neighbour must not cut the others' translations short
    budget = [min(max_new_tokens, block - 1 if seq2seq else block - len(p)) for p in prompts]
    out: list[str | None] = [None] * len(sources)
    with eval_mode(model):  # restored even when a sentence fails
        if num_beams == 1:
            order = sorted(range(len(sources)), key=lambda i: len(prompts[i]))
            groups: list[list[int]] = []
            for i in order:  # GPT: equal prompt lengths (so equal budgets) per batch; EncoderDecoder: similar lengths
                if groups and len(groups[-1]) < batch_size and (seq2seq or len(prompts[groups[-1][0]]) == len(prompts[i])):
                    groups[-1].append(i)
                else:
                    groups.append([i])
            for g in groups:
                if seq2seq:
                    src = data.pad_batch([prompts[i] for i in g], end)[0]
                    dec = model.condition(src, source_mask(src, end))
                    idx = torch.tensor([start] * len(g))
                    new = generate(dec, idx, budget[g[0]], do_sample=False, stop_tokens=end)[:, 1:]
                else:
                    idx = torch.tensor([prompts[i] for i in g])
                    new = generate(model, idx, budget[g[0]], do_sample=False, stop_tokens=end)[:, idx.size(1) :]
                for row, i in zip(new.tolist(), g):
                    out[i] = _strip_translation(tokenizer, row)
        else:
            for i, p in enumerate(prompts):
                if seq2seq:
                    dec = model.condition(torch.tensor([p]))
                    seq = beam_search(dec, torch.tensor([start]), budget[i], num_beams=num_beams, length_penalty=length_penalty,
                                      stop_tokens=end)
                    out[i] = _strip_translation(tokenizer, seq[0, 1:].tolist())
                else:
                    seq = beam_search(model, torch.tensor([p]), budget[i], num_beams=num_beams, length_penalty=length_penalty,
                                      stop_tokens=end)
                    out[i] = _strip_translation(tokenizer, seq[0, len(p) :].tolist())
    return [o if o is not None else "" for o in out]


# --- SciTLDR summarization (lesson 13) -------------------------------------------

SCITLDR_SPLITS = ("train", "dev", "test")
TLDR_PROMPT = " TL;DR:"  # Radford et al. (2019): GPT-2 summarizes when a text is followed by "TL;DR:"


class Paper(NamedTuple):
    """One SciTLDR-A paper: its abstract (one sentence per item) and *every* reference TLDR.

    train has one TLDR per paper (the authors'); dev has 1-4 and test 2-4: the
    authors' and the expert-derived ones (TLDR-PR, written by annotators from the
    paper's peer reviews), kept together because a summary is scored against the
    closest of them (the maximum over references).
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
    (gptlab.data.target_only_batch).
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

    def score(s: str) -> float:
        return sum(rouge([s], [list(paper.tldrs)]).values())

    return max(paper.sentences, key=score)
