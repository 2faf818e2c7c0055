"""gptlab.finetune: padding never changes a prediction, freeze, scores, exact resume, target-only batches."""

import json

import pytest
import torch
from _tiny import same_history

from gptlab import GPT, GPTConfig, data
from gptlab import finetune as FT
from gptlab.checkpoint import CheckpointError
from gptlab.config import TrainConfig
from gptlab.lora import apply_lora, count_parameters

CFG = GPTConfig.from_preset("tiny", vocab_size=20, block_size=16, n_layer=3)


def model(seed=0, **kw):
    torch.manual_seed(seed)
    return GPT(GPTConfig.from_dict({**CFG.to_dict(), **kw}))


def toy_data(n, seed):
    """Label 1 iff token 3 occurs: learnable, with lengths 2..12."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        T = int(torch.randint(2, 13, (1,), generator=g))
        ids = torch.randint(4, 20, (T,), generator=g).tolist()
        if torch.rand(1, generator=g) < 0.5:
            ids[int(torch.randint(0, T, (1,), generator=g))] = 3
        out.append((ids, int(3 in ids)))
    return out


TRAIN, DEV = toy_data(64, 1), toy_data(24, 2)


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_padding_never_changes_a_prediction(pool):
    clf = FT.GPTClassifier(model(), 3, pool=pool).eval()
    seqs = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14], [4]]
    alone = torch.cat([clf(torch.tensor([s])) for s in seqs])
    for pad_id in (0, 19):  # whatever the padding token is
        idx, lengths = data.pad_batch(seqs, pad_id=pad_id)
        assert idx.shape == (3, 7) and lengths.tolist() == [3, 7, 1]
        batched = clf(idx, lengths)
        torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)
    # and the pooled vector really is the last real token's (or the mean over real tokens)
    h = clf.gpt.hidden_states(torch.tensor([seqs[0]]))
    want = h[0, -1] if pool == "last" else h[0].mean(0)
    torch.testing.assert_close(clf.pooled(torch.tensor([seqs[0]]))[0], want)


def test_without_lengths_the_last_position_is_read():
    clf = FT.GPTClassifier(model(), 2).eval()
    idx = torch.tensor([[5, 6, 7, 0, 0]])
    assert not torch.allclose(clf(idx), clf(idx, torch.tensor([3])))  # padding read as text changes the logits
    torch.testing.assert_close(clf(idx[:, :3]), clf(idx, torch.tensor([3])))


@pytest.mark.parametrize("switches", [{}, {"pos_emb": "rotary"}, {"pos_emb": "rotary", "norm": "rmsnorm", "mlp": "swiglu",
                                                                   "qk_norm": True, "tie_weights": False, "bias": False}])
def test_hidden_states_match_the_language_model(switches):
    gpt = model(**switches).eval()
    idx = torch.tensor([[1, 2, 3, 4]])
    logits, _ = gpt(idx)
    torch.testing.assert_close(gpt.lm_head(gpt.hidden_states(idx)), logits)


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="pool"):
        FT.GPTClassifier(model(), 2, pool="max")
    with pytest.raises(ValueError, match="num_classes"):
        FT.GPTClassifier(model(), 1)
    clf = FT.GPTClassifier(model(), 2)
    with pytest.raises(ValueError, match="lengths must lie"):
        clf(torch.tensor([[1, 2]]), torch.tensor([3]))
    with pytest.raises(ValueError, match="empty"):
        data.pad_batch([[1], []])
    with pytest.raises(TypeError, match="encode the text"):
        FT.evaluate(clf, [("a text", 1)])
    with pytest.raises(ValueError, match="label"):
        FT.evaluate(clf, [([1, 2], 2)])


def names(m):
    return {n for n, p in m.named_parameters() if p.requires_grad}


def test_freeze_leaves_exactly_the_intended_parameters_trainable():
    clf = FT.GPTClassifier(model(), 2)
    head = {"head.weight", "head.bias"}
    last = {n for n, _ in clf.named_parameters() if n.startswith("gpt.transformer.h.2.")}
    ln_f = {"gpt.transformer.ln_f.weight", "gpt.transformer.ln_f.bias"}
    two = last | {n for n, _ in clf.named_parameters() if n.startswith("gpt.transformer.h.1.")}
    n_train, n_total = FT.freeze(clf, "head")
    assert names(clf) == head and n_train == 2 * 32 + 2 and n_total == count_parameters(clf)[1]
    FT.freeze(clf, "last")
    assert names(clf) == head | ln_f | last
    FT.freeze(clf, "last_n:2")
    assert names(clf) == head | ln_f | two
    n_train, n_total = FT.freeze(clf, "all")
    assert names(clf) == {n for n, _ in clf.named_parameters()} and n_train == n_total
    for bad in ("last_n:4", "last_n:0", "last_n:x", "body"):
        with pytest.raises(ValueError, match="trainable"):
            FT.freeze(clf, bad)
    with pytest.raises(ValueError, match="tied"):
        FT.freeze(model(), "head")


def test_classification_scores():
    s = FT.classification_scores([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1])
    assert s["accuracy"] == pytest.approx(5 / 6)
    assert s["confusion"] == [[2, 1], [0, 3]]
    f1_0, f1_1 = 2 * 1 * (2 / 3) / (1 + 2 / 3), 2 * 0.75 * 1 / 1.75
    assert s["macro_f1"] == pytest.approx((f1_0 + f1_1) / 2)
    majority = FT.classification_scores([0, 0, 0, 1], [0, 0, 0, 0])
    assert majority["accuracy"] == 0.75 and majority["macro_f1"] == pytest.approx((6 / 7) / 2)


def run_cfg(ckpt=None, **kw):
    base = dict(max_steps=12, batch_size=8, lr=3e-3, min_lr=3e-4, warmup_steps=2, lr_decay_steps=12,
                eval_interval=4, log_interval=1, bf16=False, device="cpu", progress=False, seed=7)
    return TrainConfig(**{**base, **kw, "ckpt_dir": str(ckpt) if ckpt else None})


def fresh(trainable="all", seed=0):
    clf = FT.GPTClassifier(model(seed, dropout=0.1), 2)
    FT.freeze(clf, trainable)
    return clf


def test_training_learns_and_keeps_the_best_weights():
    clf = fresh()
    before = FT.evaluate(clf, TRAIN)["loss"]
    h = FT.train_classifier(clf, TRAIN, DEV, run_cfg(max_steps=40, lr_decay_steps=40, eval_interval=10))
    assert h.train_loss[-1] < before and h.eval_steps == [10, 20, 30, 40]
    assert FT.evaluate(clf, DEV)["accuracy"] == pytest.approx(h.best_accuracy)  # restore_best left the best weights
    assert h.best_accuracy == max(h.dev_accuracy)


def test_frozen_parameters_do_not_move():
    clf = fresh("head")
    body = {n: p.detach().clone() for n, p in clf.gpt.named_parameters()}
    head = clf.head.weight.detach().clone()
    FT.train_classifier(clf, TRAIN, DEV, run_cfg(max_steps=4))
    assert all(torch.equal(p, body[n]) for n, p in clf.gpt.named_parameters())
    assert not torch.equal(clf.head.weight, head)


def test_early_stopping_stops_after_patience_evaluations():
    clf = fresh()
    h = FT.train_classifier(clf, TRAIN, DEV, run_cfg(max_steps=200, lr=1e-9, min_lr=1e-9, eval_interval=2), patience=2)
    # lr ~0: the accuracy never improves on the first evaluation, so it stops at the third
    assert h.eval_steps == [2, 4, 6] and h.stopped_early_at == 6 and h.best_step == 2


def losses(h):
    return h.to_dict()


@pytest.mark.parametrize("trainable", ["all", "lora"])
def test_resume_equals_uninterrupted(tmp_path, trainable):
    def make():
        clf = fresh("all" if trainable == "all" else "head")
        if trainable == "lora":
            torch.manual_seed(3)
            apply_lora(clf.gpt, r=2, alpha=4)
        return clf

    full_clf = make()
    full = FT.train_classifier(full_clf, TRAIN, DEV, run_cfg(), restore_best=False)
    FT.train_classifier(make(), TRAIN, DEV, run_cfg(tmp_path / "ck", max_steps=8))  # stopped at step 8
    assert json.loads((tmp_path / "ck" / "checkpoint.json").read_text())["step"] == 8
    other = make()
    with torch.no_grad():  # different weights: everything must come from the checkpoint
        for p in other.parameters():
            p.add_(0.01)
    resumed = FT.train_classifier(other, TRAIN, DEV, run_cfg(tmp_path / "ck"), resume=True, restore_best=False)
    assert losses(resumed) == losses(full)  # every batch loss, lr and dev score, bit for bit
    for (n, a), (_, b) in zip(full_clf.named_parameters(), other.named_parameters()):
        assert torch.equal(a, b), n
    loaded, meta = FT.load_classifier(tmp_path / "ck", "cpu", best=False)
    assert meta["step"] == 12
    torch.testing.assert_close(loaded(torch.tensor([[5, 6, 3]])), other.eval()(torch.tensor([[5, 6, 3]])))


def test_resume_refuses_a_differently_frozen_model_and_a_damaged_file(tmp_path):
    FT.train_classifier(fresh(), TRAIN, DEV, run_cfg(tmp_path / "ck", max_steps=4))
    with pytest.raises(ValueError, match="freeze"):
        FT.train_classifier(fresh("head"), TRAIN, DEV, run_cfg(tmp_path / "ck"), resume=True)
    p = tmp_path / "ck" / "model.safetensors"
    p.write_bytes(p.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(CheckpointError, match="sha256"):
        FT.train_classifier(fresh(), TRAIN, DEV, run_cfg(tmp_path / "ck"), resume=True)


def test_target_only_batch_scores_only_the_answer():
    idx, targets = data.target_only_batch([([1, 2, 3], [4, 5]), ([6], [7, 8, 9])], pad_id=0)
    assert idx.tolist() == [[1, 2, 3, 4], [6, 7, 8, 0]]
    assert targets.tolist() == [[-100, -100, 4, 5], [7, 8, 9, -100]]
    idx, targets = data.target_only_batch([([1, 2, 3, 4], [5, 6])], max_len=3)  # the prompt's start is dropped
    assert idx.tolist() == [[3, 4, 5]] and targets.tolist() == [[-100, 5, 6]]
    gpt = model()
    _, loss = gpt(idx, targets)
    logits, _ = gpt(idx)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits[0, 1:], torch.tensor([5, 6])))


# ---------------------------------------------------------------- hostile inputs (probe D01-D04, D15, D16)


@pytest.mark.parametrize("switches", [{"pos_emb": "rotary"}, {"pos_emb": "rotary", "norm": "rmsnorm", "mlp": "swiglu",
                                                               "qk_norm": True, "tie_weights": False, "bias": False}])
def test_D01_a_classifier_works_on_every_config_switch(switches):
    clf = FT.GPTClassifier(model(**switches), 2)
    h = FT.train_classifier(clf, TRAIN, DEV, run_cfg(max_steps=3, eval_interval=3))
    assert len(h.dev_accuracy) == 1
    # rotary positions are applied: the same tokens in another order pool to another vector
    clf.eval()
    a, b = clf.pooled(torch.tensor([[5, 6, 7]])), clf.pooled(torch.tensor([[7, 6, 5]]))
    assert not torch.allclose(a, b)
    torch.testing.assert_close(clf.gpt.lm_head(clf.gpt.hidden_states(torch.tensor([[5, 6, 7]]))), clf.gpt(torch.tensor([[5, 6, 7]]))[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_D15_a_classifier_on_a_low_precision_body(dtype):
    clf = FT.GPTClassifier(model().to(dtype), 2)
    assert clf.head.weight.dtype == dtype
    assert clf(torch.tensor([[5, 6, 7]])).shape == (1, 2)
    body = model()
    clf32 = FT.GPTClassifier(body, 2)
    body.to(dtype)  # the body converted after the head was made: the head still reads it
    assert clf32(torch.tensor([[5, 6, 7]])).dtype == torch.float32


@pytest.mark.parametrize("idx, message", [
    (torch.tensor([[5, 200]]), "token ids must lie in \\[0, 20\\)"),
    (torch.tensor([[-1, 5]]), "token ids must lie"),
    (torch.tensor([[1.0, 2.0]]), "integer token ids"),
    (torch.tensor([[True, False]]), "integer token ids"),
    (torch.tensor([1, 2, 3]), "\\(batch, time\\)"),
    (torch.zeros(1, 2, 3, dtype=torch.long), "\\(batch, time\\)"),
    (torch.zeros(0, 3, dtype=torch.long), "batch size 0"),
])
def test_D02_classifier_input_checks_equal_the_language_models(idx, message):
    clf = FT.GPTClassifier(model(), 2)
    with pytest.raises(ValueError, match=message):
        clf(idx)
    with pytest.raises(ValueError, match=message):
        clf.gpt(idx)


def test_D02_predict_logits_refuses_text_and_float_ids():
    clf = FT.GPTClassifier(model(), 2)
    with pytest.raises(TypeError, match="encode it"):
        FT.predict_logits(clf, ["hello"])
    with pytest.raises(ValueError, match="must be integers"):
        FT.predict_logits(clf, [[1.7, 2.2]])
    with pytest.raises(ValueError, match="token ids must lie"):
        FT.predict_logits(clf, [[1, 2], [3]], pad_id=1000)  # the padding token is outside the vocabulary


def test_D03_lengths_must_be_integers():
    clf = FT.GPTClassifier(model(), 2, pool="mean")
    with pytest.raises(ValueError, match="lengths must be integers"):
        clf(torch.tensor([[5, 6, 7]]), torch.tensor([1.5]))


@pytest.mark.parametrize("bs", [0, -1, 1.5, True])
def test_D04_batch_size_is_checked(bs):
    clf = FT.GPTClassifier(model(), 2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        FT.predict_logits(clf, [[1, 2]], batch_size=bs)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        FT.evaluate(clf, DEV, batch_size=bs)


def _pairs(n, seed, long=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        a = torch.randint(3, 20, (int(torch.randint(2, 6, (1,), generator=g)) + long,), generator=g).tolist()
        out.append((a + [2] + a[::-1], [-100] * len(a) + a[::-1] + [1]))
    return out


def test_D16_translation_refuses_bad_dev_examples_before_training():
    gpt = model()
    w = gpt.lm_head.weight.detach().clone()
    cfg = run_cfg(max_steps=3)
    with pytest.raises(ValueError, match="dev_examples has an example of 19 tokens but the model's block_size is 16"):
        FT.train_translation(gpt, _pairs(8, 0), cfg, dev_examples=_pairs(2, 1, long=6))
    assert torch.equal(gpt.lm_head.weight, w)  # refused before the first step
    with pytest.raises(ValueError, match="examples must be a non-empty list"):
        FT.train_translation(gpt, [], run_cfg(max_steps=3, batch_size=1))
    with pytest.raises(ValueError, match="no target token"):
        FT.mean_loss(gpt, [([1, 2, 3], [-100, -100, -100])])


def test_translation_honours_device_bf16_grad_accum_and_log_interval(monkeypatch):
    seen = set()
    gpt = model()
    gpt.lm_head.register_forward_hook(lambda m, args, out: seen.add(out.dtype) if m.training else None)
    h = FT.train_translation(gpt, _pairs(16, 0), run_cfg(max_steps=4, grad_accum=2, log_interval=2, bf16=True),
                             dev_examples=_pairs(4, 1), eval_every=2)
    assert seen == {torch.bfloat16} and h.steps == [0, 2] and h.eval_steps == [2, 4] and len(h.dev_loss) == 2


def test_summarization_adapter_resumes_exactly(tmp_path):
    pairs = [(p[0][: p[0].index(2) + 1], p[1][p[0].index(2):]) for p in _pairs(24, 0)]
    pairs = [(x, [t for t in y if t != -100]) for x, y in pairs]
    dev = pairs[:4]
    full = FT.train_summarization(model(dropout=0.1), pairs, dev, run_cfg(eval_interval=4))
    assert full.eval_steps == [0, 4, 8, 12] and set(full.evals) == {"train_loss", "dev_loss"}
    FT.train_summarization(model(dropout=0.1), pairs, dev, run_cfg(tmp_path / "ck", eval_interval=4, max_steps=8))
    resumed = FT.train_summarization(model(1, dropout=0.1), pairs, dev, run_cfg(tmp_path / "ck", eval_interval=4), resume=True)
    assert resumed.to_dict() == full.to_dict()


def test_loss_histories_are_those_of_mains_classifier_and_translation_loops():
    """Both are adapters of training.fit now: on a seed they give, bit for bit, the loss histories main's own
    loops recorded (tests/fixtures/loss_histories_main.json, written by gptlab 0.1.0)."""
    from pathlib import Path

    want = json.loads((Path(__file__).parent / "fixtures" / "loss_histories_main.json").read_text())
    c = FT.GPTClassifier(model(0, dropout=0.1), 2)
    h = FT.train_classifier(c, TRAIN, DEV, run_cfg(grad_accum=2, lr_decay_steps=12), patience=5)
    assert same_history({"steps": h.steps, "train_loss": h.train_loss, "lr": h.lr, "eval_steps": h.eval_steps,
                         "dev_accuracy": h.dev_accuracy, "dev_loss": h.dev_loss, "best_step": h.best_step}, want["classifier"])
    m = model(0, dropout=0.1, n_layer=2, block_size=24)
    g, ex = torch.Generator().manual_seed(4), []
    for _ in range(40):
        a = torch.randint(3, 20, (int(torch.randint(2, 8, (1,), generator=g)),), generator=g).tolist()
        b = a[::-1] + [1]
        ex.append((a + [2] + b[:-1], [-100] * len(a) + b))
    h = FT.train_translation(m, ex[:32], TrainConfig(max_steps=25, batch_size=4, lr=3e-3, min_lr=3e-4, warmup_steps=2, bf16=False,
                                                     device="cpu", progress=False, seed=9), dev_examples=ex[32:], eval_every=10)
    assert same_history({"step": h.steps, "train_loss": h.train_loss, "eval_step": h.eval_steps, "dev_loss": h.dev_loss},
                        want["translation"])
