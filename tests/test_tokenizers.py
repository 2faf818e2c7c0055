"""Tokenizers: characters, our byte-level BPE, and GPT-2 equal to tiktoken's."""

import base64
import collections
import json
import os
import random
from pathlib import Path

import pytest
import tiktoken
import torch
from _tiny import TEXT, TOK, deadline

from gptlab import tokenizers as T
from gptlab import tokenizers as toks
from gptlab.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    get_pair_counts,
    gpt2,
    load_tokenizer,
    merge,
    save_tokenizer,
    token_strings,
    train_bpe,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

SAMPLES = {
    "english": "Hello world! It's 2024; the quick brown fox didn't jump over 3 lazy dogs.",
    "chinese": "你好，世界！今天天气很好。",
    "emoji": "🤖👍🏽 family: 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 ok",
    "code": 'def f(x: int) -> int:\n    """Square."""\n    return x ** 2  # <- done\n\n\tif a!=b: print(f"{a}")\n',
    "whitespace": "a   b\n\n\t  c    ",
    "empty": "",
}


@pytest.fixture(scope="module", autouse=True)
def data_mirror():
    """Read datasets from the offline mirror (as CI does) unless one is configured."""
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("GPTLAB_DATA_MIRROR") and SHARED.is_dir():
            mp.setenv("GPTLAB_DATA_MIRROR", str(SHARED))
        yield


@pytest.fixture(scope="module")
def shakespeare() -> str:
    from gptlab.datasets import read_text

    return read_text("tinyshakespeare")


@pytest.fixture(scope="module")
def bpe(shakespeare) -> BPETokenizer:
    return train_bpe(shakespeare[:100_000], 600, special_tokens=["<|endoftext|>"])


@pytest.fixture(scope="module")
def tiktoken_gpt2(tmp_path_factory) -> tiktoken.Encoding:
    """tiktoken's own get_encoding("gpt2"), loaded offline from a filled cache folder."""
    cache = T.tiktoken_offline_cache(tmp_path_factory.mktemp("tiktoken_cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", str(cache))
        return tiktoken.get_encoding("gpt2")


def random_unicode(rng: random.Random, n: int) -> str:
    """Mixed scripts, emoji, controls, combining marks and rare planes; no lone surrogates."""
    ranges = [(0x20, 0x7E), (0x0, 0x1F), (0xA0, 0x24F), (0x300, 0x36F), (0x400, 0x4FF), (0x4E00, 0x9FFF),
              (0x1F300, 0x1FAFF), (0xE000, 0xF8FF), (0x10000, 0x10FFFF)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        c = rng.randint(lo, hi)
        out.append(chr(c) if not 0xD800 <= c <= 0xDFFF else "x")
    return "".join(out)


# ---------------------------------------------------------------- the teaching pieces


def test_pair_counts_and_merge_on_a_toy_sequence():
    assert get_pair_counts([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert get_pair_counts([7]) == {}
    counts = get_pair_counts([1, 2])
    assert get_pair_counts([1, 2, 1], counts) == {(1, 2): 2, (2, 1): 1}
    assert merge([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert merge([5, 5, 5], (5, 5), 6) == [6, 5]  # left to right, no overlap
    assert merge([1, 3], (1, 2), 9) == [1, 3]


def test_train_bpe_reproduces_the_wikipedia_example():
    # aaabdaaabac -> Z=aa -> Y=ab -> X=ZY (ties: the smallest (left_id, right_id) wins).
    tok = train_bpe("aaabdaaabac", 259)
    assert tok.merges == [(97, 97), (97, 98), (256, 257)]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


def test_ties_go_to_the_smallest_pair():
    tok = train_bpe("abcd", 259)  # every pair occurs once at each step
    assert tok.merges == [(97, 98), (99, 100), (256, 257)]


# ---------------------------------------------------------------- characters


def test_char_tokenizer_round_trip_and_sorted_vocab(shakespeare):
    tok = CharTokenizer.from_text(shakespeare)
    assert tok.n_vocab == 65 and tok.chars == sorted(tok.chars)
    assert tok.chars[:2] == ["\n", " "]
    text = shakespeare[:5000]
    ids = tok.encode(text)
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.encode("") == [] and tok.decode([]) == ""


def test_char_tokenizer_unknown_character_names_it():
    tok = CharTokenizer.from_text("hello world")
    with pytest.raises(ValueError, match=r"character 'Z' at position 6 .*from_text"):
        tok.encode("hello Zorld")
    with pytest.raises(ValueError, match=r"'\\t' at position 0"):
        tok.encode("\thi")
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([0, tok.n_vocab])
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([-1])
    with pytest.raises(ValueError, match="non-empty"):
        CharTokenizer.from_text("")


def test_char_tokenizer_unicode_and_save_load(tmp_path):
    text = SAMPLES["chinese"] + SAMPLES["emoji"] + "\n\t\x00"
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    save_tokenizer(tok, tmp_path / "char.json")
    assert json.loads((tmp_path / "char.json").read_text(encoding="utf-8"))["type"] == "char"
    for loaded in (load_tokenizer(tmp_path / "char.json"), CharTokenizer.load(tmp_path / "char.json")):
        assert isinstance(loaded, CharTokenizer) and loaded.chars == tok.chars


# ---------------------------------------------------------------- BPE


def test_bpe_vocab_layout(bpe):
    assert bpe.n_vocab == 600 == bpe.encoding.n_vocab
    assert len(bpe.merges) == 600 - 256 - 1
    assert bpe.vocab[:256] == [bytes([b]) for b in range(256)]
    assert bpe.special_tokens == {"<|endoftext|>": 599}
    for i, (a, b) in enumerate(bpe.merges):
        assert a < 256 + i and b < 256 + i and bpe.vocab[256 + i] == bpe.vocab[a] + bpe.vocab[b]
    ranks = bpe.encoding._mergeable_ranks
    assert all(ranks[tok] == i for i, tok in enumerate(bpe.vocab))
    assert b" the" in bpe.vocab and b" and" in bpe.vocab  # frequent English words become tokens


def test_bpe_training_is_deterministic(shakespeare):
    a = train_bpe(shakespeare[:30_000], 400)
    b = train_bpe(shakespeare[:30_000], 400)
    assert a.merges == b.merges


def test_tiktoken_encoding_equals_the_python_reference(bpe, shakespeare):
    """tiktoken fed our ranks must give exactly what merging in learned order gives."""
    texts = [shakespeare[200_000:230_000], *SAMPLES.values(), random_unicode(random.Random(0), 2000),
             "a<|endoftext|>b <|endoftext|><|endoftext|>"]
    for text in texts:
        assert bpe.encode(text) == bpe.encode_slow(text), text[:40]


def test_bpe_round_trip_and_compression(bpe, shakespeare):
    text = shakespeare[300_000:320_000]
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert len(ids) < 0.55 * len(text.encode())  # ~2x fewer tokens than bytes even with 343 merges
    rng = random.Random(1)
    for _ in range(20):
        s = random_unicode(rng, rng.randint(0, 300))
        assert bpe.decode(bpe.encode(s)) == s
    assert bpe.encode("hi<|endoftext|>") == bpe.encode("hi") + [599]
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([600])


def test_bpe_save_load_round_trip(bpe, tmp_path, shakespeare):
    path = tmp_path / "bpe.json"
    save_tokenizer(bpe, path)
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["type"] == "bpe" and d["merges"][0] == list(bpe.merges[0]) and " the" in d["merged_tokens"]
    for loaded in (load_tokenizer(path), BPETokenizer.load(path)):
        assert isinstance(loaded, BPETokenizer)
        assert loaded.merges == bpe.merges and loaded.special_tokens == bpe.special_tokens
        text = shakespeare[:3000] + SAMPLES["emoji"]
        assert loaded.encode(text) == bpe.encode(text)


def test_load_errors_are_clear(bpe, tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        load_tokenizer(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a valid tokenizer file"):
        load_tokenizer(bad)
    bad.write_text('{"merges": []}', encoding="utf-8")
    with pytest.raises(ValueError, match='"type"'):
        load_tokenizer(bad)
    bad.write_text('{"type": "bpe", "merges": [[97, 98], [300, 1]]}', encoding="utf-8")
    with pytest.raises(ValueError, match="corrupt.*merge 1"):
        load_tokenizer(bad)
    bad.write_text('{"type": "bpe", "merges": [[97, 98], "x"]}', encoding="utf-8")
    with pytest.raises(ValueError, match="merge 1"):
        load_tokenizer(bad)
    bad.write_text('{"type": "char", "chars": "aab"}', encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate"):
        load_tokenizer(bad)
    save_tokenizer(bpe, bad)
    with pytest.raises(ValueError, match='holds a "bpe" tokenizer'):
        CharTokenizer.load(bad)
    with pytest.raises(ValueError, match="cannot save"):
        save_tokenizer(object(), tmp_path / "x.json")


@pytest.mark.parametrize("vocab_size", [255, 0, 300.0, "4096", True, None])
def test_train_bpe_rejects_bad_vocab_size(vocab_size):
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 256"):
        train_bpe("some text", vocab_size)


def test_train_bpe_bad_inputs():
    with pytest.raises(ValueError, match=r">= 257 \(256 byte tokens \+ 1 special"):
        train_bpe("some text", 256, special_tokens=["<|endoftext|>"])
    with pytest.raises(ValueError, match="str"):
        train_bpe(b"bytes", 300)
    with pytest.raises(ValueError, match="special_tokens"):
        train_bpe("text", 300, special_tokens=["<|x|>", "<|x|>"])
    assert train_bpe("anything", 256).merges == []


def test_train_bpe_stops_early_with_a_warning_on_too_little_text():
    with pytest.warns(UserWarning, match="ran out of pairs to merge after 3 merges.*259 tokens"):
        tok = train_bpe("abcd", 1000)
    assert tok.n_vocab == 259 and tok.encode("abcd") == [258]
    with pytest.warns(UserWarning, match="after 0 merges"):
        assert train_bpe("", 300, special_tokens=["<|endoftext|>"]).n_vocab == 257


# ---------------------------------------------------------------- GPT-2


def test_gpt2_is_cached_and_has_the_gpt2_vocab():
    enc = gpt2()
    assert enc is gpt2()
    assert enc.n_vocab == 50257 and enc.eot_token == 50256
    assert enc.encode("hello world") == [31373, 995]


@pytest.mark.parametrize("name", list(SAMPLES))
def test_gpt2_equals_tiktoken(tiktoken_gpt2, name):
    text = SAMPLES[name]
    assert gpt2().encode(text) == tiktoken_gpt2.encode(text)
    assert gpt2().decode(gpt2().encode(text)) == text


def test_gpt2_equals_tiktoken_on_long_and_random_text(tiktoken_gpt2, shakespeare):
    text = shakespeare[:50_000] + random_unicode(random.Random(2), 3000)
    assert gpt2().encode(text) == tiktoken_gpt2.encode(text)
    assert gpt2().encode("<|endoftext|>", allowed_special="all") == [50256]


def test_gpt2_save_load(tmp_path):
    save_tokenizer(gpt2(), tmp_path / "gpt2.json")
    assert json.loads((tmp_path / "gpt2.json").read_text(encoding="utf-8")) == {"type": "gpt2"}
    assert load_tokenizer(tmp_path / "gpt2.json") is gpt2()


# ---------------------------------------------------------------- labels


def test_token_strings_for_every_kind(bpe):
    char = CharTokenizer.from_text("ab\n")
    assert token_strings(char, char.encode("ba\n")) == ["b", "a", "\n"]
    enc = gpt2()
    assert token_strings(enc, enc.encode(" hello world")) == [" hello", " world"]
    labels = token_strings(enc, enc.encode("你"))  # one character split over byte tokens
    assert len(labels) == 2 and all(s == "\ufffd" for s in labels)
    ids = bpe.encode(" the king<|endoftext|>")
    assert "".join(token_strings(bpe, ids)) == " the king<|endoftext|>"
    assert token_strings(bpe, [104, 105]) == ["h", "i"]
    torch = pytest.importorskip("torch")
    assert token_strings(char, torch.tensor([0, 1])) == ["\n", "a"]
    with pytest.raises(ValueError, match="out of range"):
        token_strings(enc, [50257])


# ----------------------------------------------------------------------------------------------------
# Moved here from test_hardening.py and test_mutation_gaps.py (tests by module): hostile input and mutation-test gaps.
# ----------------------------------------------------------------------------------------------------


BPE = train_bpe(TEXT, 300, special_tokens=["<|endoftext|>"])


def bpe_file(tmp_path: Path, **changes) -> Path:
    d = {**BPE.to_dict(), **changes}
    p = tmp_path / "tokenizer.json"
    p.write_text(json.dumps(d), encoding="utf-8")
    return p


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


@pytest.mark.parametrize("changes, needle", [
    (dict(special_tokens={"": 300}), "non-empty"),  # used to make encoding loop forever
    (dict(merges=[[97, 97]] + [[256 + i, 256 + i] for i in range(60)]), "at most 4096 bytes"),  # doubles: 2**60 bytes
    (dict(merges=[[97, 300]]), "does not exist yet"),  # refers forward
    (dict(merges=[[97, 98], [97, 98]]), "same bytes"),
    (dict(merges=[[97, 98.5]]), "integer token ids"),
    (dict(merges=[[97, True]]), "integer token ids"),
    (dict(pattern="(unclosed"), "not a valid regular expression"),
    (dict(pattern="xyz"), "does not cover"),  # would drop text silently
    (dict(pattern="a*"), "empty string"),
    (dict(special_tokens={"<|endoftext|>": "300"}), "integer id"),
    (dict(special_tokens={"<|endoftext|>": 7}), "special token ids must follow"),
    (dict(special_tokens=[1]), "special_tokens"),
])
def test_tampered_bpe_files_fail_on_load_quickly(tmp_path, changes, needle):
    p = bpe_file(tmp_path, **changes)
    before = p.read_bytes()
    with deadline(10), pytest.raises(ValueError, match="corrupt tokenizer file") as e:
        load_tokenizer(p)
    assert needle in str(e.value) and p.read_bytes() == before


def test_tampered_char_tokenizer_files_and_junk_are_refused_by_name(tmp_path):
    p = tmp_path / "t.json"
    for content, needle in [('{"type": "char", "chars": "ab\\ud800"}', "lone surrogate"),
                            ('{"type": "char", "chars": "aa"}', "duplicate"),
                            ('{"type": "char", "chars": 5}', "chars"),
                            ("[" * 100000 + "]" * 100000, "not a valid tokenizer file"),
                            ('{"type": "char", "chars": ""}', "at least one character")]:
        p.write_text(content)
        with pytest.raises(ValueError, match=needle):
            load_tokenizer(p)


def test_a_custom_pattern_must_cover_the_text_it_encodes():
    tok = BPETokenizer(BPE.merges, pattern=r"[^\n]+|\n")  # covers every text
    assert tok.decode(tok.encode(TEXT[:80])) == TEXT[:80]
    sparse = BPETokenizer([], pattern=r"[\s\S]")  # one character at a time: fine
    assert sparse.decode(sparse.encode("é!")) == "é!"
    with pytest.raises(ValueError, match="does not cover"):
        BPETokenizer([], pattern=r"\w+|\s+")  # punctuation would vanish


def test_decode_takes_integers_only():
    for bad in ([1.5], ["1"], [True]):
        with pytest.raises(TypeError, match="must be integers"):
            TOK.decode(bad)
        with pytest.raises(TypeError, match="must be integers"):
            BPE.decode(bad)
    assert TOK.decode(torch.tensor([0, 1])) == TOK.decode([0, 1])


def test_a_lone_surrogate_fails_when_the_vocabulary_is_built():
    with pytest.raises(ValueError, match="lone surrogate"):
        CharTokenizer.from_text("abc\udcff")


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
