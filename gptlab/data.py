"""Token windows and batches for training, and token shards on disk (lessons 02 and 06).

The datasets themselves (registry, pinned download, offline mirror) live in
gptlab.datasets; this module turns token ids into (x, y) training examples:
overlapping windows, random batches (nanoGPT's get_batch), and for corpora
larger than memory, fixed-size shard files read back through memory maps.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gptlab.datasets import sha256_file
from gptlab.files import CheckpointBusyError, folder_lock
from gptlab.model import IGNORE_INDEX

# ---------------------------------------------------------------- token windows


class TokenWindows(Dataset):
    """Overlapping windows over one long token sequence: item i is (x, y) with y = x shifted by one.

    x = tokens[s : s + block_size], y = tokens[s + 1 : s + block_size + 1], s = i * stride.
    stride = block_size gives non-overlapping windows; smaller strides overlap
    (more, correlated, examples); the default is block_size.
    """

    def __init__(self, tokens: "torch.Tensor | list[int] | TokenShards", block_size: int, stride: int | None = None) -> None:
        self.tokens = tokens if isinstance(tokens, TokenShards) else torch.as_tensor(tokens, dtype=torch.long)  # shards stay on disk
        if isinstance(self.tokens, torch.Tensor) and self.tokens.dim() != 1:
            raise ValueError(f"tokens must be a 1-D sequence of ids, got shape {tuple(self.tokens.shape)}")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = block_size
        self.stride = block_size if stride is None else stride
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if len(self.tokens) < block_size + 1:
            raise ValueError(f"need at least block_size + 1 = {block_size + 1} tokens for one window, got {len(self.tokens)}")

    def __len__(self) -> int:
        return (len(self.tokens) - self.block_size - 1) // self.stride + 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        s = (i % len(self)) * self.stride
        chunk = self.tokens[s : s + self.block_size + 1]
        return chunk[:-1], chunk[1:]


def split_tokens(tokens: torch.Tensor | list[int], val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """First (1 - val_fraction) of the sequence for training, the rest for validation.

    A contiguous split (not a shuffle) keeps validation text unseen: shuffled
    overlapping windows would leak the same tokens into both sides.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    n = int(len(tokens) * (1 - val_fraction))
    return tokens[:n], tokens[n:]


def make_loaders(
    tokens: torch.Tensor | list[int],
    block_size: int,
    batch_size: int,
    stride: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[DataLoader, DataLoader]:
    """(train, val) DataLoaders of (x, y) batches of shape (batch_size, block_size); train shuffled with `seed`."""
    train, val = split_tokens(tokens, val_fraction)
    g = torch.Generator().manual_seed(seed)
    train_dl = DataLoader(TokenWindows(train, block_size, stride), batch_size=batch_size, shuffle=True, generator=g, drop_last=True)
    val_dl = DataLoader(TokenWindows(val, block_size, stride), batch_size=batch_size, shuffle=False)
    return train_dl, val_dl


# ---------------------------------------------------------------- padded batches of unequal sequences (lessons 11-13)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int = 0, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token sequences into idx (B, T) and lengths (B,); T is the longest (after cropping).

    A sequence longer than max_len keeps its first max_len tokens.
    """
    if len(seqs) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be None or >= 1, got {max_len}")
    if any(isinstance(s, (str, bytes)) for s in seqs):
        raise TypeError("pad_batch got text, not token ids; encode it with the tokenizer first")
    seqs = [list(s)[:max_len] if max_len is not None else list(s) for s in seqs]
    if any(len(s) == 0 for s in seqs):
        raise ValueError(f"sequence {next(i for i, s in enumerate(seqs) if not s)} is empty: every sequence needs at least one token")
    lengths = torch.tensor([len(s) for s in seqs])
    idx = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        row = torch.as_tensor(s)
        if row.is_floating_point() or row.is_complex() or row.dtype == torch.bool:
            raise ValueError(f"sequence {i} holds {row.dtype} values; token ids must be integers (floats would be truncated silently)")
        idx[i, : len(s)] = row
    return idx, lengths


def target_only(prompt: Sequence[int], answer: Sequence[int], max_len: int | None = None) -> tuple[list[int], list[int]]:
    """(x, y) ids for next-token training on one (prompt, answer) pair, scoring only the answer.

    x reads prompt + answer without its last token; y is x shifted by one, with
    IGNORE_INDEX (which GPT's loss skips) wherever the next token is still part of
    the prompt. The model learns to write answers, not to predict the prompts it
    is given (lessons 12 and 13 fine-tune this way). A pair longer than
    max_len + 1 tokens loses the start of its prompt.
    """
    prompt, answer = list(prompt), list(answer)
    if not prompt or not answer:
        raise ValueError("prompt and answer must each hold at least one token")
    seq = prompt + answer
    tgt = [IGNORE_INDEX] * (len(prompt) - 1) + answer
    if max_len is not None and len(seq) - 1 > max_len:
        if len(answer) > max_len:
            raise ValueError(f"the answer has {len(answer)} tokens, more than max_len={max_len}")
        seq, tgt = seq[-(max_len + 1):], tgt[-max_len:]
    return seq[:-1], tgt


def target_only_batch(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int = 0, max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Language-model batch (idx, targets) of (prompt, answer) pairs: target_only per row, right-padded.

    Padding positions get IGNORE_INDEX targets, so they add nothing to the loss.
    """
    rows = []
    for i, (prompt, answer) in enumerate(pairs):
        try:
            rows.append(target_only(prompt, answer, max_len))
        except ValueError as e:
            raise ValueError(f"pair {i}: {e}") from None
    idx, _ = pad_batch([x for x, _ in rows], pad_id)
    targets = torch.full_like(idx, IGNORE_INDEX)
    for i, (_, tgt) in enumerate(rows):
        targets[i, : len(tgt)] = torch.as_tensor(tgt, dtype=torch.long)
    return idx, targets


# ---------------------------------------------------------------- token shards on disk
#
# A corpus larger than memory (FineWeb-Edu, OpenWebText: billions of tokens) is
# tokenized once into fixed-size files of raw token ids, nanoGPT/llm.c style,
# and read back through memory maps: the operating system pages in only the
# windows a batch touches. The folder is then untrusted input like any file a
# user hands in, so index.json is validated against one schema, shard names
# must stay inside the folder, and each file's size (and sha256) must match.

SHARDS_FORMAT = "gptlab-shards"
SHARDS_VERSION = 1
SHARDS_INDEX = "index.json"
_SHARD_NAME = re.compile(r"^shard_\d{6}\.bin$")
_MAX_INDEX_BYTES = 16 << 20
MAX_SHARD_TOKENS = 1 << 31  # 4-8 GB per file: more only makes shards harder to copy, hash and resume
_READ_CHARS = 1 << 20  # a .txt file is read and tokenized this many characters at a time
# Where a text may be cut without changing its tokenization: after a line break
# or before a space, with no whitespace on either side. No piece of GPT-2's (or
# GPT-4's) split pattern spans such a point, so the pieces encode to exactly the
# tokens of the whole text.
_SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)|(?<=\S)(?= \S)")


class ShardError(ValueError):
    """A shard folder is damaged or not one `gptlab data prepare` wrote: bad index, missing or altered shard."""


def _shard_dtype(n_vocab: int) -> np.dtype:
    """uint16 while every id fits (GPT-2's 50,257 do): half the disk and page cache of uint32."""
    return np.dtype(np.uint16) if n_vocab <= 1 << 16 else np.dtype(np.uint32)


def _text_files(src: Path, pattern: str) -> list[Path]:
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is neither a text file nor a folder of text files")
    files = sorted({p for glob in pattern.split(",") for p in src.rglob(glob.strip()) if p.is_file()})
    if not files:
        raise ValueError(f"{src} holds no files matching {pattern!r}; pass a folder of UTF-8 text files (or --pattern)")
    return files


def _pieces(f: Any, path: Path) -> Iterator[str]:
    """The text of an open file in pieces of about _READ_CHARS characters, cut only at a _SAFE_CUT.

    Memory stays bounded by the piece size, however large the file. A stretch of
    8 pieces with no safe cut (no space, no line break) is cut where it ends: the
    one token that may straddle that cut is the only difference from encoding the whole text.
    """
    rest = ""
    while True:
        try:
            more = f.read(_READ_CHARS)
        except UnicodeDecodeError:
            raise _bad_utf8(path) from None
        if not more:
            break
        rest += more
        cut = None
        for m in _SAFE_CUT.finditer(rest, max(len(rest) - len(more) - 2, 0)):
            cut = m.start()
        if cut is None and len(rest) >= 8 * _READ_CHARS:
            cut = len(rest)
        if cut:
            yield rest[:cut]
            rest = rest[cut:]
    if rest:
        yield rest


def _bad_utf8(path: Path) -> ValueError:
    """The error for a file that is not UTF-8, naming the first bad byte's offset (found again, in bounded memory)."""
    import codecs

    dec, done = codecs.getincrementaldecoder("utf-8")(), 0
    with open(path, "rb") as f:
        while True:
            raw = f.read(1 << 20)
            pending = len(dec.getstate()[0])
            try:
                dec.decode(raw, final=not raw)
            except UnicodeDecodeError as e:
                byte, at = e.object[e.start], done - pending + e.start
                return ValueError(f"{path} is not UTF-8 text (byte 0x{byte:02x} at offset {at}); convert it first")
            if not raw:
                return ValueError(f"{path} is not UTF-8 text; convert it first")
            done += len(raw)


def _documents(path: Path) -> Iterator[Iterator[str]]:
    """The documents of one file, each as pieces of text: a .txt file is one document read
    in bounded pieces (_pieces); a .jsonl file holds one document per line ({"text": ...}), streamed."""
    try:
        with open(path, encoding="utf-8") as f:
            if path.suffix != ".jsonl":
                yield _pieces(f, path)
                return
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    text = json.loads(line).get("text")
                except (json.JSONDecodeError, AttributeError, RecursionError):
                    text = None
                if not isinstance(text, str):
                    raise ValueError(f"{path} line {n} is not a JSON object with a \"text\" string")
                yield iter((text,))
    except UnicodeDecodeError:
        raise _bad_utf8(path) from None


def prepare_shards(
    src: str | Path, out: str | Path, tokenizer: Any = "gpt2", *, shard_tokens: int = 100_000_000, pattern: str = "*.txt,*.jsonl",
    progress: bool = False,
) -> Path:
    """Tokenize a text file, or every file matching `pattern` under a folder (sorted by path), into shards in `out`.

    A .txt file is one document; a .jsonl file holds one document per line,
    {"text": ...} (how web corpora such as FineWeb-Edu are dumped). Text is read
    and tokenized a piece at a time (a megabyte of a .txt, a line of a .jsonl) and
    shards are written as they fill, so neither the corpus nor one file need fit in memory.
    pattern: comma-separated globs. tokenizer: "gpt2" (GPT-2's BPE; every
    document is preceded by <|endoftext|>, as in nanoGPT's FineWeb script), "char" (a character
    vocabulary read from the files first; documents are simply concatenated), or a
    tokenizer object gptlab can save. The result: shard_000000.bin, ... of
    `shard_tokens` ids each (the last one shorter) and index.json. Returns `out`.

    All or nothing: the shards are written to a hidden folder beside `out`
    (.OUT.prepare) that is renamed to `out` only once index.json is in it, so a
    failed or killed prepare leaves no half-written `out`, and a rerun starts
    clean. A writer lock (the checkpoints' one) stops two prepares into one folder.
    """

    if isinstance(shard_tokens, bool) or not isinstance(shard_tokens, int) or not 1 <= shard_tokens <= MAX_SHARD_TOKENS:
        raise ValueError(f"shard_tokens (--shard-tokens) must be an integer from 1 to {MAX_SHARD_TOKENS:,} (the default 100,000,000 makes "
                         f"200 MB files), got {shard_tokens!r}")
    if isinstance(tokenizer, str) and tokenizer not in ("gpt2", "char"):
        raise ValueError(f"tokenizer must be 'gpt2', 'char' or a tokenizer object, got {tokenizer!r}")
    src, out = Path(src), Path(out)
    files = _text_files(src, pattern)
    try:
        with folder_lock(out):
            return _prepare_locked(files, src, out, tokenizer, shard_tokens, progress)
    except CheckpointBusyError:
        raise FileExistsError(f"another gptlab process is writing {out} (it holds .{out.name}.lock); wait for it to "
                              "finish, or name another folder for the shards") from None


def _prepare_locked(files: list[Path], src: Path, out: Path, tokenizer: Any, shard_tokens: int, progress: bool) -> Path:
    """prepare_shards, once it holds the writer lock of `out`: write into .OUT.prepare, then rename it to `out`."""
    from gptlab.tokenizers import ENDOFTEXT, CharTokenizer, gpt2, tokenizer_to_dict

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; name a new folder for the shards")
    stage = out.parent / f".{out.name}.prepare"
    if stage.is_symlink() or stage.exists() and not stage.is_dir():
        raise FileExistsError(f"{stage} is in the way (prepare writes its shards there first); move it away")
    if stage.exists():  # left by a prepare that was killed: we hold the lock, so nobody is writing it
        if any(not (_SHARD_NAME.match(p.name) or p.name == SHARDS_INDEX) for p in stage.iterdir()):
            raise FileExistsError(f"{stage} holds files prepare did not write; move it away")
        shutil.rmtree(stage)
    eot: list[int] = []
    if tokenizer == "gpt2":
        tok = gpt2()
        eot = [tok.encode_single_token(ENDOFTEXT)]
    elif tokenizer == "char":
        chars: set[str] = set()
        for f in files:
            for doc in _documents(f):
                for piece in doc:
                    chars.update(piece)
        if not chars:
            raise ValueError(f"the files under {src} hold no text; there is nothing to tokenize")
        tok = CharTokenizer(sorted(chars))
    else:
        tok = tokenizer
    tok_dict = tokenizer_to_dict(tok)  # also checks it can be recorded
    encode = tok.encode_ordinary if hasattr(tok, "encode_ordinary") else tok.encode  # GPT-2: text is text, never a special token
    dtype = _shard_dtype(tok.n_vocab)
    stage.mkdir()
    shards: list[dict[str, Any]] = []
    part: Any = None
    digest = hashlib.sha256()
    fill = text_tokens = 0

    def close() -> None:
        nonlocal part, fill, digest
        part.close()
        shards.append({"name": Path(part.name).name, "tokens": fill, "sha256": digest.hexdigest()})
        part, fill, digest = None, 0, hashlib.sha256()

    def write(ids: np.ndarray) -> None:
        nonlocal part, fill
        while len(ids):
            if part is None:
                part = open(stage / f"shard_{len(shards):06d}.bin", "wb")
            take = min(shard_tokens - fill, len(ids))
            chunk = ids[:take].tobytes()
            part.write(chunk)
            digest.update(chunk)
            fill, ids = fill + take, ids[take:]
            if fill == shard_tokens:
                close()

    try:
        for i, f in enumerate(files):
            for doc in _documents(f):
                write(np.asarray(eot, dtype=dtype))
                for piece in doc:
                    ids = np.asarray(encode(piece), dtype=np.int64)
                    if len(ids) and (ids.min() < 0 or ids.max() >= tok.n_vocab):
                        raise ValueError(f"the tokenizer produced ids outside [0, {tok.n_vocab}) for {f}")
                    text_tokens += len(ids)
                    write(ids.astype(dtype))
            if progress:
                print(f"\r{i + 1}/{len(files)} files tokenized", end="", flush=True)
        if progress:
            print()
        if text_tokens == 0:
            raise ValueError(f"the files under {src} hold no text; there is nothing to tokenize")
        if part is not None:
            close()
        index = {
            "format": SHARDS_FORMAT, "version": SHARDS_VERSION, "dtype": dtype.name, "n_vocab": tok.n_vocab,
            "tokenizer": tok_dict, "tokens": sum(s["tokens"] for s in shards), "shard_tokens": shard_tokens,
            "sources": len(files), "shards": shards,
        }
        (stage / SHARDS_INDEX).write_text(json.dumps(index, indent=1), encoding="utf-8")
        if out.is_dir():
            out.rmdir()  # checked empty above, and nobody else writes it while we hold the lock
        os.rename(stage, out)
    except BaseException:
        if progress:
            print()
        if part is not None:
            part.close()
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def _validate_index(index: Any, where: Path) -> dict[str, Any]:
    def bad(what: str) -> ShardError:
        return ShardError(f"{where} is not a valid shard index: {what}; prepare the shards again with `gptlab data prepare`")

    if not isinstance(index, dict) or index.get("format") != SHARDS_FORMAT:
        raise bad(f'"format" must be {SHARDS_FORMAT!r}')
    if index.get("version") != SHARDS_VERSION:
        raise bad(f'"version" {index.get("version")!r} is not {SHARDS_VERSION} (written by another gptlab?)')
    if index.get("dtype") not in ("uint16", "uint32"):
        raise bad(f'"dtype" must be "uint16" or "uint32", not {str(index.get("dtype"))[:40]!r}')
    n_vocab = index.get("n_vocab")
    if isinstance(n_vocab, bool) or not isinstance(n_vocab, int) or not 1 <= n_vocab <= np.iinfo(index["dtype"]).max + 1:
        raise bad(f'"n_vocab" must be an integer that {index["dtype"]} can hold, not {str(n_vocab)[:40]}')
    tok = index.get("tokenizer")
    if not isinstance(tok, dict) or tok.get("type") not in ("char", "bpe", "gpt2"):
        raise bad('"tokenizer" must be an object with "type" char, bpe or gpt2')
    shards = index.get("shards")
    if not isinstance(shards, list) or not shards:
        raise bad('"shards" must be a non-empty list')
    names = set()
    for i, s in enumerate(shards):
        if not isinstance(s, dict) or set(s) != {"name", "tokens", "sha256"}:
            raise bad(f'shard {i} must be an object with exactly "name", "tokens" and "sha256"')
        if not isinstance(s["name"], str) or not _SHARD_NAME.match(s["name"]) or s["name"] in names:
            raise bad(f"shard {i}'s name {str(s['name'])[:60]!r} is not a unique shard_NNNNNN.bin inside the folder")
        names.add(s["name"])
        if isinstance(s["tokens"], bool) or not isinstance(s["tokens"], int) or s["tokens"] < 1:
            raise bad(f"shard {i}'s token count must be a positive integer")
        if not isinstance(s["sha256"], str) or not re.fullmatch(r"[0-9a-f]{64}", s["sha256"]):
            raise bad(f"shard {i}'s sha256 must be 64 lowercase hex digits")
    if index.get("tokens") != sum(s["tokens"] for s in shards):
        raise bad('"tokens" is not the sum of the shards\' token counts')
    return index


def _read_index(where: Path) -> Any:
    """index.json parsed, after checking it is a regular file of sane size (a FIFO or a device would block or never end)
    and with nesting too deep for the parser refused as damage, not a RecursionError."""
    try:
        fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens at once, to be refused below
    except OSError as e:
        raise ShardError(f"{where} cannot be read ({e.strerror or e}); prepare shards with `gptlab data prepare SRC OUT`") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ShardError(f"{where} is not a regular file (a pipe, device or folder); a shard index is a plain JSON file")
        if st.st_size > _MAX_INDEX_BYTES:
            raise ShardError(f"{where} is {st.st_size:,} bytes, far more than any shard index; it is not one gptlab wrote")
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(_MAX_INDEX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardError(f"{where} is not valid JSON ({e}); prepare the shards again with `gptlab data prepare`") from None
    except RecursionError:
        raise ShardError(f"{where} is nested too deeply to be a shard index; prepare the shards again with `gptlab data prepare`") from None


class TokenShards:
    """A token stream stored as shards on disk, read through memory maps; the same interface as a token tensor.

    len(s), s[i:j] (a LongTensor, windows may cross shard boundaries) and
    s.get_batch(block_size, batch_size, generator, device), which draws its
    offsets exactly as gptlab.training.get_batch does: training on shards and on
    the same tokens in memory takes the same steps. TokenWindows accepts it too.
    s.split() gives train and val views, like split_tokens.

    verify=True hashes every shard against index.json (a minute for ~20 GB);
    sizes and the schema are always checked.
    """

    def __init__(self, folder: str | Path, *, verify: bool = True, _view: tuple[int, int] | None = None) -> None:
        self.folder = Path(folder)
        where = self.folder / SHARDS_INDEX
        self.index = _validate_index(_read_index(where), where)
        self.dtype = np.dtype(self.index["dtype"])
        self.n_vocab: int = self.index["n_vocab"]
        self._maps = []
        root = self.folder.resolve()
        for s in self.index["shards"]:
            path = self.folder / s["name"]
            if path.is_symlink() or path.resolve().parent != root or not path.is_file():
                raise ShardError(f"{path} is missing or not a regular file inside {self.folder}")
            want = s["tokens"] * self.dtype.itemsize
            got = path.stat().st_size
            if got != want:
                raise ShardError(f"{path} is {got:,} bytes but index.json records {s['tokens']:,} {self.dtype.name} tokens "
                                 f"({want:,} bytes): it is truncated or altered; prepare the shards again")
            if verify and sha256_file(path) != s["sha256"]:
                raise ShardError(f"{path}'s sha256 does not match index.json: the shard is altered or damaged; prepare the shards again")
            self._maps.append(np.memmap(path, dtype=self.dtype, mode="r", shape=(s["tokens"],)))
        self._ends = np.cumsum([s["tokens"] for s in self.index["shards"]])  # stream offset where each shard ends
        self._start, self._stop = _view if _view is not None else (0, int(self._ends[-1]))

    def __len__(self) -> int:
        return self._stop - self._start

    def __repr__(self) -> str:
        return f"TokenShards({str(self.folder)!r}, tokens {self._start:,}..{self._stop:,} of {int(self._ends[-1]):,})"

    def tokenizer(self) -> Any:
        """The tokenizer the shards were written with (to decode samples, and to save with checkpoints)."""
        from gptlab.tokenizers import BPETokenizer, CharTokenizer, gpt2

        d = self.index["tokenizer"]
        return {"char": CharTokenizer.from_dict, "bpe": BPETokenizer.from_dict}.get(d["type"], lambda _: gpt2())(d)

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) of this view as int64, stitched across shard boundaries."""
        if start < 0 or length < 0 or start + length > len(self):
            raise IndexError(f"tokens [{start}, {start + length}) are outside this stream of {len(self)} tokens")
        pos, out = self._start + start, np.empty(length, dtype=np.int64)
        done = 0
        while done < length:
            k = int(np.searchsorted(self._ends, pos, side="right"))  # the shard holding stream offset pos
            begin = int(self._ends[k - 1]) if k else 0
            take = min(length - done, int(self._ends[k]) - pos)
            out[done : done + take] = self._maps[k][pos - begin : pos - begin + take]
            done, pos = done + take, pos + take
        if length and out.max() >= self.n_vocab:  # a bit flip in a shard read with verify=False
            raise ShardError(f"{self.folder} holds a token id {int(out.max())} >= n_vocab {self.n_vocab}: a shard is damaged")
        return out

    def __getitem__(self, i: int | slice) -> torch.Tensor | int:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                raise ValueError("TokenShards slices must be contiguous (step 1)")
            return torch.from_numpy(self.read(start, max(stop - start, 0)))
        if not -len(self) <= i < len(self):
            raise IndexError(f"token {i} out of range for {len(self)} tokens")
        return int(self.read(i % len(self), 1)[0])

    def get_batch(self, block_size: int, batch_size: int, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` random windows: the same offsets, hence the same batch, as get_batch on the tokens in memory."""
        ix = torch.randint(len(self) - block_size, (batch_size,), generator=generator)
        chunk = torch.from_numpy(np.stack([self.read(int(i), block_size + 1) for i in ix]))
        return to_device(chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous(), device)

    def view(self, start: int, stop: int) -> "TokenShards":
        """Tokens [start, stop) of this stream, without copying or re-validating anything."""
        if not 0 <= start < stop <= len(self):
            raise ValueError(f"view [{start}, {stop}) must lie inside [0, {len(self)}) and hold at least one token")
        other = object.__new__(TokenShards)
        other.__dict__.update(self.__dict__)
        other._start, other._stop = self._start + start, self._start + stop
        return other

    def split(self, val_fraction: float = 0.1, max_val_tokens: int | None = None) -> tuple["TokenShards", "TokenShards"]:
        """(train, val): the last val_fraction of the stream (at most max_val_tokens) for validation, as split_tokens does."""
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        n = int(len(self) * (1 - val_fraction))
        if max_val_tokens is not None:
            n = max(n, len(self) - max_val_tokens)
        if not 0 < n < len(self):
            raise ValueError(f"{len(self)} tokens cannot be split into non-empty train and val parts")
        return self.view(0, n), self.view(n, len(self))


# ---------------------------------------------------------------- random batches (nanoGPT's get_batch)


def to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device | str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a batch to `device`; to a GPU through pinned memory, so the copy overlaps with compute."""
    if device is not None and torch.device(device).type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return (x.to(device), y.to(device)) if device is not None else (x, y)


def get_batch(
    data: torch.Tensor,
    block_size: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows of `data` (a 1-D LongTensor): x = data[i:i+T], y = data[i+1:i+T+1].

    Random offsets (nanoGPT's get_batch) rather than an epoch over fixed windows:
    every offset is a training example. The offsets come from `generator`, whose
    state the checkpoint keeps, so a resumed run draws the same batches.
    """
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    chunk = data[ix[:, None] + torch.arange(block_size + 1)]  # (B, T + 1)
    return to_device(chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous(), device)


def draw_batch(data: Any, block_size: int, batch_size: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """get_batch for a token tensor, or data.get_batch(...) for a batch source such as gptlab.data.TokenShards.

    Shards on disk draw their offsets from the generator exactly as get_batch does,
    so a run on shards and a run on the same tokens in memory see the same batches.
    """
    if isinstance(data, torch.Tensor):
        return get_batch(data, block_size, batch_size, generator, device)
    return data.get_batch(block_size, batch_size, generator, device)
