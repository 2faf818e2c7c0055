"""Token shards on disk (gptlab data prepare / TokenShards): the same windows and batches as the stream in memory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from gptlab.config import GPTConfig, TrainConfig
from gptlab.data import ShardError, TokenShards, TokenWindows, get_batch, prepare_shards, split_tokens
from gptlab.model import GPT
from gptlab.tokenizers import CharTokenizer
from gptlab.training import train

TEXTS = {  # read in sorted path order: a.txt, b.txt, sub/c.txt
    "b.txt": "Second file: the quick brown fox jumps over the lazy dog.\n" * 3,
    "a.txt": "First file. To be, or not to be, that is the question.\n" * 4,
    "sub/c.txt": "A third one, in a sub-folder; it ends the stream.\n" * 2,
}


@pytest.fixture
def corpus(tmp_path) -> tuple[Path, str]:
    src = tmp_path / "src"
    for name, text in TEXTS.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text, encoding="utf-8")
    (src / "notes.md").write_text("not a .txt file, so not part of the corpus")
    stream = "".join(TEXTS[k] for k in ("a.txt", "b.txt", "sub/c.txt"))
    return src, stream


@pytest.fixture
def shards(corpus, tmp_path) -> tuple[TokenShards, torch.Tensor]:
    src, stream = corpus
    out = prepare_shards(src, tmp_path / "shards", "char", shard_tokens=100)
    return TokenShards(out), torch.tensor(CharTokenizer.from_text(stream).encode(stream))


def test_prepare_writes_fixed_size_shards_and_an_index(shards):
    s, tokens = shards
    index = json.loads((s.folder / "index.json").read_text())
    assert index["dtype"] == "uint16" and index["tokenizer"]["type"] == "char" and index["sources"] == 3
    counts = [sh["tokens"] for sh in index["shards"]]
    assert counts[:-1] == [100] * (len(counts) - 1) and 0 < counts[-1] <= 100 and sum(counts) == len(tokens) == len(s)
    assert (s.folder / "shard_000000.bin").stat().st_size == 100 * 2
    assert s.tokenizer().decode(s[0:len(s)].tolist()) == "".join(TEXTS[k] for k in ("a.txt", "b.txt", "sub/c.txt"))


def test_windows_from_shards_equal_windows_from_memory_including_across_shard_boundaries(shards):
    s, tokens = shards
    assert torch.equal(s[0:len(s)], tokens)
    mem, disk = TokenWindows(tokens, 16, stride=7), TokenWindows(s, 16, stride=7)
    assert len(mem) == len(disk) > 50
    crossing = 0
    for i in range(len(mem)):
        (xm, ym), (xd, yd) = mem[i], disk[i]
        assert torch.equal(xm, xd) and torch.equal(ym, yd)
        crossing += (i * 7) // 100 != (i * 7 + 16) // 100  # x and y reach into the next shard
    assert crossing >= 5
    assert torch.equal(s[95:205], tokens[95:205])  # spans three shards
    for seed in range(3):  # random batches: the same offsets from the same generator, so the same windows
        x1, y1 = get_batch(tokens, 32, 6, torch.Generator().manual_seed(seed))
        x2, y2 = s.get_batch(32, 6, torch.Generator().manual_seed(seed))
        assert torch.equal(x1, x2) and torch.equal(y1, y2) and x2.dtype == torch.long


def test_split_matches_split_tokens_and_training_on_shards_matches_memory(shards):
    s, tokens = shards
    (tr_s, va_s), (tr_m, va_m) = s.split(0.1), split_tokens(tokens, 0.1)
    assert torch.equal(tr_s[0:len(tr_s)], tr_m) and torch.equal(va_s[0:len(va_s)], va_m)
    assert len(s.split(0.5, max_val_tokens=10)[1]) == 10
    cfg = TrainConfig(max_steps=3, batch_size=4, warmup_steps=1, eval_interval=3, eval_iters=2, log_interval=1,
                      bf16=False, device="cpu", progress=False)
    histories = []
    for train_data, val_data in ((tr_s, va_s), (tr_m, va_m)):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=s.n_vocab, block_size=16, n_layer=1, n_head=2, n_embd=16))
        histories.append(train(model, train_data, val_data, cfg).to_dict())
    histories[0].pop("tokens_per_s"), histories[1].pop("tokens_per_s")
    assert histories[0] == histories[1]


def test_the_model_vocab_must_cover_the_shards(shards):
    s, _ = shards
    model = GPT(GPTConfig(vocab_size=s.n_vocab - 1, block_size=16, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match=f"vocab_size={s.n_vocab}"):
        train(model, s, s, TrainConfig(max_steps=1, device="cpu", progress=False))


def test_gpt2_shards_start_each_document_with_endoftext(corpus, tmp_path):
    src, _ = corpus
    s = TokenShards(prepare_shards(src / "a.txt", tmp_path / "g", "gpt2"))
    enc = s.tokenizer()
    assert s.dtype == np.uint16 and s.n_vocab == 50257
    assert s[0:len(s)].tolist() == [50256] + enc.encode_ordinary(TEXTS["a.txt"])


def test_jsonl_files_hold_one_document_per_line(tmp_path):
    src = tmp_path / "web"
    src.mkdir()
    docs = ["The first page.", "Second page, with \u00e9 and \u4e2d.", "Third."]
    (src / "part-0.jsonl").write_text("\n".join(json.dumps({"text": d, "url": "x"}) for d in docs[:2]) + "\n\n", encoding="utf-8")
    (src / "part-1.jsonl").write_text(json.dumps({"text": docs[2]}) + "\n", encoding="utf-8")
    s = TokenShards(prepare_shards(src, tmp_path / "g", "gpt2", shard_tokens=7))
    enc = s.tokenizer()
    assert s[0:len(s)].tolist() == [t for d in docs for t in [50256] + enc.encode_ordinary(d)]
    (src / "part-2.jsonl").write_text('{"title": "no text field"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match='part-2.jsonl line 1 is not a JSON object with a "text" string'):
        prepare_shards(src, tmp_path / "g2", "gpt2")


def _edit_index(s: TokenShards, edit) -> None:
    p = s.folder / "index.json"
    index = json.loads(p.read_text())
    edit(index)
    p.write_text(json.dumps(index))


@pytest.mark.parametrize("edit, message", [
    (lambda ix: ix["shards"][0].update(name="../../etc/passwd"), "inside the folder"),
    (lambda ix: ix["shards"][1].update(name="shard_000000.bin"), "unique"),
    (lambda ix: ix.update(dtype="float64"), '"dtype"'),
    (lambda ix: ix.update(format="something-else"), '"format"'),
    (lambda ix: (ix["shards"][0].update(tokens=101), ix.update(tokens=ix["tokens"] + 1)), "bytes but index.json records 101"),
    (lambda ix: ix["shards"][0].update(extra=1), "exactly"),
    (lambda ix: ix.update(n_vocab=70000), '"n_vocab"'),
    (lambda ix: ix.update(tokens=5), "sum"),
])
def test_a_damaged_index_is_a_clear_error(shards, edit, message):
    s, _ = shards
    _edit_index(s, edit)
    with pytest.raises(ShardError, match=message):
        TokenShards(s.folder)


def test_damaged_shards_are_clear_errors(shards):
    s, _ = shards
    first = s.folder / "shard_000000.bin"
    data = bytearray(first.read_bytes())
    data[10] ^= 0x01  # same size, different bytes
    first.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="sha256 does not match"):
        TokenShards(s.folder)
    first.write_bytes(bytes(data[:-2]))  # truncated by one token
    with pytest.raises(ShardError, match="truncated or altered"):
        TokenShards(s.folder, verify=False)
    first.write_bytes(b"\xff\xff" * 100)  # ids beyond the vocabulary, read without hashing
    with pytest.raises(ShardError, match="token id 65535 >= n_vocab"):
        TokenShards(s.folder, verify=False)[0:20]
    first.unlink()
    os.symlink(s.folder / "shard_000001.bin", first)
    with pytest.raises(ShardError, match="not a regular file"):
        TokenShards(s.folder, verify=False)
    (s.folder / "index.json").write_text("{not json")
    with pytest.raises(ShardError, match="not valid JSON"):
        TokenShards(s.folder)


def test_prepare_refuses_bad_input(corpus, tmp_path):
    src, _ = corpus
    with pytest.raises(ValueError, match="shard_tokens"):
        prepare_shards(src, tmp_path / "o", "char", shard_tokens=0)
    with pytest.raises(ValueError, match="tokenizer must be"):
        prepare_shards(src, tmp_path / "o", "words")
    with pytest.raises(ValueError, match="no files matching"):
        prepare_shards(src, tmp_path / "o", "char", pattern="*.csv")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        prepare_shards(src, tmp_path / "full", "char")
    (src / "bad.txt").write_bytes(b"\xff\xfe latin-1?")
    with pytest.raises(ValueError, match="not UTF-8"):
        prepare_shards(src, tmp_path / "o2", "char")


def test_cli_data_prepare_then_train_on_shards(corpus, tmp_path, monkeypatch, capsys):
    from gptlab.cli import main

    src, stream = corpus
    monkeypatch.chdir(tmp_path)
    assert main(["data", "prepare", str(src), "sh", "--tokenizer", "char", "--shard-tokens", "200"]) == 0
    assert f"{len(stream):,} tokens (char, {len(set(stream))} ids, uint16) in 3 shard(s) -> sh" in capsys.readouterr().out
    assert main(["data", "prepare", str(src), "sh"]) == 1  # never over an existing folder
    assert "not an empty folder" in capsys.readouterr().err
    args = ["train", "--preset", "tiny", "--shards", "sh", "--out", "ck", "--max-steps", "2", "--eval-iters", "1",
            "--block-size", "16", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    assert "char tokenizer" in capsys.readouterr().out
    assert main([*args, "--tokenizer", "char"]) == 1
    assert "drop --text-file and --tokenizer" in capsys.readouterr().err


# ---------------------------------------------------------------- hostile input (issue 26: D22-D28)


def _leftovers(tmp_path: Path) -> list[str]:
    """What a prepare left beside its output folder (hidden staging folders, lock files)."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("tokenizer", ["gpt2", "char"])
def test_an_empty_corpus_is_an_error_and_writes_nothing(tmp_path, tokenizer):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": ""}) + "\n")
    for src in ("empty.txt", "docs.jsonl"):
        with pytest.raises(ValueError, match=f"the files under .*{src} hold no text; there is nothing to tokenize"):
            prepare_shards(tmp_path / src, tmp_path / "out", tokenizer)
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_shard_tokens_is_bounded_before_anything_is_allocated(corpus, tmp_path, capsys):
    from gptlab.cli import main

    src, _ = corpus
    for bad in (10**13, 0, True, 1.5):
        with pytest.raises(ValueError, match=r"shard_tokens \(--shard-tokens\) must be an integer from 1 to 2,147,483,648"):
            prepare_shards(src, tmp_path / "o", "char", shard_tokens=bad)
    assert main(["data", "prepare", str(src), str(tmp_path / "o"), "--shard-tokens", "10000000000000"]) == 1
    assert "must be an integer from 1 to 2,147,483,648" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_failed_prepare_leaves_nothing_and_a_rerun_finishes(corpus, tmp_path):
    src, stream = corpus
    (src / "z_bad.txt").write_bytes(b"fine so far\n\xff not utf-8")  # read last, after shards were written
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"z_bad.txt is not UTF-8 text \(byte 0xff at offset 12\)"):
        prepare_shards(src, out, "char", shard_tokens=50)
    assert not out.exists() and _leftovers(tmp_path) == []
    (src / "z_bad.txt").unlink()
    s = TokenShards(prepare_shards(src, out, "char", shard_tokens=50))
    assert CharTokenizer.from_text(stream).decode(s[0:len(s)].tolist()) == stream
    # a prepare killed mid-way leaves its hidden staging folder: the next one clears it and finishes
    stage = tmp_path / ".again.prepare"
    stage.mkdir()
    (stage / "shard_000000.bin").write_bytes(b"\x00" * 10)
    assert len(TokenShards(prepare_shards(src, tmp_path / "again", "char"))) == len(stream)
    assert not stage.exists()
    stage = tmp_path / ".third.prepare"  # ... but never deletes what it did not write
    stage.mkdir()
    (stage / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match=r"\.third\.prepare holds files prepare did not write; move it away"):
        prepare_shards(src, tmp_path / "third", "char")
    assert (stage / "thesis.tex").read_text() == "precious" and not (tmp_path / "third").exists()


def test_one_large_text_file_is_tokenized_in_bounded_pieces_to_the_same_tokens(tmp_path, monkeypatch):
    import gptlab.data as data
    from gptlab.tokenizers import gpt2, train_bpe

    monkeypatch.setattr(data, "_READ_CHARS", 64)
    pieces: list[int] = []
    real = data._pieces

    def spy(f, path):
        for p in real(f, path):
            pieces.append(len(p))
            yield p

    monkeypatch.setattr(data, "_pieces", spy)
    text = ("To be, or not to be:  that is\tthe question.\n\n  Whether 'tis nobler 1234 in the mind\r\n"
            "to suffer\u00a0the slings \u4e2d\u6587\u2014and arrows!?\n   \n") * 40
    (tmp_path / "big.txt").write_bytes(text.encode())
    text = text.replace("\r\n", "\n")  # read as Path.read_text reads it: universal newlines
    s = TokenShards(prepare_shards(tmp_path / "big.txt", tmp_path / "g", "gpt2", shard_tokens=100))
    assert len(pieces) > 40 and max(pieces) <= 9 * 64  # streamed: never the whole file at once
    assert s[0:len(s)].tolist() == [50256] + gpt2().encode_ordinary(text)  # cut only where the tokens cannot change
    bpe = train_bpe(text, 300)
    s = TokenShards(prepare_shards(tmp_path / "big.txt", tmp_path / "b", bpe, shard_tokens=100))
    assert s[0:len(s)].tolist() == bpe.encode(text)
    pieces.clear()  # a stretch with no space or line break is cut anyway once it fills 8 pieces
    (tmp_path / "run.txt").write_text(text + "x" * 1000 + " end\n")
    s = TokenShards(prepare_shards(tmp_path / "run.txt", tmp_path / "c", "char", shard_tokens=100))
    assert s.tokenizer().decode(s[0:len(s)].tolist()) == text + "x" * 1000 + " end\n"
    assert max(pieces) <= 9 * 64


def test_two_prepares_into_one_folder_cannot_both_succeed(corpus, tmp_path):
    import subprocess
    import sys

    src, stream = corpus
    out = tmp_path / "out"
    hold = ("import sys; from gptlab.checkpoint import writer_lock\n"
            "with writer_lock(sys.argv[1]):\n    print('held', flush=True); sys.stdin.read()")
    other = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"  # another process is preparing into out
        with pytest.raises(FileExistsError, match=r"another gptlab process is writing .*out \(it holds \.out\.lock\); wait"):
            prepare_shards(src, out, "char")
        assert not out.exists()
    finally:
        other.communicate("")
    assert len(TokenShards(prepare_shards(src, out, "char"))) == len(stream)  # free again once it is done


def test_an_index_that_is_not_a_plain_small_json_file_is_refused_before_reading(shards):
    s, _ = shards
    ix = s.folder / "index.json"
    ix.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ShardError, match="index.json is nested too deeply to be a shard index"):
        TokenShards(s.folder)
    ix.unlink()
    os.mkfifo(ix)  # reading it would block forever: refused on sight
    with pytest.raises(ShardError, match="index.json is not a regular file"):
        TokenShards(s.folder)
    ix.unlink()
    ix.symlink_to("/dev/zero")  # endless
    with pytest.raises(ShardError, match="index.json is not a regular file"):
        TokenShards(s.folder)
