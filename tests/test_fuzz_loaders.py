"""Fuzz the loaders: randomly damaged checkpoint folders (a language model's, a classifier's with LoRA
adapters, adapters alone) and tokenizer files (seeded, so failures repeat).

Each case flips or truncates bytes of one file, or rewrites one JSON field with a
value of the wrong type, or swaps an optimizer-state tensor for one of another
shape, and then recomputes the hashes in checkpoint.json so that they "match".
Every case must end, within a time and memory bound, in success or a clean error
(CheckpointError, ValueError, FileNotFoundError with a message): never a hang, a
crash or another exception. The cases run in one subprocess (so a hang in native
code, or a crash, cannot take pytest down with it) that reports each case as it
starts and ends; the case that was running when the time ran out is named.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptlab import GPT, GPTConfig
from gptlab import training as T
from gptlab.datasets import sha256_file
from gptlab.tokenizers import CharTokenizer, train_bpe

ROOT = Path(__file__).resolve().parents[1]
TEXT = "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n" * 30
N_CASES = 60
N_FT_CASES = 40  # classifier checkpoints and adapter folders (gptlab.finetune, gptlab.lora)
TIME_LIMIT_S = 120  # for all cases together; they take a few seconds
MEMORY_LIMIT = 6 << 30  # address space of the subprocess: a loader that tries to allocate gigabytes fails the test
WRONG = [None, True, False, -1, 0, 1.5, 10**30, -(10**20), "x", "", "../escape", [], {}, [1, 2], {"a": 1}, [[1, 2]] * 3]

RUNNER = r"""
import json, resource, sys, traceback
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
import torch
from gptlab import GPT, GPTConfig
from gptlab import checkpoint as C
from gptlab import finetune as FT
from gptlab import training as T
from gptlab.lora import load_lora
from gptlab.tokenizers import load_tokenizer

CLEAN = (C.CheckpointError, ValueError, FileNotFoundError, T.TrainingDiverged)
PROBE = "ROMEO: what light! <|endoftext|> caf\u00e9 \u4e2d 12\n"
cases = json.loads(open(sys.argv[1]).read())
text_ids = None
for i, case in enumerate(cases):
    print(json.dumps({"start": i}), flush=True)
    try:
        if case["target"] == "tokenizer":
            tok = load_tokenizer(case["path"])
            tok.decode(tok.encode(PROBE))
        elif case["target"] == "classifier":
            clf, meta = FT.load_classifier(case["path"], "cpu")
            clf(torch.tensor([[1, 2, 3]]))
            if case["resume"]:
                clf = FT.GPTClassifier(GPT(GPTConfig.from_dict(case["config"])), 2)
                FT.freeze(clf, "head")
                torch.manual_seed(3)
                from gptlab.lora import apply_lora
                apply_lora(clf.gpt, r=2, alpha=4)
                data = [([1, 2, 3, 4][: 1 + k % 4], k % 2) for k in range(8)]
                cfg = T.TrainConfig(max_steps=meta["step"] + 1, batch_size=2, eval_interval=100, warmup_steps=0,
                                    progress=False, ckpt_dir=case["path"], seed=1, bf16=False, device="cpu")
                FT.train_classifier(clf, data, data, cfg, resume=True)
        elif case["target"] == "adapters":
            model = GPT(GPTConfig.from_dict(case["config"]))
            load_lora(model, case["path"])
            model(torch.tensor([[1, 2, 3]]))
        else:
            model, tok, meta = C.load_checkpoint(case["path"], device="cpu", verify_train_state=case["resume"])
            if tok is not None:
                tok.decode(tok.encode(PROBE[:6]))
            if case["resume"]:
                ids = torch.tensor(tok.encode("ROMEO: what light" * 40))
                cfg = T.TrainConfig(max_steps=meta["step"] + 1, batch_size=2, eval_interval=100, eval_iters=1,
                                    warmup_steps=0, progress=False, ckpt_dir=case["path"], seed=1)
                T.train(GPT(GPTConfig.from_dict(case["config"])), ids[:500], ids[500:], cfg, resume=True)
        out = {"end": i, "ok": True}
    except CLEAN as e:
        msg = str(e)
        out = {"end": i, "ok": bool(msg.strip()) and "Traceback" not in msg, "error": f"{type(e).__name__}: {msg[:300]}"}
    except BaseException as e:
        out = {"end": i, "ok": False, "error": f"{type(e).__name__}: {e}"[:300], "tb": traceback.format_exc()[-1500:]}
    print(json.dumps(out), flush=True)
"""


def _rehash(folder: Path) -> None:
    j = folder / "checkpoint.json"
    try:
        meta = json.loads(j.read_text(encoding="utf-8"))
        for name, rec in meta["files"].items():
            p = folder / name
            if isinstance(rec, dict) and p.is_file():
                rec["bytes"], rec["sha256"] = p.stat().st_size, sha256_file(p)
    except Exception:  # the JSON itself is the damaged file, or files has another shape: leave it so
        return
    j.write_text(json.dumps(meta), encoding="utf-8")


def _paths(obj, prefix=()):
    """Every (path) to a value in a JSON object, for picking one to rewrite."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:8]):
            yield from _paths(v, prefix + (i,))


def _rewrite_json(p: Path, rng: random.Random) -> str:
    obj = json.loads(p.read_text(encoding="utf-8"))
    path = rng.choice([q for q in _paths(obj) if q])
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and rng.random() < 0.2:
        del parent[path[-1]]
        what = f"delete {path}"
    else:
        value = rng.choice(WRONG)
        parent[path[-1]] = value
        what = f"{path} = {value!r}"[:120]
    p.write_text(json.dumps(obj), encoding="utf-8")
    return what


def _damage_bytes(p: Path, rng: random.Random) -> str:
    data = bytearray(p.read_bytes())
    if rng.random() < 0.4:
        cut = rng.randrange(len(data))
        p.write_bytes(bytes(data[:cut]))
        return f"truncate {p.name} at {cut}"
    spots = [rng.randrange(len(data)) for _ in range(rng.randint(1, 4))]
    for s in spots:
        data[s] ^= 1 << rng.randrange(8)
    p.write_bytes(bytes(data))
    return f"flip bits of {p.name} at {spots}"


def _swap_optimizer_tensor(p: Path, rng: random.Random) -> str:
    state = torch.load(p, weights_only=True)
    moments = state["optimizer"]["state"]
    i = rng.choice(sorted(moments))
    k = rng.choice(["exp_avg", "exp_avg_sq", "step"])
    shape = rng.choice([(1,), (0,), (3, 3), (512, 64), ()])
    moments[i][k] = torch.zeros(shape, dtype=rng.choice([torch.float32, torch.float64, torch.int64]))
    torch.save(state, p)
    return f"optimizer state {i}.{k} -> zeros{shape}"


def _damage(d: Path, name: str, rng: random.Random) -> str:
    """Damage file `name` of checkpoint folder d one way or another, then fix the hashes checkpoint.json records."""
    if name == "train_state.pt" and rng.random() < 0.5:
        what = _swap_optimizer_tensor(d / name, rng)
    elif name.endswith(".json") and rng.random() < 0.7:
        what = _rewrite_json(d / name, rng)
    else:
        what = _damage_bytes(d / name, rng)
    _rehash(d)
    return what


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path, dict]:
    d = tmp_path_factory.mktemp("fuzz_base")
    tok = CharTokenizer.from_text(TEXT)
    ids = torch.tensor(tok.encode(TEXT))
    cfg = GPTConfig.from_preset("tiny", vocab_size=tok.n_vocab, n_embd=16, n_layer=1, block_size=16)
    torch.manual_seed(0)
    T.train(GPT(cfg), ids[:2000], ids[2000:], T.TrainConfig(max_steps=2, batch_size=2, eval_interval=2, eval_iters=1,
                                                            warmup_steps=0, progress=False, ckpt_dir=str(d / "ck")), tokenizer=tok)
    bpe = train_bpe(TEXT, 290, special_tokens=["<|endoftext|>"])
    bpe.save(d / "bpe.json")
    return d / "ck", d / "bpe.json", cfg.to_dict()


@pytest.fixture(scope="module")
def ft_base(tmp_path_factory, base) -> tuple[Path, Path, dict]:
    """A classifier checkpoint (head + LoRA adapters, best weights) and an adapter folder."""
    from gptlab import finetune as FT
    from gptlab.lora import apply_lora, save_lora

    d = tmp_path_factory.mktemp("fuzz_ft")
    config = base[2]
    torch.manual_seed(0)
    clf = FT.GPTClassifier(GPT(GPTConfig.from_dict(config)), 2)
    FT.freeze(clf, "head")
    torch.manual_seed(3)
    apply_lora(clf.gpt, r=2, alpha=4)
    data = [([1, 2, 3, 4][: 1 + k % 4], k % 2) for k in range(8)]
    FT.train_classifier(clf, data, data, T.TrainConfig(max_steps=2, batch_size=2, eval_interval=1, warmup_steps=0, progress=False,
                                                       ckpt_dir=str(d / "clf"), seed=1, bf16=False, device="cpu"))
    save_lora(clf.gpt, d / "adapters")
    return d / "clf", d / "adapters", config


def _make_ft_cases(ft_base: tuple[Path, Path, dict], out: Path) -> list[dict]:
    clf, adapters, config = ft_base
    rng = random.Random(26)
    cases = []
    for i in range(N_FT_CASES):
        target = "adapters" if i % 3 == 2 else "classifier"
        src = adapters if target == "adapters" else clf
        d = Path(shutil.copytree(src, out / f"{target}{i}"))
        what = _damage(d, rng.choice(["checkpoint.json", "checkpoint.json"] + sorted(p.name for p in d.iterdir())), rng)
        cases.append({"target": target, "path": str(d), "what": f"{target}: {what}", "config": config,
                      "resume": target == "classifier" and i % 2 == 0})
    return cases


def _make_cases(base: tuple[Path, Path, dict], out: Path) -> list[dict]:
    ck, bpe, config = base
    rng = random.Random(20)
    cases = []
    for i in range(N_CASES):
        target = "tokenizer" if i % 4 == 3 else "checkpoint"
        if target == "tokenizer":
            p = out / f"tok{i}.json"
            shutil.copy(bpe if i % 8 == 3 else ck / "tokenizer.json", p)
            what = _rewrite_json(p, rng) if rng.random() < 0.6 else _damage_bytes(p, rng)
            cases.append({"target": target, "path": str(p), "what": what})
            continue
        d = Path(shutil.copytree(ck, out / f"ck{i}"))
        name = rng.choice(["checkpoint.json", "checkpoint.json", "tokenizer.json", "model.safetensors", "train_state.pt"])
        what = _damage(d, name, rng)
        cases.append({"target": target, "path": str(d), "what": what, "config": config,
                      "resume": name == "train_state.pt" or (name == "checkpoint.json" and i % 3 == 0)})
    return cases


def test_damaged_files_give_clean_errors_within_bounds(base, ft_base, tmp_path):
    cases = _make_cases(base, tmp_path) + _make_ft_cases(ft_base, tmp_path)
    assert len(cases) == N_CASES + N_FT_CASES
    ends = run_cases(RUNNER, cases, tmp_path, "the loader run")
    ft_errors = [r for i, r in ends.items() if i >= N_CASES and "error" in r]
    assert len(ft_errors) > N_FT_CASES // 2  # the classifier and adapter damage is real too


def run_cases(runner: str, cases: list[dict], tmp_path: Path, what: str) -> dict:
    """Run `runner` on `cases` in one subprocess under the time and memory limits; every case must end cleanly."""
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run([sys.executable, "-c", runner, str(tmp_path / "cases.json"), str(MEMORY_LIMIT)],
                              capture_output=True, text=True, env=env, timeout=TIME_LIMIT_S)
        stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr, code = "", "timeout"
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    ends = {r["end"]: r for r in records if "end" in r}
    started = [r["start"] for r in records if "start" in r]
    if code == "timeout" or code != 0:
        running = started[-1] if started else None
        case = cases[running] if running is not None and running not in ends else None
        pytest.fail(f"{what} ended with {code} during case {running}: {case}\n{stderr[-2000:]}")
    bad = [(cases[i]["what"], r) for i, r in ends.items() if not r["ok"]]
    assert not bad, "\n".join(f"{what}: {r.get('error')}\n{r.get('tb', '')}" for what, r in bad)
    assert len(ends) == len(cases)
    errors = [r for r in ends.values() if "error" in r]
    assert len(errors) > len(cases) // 2  # the damage is real: most cases must be refused
    return ends


# ---------------------------------------------------------------- token shard folders

SHARD_RUNNER = r"""
import json, resource, sys, traceback
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
from gptlab.data import ShardError, TokenShards

CLEAN = (ShardError, ValueError, FileNotFoundError)
cases = json.loads(open(sys.argv[1]).read())
for i, case in enumerate(cases):
    print(json.dumps({"start": i}), flush=True)
    try:
        s = TokenShards(case["path"], verify=case["verify"])
        s[0:len(s)]
        train, val = s.split(0.2)
        train.get_batch(8, 4)
        tok = s.tokenizer()
        tok.decode(s[0:20].tolist())
        out = {"end": i, "ok": True}
    except CLEAN as e:
        msg = str(e)
        out = {"end": i, "ok": bool(msg.strip()) and "Traceback" not in msg, "error": f"{type(e).__name__}: {msg[:300]}"}
    except BaseException as e:
        out = {"end": i, "ok": False, "error": f"{type(e).__name__}: {e}"[:300], "tb": traceback.format_exc()[-1500:]}
    print(json.dumps(out), flush=True)
"""
N_SHARD_CASES = 48
SPECIALS = ["fifo", "deep", "dev", "dir", "missing shard", "shard symlink"]  # index.json or a shard is not what it claims


def _rehash_shards(folder: Path) -> None:
    """Make index.json's sha256s (and counts, for whole-token sizes) agree with the damaged shards, where it still parses."""
    j = folder / "index.json"
    try:
        index = json.loads(j.read_text(encoding="utf-8"))
        for s in index["shards"]:
            p = folder / s["name"]
            s["sha256"] = sha256_file(p)
            if p.stat().st_size % 2 == 0:
                s["tokens"] = p.stat().st_size // 2
        index["tokens"] = sum(s["tokens"] for s in index["shards"])
    except Exception:  # the index itself is the damaged file: leave it so
        return
    j.write_text(json.dumps(index), encoding="utf-8")


def _make_shard_cases(out: Path) -> list[dict]:
    from gptlab.data import prepare_shards

    (out / "src").mkdir()
    (out / "src" / "a.txt").write_text(TEXT, encoding="utf-8")
    (out / "src" / "b.jsonl").write_text(json.dumps({"text": TEXT[:500]}) + "\n", encoding="utf-8")
    base = {t: prepare_shards(out / "src", out / f"base_{t}", t, shard_tokens=700) for t in ("char", "gpt2")}
    rng = random.Random(26)
    cases = []
    for i in range(N_SHARD_CASES):
        d = Path(shutil.copytree(base["char" if i % 2 else "gpt2"], out / f"sh{i}"))
        shards = sorted(p.name for p in d.glob("shard_*.bin"))
        kind = "special" if i < len(SPECIALS) else rng.choice(["json", "json", "json", "index_bytes", "shard_bytes", "shard_bytes"])
        if kind == "json":
            what = _rewrite_json(d / "index.json", rng)
        elif kind == "index_bytes":
            what = _damage_bytes(d / "index.json", rng)
        elif kind == "shard_bytes":
            what = _damage_bytes(d / rng.choice(shards), rng)
        else:
            special = SPECIALS[i]  # each once
            what, ix = special, d / "index.json"
            if special == "fifo":
                ix.unlink()
                os.mkfifo(ix)
            elif special == "deep":
                ix.write_text("[" * 100_000 + "]" * 100_000)
            elif special == "dev":
                ix.unlink()
                ix.symlink_to("/dev/zero")
            elif special == "dir":
                ix.unlink()
                ix.mkdir()
            elif special == "missing shard":
                (d / shards[-1]).unlink()
            else:
                (d / shards[0]).unlink()
                (d / shards[0]).symlink_to(out / "src" / "a.txt")
        if rng.random() < 0.5 and kind != "special":
            _rehash_shards(d)
            what += " (rehashed)"
        cases.append({"path": str(d), "what": what, "verify": rng.random() < 0.5})
    return cases


def test_damaged_shard_folders_give_clean_errors_within_bounds(tmp_path):
    cases = _make_shard_cases(tmp_path)
    assert len(cases) == N_SHARD_CASES
    run_cases(SHARD_RUNNER, cases, tmp_path, "the shard reader run")
