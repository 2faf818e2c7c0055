"""gptlab.rnn: CharLSTM shapes, loss, parameter count, causality, state carrying, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from gptlab.rnn import CharLSTM, hidden_for_params, lstm_num_params


def model(**kw):
    torch.manual_seed(0)
    return CharLSTM(**{"vocab_size": 11, "n_embd": 8, "n_hidden": 16, "n_layer": 2, **kw})


def test_shapes_and_loss():
    m = model()
    idx = torch.randint(0, 11, (3, 7))
    logits, loss = m(idx)
    assert logits.shape == (3, 7, 11) and loss is None
    logits, loss = m(idx, idx)
    assert loss.ndim == 0
    # an untrained model is close to uniform: loss near log(vocab)
    assert loss.item() == pytest.approx(math.log(11), abs=0.3)
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), idx.reshape(-1))
    torch.testing.assert_close(loss, ref)


def test_ignore_index():
    m = model()
    idx = torch.randint(0, 11, (2, 5))
    targets = idx.clone()
    targets[:, :3] = -100
    logits, loss = m(idx, targets)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits[:, 3:].reshape(-1, 11), idx[:, 3:].reshape(-1)))


@pytest.mark.parametrize("n_layer", [1, 2, 3])
def test_param_count_formula(n_layer):
    m = model(n_layer=n_layer)
    assert m.get_num_params() == lstm_num_params(11, 8, 16, n_layer)


def test_hidden_for_params_matches_budget():
    target = lstm_num_params(65, 64, 130, 1) + 5
    assert hidden_for_params(target, 65, 64, 1) == 130
    with pytest.raises(ValueError, match="n_params"):
        hidden_for_params(10, 65, 64, 1)


def test_causal():
    m = model()
    idx = torch.randint(0, 11, (1, 10))
    changed = idx.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 11
    a, _ = m(idx)
    b, _ = m(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])  # outputs before the change are untouched
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_state_carries_the_prefix():
    m = model()
    idx = torch.randint(0, 11, (2, 12))
    full, _ = m(idx)
    first, _, state = m(idx[:, :5], return_state=True)
    second, _, _ = m(idx[:, 5:], state=state, return_state=True)
    torch.testing.assert_close(torch.cat([first, second], 1), full)


def test_generate():
    m = model()
    out = m.generate(torch.zeros(2, 3, dtype=torch.long), 6, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 9) and int(out.max()) < 11
    assert m.training  # restored


def test_bad_inputs():
    m = model()
    with pytest.raises(ValueError, match="token ids"):
        m(torch.tensor([[0, 11]]))
    with pytest.raises(ValueError, match="idx must be"):
        m(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="n_hidden"):
        CharLSTM(11, 8, 0)
    with pytest.raises(ValueError, match="dropout"):
        CharLSTM(11, 8, 4, dropout=1.0)
    with pytest.raises(ValueError, match="temperature"):
        m.generate(torch.zeros(1, 1, dtype=torch.long), 2, temperature=0)


def test_gradient_by_distance():
    from gptlab import GPT, GPTConfig
    from gptlab.rnn import gradient_by_distance

    torch.manual_seed(0)
    x = torch.randint(0, 11, (4, 9))
    y = torch.randint(0, 11, (4, 9))
    m = model()
    m.train()
    g = gradient_by_distance(m, x, y)
    assert m.training and all(p.grad is None for p in m.parameters())  # mode restored, parameters untouched
    # the definition, computed directly: d (summed loss at the last position) / d (embedding), per position
    m.eval()
    e = m.wte(x).detach().requires_grad_(True)
    logits = m.lm_head(m.lstm(e)[0])
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits[:, -1], y[:, -1], reduction="sum"), e)
    torch.testing.assert_close(g, grad.norm(dim=-1).mean(0).flip(0))  # entry k: the input k positions back
    gpt = GPT(GPTConfig(vocab_size=11, block_size=9, n_layer=1, n_head=1, n_embd=8, dropout=0.0))
    assert gradient_by_distance(gpt, x, y).shape == (9,)
    with pytest.raises(ValueError, match="same shape"):
        gradient_by_distance(m, x, y[:, :-1])
