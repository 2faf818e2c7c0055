"""Dataset registry and safe fetching (gptlab.datasets): pinned sha256 and size, mirror, cache."""

import hashlib
import os
import re
from pathlib import Path

import pytest

from gptlab import datasets as data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MIRROR = Path(os.environ.get("GPTLAB_DATA_MIRROR", SHARED))
# CI always has the mirror (.ci/run sets it and fails without it); elsewhere these tests need one.
needs_mirror = pytest.mark.skipif(not (MIRROR / "SOURCES.md").exists(), reason="no data mirror: set GPTLAB_DATA_MIRROR")


def _sources_table() -> dict[str, tuple[str, str]]:
    """filename -> (sha256, url) as listed in the mirror's SOURCES.md."""
    text = (MIRROR / "SOURCES.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \| [^|]+ \| (https://\S+) \|$", text, re.M)
    return {f: (sha, url) for f, sha, url in rows}


@pytest.fixture
def offline(monkeypatch):
    """No network: any download attempt fails as it would on an offline machine."""

    def refuse(*a, **k):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(data.urllib.request, "urlopen", refuse)
    monkeypatch.delenv("GPTLAB_DATA_MIRROR", raising=False)


@needs_mirror
def test_registry_matches_the_sources_file():
    table = _sources_table()
    assert len(data.DATASETS) == 10
    for info in data.DATASETS.values():
        sha, url = table[info.filename]
        assert info.sha256 == sha and info.url == url, info.name
        assert info.license and info.citation and info.description


@needs_mirror
@pytest.mark.parametrize("name", sorted(data.DATASETS))
def test_fetch_from_mirror_checks_and_caches(name, tmp_path, offline):
    path = data.fetch(name, cache_dir=tmp_path, mirror=MIRROR)
    assert path == tmp_path / data.DATASETS[name].filename
    assert hashlib.sha256(path.read_bytes()).hexdigest() == data.DATASETS[name].sha256
    # Second call: served from the cache, no mirror needed.
    assert data.fetch(name, cache_dir=tmp_path) == path


def test_offline_without_mirror_names_file_url_checksum_and_place(tmp_path, offline):
    with pytest.raises(data.DataUnavailableError) as e:
        data.fetch("tinyshakespeare", cache_dir=tmp_path)
    msg = str(e.value)
    info = data.DATASETS["tinyshakespeare"]
    for needle in (info.filename, info.url, info.sha256, str(tmp_path / info.filename), "GPTLAB_DATA_MIRROR"):
        assert needle in msg
    assert not any(tmp_path.iterdir())  # no half-written file left behind


@needs_mirror
def test_bad_mirror_copy_never_replaces_a_good_file(tmp_path, offline):
    cache, bad_mirror = tmp_path / "cache", tmp_path / "mirror"
    bad_mirror.mkdir()
    (bad_mirror / "lunyu.json").write_bytes((MIRROR / "lunyu.json").read_bytes()[:-10])  # truncated
    with pytest.raises(data.ChecksumError, match="does not match"):
        data.fetch("lunyu", cache_dir=cache, mirror=bad_mirror)
    assert not (cache / "lunyu.json").exists()
    assert [p.name for p in cache.iterdir()] == []  # temp file cleaned up
    good = data.fetch("lunyu", cache_dir=cache, mirror=MIRROR)
    before = good.read_bytes()
    # A damaged cache entry is replaced by a checked copy...
    good.write_bytes(b"garbage")
    assert data.fetch("lunyu", cache_dir=cache, mirror=MIRROR).read_bytes() == before
    # ...but a bad copy never overwrites it.
    good.write_bytes(b"garbage")
    with pytest.raises(data.ChecksumError):
        data.fetch("lunyu", cache_dir=cache, mirror=bad_mirror)
    assert good.read_bytes() == b"garbage"


@needs_mirror
def test_env_vars_choose_cache_and_mirror(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("GPTLAB_DATA_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("GPTLAB_DATA_MIRROR", str(MIRROR))
    assert data.data_dir() == tmp_path / "c"
    assert data.fetch("sst2_dev") == tmp_path / "c" / "sst2_dev.tsv"
    assert data.read_text("sst2_dev").startswith("sentence\tlabel\n")


def test_unknown_dataset():
    with pytest.raises(KeyError, match="unknown dataset 'shakespeare'.*tinyshakespeare"):
        data.fetch("shakespeare")


def test_mirror_entry_larger_than_pinned_is_refused_without_filling_the_disk(tmp_path, offline):
    """A mirror entry pointing at /dev/zero or an oversized file stops at the pinned size (probe D33)."""
    info = data.DATASETS["lunyu"]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / info.filename).write_bytes(b"x" * (info.size + 10))
    cache = tmp_path / "cache"
    with pytest.raises(data.ChecksumError, match="larger than the pinned"):
        data.fetch("lunyu", cache_dir=cache, mirror=mirror)
    assert not any(cache.iterdir())  # nothing written, no temp file left
    (mirror / info.filename).unlink()
    (mirror / info.filename).symlink_to("/dev/zero")
    with pytest.raises(data.ChecksumError, match="not a regular file"):
        data.fetch("lunyu", cache_dir=cache, mirror=mirror)
    assert not any(cache.iterdir())


# ----------------------------------------------------------------------------------------------------
# Moved here from test_hardening.py and test_mutation_gaps.py (tests by module): hostile input and mutation-test gaps.
# ----------------------------------------------------------------------------------------------------


@pytest.fixture
def small_dataset(tmp_path, monkeypatch):
    """A registered dataset of a few bytes, with a good mirror copy and no network."""
    good = b"the right bytes\n" * 8
    info = data.DatasetInfo("tiny_test", "tiny_test.txt", "https://example.invalid/tiny_test.txt",
                            hashlib.sha256(good).hexdigest(), len(good), "test", "test", "test")
    monkeypatch.setitem(data.DATASETS, info.name, info)

    def refuse(*a, **k):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(data.urllib.request, "urlopen", refuse)
    monkeypatch.delenv("GPTLAB_DATA_MIRROR", raising=False)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / info.filename).write_bytes(good)
    return info, good, mirror


def test_a_data_folder_that_is_a_file_and_a_bad_mirror_file_are_named(tmp_path, monkeypatch):
    from gptlab.datasets import ChecksumError, DataUnavailableError, fetch

    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("GPTLAB_DATA_DIR", str(tmp_path / "afile"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tinyshakespeare.txt").write_text("not shakespeare")
    monkeypatch.setenv("GPTLAB_DATA_MIRROR", str(mirror))
    with pytest.raises(DataUnavailableError, match="GPTLAB_DATA_DIR"):
        fetch("tinyshakespeare")
    monkeypatch.setenv("GPTLAB_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(ChecksumError, match="mirror file") as e:
        fetch("tinyshakespeare")
    assert "download" not in str(e.value).split("unset")[0]
    assert (mirror / "tinyshakespeare.txt").read_text() == "not shakespeare"


def test_cached_file_with_the_right_size_but_wrong_bytes_is_fetched_again(tmp_path, small_dataset):
    """Bug caught: a cached data file accepted because its size matches, without its sha256."""
    info, good, mirror = small_dataset
    cache = tmp_path / "cache"
    cache.mkdir()
    bad = bytes([good[0] ^ 1]) + good[1:]  # one bit flipped: same size
    (cache / info.filename).write_bytes(bad)
    with pytest.raises(data.DataUnavailableError):  # offline, no mirror: refused, not served
        data.fetch(info.name, cache_dir=cache)
    assert data.fetch(info.name, cache_dir=cache, mirror=mirror).read_bytes() == good  # replaced by a checked copy
    assert data.fetch(info.name, cache_dir=cache) == cache / info.filename  # and now served from the cache
