"""The datasets the course uses, fetched safely (lesson 00 lists them; lessons 01, 02 and 10-13 read them).

Every file is pinned by URL *and* sha256 *and* size: a lesson run today and a
year from now sees the same bytes, and a half-finished, oversized or tampered
download never lands in the cache. Offline, point GPTLAB_DATA_MIRROR at a
folder of copies. This module sits at the bottom of the package (it imports no
other gptlab module), so the tokenizers can fetch GPT-2's ranks through it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

_RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    filename: str
    url: str
    sha256: str
    size: int  # bytes
    license: str
    citation: str
    description: str


def _info(name: str, filename: str, path: str, sha256: str, size: int, license: str, citation: str, description: str) -> DatasetInfo:
    return DatasetInfo(name, filename, f"{_RAW}/{path}", sha256, size, license, citation, description)


_SCITLDR = "allenai/scitldr/5ccad9c00a60ad75c9e04abf7f27d0f53f983b20/SciTLDR-Data/SciTLDR-A"
_SCITLDR_CITE = 'I. Cachola, K. Lo, A. Cohan, D. S. Weld, "TLDR: Extreme Summarization of Scientific Documents", Findings of EMNLP 2020.'
_SST = "eyalbd2/Reproducing-AutoPrompt/6288fb5bec9c572f2492875ae0111df5b6daed11/glue_data/SST-2"
_SST_CITE = "Socher et al., EMNLP 2013 (SST); Wang et al., ICLR 2019 (GLUE)."
_POETRY = "chinese-poetry/chinese-poetry/d651e494e0ecb49555f9f473aa7c97ed0e4b53b7"
_POETRY_CITE = "chinese-poetry, https://github.com/chinese-poetry/chinese-poetry"

DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        _info(
            "tinyshakespeare", "tinyshakespeare.txt",
            "karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", 1115394,
            "public domain text; char-rnn repository MIT",
            'A. Karpathy, "The Unreasonable Effectiveness of Recurrent Neural Networks", 2015.',
            "About 1 MB of Shakespeare plays in one plain-text file.",
        ),
        _info(
            "gpt2_tiktoken", "gpt2.tiktoken",
            "openai/whisper/c0d2f624c09dc18e709e37c2ad90c039a4eb72a2/whisper/assets/gpt2.tiktoken",
            "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930", 835554,
            "MIT (openai/whisper); vocabulary from openai/gpt-2 (Modified MIT)",
            'Radford et al., "Language Models are Unsupervised Multitask Learners", OpenAI, 2019.',
            "GPT-2 byte-level BPE ranks (identical to tiktoken's r50k_base).",
        ),
        _info(
            "sst2_train", "sst2_train.tsv", f"{_SST}/train_full.tsv",
            "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1", 3806081,
            "no explicit license (research/teaching use)", _SST_CITE,
            "SST-2 train: 67,349 movie-review snippets, TSV sentence<TAB>label (0 neg, 1 pos).",
        ),
        _info(
            "sst2_dev", "sst2_dev.tsv", f"{_SST}/dev.tsv",
            "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0", 94931,
            "no explicit license (research/teaching use)", _SST_CITE,
            "SST-2 dev: 872 rows, TSV sentence<TAB>label.",
        ),
        _info(
            "cmn", "cmn.txt", "JimEverest/transformer-ready-go/7745df43beea3501a578e17090277ea2d755cb82/data/cmn.txt",
            "3a8ac6cb8cdaab6e235d3075ec3680084044d975882d6139c903bf7893097ff6", 4052123,
            "CC BY 2.0 FR (keep the attribution column)",
            "Tatoeba Project (tatoeba.org), exported by ManyThings.org.",
            "28,447 English-Mandarin sentence pairs, TSV English<TAB>Chinese<TAB>attribution.",
        ),
        _info(
            "scitldr_a_train", "scitldr_a_train.jsonl", f"{_SCITLDR}/train.jsonl",
            "b222771d387be585cfdf5ae957b36757138415a352e0a3e3b23f73f87c3b1119", 3155015,
            "Apache-2.0 (repository)", _SCITLDR_CITE, "SciTLDR-A train: 1,992 abstracts with one TLDR each (JSONL).",
        ),
        _info(
            "scitldr_a_dev", "scitldr_a_dev.jsonl", f"{_SCITLDR}/dev.jsonl",
            "3191fa98ccc09521332b7a1cd63b1930be4e8df125a235ccd31e40329709525e", 1124865,
            "Apache-2.0 (repository)", _SCITLDR_CITE, "SciTLDR-A dev: 619 abstracts, several TLDRs each (JSONL).",
        ),
        _info(
            "scitldr_a_test", "scitldr_a_test.jsonl", f"{_SCITLDR}/test.jsonl",
            "fb42dd6cd4f4a1928ae8a01a189456fbfe994a07e938bd49f68653933f6503c9", 1204107,
            "Apache-2.0 (repository)", _SCITLDR_CITE, "SciTLDR-A test: 618 abstracts, several TLDRs each (JSONL).",
        ),
        _info(
            "tangshi300", "tangshi300.json",
            f"{_POETRY}/%E5%85%A8%E5%94%90%E8%AF%97/%E5%94%90%E8%AF%97%E4%B8%89%E7%99%BE%E9%A6%96.json",
            "d77a145f7470da2ed2f79515944563c062ffc43fceda07f195a36ead66b7e5c7", 190787,
            "public domain texts; repository MIT", _POETRY_CITE,
            "Three Hundred Tang Poems (Traditional Chinese), JSON array of 366 poems.",
        ),
        _info(
            "lunyu", "lunyu.json", f"{_POETRY}/%E8%AE%BA%E8%AF%AD/lunyu.json",
            "bc336a3839706377892719db44c48a09794a493190535a42bf1c7d4c4233e96c", 74799,
            "public domain texts; repository MIT", _POETRY_CITE,
            "The Analects (Simplified Chinese), JSON array of 20 chapters.",
        ),
    ]
}


class ChecksumError(RuntimeError):
    """A file's bytes are not the ones the registry pins."""


class DataUnavailableError(RuntimeError):
    """A dataset could be neither downloaded nor found in a mirror."""


def data_dir() -> Path:
    """The cache folder: GPTLAB_DATA_DIR, else `data/` of this checkout, else ~/.cache/gptlab."""
    env = os.environ.get("GPTLAB_DATA_DIR")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists():
        return repo / "data"
    return Path.home() / ".cache" / "gptlab"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _copy_capped(src, dst, info: DatasetInfo, what: str) -> None:
    """Copy at most the pinned size (+1 byte, to notice more): /dev/zero or a huge file never fills the disk."""
    left = info.size + 1
    while left > 0:
        chunk = src.read(min(left, 1 << 20))
        if not chunk:
            return
        dst.write(chunk)
        left -= len(chunk)
    raise ChecksumError(
        f"{info.filename}: {what} is larger than the pinned {info.size:,} bytes; it is not the pinned file. "
        "Nothing was written to the cache."
    )


def _install(src_fill, info: DatasetInfo, dest: Path, mirror_file: Path | None = None) -> None:
    """Write via `src_fill(file)` into a temp file beside `dest`, check it, then atomically rename.

    mirror_file: the mirror copy being installed (None: a download), so an error names what was bad.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{info.filename}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise DataUnavailableError(
            f"cannot write to the data folder {dest.parent} ({e.strerror or e}); set GPTLAB_DATA_DIR to a writable folder "
            "(it is where datasets are cached)"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            src_fill(f)
        got = sha256_file(Path(tmp))
        if got != info.sha256:
            what = (f"the mirror file {mirror_file} is damaged or a different version; replace it with the pinned file, "
                    "or unset GPTLAB_DATA_MIRROR to download" if mirror_file is not None
                    else "the download is corrupt or the source changed")
            raise ChecksumError(
                f"{info.filename}: sha256 {got} does not match the expected {info.sha256}; {what}. Nothing was written to the cache."
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fetch(name: str, *, cache_dir: str | Path | None = None, mirror: str | Path | None = None, timeout: float = 60.0) -> Path:
    """Return the local path of dataset `name`, getting it first if needed.

    Order: a cached copy whose sha256 matches → the mirror folder (argument or
    GPTLAB_DATA_MIRROR) → the canonical URL. Every copy is checked before it is
    moved into place, so a bad download never replaces a good file.
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; registered datasets: {', '.join(sorted(DATASETS))}")
    info = DATASETS[name]
    cache = Path(cache_dir) if cache_dir is not None else data_dir()
    dest = cache / info.filename
    if dest.exists():
        if dest.stat().st_size == info.size and sha256_file(dest) == info.sha256:
            return dest
        # A stale or damaged cache entry: fetch a fresh copy (it replaces this one only if it checks out).
    mirror = mirror if mirror is not None else os.environ.get("GPTLAB_DATA_MIRROR")
    if mirror:
        src = Path(mirror).expanduser() / info.filename
        if src.exists():
            if not src.is_file():
                raise ChecksumError(f"the mirror entry {src} is not a regular file; replace it with the pinned {info.filename}")
            with open(src, "rb") as s:
                _install(lambda f: _copy_capped(s, f, info, f"the mirror file {src}"), info, dest, mirror_file=src)
            return dest
    try:
        with urllib.request.urlopen(info.url, timeout=timeout) as r:
            _install(lambda f: _copy_capped(r, f, info, "the download"), info, dest)
    except OSError as e:  # URLError, timeouts, DNS failures are all OSErrors
        where = f" and it is not in the mirror {mirror}" if mirror else ""
        raise DataUnavailableError(
            f"could not download {info.filename} ({e}){where}.\n"
            f"  URL:    {info.url}\n"
            f"  sha256: {info.sha256}\n"
            f"Download it on a machine with internet and put it at {dest}, "
            f"or set GPTLAB_DATA_MIRROR to a folder that holds {info.filename}."
        ) from e
    return dest


def read_text(name: str) -> str:
    """A registered dataset's text (UTF-8)."""
    return fetch(name).read_text(encoding="utf-8")
