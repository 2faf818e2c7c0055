"""gptlab.training: schedule, batches, the loop, exact resume (also after kill -9), checkpoints."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import _tiny
import pytest
import torch
from _tiny import same_history
from test_model import SWITCHES, make

from gptlab import GPT, GPTConfig
from gptlab import checkpoint as C
from gptlab import training as T
from gptlab.checkpoint import CheckpointError
from gptlab.config import TrainConfig
from gptlab.data import get_batch
from gptlab.datasets import sha256_file
from gptlab.tokenizers import CharTokenizer
from gptlab.training import History, lr_at, make_optimizer, train

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 30
TOK = CharTokenizer.from_text(TEXT)
IDS = torch.tensor(TOK.encode(TEXT))
TRAIN, VAL = IDS[: int(len(IDS) * 0.9)], IDS[int(len(IDS) * 0.9) :]
MODEL_CFG = GPTConfig.from_preset("tiny", vocab_size=TOK.n_vocab, dropout=0.1)  # dropout: the RNG state matters


def run_cfg(ckpt_dir=None, **kw) -> TrainConfig:
    base = dict(max_steps=12, batch_size=4, lr=3e-3, min_lr=3e-4, warmup_steps=3, lr_decay_steps=12, grad_accum=2,
                eval_interval=4, eval_iters=2, log_interval=1, ckpt_interval=3, progress=False, seed=7)
    return TrainConfig(ckpt_dir=None if ckpt_dir is None else str(ckpt_dir), **{**base, **kw})


def fresh_model() -> GPT:
    torch.manual_seed(0)
    return GPT(MODEL_CFG)


def losses(h: History) -> dict:
    """Everything a run recorded except the timings."""
    d = h.to_dict()
    d.pop("tokens_per_s")
    return d


# ---------------------------------------------------------------- config and schedule


@pytest.mark.parametrize(
    "bad, needle",
    [
        (dict(max_steps=0), "max_steps"),
        (dict(batch_size=2.5), "batch_size"),
        (dict(lr=0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(min_lr=1.0, lr=0.1), "min_lr"),
        (dict(betas=(0.9,)), "betas"),
        (dict(betas=(0.9, 1.5)), "betas"),
        (dict(bf16="yes"), "bf16"),
        (dict(warmup_steps=-1), "warmup_steps"),
        (dict(lr_decay_steps=5, warmup_steps=10), "lr_decay_steps"),
        (dict(grad_accum=0), "grad_accum"),
        (dict(ckpt_interval=0), "ckpt_interval"),
        (dict(weight_decay=-0.1), "weight_decay"),
    ],
)
def test_bad_config_values_name_the_field(bad, needle):
    with pytest.raises(ValueError, match=needle):
        TrainConfig(**bad)


def test_config_presets_and_dict_round_trip():
    cfg = TrainConfig.from_preset("shakespeare-char")
    assert (cfg.max_steps, cfg.batch_size, cfg.lr, cfg.min_lr, cfg.warmup_steps) == (2000, 12, 1e-3, 1e-4, 100)
    assert (cfg.betas, cfg.weight_decay, cfg.grad_clip) == ((0.9, 0.99), 0.1, 1.0)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))  # betas come back from JSON as a list
    assert again == cfg and isinstance(again.betas, tuple)
    with pytest.raises(ValueError, match="unknown training preset 'nope'"):
        TrainConfig.from_preset("nope")
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"lr": 1e-3, "learning_rate": 1e-3})


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(max_steps=1000, lr=1e-3, min_lr=1e-4, warmup_steps=100, lr_decay_steps=800)
    lrs = [T.lr_at(s, cfg) for s in range(1000)]
    assert lrs[0] == pytest.approx(1e-3 / 101)
    assert all(a < b for a, b in zip(lrs[:100], lrs[1:101]))  # rising through warmup
    assert lrs[100] == pytest.approx(1e-3)  # the peak, where warmup ends
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:]))  # then never rising
    assert lrs[450] == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4))  # cosine midpoint
    assert lrs[800] == lrs[999] == 1e-4


def test_get_batch_windows_and_generator():
    data = torch.arange(1000)
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(data, 16, 5, g)
    assert x.shape == y.shape == (5, 16)
    assert torch.equal(y, x + 1)  # next-token targets
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # contiguous windows
    x2, _ = get_batch(data, 16, 5, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_weight_decay_groups_skip_biases_and_norms():
    model = fresh_model()
    opt = T.make_optimizer(model, TrainConfig(weight_decay=0.1), torch.device("cpu"))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert any(names[id(p)] == "transformer.h.0.ln_1.weight" for p in no_decay["params"])
    assert any(names[id(p)] == "transformer.h.0.attn.c_attn.bias" for p in no_decay["params"])
    n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_opt == model.get_num_params()  # the tied embedding / lm_head matrix once


# ---------------------------------------------------------------- the loop


def test_train_learns_and_records_history(tmp_path):
    model = fresh_model()
    seen = []
    h = T.train(model, TRAIN, VAL, run_cfg(max_steps=40, lr_decay_steps=40, eval_interval=20, log_interval=5),
                tokenizer=TOK, callback=lambda step, m, hist: seen.append((step, len(hist.eval_steps))))
    assert h.steps == list(range(0, 40, 5)) and len(h.train_loss) == len(h.lr) == len(h.tokens_per_s) == 8
    assert h.eval_steps == [0, 20, 40] and seen == [(0, 1), (20, 2), (40, 3)]
    assert h.eval_val_loss[0] == pytest.approx(math.log(TOK.n_vocab), rel=0.1)  # untrained: about uniform
    assert h.eval_val_loss[-1] < h.eval_val_loss[0] - 0.5 and h.val_loss == h.eval_val_loss[-1]
    assert all(t > 0 for t in h.tokens_per_s)
    fig = h.plot()
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel() and len(ax.lines) == 3
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_callback_cannot_change_the_run():
    h1 = T.train(fresh_model(), TRAIN, VAL, run_cfg())

    def noisy(step, model, history):  # e.g. sampling text: uses the global RNG and eval mode
        model.eval()
        torch.rand(100)
        torch.randn(3, 3).normal_()

    h2 = T.train(fresh_model(), TRAIN, VAL, run_cfg(), callback=noisy)
    assert losses(h1) == losses(h2)


@pytest.mark.parametrize("bf16, hardware_has_bf16, expect", [
    (False, True, torch.float32),
    (True, False, torch.bfloat16),
    ("auto", True, torch.bfloat16),
    ("auto", False, torch.float32),
])
def test_bf16_flag_switches_autocast_on(bf16, hardware_has_bf16, expect, monkeypatch):
    """The matmuls of training steps and evaluations really run in bf16 (seen by a hook), and only when asked."""
    monkeypatch.setattr("gptlab.device.bf16_supported", lambda device: hardware_has_bf16)
    model = fresh_model()
    seen = set()
    model.lm_head.register_forward_hook(lambda m, args, out: seen.add(("train" if m.training else "eval", out.dtype)))
    h = T.train(model, TRAIN, VAL, run_cfg(max_steps=1, batch_size=2, grad_accum=1, eval_iters=1, bf16=bf16, device="cpu"))
    assert seen == {("train", expect), ("eval", expect)}
    assert all(math.isfinite(x) for x in h.train_loss + h.eval_val_loss)
    assert model.lm_head.weight.dtype == torch.float32  # weights stay fp32 under autocast


def test_bad_training_inputs():
    with pytest.raises(ValueError, match="vocab_size"):
        T.train(fresh_model(), torch.full((200,), 500), VAL, run_cfg())
    with pytest.raises(ValueError, match="train_data has 10 tokens"):
        T.train(fresh_model(), IDS[:10], VAL, run_cfg())
    with pytest.raises(ValueError, match="tokenizer has 167 tokens"):
        T.train(fresh_model(), TRAIN, VAL, run_cfg(), tokenizer=CharTokenizer.from_text("".join(map(chr, range(33, 200)))))
    with pytest.raises(ValueError, match="ckpt_dir"):
        T.train(fresh_model(), TRAIN, VAL, run_cfg(), resume=True)
    with pytest.raises(TypeError, match="TrainConfig"):
        T.train(fresh_model(), TRAIN, VAL, {"max_steps": 3})


# ---------------------------------------------------------------- exact resume


def test_resume_in_process_equals_uninterrupted(tmp_path):
    full = T.train(fresh_model(), TRAIN, VAL, run_cfg())
    T.train(fresh_model(), TRAIN, VAL, run_cfg(tmp_path / "ck", max_steps=5), tokenizer=TOK)  # stop at step 5
    model = GPT(MODEL_CFG)  # a differently initialised model: the weights must come from the checkpoint
    resumed = losses(T.train(model, TRAIN, VAL, run_cfg(tmp_path / "ck"), tokenizer=TOK, resume=True))
    i = resumed["eval_steps"].index(5)  # the 5-step run ended with an evaluation; apart from it, all equal
    for k in ("eval_steps", "eval_train_loss", "eval_val_loss"):
        del resumed[k][i]
    assert resumed == losses(full)
    assert json.loads((tmp_path / "ck" / "checkpoint.json").read_text())["step"] == 12


KILL_SCRIPT = """
import os, signal, sys
import torch
torch.set_num_threads(int(sys.argv[3]))
sys.path.insert(0, sys.argv[1])
import test_training as tt
from gptlab import training as T

real_save = T.save_checkpoint
def save_then_die(*args, **kw):
    real_save(*args, **kw)
    if kw["step"] == int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no cleanup, no atexit, no flush
T.save_checkpoint = save_then_die
T.train(tt.fresh_model(), tt.TRAIN, tt.VAL, tt.run_cfg(sys.argv[2]), tokenizer=tt.TOK)
print("not killed")
"""


def test_resume_after_kill_9_in_a_fresh_process_equals_uninterrupted(tmp_path):
    ck = tmp_path / "ck"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(Path(__file__).parent), str(ck), str(torch.get_num_threads()), "6"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "not killed" not in proc.stdout
    assert json.loads((ck / "checkpoint.json").read_text())["step"] == 6
    resumed = T.train(GPT(MODEL_CFG), TRAIN, VAL, run_cfg(ck), tokenizer=TOK, resume=True)
    full = T.train(fresh_model(), TRAIN, VAL, run_cfg())
    assert losses(resumed) == losses(full)  # every step's loss, lr and evaluation, bit for bit
    assert len(resumed.train_loss) == 12 and resumed.eval_steps == [0, 4, 8, 12]


def test_resume_refuses_a_different_model_or_tokenizer(tmp_path):
    T.train(fresh_model(), TRAIN, VAL, run_cfg(tmp_path / "ck", max_steps=3), tokenizer=TOK)
    other = GPT(GPTConfig.from_preset("tiny", vocab_size=TOK.n_vocab, dropout=0.1, n_layer=3))
    with pytest.raises(ValueError, match="n_layer"):
        T.train(other, TRAIN, VAL, run_cfg(tmp_path / "ck"), resume=True)
    swapped = CharTokenizer.from_text(TEXT[::-1] + "~")  # same characters and one more, other ids
    with pytest.raises(ValueError, match="tokenizer"):
        T.train(GPT(MODEL_CFG), TRAIN, VAL, run_cfg(tmp_path / "ck"), tokenizer=swapped, resume=True)
    with pytest.warns(UserWarning, match=r"changed settings \['lr'\]:"):  # lr alone, not min_lr or lr_decay_steps
        T.train(GPT(MODEL_CFG), TRAIN, VAL, run_cfg(tmp_path / "ck", max_steps=4, lr=1e-2), resume=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        T.train(GPT(MODEL_CFG), TRAIN, VAL, run_cfg(tmp_path / "nothing"), resume=True)
    C.save_checkpoint(tmp_path / "weights_only", fresh_model(), tokenizer=TOK)
    with pytest.raises(CheckpointError, match="train_state.pt"):
        T.train(fresh_model(), TRAIN, VAL, run_cfg(tmp_path / "weights_only"), resume=True)


# ---------------------------------------------------------------- checkpoints


@pytest.fixture()
def saved(tmp_path):
    model = fresh_model()
    T.train(model, TRAIN, VAL, run_cfg(tmp_path / "ck", max_steps=3), tokenizer=TOK)
    return tmp_path / "ck", model


def test_checkpoint_round_trip(saved):
    path, model = saved
    assert sorted(p.name for p in path.iterdir()) == ["checkpoint.json", "model.safetensors", "tokenizer.json", "train_state.pt"]
    loaded, tok, meta = C.load_checkpoint(path, device="cpu")
    assert not loaded.training and meta["step"] == 3 and meta["train_config"]["max_steps"] == 3
    assert tok.encode(TEXT[:50]) == TOK.encode(TEXT[:50])
    assert loaded.transformer.wte.weight is loaded.lm_head.weight  # still tied after loading
    x = IDS[:32][None]
    model.cpu().eval()
    torch.testing.assert_close(loaded(x)[0], model(x)[0], rtol=0, atol=0)
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        stored = set(f.keys())
    assert len(stored & {"transformer.wte.weight", "lm_head.weight"}) == 1  # the tied matrix stored once
    assert meta["tied_weights"] and meta["tokenizer"] == {"file": "tokenizer.json", "type": "char", "n_vocab": TOK.n_vocab}
    state = torch.load(path / "train_state.pt", weights_only=True)  # nothing but tensors and plain containers
    assert set(state) == {"optimizer", "rng", "step"}


def _damage(path: Path, name: str, how: str) -> None:
    p = path / name
    data = p.read_bytes()
    if how == "truncate":
        p.write_bytes(data[: len(data) // 2])
    elif how == "flip":
        i = len(data) - 5
        p.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    else:
        p.unlink()


@pytest.mark.parametrize("name", ["model.safetensors", "train_state.pt", "tokenizer.json"])
@pytest.mark.parametrize("how, exc, needle", [
    ("truncate", CheckpointError, "truncated"),
    ("flip", CheckpointError, "corrupt"),
    ("delete", FileNotFoundError, "missing"),
])
def test_damaged_checkpoint_files_give_clear_errors(saved, name, how, exc, needle):
    path, _ = saved
    _damage(path, name, how)
    # load_checkpoint checks the files it uses; train_state.pt (resuming only) is checked by read_checkpoint_meta
    read = C.read_checkpoint_meta if name == "train_state.pt" else (lambda p: C.load_checkpoint(p, device="cpu"))
    with pytest.raises(exc, match=needle) as e:
        read(path)
    assert name in str(e.value)


def test_bad_checkpoint_folder_and_json(saved, tmp_path):
    path, _ = saved
    with pytest.raises(FileNotFoundError, match="does not exist"):
        C.load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="checkpoint.json is missing"):
        C.load_checkpoint(tmp_path / "empty")
    j = path / "checkpoint.json"
    j.write_text(j.read_text()[:100])
    with pytest.raises(CheckpointError, match="checkpoint.json is corrupt or truncated"):
        C.load_checkpoint(path)


def test_train_state_is_never_unpickled_beyond_weights_only(saved):
    """A train_state.pt that smuggles in code (whose hash was updated to match) is refused, and nothing runs."""
    path, model = saved

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(path / "pwned"),))

    torch.save({"optimizer": Evil()}, path / "train_state.pt")
    meta = json.loads((path / "checkpoint.json").read_text())
    meta["files"]["train_state.pt"] = {"bytes": (path / "train_state.pt").stat().st_size,
                                        "sha256": sha256_file(path / "train_state.pt")}
    (path / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="weights_only=True"):
        T.train(GPT(MODEL_CFG), TRAIN, VAL, run_cfg(path), resume=True)
    assert not (path / "pwned").exists()


def test_saves_are_atomic_and_a_half_finished_save_is_harmless(saved):
    path, model = saved
    tmp, old = C._siblings(path)
    before = (path / "checkpoint.json").read_text()
    # killed while writing the new files: the old checkpoint is untouched and loads
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(b"half")
    assert C.load_checkpoint(path, device="cpu")[2]["step"] == 3
    # killed between the two renames (old moved aside, new one complete): a load reads the new one where it
    # lies (readers never rename), and the next save, under the writer lock, finishes the swap
    C.save_checkpoint(tmp.parent / "next", model, tokenizer=TOK, step=9)
    shutil.rmtree(tmp)
    os.replace(path, old)
    os.replace(tmp.parent / "next", tmp)
    assert C.load_checkpoint(path, device="cpu")[2]["step"] == 9
    assert tmp.exists() and old.exists() and not path.exists()
    # a save replaces a checkpoint in one rename and leaves no debris
    C.save_checkpoint(path, model, tokenizer=TOK, step=10)
    assert json.loads((path / "checkpoint.json").read_text())["step"] == 10 != json.loads(before)["step"]
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []


def test_save_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="notes.txt"):
        C.save_checkpoint(tmp_path / "mine", fresh_model())
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ---------------------------------------------------------------- course helper


def test_course_model_is_loaded_not_retrained(tmp_path, monkeypatch):
    """shakespeare_char_model loads a saved model of the recipe; the fast one lives under its own name."""
    from gptlab import course

    monkeypatch.setenv("GPTLAB_CHECKPOINT_DIR", str(tmp_path))
    assert course.checkpoint_dir() == tmp_path
    tok = CharTokenizer.from_text("".join(chr(c) for c in range(40, 105)))  # 65 characters, as Tiny Shakespeare
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("shakespeare-char", vocab_size=tok.n_vocab))
    hist = History(eval_steps=[150], evals={"train_loss": [2.0], "val_loss": [2.1]})
    C.save_checkpoint(tmp_path / "shakespeare-char-fast", model, tokenizer=tok, step=150, history=hist)

    monkeypatch.setattr(T, "train", lambda *a, **k: pytest.fail("retrained although a checkpoint exists"))
    got, got_tok, got_hist = course.shakespeare_char_model(fast=True)
    assert got_hist.val_loss == 2.1 and got_tok.n_vocab == 65
    torch.testing.assert_close(got.lm_head.weight.cpu(), model.lm_head.weight)
    assert not (tmp_path / "shakespeare-char").exists()  # the full model's folder is never the fast one's

    # a checkpoint that is not the recipe's (here: stopped at step 100) is trained again, with the recipe
    C.save_checkpoint(tmp_path / "shakespeare-char-fast", model, tokenizer=tok, step=100, history=hist)
    calls = []
    monkeypatch.setattr(course, "checkpoint_dir", lambda: tmp_path)
    monkeypatch.setattr("gptlab.datasets.read_text", lambda name: "".join(chr(c) for c in range(40, 105)) * 20)
    monkeypatch.setattr(T, "train", lambda model, tr, va, cfg, **kw: calls.append(cfg) or History())
    with pytest.warns(UserWarning, match="not the shakespeare-char-fast recipe"):
        course.shakespeare_char_model(fast=True)
    assert [(c.max_steps, c.ckpt_dir) for c in calls] == [(150, str(tmp_path / "shakespeare-char-fast"))]


def test_loss_history_is_that_of_mains_loop():
    """train runs on fit now: on a seed it gives the loss history main's own loop recorded (to float32 rounding)
    (tests/fixtures/loss_histories_main.json, written by gptlab 0.1.0; test_finetune checks the other two loops)."""
    import json
    from pathlib import Path

    want = json.loads((Path(__file__).parent / "fixtures" / "loss_histories_main.json").read_text())
    torch.manual_seed(0)
    m = GPT(GPTConfig.from_preset("tiny", vocab_size=20, block_size=16, n_layer=2, dropout=0.1))
    data = torch.randint(0, 20, (2000,), generator=torch.Generator().manual_seed(3))
    h = T.train(m, data[:1500], data[1500:], TrainConfig(
        max_steps=12, batch_size=4, grad_accum=2, lr=3e-3, min_lr=3e-4, warmup_steps=2, eval_interval=5, eval_iters=2,
        log_interval=1, bf16=False, device="cpu", progress=False, seed=5))
    assert same_history({"steps": h.steps, "train_loss": h.train_loss, "lr": h.lr, "eval_steps": h.eval_steps,
                         "eval_train_loss": h.eval_train_loss, "eval_val_loss": h.eval_val_loss}, want["lm"])


# ----------------------------------------------------------------------------------------------------
# Moved here from test_hardening.py and test_mutation_gaps.py (tests by module): hostile input and mutation-test gaps.
# ----------------------------------------------------------------------------------------------------


def tiny_run(**kw) -> T.TrainConfig:
    base = dict(max_steps=3, batch_size=4, lr=0.05, min_lr=0.0, warmup_steps=0, grad_clip=0.0, eval_interval=100, eval_iters=1,
                log_interval=1, progress=False, seed=3, device="cpu", bf16=False)
    return T.TrainConfig(**{**base, **kw})


def tiny_data() -> torch.Tensor:
    return torch.randint(0, 20, (600,), generator=torch.Generator().manual_seed(1))


def tiny_model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("tiny", vocab_size=20, block_size=16, dropout=0.0))


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "ck"
    model = _tiny.fresh_model()

    def poison(step, m, history):
        if step == 4:  # from now on every forward pass gives NaN
            m.lm_head.register_forward_hook(lambda mod, inp, out: out * float("nan"))

    with pytest.raises(T.TrainingDiverged, match="diverged") as e:
        T.train(model, _tiny.TRAIN, _tiny.VAL, _tiny.run_cfg(path, max_steps=8), tokenizer=_tiny.TOK, callback=poison)
    assert "step 4" in str(e.value) and "kept" in str(e.value)
    loaded, _, meta = C.load_checkpoint(path, device="cpu")  # intact and finite
    assert meta["step"] == 4 and all(torch.isfinite(p).all() for p in loaded.parameters())


def test_float_token_data_is_refused_not_truncated():
    with pytest.raises(ValueError, match="integer token ids"):
        T.train(_tiny.fresh_model(), _tiny.TRAIN.float() + 0.5, _tiny.VAL, _tiny.run_cfg())
    with pytest.raises(ValueError, match="integer token ids"):
        T.train(_tiny.fresh_model(), [float(i) for i in _tiny.TRAIN.tolist()], _tiny.VAL, _tiny.run_cfg())


def test_grad_accum_averages_micro_batches(monkeypatch):
    """Bug caught: the loss (for backward or for the record) not divided by grad_accum.

    Two micro-batches of 4 draw the same windows as one batch of 8 (same generator), so
    with plain SGD (whose step is proportional to the gradient, unlike Adam's) both runs
    must record the same losses and end with the same weights.
    """
    monkeypatch.setattr(T, "make_optimizer", lambda model, cfg, device: torch.optim.SGD(model.parameters(), lr=cfg.lr))
    data_ = tiny_data()
    a, b = tiny_model(), tiny_model()
    ha = T.train(a, data_[:500], data_[500:], tiny_run(batch_size=4, grad_accum=2))
    hb = T.train(b, data_[:500], data_[500:], tiny_run(batch_size=8, grad_accum=1))
    assert len(ha.train_loss) == 3
    torch.testing.assert_close(torch.tensor(ha.train_loss), torch.tensor(hb.train_loss), rtol=1e-5, atol=0)
    assert not torch.equal(a.lm_head.weight, tiny_model().lm_head.weight)  # it trained
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6, msg=name)


def test_train_refuses_two_dimensional_token_data():
    with pytest.raises(ValueError, match="train_data must be a 1-D sequence"):
        T.train(tiny_model(), tiny_data().view(20, 30), tiny_data(), tiny_run())


def test_tokens_per_second_is_tokens_over_busy_time(monkeypatch):
    """A fake clock that advances 0.5 s per reading: each step is timed as 0.5 s, so every
    record must say 2 x (tokens per step) per second, however many steps it spans."""

    class Clock:
        now = 0.0

        @classmethod
        def perf_counter(cls):
            cls.now += 0.5
            return cls.now

    monkeypatch.setattr(T, "time", Clock)
    h = T.train(tiny_model(), tiny_data()[:500], tiny_data()[500:], tiny_run(max_steps=5, log_interval=2, grad_accum=2))
    assert h.steps == [0, 2, 4]
    assert h.tokens_per_s == [2 * 4 * 16 * 2] * 3  # batch 4 x block 16 x grad_accum 2, per 0.5 s


def test_history_val_loss_is_the_last_evaluation():
    assert T.History(eval_steps=[0, 5, 9], evals={"val_loss": [4.0, 3.0, 2.5]}).val_loss == 2.5
    assert T.History().val_loss is None


# ----------------------------------------------------------------------------------------------------
# Moved here from test_model_switches.py (tests by module): lesson 14's schedule and optimizer.
# ----------------------------------------------------------------------------------------------------


def test_wsd_schedule():
    cfg = TrainConfig(max_steps=100, lr=1e-3, min_lr=1e-4, warmup_steps=10, schedule="wsd", decay_frac=0.2)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] < lrs[9] < 1e-3
    assert all(lr == 1e-3 for lr in lrs[10:80])  # stable
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:]))  # linear decay over the last 20%
    assert lrs[99] == pytest.approx(1e-4 + 0.9e-3 / 20)
    assert lr_at(100, cfg) == 1e-4
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="decay_frac"):
        TrainConfig(decay_frac=0)


def test_muon_splits_parameters_and_trains():
    model = make(**SWITCHES["all"]).train()
    cfg = TrainConfig(optimizer="muon", lr=1e-3, muon_lr=0.02)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    muon, adamw = opt.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    assert id(model.transformer.h[0].attn.c_attn.weight) in in_muon
    assert id(model.lm_head.weight) not in in_muon and id(model.transformer.wte.weight) not in in_muon
    n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_opt == model.get_num_params()  # every parameter once
    torch.manual_seed(0)
    data = torch.randint(0, 96, (4000,))
    hist = train(model, data, data, TrainConfig(max_steps=30, batch_size=8, optimizer="muon", warmup_steps=3,
                                                eval_interval=30, eval_iters=2, progress=False))
    assert hist.eval_val_loss[-1] < hist.eval_val_loss[0]
    with pytest.raises(ValueError, match="muon.*cannot be checkpointed"):
        TrainConfig(optimizer="muon", ckpt_dir="somewhere")
