"""Tokenizers: how text becomes the integer ids a GPT reads, and back (lesson 01).

Three kinds, one interface (`encode(str) -> list[int]`, `decode(list[int]) -> str`,
`n_vocab`):

- `CharTokenizer`: one id per character. Tiny vocabulary, long sequences; the
  tokenizer of the first lessons (65 characters for Tiny Shakespeare).
- `BPETokenizer` from `train_bpe(text, vocab_size)`: byte-level byte-pair
  encoding as GPT-2 does it. Start from the 256 byte values (so *any* text can
  be encoded, no unknown tokens) and repeatedly glue the most frequent adjacent
  pair into a new token. Training is ours, in pure Python; encoding runs in
  tiktoken's Rust core, fed with our merges as its ranks.
- `gpt2()`: the real GPT-2 vocabulary (50,257 tokens) as a `tiktoken.Encoding`,
  read from the pinned ranks file that `gptlab.datasets.fetch` provides, so it works
  offline from a mirror.

`get_pair_counts` and `merge` are the two small functions the BPE lesson calls
by hand on a toy string; training and the reference `BPETokenizer.encode_slow`
use the very same functions, so what the lesson shows is what runs.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import heapq
import json
import operator
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence, Union

import regex
import tiktoken

from gptlab.datasets import DATASETS, fetch

# GPT-2's pre-tokenizer: split text into words, numbers, punctuation runs and
# whitespace *before* BPE, so merges never cross those boundaries (no token for
# "dog." and "dog!" and "dog?"). This is tiktoken's form of the pattern in the
# GPT-2 release ('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+),
# equivalent and faster thanks to possessive quantifiers.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
ENDOFTEXT = "<|endoftext|>"
GPT2_TIKTOKEN_SHA256 = DATASETS["gpt2_tiktoken"].sha256  # one pin, in the registry

Pair = tuple[int, int]
# Limits a tokenizer file must respect (a tampered one could otherwise exhaust memory):
# GPT-2's longest token is 128 bytes; a merge chain that doubles each step would reach 2**60.
MAX_TOKEN_BYTES = 4096
MAX_VOCAB_BYTES = 64 << 20
MAX_TOKENIZER_FILE_BYTES = 256 << 20
# Text a split pattern must cut into non-empty pieces that cover it (see _check_pattern).
_PATTERN_PROBE = "Hello, world! It's 2024.\n\tcafé  naïve 中文 😀 <|x|> a_b-c\r\n  \x00 end"


# ---------------------------------------------------------------------------
# The two functions BPE is made of (readable, pure Python)
# ---------------------------------------------------------------------------


def get_pair_counts(ids: Sequence[int], counts: dict[Pair, int] | None = None) -> dict[Pair, int]:
    """How often each adjacent pair occurs in `ids`: [1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}.

    Pass `counts` to add to an existing tally (one call per chunk of text).
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` by `new_id`, scanning left to right.

    merge([1, 2, 3, 1, 2], (1, 2), 4) -> [4, 3, 4]; overlapping runs go left first:
    merge([5, 5, 5], (5, 5), 6) -> [6, 5].
    """
    out: list[int] = []
    i, n = 0, len(ids)
    a, b = pair
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _utf8(text: str) -> bytes:
    # Lone surrogates (e.g. from a bad file decode) cannot be UTF-8 encoded; like
    # tiktoken, replace them with U+FFFD instead of failing.
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def _check_ids(ids: Iterable[int], n_vocab: int, what: str) -> list[int]:
    out: list[int] = []
    for pos, i in enumerate(ids):
        try:
            if isinstance(i, bool):
                raise TypeError
            out.append(operator.index(i))  # ints, numpy ints, integer tensors; never floats or strings
        except TypeError:
            raise TypeError(f"token ids must be integers, got {i!r} ({type(i).__name__}) at position {pos}") from None
        if not 0 <= out[-1] < n_vocab:
            raise ValueError(f"token id {out[-1]} at position {pos} is out of range for this {what} (ids are 0..{n_vocab - 1})")
    return out


def _check_pattern(pattern: str, text: str) -> None:
    """Raise ValueError unless `pattern` cuts `text` into non-empty pieces that cover all of it.

    tiktoken silently drops text its split pattern does not match, and crashes on
    a pattern that matches the empty string, so a custom pattern is checked here.
    """
    pos = 0
    for m in regex.finditer(pattern, text):
        if m.start() != pos or m.end() == m.start():
            gap = text[pos : m.start()]
            why = f"it skips {gap[:20]!r}" if gap else "it matches the empty string"
            raise ValueError(f"the split pattern {pattern!r} does not cover the text ({why} at character {pos}); "
                             "a BPE split pattern must match every character")
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"the split pattern {pattern!r} does not cover the text (it skips {text[pos:pos + 20]!r} at character {pos}); "
                         "a BPE split pattern must match every character")


# ---------------------------------------------------------------------------
# Characters
# ---------------------------------------------------------------------------


class CharTokenizer:
    """One token per character; the vocabulary is the characters seen in the training text."""

    def __init__(self, chars: Iterable[str]) -> None:
        chars = list(chars)
        if not chars:
            raise ValueError("CharTokenizer needs at least one character; build it with CharTokenizer.from_text(text)")
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"CharTokenizer vocabulary entries must be single characters, got {c!r}")
            if "\ud800" <= c <= "\udfff":  # cannot be written as UTF-8: fail now, not when the model is saved
                raise ValueError(f"CharTokenizer vocabulary holds {c!r}, a lone surrogate (half of a broken character), not text; "
                                 "decode the text with encoding='utf-8', errors='strict' or remove it")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"CharTokenizer vocabulary has duplicate characters {dup!r}; each character needs exactly one id")
        self.chars: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """The sorted unique characters of `text`, so the ids do not depend on the order they appear in."""
        if not isinstance(text, str) or not text:
            raise ValueError("CharTokenizer.from_text needs a non-empty string to collect characters from")
        return cls(sorted(set(text)))

    @property
    def n_vocab(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            pass
        for pos, c in enumerate(text):  # slow path only to write a useful message
            if c not in self.stoi:
                raise ValueError(
                    f"character {c!r} at position {pos} is not in this CharTokenizer's vocabulary "
                    f"of {self.n_vocab} characters; rebuild the vocabulary with CharTokenizer.from_text(...) "
                    f"on text that contains it (or remove it from the input)"
                ) from None
        raise AssertionError("unreachable")

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in _check_ids(ids, self.n_vocab, "CharTokenizer"))

    def to_dict(self) -> dict:
        return {"type": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        chars = d.get("chars")
        if not isinstance(chars, str):
            raise ValueError('a "char" tokenizer file needs a "chars" string holding the vocabulary in id order')
        return cls(chars)

    def save(self, path: str | Path) -> None:
        _write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "CharTokenizer":
        return cls.from_dict(_read_json(path, "char"))

    def __repr__(self) -> str:
        return f"CharTokenizer(n_vocab={self.n_vocab})"


# ---------------------------------------------------------------------------
# Byte-level BPE
# ---------------------------------------------------------------------------


class BPETokenizer:
    """Byte-level BPE: ids 0..255 are the single bytes, id 256 + i is `merges[i]` glued together.

    `encode`/`decode` run through `self.encoding`, a tiktoken.Encoding whose
    ranks are our vocabulary in id order (tiktoken merges the adjacent pair
    whose bytes have the lowest rank first, which is the order we learned them).
    `encode_slow` is the same algorithm spelled out in Python, for teaching and
    as the reference the tests compare tiktoken against. Special tokens (for
    example "<|endoftext|>") get the ids after the merges.
    """

    def __init__(
        self,
        merges: Sequence[Pair],
        special_tokens: dict[str, int] | None = None,
        pattern: str = GPT2_SPLIT_PATTERN,
        name: str | None = None,
    ) -> None:
        vocab = [bytes([b]) for b in range(256)]
        self.merges: list[Pair] = []
        total_bytes = 256
        for i, pair in enumerate(merges):
            try:
                a, b = (int(x) for x in pair)
            except (TypeError, ValueError):
                raise ValueError(f"merge {i} must be a pair of token ids, got {pair!r}") from None
            if not (0 <= a < len(vocab) and 0 <= b < len(vocab)):
                raise ValueError(f"merge {i} {pair!r} uses an id that does not exist yet (ids so far are 0..{len(vocab) - 1})")
            total_bytes += len(vocab[a]) + len(vocab[b])
            if len(vocab[a]) + len(vocab[b]) > MAX_TOKEN_BYTES or total_bytes > MAX_VOCAB_BYTES:
                raise ValueError(f"merge {i} {pair!r} builds a token of {len(vocab[a]) + len(vocab[b]):,} bytes; tokens of a BPE "
                                 f"vocabulary are at most {MAX_TOKEN_BYTES} bytes ({total_bytes:,} bytes in all so far)")
            vocab.append(vocab[a] + vocab[b])
            self.merges.append((a, b))
        ranks = {tok: i for i, tok in enumerate(vocab)}
        if len(ranks) != len(vocab):
            raise ValueError("two merges produce the same bytes; a BPE vocabulary needs one id per byte string")
        special_tokens = dict(special_tokens or {})
        for s, sid in special_tokens.items():
            if not isinstance(s, str) or not s:
                raise ValueError(f"special tokens must be non-empty strings, got {s!r} (an empty one would match everywhere)")
            if isinstance(sid, bool) or not isinstance(sid, int):
                raise ValueError(f"special token {s!r} needs an integer id, got {sid!r}")
        try:
            compiled = regex.compile(pattern)
        except (regex.error, TypeError) as e:
            raise ValueError(f"the split pattern {pattern!r} is not a valid regular expression: {e}") from None
        if pattern != GPT2_SPLIT_PATTERN:
            _check_pattern(pattern, _PATTERN_PROBE)
        expected = list(range(len(vocab), len(vocab) + len(special_tokens)))
        if sorted(special_tokens.values()) != expected:
            raise ValueError(f"special token ids must follow the merges ({expected}), got {special_tokens}")
        self.vocab: list[bytes] = vocab
        self.special_tokens: dict[str, int] = special_tokens
        self.pattern = pattern
        self._merge_ids: dict[Pair, int] = {p: 256 + i for i, p in enumerate(self.merges)}
        self._compiled = compiled
        self.encoding = tiktoken.Encoding(
            name=name or f"gptlab-bpe-{len(vocab) + len(special_tokens)}",
            pat_str=pattern,
            mergeable_ranks=ranks,
            special_tokens=special_tokens,
        )

    @property
    def n_vocab(self) -> int:
        return len(self.vocab) + len(self.special_tokens)

    def encode(self, text: str) -> list[int]:
        """Text to ids (fast: tiktoken). Special token strings in `text` become their special ids.

        Where special tokens overlap (one is a prefix of another, "<|a|>" and "<|a|>b"),
        the longest one that starts at the leftmost place wins, as in `encode_slow`.
        tiktoken's own choice there depends on its regex, so for such vocabularies
        we split off the special tokens here and let tiktoken encode the text between.
        """
        parts = None
        if self.pattern != GPT2_SPLIT_PATTERN:  # GPT-2's pattern covers any text; a custom one must be checked
            parts = list(self._split_special(text))
            for part, is_special in parts:
                if not is_special:
                    _check_pattern(self.pattern, part)
        if not self._nested_specials:
            return self.encoding.encode(text, allowed_special="all")
        ids: list[int] = []
        for part, is_special in parts if parts is not None else self._split_special(text):
            ids.extend([self.special_tokens[part]] if is_special else self.encoding.encode_ordinary(part))
        return ids

    @functools.cached_property
    def _nested_specials(self) -> bool:
        """Whether some special token is a prefix of another (the case tiktoken resolves differently)."""
        return any(a != b and b.startswith(a) for a in self.special_tokens for b in self.special_tokens)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text; byte sequences that are not valid UTF-8 show up as U+FFFD."""
        return self.encoding.decode(_check_ids(ids, self.n_vocab, "BPETokenizer"))

    def encode_slow(self, text: str) -> list[int]:
        """The reference encoder in plain Python: split, then apply the merges in the order learned.

        Per chunk: start from its UTF-8 bytes and, while some adjacent pair is a
        known merge, merge the one learned earliest (all its occurrences).
        """
        ids: list[int] = []
        for part, is_special in self._split_special(text):
            if is_special:
                ids.append(self.special_tokens[part])
                continue
            for chunk in self._compiled.findall(part):
                chunk_ids = list(_utf8(chunk))
                while len(chunk_ids) >= 2:
                    pairs = get_pair_counts(chunk_ids)
                    pair = min(pairs, key=lambda p: self._merge_ids.get(p, float("inf")))
                    if pair not in self._merge_ids:
                        break  # nothing left to merge in this chunk
                    chunk_ids = merge(chunk_ids, pair, self._merge_ids[pair])
                ids.extend(chunk_ids)
        return ids

    def _split_special(self, text: str) -> list[tuple[str, bool]]:
        """Text and special-token pieces, in order: leftmost match first, the longest special token there."""
        if not self.special_tokens:
            return [(text, False)]
        pat = "(" + "|".join(regex.escape(s) for s in sorted(self.special_tokens, key=len, reverse=True)) + ")"
        return [(p, i % 2 == 1) for i, p in enumerate(regex.split(pat, text)) if p]

    def to_dict(self) -> dict:
        return {
            "type": "bpe",
            "version": 1,
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
            "merges": [list(p) for p in self.merges],
            # For people reading the file; ignored by load().
            "merged_tokens": [t.decode("utf-8", errors="replace") for t in self.vocab[256:]],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "BPETokenizer":
        merges = d.get("merges")
        if not isinstance(merges, list):
            raise ValueError('a "bpe" tokenizer file needs a "merges" list of [left_id, right_id] pairs')
        for i, m in enumerate(merges):
            if not (isinstance(m, list) and len(m) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in m)):
                raise ValueError(f"merge {i} must be a pair of integer token ids [left_id, right_id], got {m!r}")
        special = d.get("special_tokens", {})
        pattern = d.get("pattern", GPT2_SPLIT_PATTERN)
        if not isinstance(special, dict) or not isinstance(pattern, str):
            raise ValueError('"special_tokens" must be an object {string: id} and "pattern" a string')
        return cls(merges, special_tokens=special, pattern=pattern)

    def save(self, path: str | Path) -> None:
        _write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "BPETokenizer":
        return cls.from_dict(_read_json(path, "bpe"))

    def __repr__(self) -> str:
        return f"BPETokenizer(n_vocab={self.n_vocab}, merges={len(self.merges)}, special_tokens={list(self.special_tokens)})"


def train_bpe(
    text: str,
    vocab_size: int,
    *,
    special_tokens: Sequence[str] = (),
    pattern: str = GPT2_SPLIT_PATTERN,
) -> BPETokenizer:
    """Learn `vocab_size - 256 - len(special_tokens)` merges from `text`; return the tokenizer.

    The textbook algorithm, made fast by bookkeeping rather than by a different method:

    1. split `text` with the GPT-2 pattern and count each distinct chunk once
       (Tiny Shakespeare: 1.1 MB, but only ~25k distinct chunks);
    2. count adjacent pairs over the distinct chunks, weighted by chunk frequency,
       and remember which chunks contain each pair;
    3. repeatedly take the most frequent pair (a heap), merge it in *only* the
       chunks that contain it, and update the counts of the pairs around it.

    Ties: among pairs with the same count the one with the smallest
    (left_id, right_id) wins, so training is deterministic. If the text runs
    out of pairs before `vocab_size` is reached, training stops early with a
    warning and the tokenizer is smaller (check `n_vocab`).
    """
    if not isinstance(text, str):
        raise ValueError(f"train_bpe needs a str of training text, got {type(text).__name__}")
    special_tokens = list(special_tokens)
    if len(set(special_tokens)) != len(special_tokens) or not all(isinstance(s, str) and s for s in special_tokens):
        raise ValueError(f"special_tokens must be distinct non-empty strings, got {special_tokens!r}")
    floor = 256 + len(special_tokens)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < floor:
        raise ValueError(
            f"vocab_size must be an integer >= {floor} (256 byte tokens"
            f"{f' + {len(special_tokens)} special tokens' if special_tokens else ''}), got {vocab_size!r}"
        )
    n_merges = vocab_size - floor

    # 1. distinct chunks and their frequencies
    chunk_counts = Counter(regex.findall(pattern, text))
    words = [list(_utf8(w)) for w in chunk_counts]
    freqs = list(chunk_counts.values())

    # 2. pair counts, and for each pair the chunks that (may) contain it
    pair_counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)
    for w_idx, (w, f) in enumerate(zip(words, freqs)):
        for pair in zip(w, w[1:]):
            pair_counts[pair] += f
            where[pair].add(w_idx)

    # 3. merge loop. The heap holds (-count, pair) entries that may be out of
    # date: counts only shrink without a new entry, so a popped entry whose count
    # is stale is re-filed with its true count, and the first up-to-date entry
    # popped is the true maximum.
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    vocab = [bytes([b]) for b in range(256)]
    merges: list[Pair] = []
    while len(merges) < n_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count <= 0:
            continue
        if -neg_count != count:
            heapq.heappush(heap, (-count, pair))
            continue
        # The new bytes are never a duplicate: a chunk that spells an existing
        # token always got segmented the way that token was built (and
        # BPETokenizer checks that every id has distinct bytes anyway).
        new_id = len(vocab)
        merges.append(pair)
        vocab.append(vocab[pair[0]] + vocab[pair[1]])
        grown: set[Pair] = set()  # pairs with the new token: the only counts that can go up
        for w_idx in where.pop(pair):
            w = words[w_idx]
            new_w = merge(w, pair, new_id)
            if len(new_w) == len(w):
                continue  # this chunk lost the pair to an earlier merge
            f = freqs[w_idx]
            for p in zip(w, w[1:]):
                pair_counts[p] -= f
            for p in zip(new_w, new_w[1:]):
                pair_counts[p] += f
                if new_id in p:
                    where[p].add(w_idx)
                    grown.add(p)
            words[w_idx] = new_w
        del pair_counts[pair]
        for p in grown:
            heapq.heappush(heap, (-pair_counts[p], p))

    if len(merges) < n_merges:
        warnings.warn(
            f"train_bpe: the text ran out of pairs to merge after {len(merges)} merges, so the vocabulary "
            f"has {256 + len(merges) + len(special_tokens)} tokens instead of vocab_size={vocab_size}; "
            f"train on more text or ask for a smaller vocab_size",
            stacklevel=2,
        )
    special = {s: len(vocab) + i for i, s in enumerate(special_tokens)}
    return BPETokenizer(merges, special_tokens=special, pattern=pattern)


# ---------------------------------------------------------------------------
# GPT-2
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def gpt2() -> tiktoken.Encoding:
    """GPT-2's tokenizer (50,257 tokens) as a tiktoken.Encoding, built from the pinned ranks file.

    The ranks come from `gptlab.datasets.fetch("gpt2_tiktoken")` (sha256-checked; set
    GPTLAB_DATA_MIRROR to work offline) instead of tiktoken's own download, so
    lessons run without the network. Identical to tiktoken.get_encoding("gpt2").
    """
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=_gpt2_ranks()[1],
        special_tokens={ENDOFTEXT: 50256},
        explicit_n_vocab=50257,
    )


def _gpt2_ranks() -> tuple[bytes, dict[bytes, int]]:
    """The GPT-2 ranks file (raw bytes, sha256-checked) and its {token bytes: rank} table.

    Each line is "<base64 token> <rank>". We parse it here rather than with
    tiktoken.load.load_tiktoken_bpe, which would also copy the file into a
    cache folder under the system temp dir.
    """
    path = fetch("gpt2_tiktoken")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != GPT2_TIKTOKEN_SHA256:
        raise ValueError(f"{path} is not the GPT-2 ranks file (sha256 mismatch); "
                         "delete it and run gptlab.datasets.fetch('gpt2_tiktoken') again")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}
    return raw, ranks


_TIKTOKEN_URLS = {
    "r50k_base": "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken",
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
}


def _data_gym_files(ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """Rebuild GPT-2's original vocab.bpe and encoder.json from the ranks (byte for byte).

    The original files write bytes as printable characters (GPT-2's
    bytes_to_unicode) and list each merge as its two halves; the halves are
    found by running BPE on the token with only the lower ranks allowed.
    """
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    byte_char = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in byte_char):
        byte_char[b] = chr(256 + n)

    def show(token: bytes) -> str:
        return "".join(byte_char[b] for b in token)

    lines = ["#version: 0.2"]
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            cands = [(ranks.get(x + y, rank), i) for i, (x, y) in enumerate(zip(parts, parts[1:]))]
            best, i = min(cands)
            if best >= rank:
                raise ValueError(f"rank file is not a BPE vocabulary: token {token!r} cannot be built from lower ranks")
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        lines.append(f"{show(parts[0])} {show(parts[1])}")
    encoder = {show(t): r for t, r in sorted(ranks.items(), key=lambda kv: kv[1])}
    encoder[ENDOFTEXT] = 50256
    return ("\n".join(lines) + "\n").encode(), json.dumps(encoder).encode()


def tiktoken_offline_cache(cache_dir: str | Path) -> Path:
    """Fill `cache_dir` so tiktoken's own get_encoding("gpt2") / ("r50k_base") load without the network.

    tiktoken caches each download under the sha1 hex of its URL in
    TIKTOKEN_CACHE_DIR and checks the file's sha256 when it reads it, so a wrong
    file fails loudly rather than giving a silently different tokenizer.
    r50k_base reads the ranks file as is; "gpt2" reads GPT-2's original
    vocab.bpe + encoder.json, rebuilt here from the same ranks. Use it as:

        os.environ["TIKTOKEN_CACHE_DIR"] = str(tiktoken_offline_cache(tmp_dir))
        enc = tiktoken.get_encoding("gpt2")
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    raw, ranks = _gpt2_ranks()
    vocab_bpe, encoder_json = _data_gym_files(ranks)
    for key, data in (("r50k_base", raw), ("vocab.bpe", vocab_bpe), ("encoder.json", encoder_json)):
        target = cache_dir / hashlib.sha1(_TIKTOKEN_URLS[key].encode()).hexdigest()
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
    return cache_dir


# ---------------------------------------------------------------------------
# Saving, loading, labels
# ---------------------------------------------------------------------------

Tokenizer = Union[CharTokenizer, BPETokenizer, tiktoken.Encoding]


def _is_gpt2(tok: object) -> bool:
    return isinstance(tok, tiktoken.Encoding) and tok.name in ("gpt2", "r50k_base") and tok.n_vocab == 50257


def _write_json(path: str | Path, obj: dict) -> None:
    """JSON with one list item per line: a 4,096-token file stays readable and diffable."""
    fields = []
    for key, value in obj.items():
        if isinstance(value, list) and value:
            items = ",\n".join("    " + json.dumps(v, ensure_ascii=False) for v in value)
            fields.append(f"  {json.dumps(key)}: [\n{items}\n  ]")
        else:
            fields.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{\n" + ",\n".join(fields) + "\n}\n", encoding="utf-8")


def _read_json(path: str | Path, expect: str | None = None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer file at {path}; write one with save_tokenizer(tokenizer, path)")
    if path.stat().st_size > MAX_TOKENIZER_FILE_BYTES:
        raise ValueError(f"{path} is {path.stat().st_size:,} bytes, far more than a tokenizer file holds; refused")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{path} is not a valid tokenizer file ({e}); re-create it with save_tokenizer(tokenizer, path)") from None
    if not isinstance(obj, dict) or obj.get("type") not in ("char", "bpe", "gpt2"):
        raise ValueError(f'{path} is not a gptlab tokenizer file: it needs a "type" of "char", "bpe" or "gpt2"')
    if expect is not None and obj["type"] != expect:
        raise ValueError(f'{path} holds a "{obj["type"]}" tokenizer, not "{expect}"; use load_tokenizer(path) to load any kind')
    return obj


def save_tokenizer(tok: Tokenizer, path: str | Path) -> None:
    """Write `tok` as JSON with a "type" field; GPT-2 is stored as just {"type": "gpt2"}."""
    if isinstance(tok, (CharTokenizer, BPETokenizer)):
        tok.save(path)
    elif _is_gpt2(tok):
        _write_json(path, {"type": "gpt2"})
    else:
        raise ValueError(f"cannot save {tok!r}: save_tokenizer knows CharTokenizer, BPETokenizer and gpt2()")


def tokenizer_to_dict(tok: Tokenizer) -> dict:
    """The tokenizer as its tokenizer.json holds it: two tokenizers are the same when these are equal.

    Also the check that `tok` can be saved at all, e.g. before training starts:
    a vocabulary holding a lone surrogate (text decoded with errors="surrogateescape")
    cannot be written as UTF-8.
    """
    if isinstance(tok, (CharTokenizer, BPETokenizer)):
        obj = tok.to_dict()
    elif _is_gpt2(tok):
        obj = {"type": "gpt2"}
    else:
        raise ValueError(f"cannot save {tok!r}: save_tokenizer knows CharTokenizer, BPETokenizer and gpt2()")
    text = json.dumps(obj, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = e.object[e.start : e.end]
        raise ValueError(
            f"the tokenizer cannot be saved: its vocabulary holds {bad!r}, a lone surrogate that is not text; "
            "build it from properly decoded text (read files with encoding='utf-8', errors='strict')"
        ) from None
    return json.loads(text)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a file written by save_tokenizer; returns a CharTokenizer, a BPETokenizer or gpt2()."""
    obj = _read_json(path)
    try:
        if obj["type"] == "char":
            return CharTokenizer.from_dict(obj)
        if obj["type"] == "bpe":
            return BPETokenizer.from_dict(obj)
    except ValueError as e:
        raise ValueError(f"{path} is a corrupt tokenizer file: {e}") from None
    return gpt2()


def token_strings(tok: Tokenizer, ids: Iterable[int]) -> list[str]:
    """A readable label for each id (for plot axes): its text, with invalid UTF-8 shown as U+FFFD.

    A BPE token can be part of a multi-byte character (a Chinese character or an
    emoji is often split over 2-3 tokens); those pieces show as U+FFFD.
    """
    ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    if isinstance(tok, CharTokenizer):
        return [tok.chars[i] for i in _check_ids(ids, tok.n_vocab, "CharTokenizer")]
    enc = tok.encoding if isinstance(tok, BPETokenizer) else tok
    if not isinstance(enc, tiktoken.Encoding):
        raise ValueError(f"token_strings needs a CharTokenizer, BPETokenizer or tiktoken.Encoding, got {type(tok).__name__}")
    _check_ids(ids, enc.n_vocab, enc.name)
    return [enc.decode_single_token_bytes(i).decode("utf-8", errors="replace") for i in ids]
