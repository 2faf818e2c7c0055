"""A character-level LSTM: the recurrent baseline GPT replaced (lesson 15).

Same interface as gptlab.GPT, forward(idx, targets) -> (logits, loss), so the
same loop trains both and their numbers compare directly. The difference that
matters is how information travels: an LSTM carries everything it knows about
the past in one fixed-size state (h, c) that is rewritten at every step, so a
token d positions back reaches the output through d updates (and its gradient
through d backward steps: Bengio et al. 1994 on why that path is hard to learn);
attention reads any earlier position in one step.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gptlab.device import eval_mode
from gptlab.model import IGNORE_INDEX


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def lstm_num_params(vocab_size: int, n_embd: int, n_hidden: int, n_layer: int = 1) -> int:
    """Parameters of CharLSTM(vocab_size, n_embd, n_hidden, n_layer), from the formula.

    Each layer has four gates (input, forget, cell, output), each a linear map of
    [input, h] with two bias vectors (PyTorch keeps b_ih and b_hh): 4H(I + H) + 8H.
    Plus the embedding (V x E) and the output head (H x V + V).
    """
    V, E, H, L = (_positive_int(v, n)
                  for v, n in ((vocab_size, "vocab_size"), (n_embd, "n_embd"), (n_hidden, "n_hidden"), (n_layer, "n_layer")))
    first = 4 * H * (E + H) + 8 * H
    rest = (L - 1) * (4 * H * (H + H) + 8 * H)
    return V * E + first + rest + H * V + V


def hidden_for_params(n_params: int, vocab_size: int, n_embd: int, n_layer: int = 1) -> int:
    """The hidden size H whose CharLSTM has the parameter count closest to `n_params`.

    Used to compare an LSTM and a GPT at matched size: count the GPT's parameters,
    then ask for the LSTM that has as many.
    """
    target = _positive_int(n_params, "n_params")
    if target < lstm_num_params(vocab_size, n_embd, 1, n_layer):
        raise ValueError(f"n_params={target} is below the smallest CharLSTM with these sizes (n_hidden=1)")
    H = 1
    while lstm_num_params(vocab_size, n_embd, H + 1, n_layer) <= target:  # grows monotonically in H
        H += 1
    below, above = lstm_num_params(vocab_size, n_embd, H, n_layer), lstm_num_params(vocab_size, n_embd, H + 1, n_layer)
    return H if target - below <= above - target else H + 1


class CharLSTM(nn.Module):
    """Embedding -> nn.LSTM (n_layer layers, hidden n_hidden) -> linear head over the vocabulary."""

    def __init__(self, vocab_size: int, n_embd: int, n_hidden: int, n_layer: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        _positive_int(vocab_size, "vocab_size")
        _positive_int(n_embd, "n_embd")
        _positive_int(n_hidden, "n_hidden")
        _positive_int(n_layer, "n_layer")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.vocab_size = vocab_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.lstm = nn.LSTM(n_embd, n_hidden, num_layers=n_layer, batch_first=True, dropout=dropout if n_layer > 1 else 0.0)
        self.lm_head = nn.Linear(n_hidden, vocab_size)

    def get_num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_state: bool = False,
    ):
        """idx: (B, T) token ids -> logits (B, T, vocab_size) and the mean cross-entropy
        against `targets` (B, T) if given (IGNORE_INDEX = -100 marks positions to ignore).

        Unlike GPT there is no block_size: the state (h, c) summarises any prefix, so
        T may be anything. Pass `state` (and return_state=True) to continue a sequence
        chunk by chunk; then the result is (logits, loss, state).
        """
        if idx.dim() != 2 or idx.dtype not in (torch.long, torch.int32, torch.int64):
            raise ValueError(f"idx must be a (batch, time) tensor of integer token ids, got {tuple(idx.shape)} {idx.dtype}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got [{int(idx.min())}, {int(idx.max())}]")
        out, new_state = self.lstm(self.wte(idx), state)  # out: (B, T, n_hidden), the top layer's h at every step
        logits = self.lm_head(out)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return (logits, loss, new_state) if return_state else (logits, loss)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample `max_new_tokens` tokens after each row of idx (B, T): one step per token, carrying the state."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        with eval_mode(self):
            logits, _, state = self(idx, state=None, return_state=True)
            out = [idx]
            for _ in range(max_new_tokens):
                probs = F.softmax(logits[:, -1] / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
                out.append(nxt)
                logits, _, state = self(nxt, state=state, return_state=True)
        return torch.cat(out, dim=1)


def gradient_by_distance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, embedding: nn.Module | None = None) -> torch.Tensor:
    """How much the input k positions back moves the last prediction: a (T,) tensor indexed by k.

    Entry k is the mean over the batch of || d loss(last position) / d embedding(T-1-k) ||:
    the training signal that reaches a token k steps back (lesson 15 measures it on the
    recall task, where the token that matters sits exactly d back). For an LSTM it must
    pass through k backward steps of the recurrence; for a GPT one attention step. Works
    on CharLSTM and gptlab.GPT (their token embeddings, `wte`), or pass `embedding`.
    The parameters' .grad are left as they were.
    """
    if x.dim() != 2 or y.shape != x.shape:
        raise ValueError(f"x and y must be (batch, time) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if embedding is None:
        embedding = model.wte if hasattr(model, "wte") else model.transformer.wte
    captured = {}
    handle = embedding.register_forward_hook(lambda module, inputs, out: captured.__setitem__("e", out))
    try:
        with eval_mode(model), torch.enable_grad():
            logits = model(x)[0]
            # summed, so each sequence's gradient is that of its own loss (sequences do not interact)
            loss = F.cross_entropy(logits[:, -1], y[:, -1], reduction="sum")
            (grad,) = torch.autograd.grad(loss, captured["e"])  # only this gradient: parameters' .grad untouched
    finally:
        handle.remove()
    return grad.norm(dim=-1).mean(0).flip(0)

