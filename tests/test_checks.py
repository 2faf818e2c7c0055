"""gptlab.checks: every check passes the reference, fails a stub in one line, and names plausible wrong answers."""

import math

import pytest
import torch
import torch.nn.functional as F

from gptlab import GPT, checks
from gptlab.attention import mean_attention_distance, previous_token_scores
from gptlab.data import TokenWindows
from gptlab.generation import top_k_filter, top_p_filter
from gptlab.pretrained import is_conv1d
from gptlab.tokenizers import get_pair_counts, merge
from gptlab.training import lr_at


def _head(x, wq, wk, wv, *, dim=-1, scale=None, offset=0, mask=True):
    q, k, v = x @ wq, x @ wk, x @ wv
    T = x.size(-2)
    att = q @ k.transpose(-2, -1) * (scale if scale is not None else k.size(-1) ** -0.5)
    if mask:
        att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(offset), float("-inf"))
    return F.softmax(att, dim=dim).nan_to_num(0.0) @ v


def _probe(model, idx):
    base, _ = model(idx)
    for t in range(1, idx.size(1)):
        j = idx.clone()
        j[:, t] = (j[:, t] + 1) % 10
        if not torch.allclose(model(j)[0][:, :t], base[:, :t]):
            return False
    return True


def _probe_last_only(model, idx):
    base, _ = model(idx)
    j = idx.clone()
    j[:, -1] = (j[:, -1] + 1) % 10
    return torch.allclose(model(j)[0][:, -2], base[:, -2])


def _merge_overlap_twice(ids, pair, new):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new)
            i += 1  # forgets to skip the second token of the pair
        else:
            out.append(ids[i])
            i += 1
    return out


def _merge_drops_last(ids, pair, new):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def get_pair_counts_chunked(ids):  # pairs of disjoint chunks only: misses every other pair
    counts = {}
    for p in zip(ids[::2], ids[1::2]):
        counts[p] = counts.get(p, 0) + 1
    return counts


def _param_count(cfg):
    with torch.device("meta"):
        return GPT(cfg).get_num_params()


def _windows(t, b, s):
    w = TokenWindows(t, b, s)
    return [w[i] for i in range(len(w))]


def _ln(x, w, b, eps, unbiased=False):
    mu = x.mean(-1, keepdim=True)
    return (x - mu) / (x.var(-1, keepdim=True, unbiased=unbiased) + eps).sqrt() * w + b


def _top_p_exclusive(l, p):
    s, order = torch.sort(l, descending=True)
    drop = F.softmax(s, -1).cumsum(-1) > p
    return l.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def _convert(hf, transpose=is_conv1d):
    return {"transformer." + k: (v.t() if transpose(k) else v) for k, v in hf.items()}


def _ngrams(t, n):
    return [tuple(t[i:i + n]) for i in range(len(t) - n + 1)]


def _mp_unclipped(h, refs, n):
    return sum(any(g in _ngrams(r, n) for r in refs) for g in _ngrams(h, n)), len(_ngrams(h, n))


def _mp_summed(h, refs, n):
    from collections import Counter
    hc = Counter(_ngrams(h, n))
    return sum(min(c, sum(Counter(_ngrams(r, n))[g] for r in refs)) for g, c in hc.items()), sum(hc.values())


def _lcs_substring(a, b):
    return max((k for k in range(len(a) + 1) for i in range(len(a) - k + 1)
                if any(a[i:i + k] == b[j:j + k] for j in range(len(b) - k + 1))), default=0)


def _novel(s, src, n, unique=False, copied=False):
    grams = _ngrams(s, n)
    grams = list(set(grams)) if unique else grams
    have = set(_ngrams(src, n))
    share = sum(g not in have for g in grams) / len(grams)
    return 1 - share if copied else share


def _int8_per_tensor(w):
    s = w.abs().amax() / 127
    return torch.round(w / s).clamp(-127, 127).to(torch.int8), s


def _int8_trunc(w):
    s = w.abs().amax(1, keepdim=True).clamp(min=1e-12) / 127
    return torch.trunc(w / s).clamp(-127, 127).to(torch.int8), s


def _stub(*args, **kw):
    raise NotImplementedError


# check name -> (a right answer, [(a plausible wrong answer, a phrase the one-line message must contain)])

_ece = checks._ece_ref

CASES = {
    "loss_at_init": (lambda v: math.log(v), [(lambda v: math.log2(v), "log2"), (lambda v: 1 / v, "probability")]),
    "causality_probe": (_probe, [(_probe_last_only, "every earlier position"), (lambda m, i: True, "leaks the future")]),
    "bpe_merge": (merge, [(_merge_overlap_twice, "overlapping"), (_merge_drops_last, "got")]),
    "pair_counts": (get_pair_counts, [(lambda ids: {p: 1 for p in zip(ids, ids[1:])}, "counted once"),
                                      (lambda ids: get_pair_counts_chunked(ids), "missing pairs")]),
    "windows": (_windows, [(lambda t, b, s: [(t[i:i + b], t[i:i + b]) for i in range(0, len(t) - b, s)], "shifted by ONE"),
                           (lambda t, b, s: _windows(t, b, s)[:-1] if len(_windows(t, b, s)) > 1 else [], "windows, expected")]),
    "embedding_lookup": (lambda i, w: F.one_hot(i, w.size(0)).float() @ w,
                         [(lambda i, w: F.one_hot(i, w.size(0)).float() @ w[:, :-1], "wrong shape"),
                          (lambda i, w: F.one_hot(i, w.size(0)).float() @ w.roll(1, 0), "first difference")]),
    "causal_mask": (lambda T: torch.ones(T, T, dtype=torch.bool).tril(),
                    [(lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "lets the future in"),
                     (lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "may not attend to itself"),
                     (lambda T: torch.ones(T, T).tril(), "bool")]),
    "attention_head": (_head, [(lambda *a: _head(*a, dim=-2), "wrong axis"), (lambda *a: _head(*a, scale=1.0), "sqrt(head_size)"),
                               (lambda *a: _head(*a, offset=1), "lets the future in"),
                               (lambda *a: _head(*a, mask=False), "no causal mask")]),
    "layer_norm": (lambda x, w, b, eps: F.layer_norm(x, (x.size(-1),), w, b, eps),
                   [(lambda x, w, b, eps: _ln(x, w, b, eps, unbiased=True), "unbiased"),
                    (lambda x, w, b, eps: (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True, unbiased=False).sqrt() + eps) * w + b,
                     "inside")]),
    "gelu": (lambda x: F.gelu(x, approximate="tanh"), [(F.gelu, "erf"), (F.relu, "ReLU")]),
    "gpt_param_count": (_param_count, [(lambda c: _param_count(c) + c.vocab_size * c.n_embd, "counted twice"),
                                       (lambda c: _param_count(c) - c.block_size * c.n_embd, "wpe")]),
    "tied_head": (lambda m: m.lm_head.weight is m.transformer.wte.weight,
                  [(lambda m: torch.equal(m.lm_head.weight, m.transformer.wte.weight), "equal values"), (lambda m: True, "got True")]),
    "cross_entropy": (lambda l, t: F.cross_entropy(l.flatten(0, 1), t.flatten()),
                      [(lambda l, t: F.cross_entropy(l.flatten(0, 1), t.flatten(), reduction="sum"), "summed"),
                       (lambda l, t: F.cross_entropy(l.flatten(0, 1), t.flatten(), reduction="sum") / t.numel(), "ignored"),
                       (lambda l, t: F.cross_entropy(l.flatten(0, 1), t.flatten()).reshape(1), "scalar")]),
    "lr_schedule": (lr_at, [(lambda s, c: c.lr * s / c.warmup_steps if s < c.warmup_steps else lr_at(s, c),
                             "must not start at 0"),
                            (lambda s, c: lr_at(s, c) - c.min_lr * (1 - (lr_at(s, c) - c.min_lr) / (c.lr - c.min_lr)) if s >= c.warmup_steps
                                          else lr_at(s, c), "min_lr")]),
    "top_k": (top_k_filter, [(lambda l, k: top_k_filter(l, k).nan_to_num(neginf=0.0), "use -inf"),
                             (lambda l, k: top_k_filter(l, min(k + 1, l.size(-1))), "k+1")]),
    "top_p": (top_p_filter, [(_top_p_exclusive, "carries the total past p"),
                             (lambda l, p: F.softmax(top_p_filter(l, p), -1), "probabilities")]),
    "previous_token_score": (previous_token_scores, [(lambda w: w.diagonal(0, -2, -1).mean(-1), "diagonal"),
                                                     (lambda w: w.diagonal(-1, -2, -1).sum(-1) / w.size(-1), "T-1 rows")]),
    "mean_attention_distance": (mean_attention_distance, [(lambda w: -mean_attention_distance(w), "negative"),
                                                          (lambda w: (w * (torch.arange(w.size(-1))[:, None]
                                                                           - torch.arange(w.size(-1))).clamp(min=0)).sum(-1).mean(-1),
                                                           "row 0")]),
    "is_conv1d": (is_conv1d, [(lambda n: n.endswith("weight") and ".h." in "." + n, "expected False"),
                              (lambda n: "c_attn" in n or "c_fc" in n, "transposed")]),
    "hf_to_gptlab": (_convert, [(lambda hf: _convert(hf, transpose=lambda k: k.endswith(("c_attn.weight", "c_fc.weight"))), "square"),
                                (lambda hf: _convert(hf, transpose=lambda k: hf[k].dim() == 2), "only the four")]),
    "modified_precision": (checks._mod_precision, [(_mp_unclipped, "not clipped"), (_mp_summed, "SUM over references")]),
    "brevity_penalty": (lambda c, r: 1.0 if c > r else (0.0 if c == 0 else math.exp(1 - r / c)),
                        [(lambda c, r: 1.0 if c > r else (0.0 if c == 0 else math.exp(1 - c / r)), "upside down"),
                         (lambda c, r: 0.0 if c == 0 else math.exp(1 - r / c), "not penalised")]),
    "lcs_length": (checks._lcs, [(_lcs_substring, "SUBSTRING"), (lambda a, b: len(set(a) & set(b)), "expected")]),
    "last_token_pool": (lambda h, l: h[torch.arange(h.size(0)), l - 1],
                        [(lambda h, l: h[:, -1], "padding"),
                         (lambda h, l: h[torch.arange(h.size(0)), l.clamp(max=h.size(1) - 1)], "off by one")]),
    "lora_forward": (lambda x, w, b, A, B, a: x @ w.t() + b + (a / A.size(0)) * (x @ A.t() @ B.t()),
                     [(lambda x, w, b, A, B, a: x @ w.t() + b + x @ A.t() @ B.t(), "not scaled"),
                      (lambda x, w, b, A, B, a: x @ w.t() + b + (A.size(0) / a) * (x @ A.t() @ B.t()), "r / alpha")]),
    "target_only_targets": (lambda p, a: ((p + a)[:-1], [-100] * (len(p) - 1) + a),
                            [(lambda p, a: ((p + a)[:-1], (p + a)[1:]), "nothing is masked"),
                             (lambda p, a: ((p + a)[:-1], [-100] * len(p) + a[1:]), "one too many")]),
    "novel_ngram_share": (_novel, [(lambda s, src, n: _novel(s, src, n, copied=True), "COPIED"),
                                   (lambda s, src, n: _novel(s, src, n, unique=True), "repeats included")]),
    "cross_attention": (checks._cross_ref, [(lambda *a: checks._cross_ref(*a, causal=True), "causal mask"),
                                            (lambda *a: checks._cross_ref(*a, pad=False), "padding")]),
    "rms_norm": (lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w,
                 [(lambda x, w, eps: F.layer_norm(x, (x.size(-1),), w, None, eps), "LayerNorm"),
                  (lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps), "weight")]),
    "int8_quantize": (checks._int8_ref, [(_int8_per_tensor, "per row"), (_int8_trunc, "truncated")]),
    "lstm_step": (checks._lstm_ref, [(lambda *a: checks._lstm_ref(*a, tanh_c=False), "tanh is missing"),
                                     (lambda *a: checks._lstm_ref(*a, order="ifog"), "i, f, g, o"),
                                     (lambda *a: checks._lstm_ref(*a, input_gate=False), "input gate")]),
    "expected_calibration_error": (_ece, [(lambda c, k, n: _ece(c, k, n, weighted=False), "share of the predictions"),
                                          (lambda c, k, n: _ece(c, k, n, midpoints=True), "midpoint"),
                                          (lambda c, k, n: _ece(c, k, n, left_closed=True), "(lo, hi]")]),
}


def test_every_check_is_covered():
    assert set(CASES) == set(checks.__all__)


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_passes_the_reference_in_one_line(name, capsys):
    right, _ = CASES[name]
    assert bool(getattr(checks, name)(right)) is True
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"✓ {name}:"), out


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_fails_a_stub_in_one_line(name, capsys):
    assert bool(getattr(checks, name)(_stub)) is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "not implemented yet" in out, out


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_rejects_plausible_wrong_answers_and_says_why(name, capsys):
    _, wrong = CASES[name]
    assert len(wrong) >= 2
    for fn, phrase in wrong:
        assert bool(getattr(checks, name)(fn)) is False, f"{name} accepted a wrong answer ({phrase})"
        out = capsys.readouterr().out
        assert out.count("\n") == 1 and out.startswith(f"✗ {name}:"), out
        assert phrase in out, (phrase, out)


def test_a_crash_in_the_learners_code_is_one_line(capsys):
    def crashes(x, wq, wk, wv):
        return x @ wq @ wk  # a shape error deep in torch
    assert bool(checks.attention_head(crashes)) is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "your function raised RuntimeError" in out


# ---------------------------------------------------------------- hostile answers (issue 26: D36-D38)


class _Liar(int):
    """An int whose comparisons always say "equal"."""
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__


class _Agrees:
    """Any object that claims to equal everything."""
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False


def test_a_rigged_eq_does_not_pass(capsys):
    import numpy as np

    assert not checks.gpt_param_count(lambda cfg: _Liar(0))
    assert "got 0, expected 124,439,808" in capsys.readouterr().out  # its real value, compared by us
    assert not checks.lcs_length(lambda a, b: _Liar(0))
    assert "got 0, expected 3" in capsys.readouterr().out
    assert not checks.lcs_length(lambda a, b: _Agrees())
    assert "expected an int, got _Agrees" in capsys.readouterr().out
    assert not checks.gpt_param_count(lambda cfg: True)
    assert "expected an int, got bool" in capsys.readouterr().out
    right = {"lcs_length": checks._lcs, "gpt_param_count": CASES["gpt_param_count"][0]}
    assert checks.lcs_length(lambda a, b: _Liar(right["lcs_length"](a, b)))  # an honest int subclass still passes
    assert checks.lcs_length(lambda a, b: np.int64(right["lcs_length"](a, b)))
    assert checks.gpt_param_count(lambda cfg: torch.tensor(right["gpt_param_count"](cfg)))
    capsys.readouterr()


class _Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("str exploded")


def _raises(exc):
    def fn(*args):
        raise exc
    return fn


@pytest.mark.parametrize("exc, words", [
    (_Unprintable(), "your function raised _Unprintable: (its message cannot be printed: its __str__ raised too)"),
    (SystemExit(3), "your function raised SystemExit: 3"),
    (BaseException("odd"), "your function raised BaseException: odd"),
    (GeneratorExit(), "your function raised GeneratorExit"),
])
def test_any_exception_from_the_learner_ends_in_the_one_line(exc, words, capsys):
    assert bool(checks.lcs_length(_raises(exc))) is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("✗ lcs_length: ") and words in out, out


def test_keyboard_interrupt_goes_through():
    with pytest.raises(KeyboardInterrupt):
        checks.lcs_length(_raises(KeyboardInterrupt()))


def test_an_endless_generator_is_read_only_so_far(capsys):
    import itertools

    res = checks.windows(lambda t, bs, s: itertools.repeat((torch.zeros(bs), torch.zeros(bs))))
    assert not res and res.line == ("✗ windows: 10 tokens, block_size=4, stride=4: your function returned more than 30 items "
                                    "(an endless generator?); return a list")
    assert capsys.readouterr().out.count("\n") == 1
    assert not checks.windows(lambda t, bs, s: [(torch.zeros(10**6), torch.zeros(10**6))])  # one huge window
    assert "window 0 holds 1,000,000 tokens; a window holds block_size=4" in capsys.readouterr().out
    assert not checks.windows(lambda t, bs, s: [itertools.count()])  # a "pair" that never ends
    assert "window 0: your function returned more than 2 items" in capsys.readouterr().out
    assert not checks.windows(lambda t, bs, s: 5)
    assert "expected a list, got int" in capsys.readouterr().out


def test_reading_a_slow_generator_is_bounded_in_time(capsys, monkeypatch):
    import time

    monkeypatch.setattr(checks, "MAX_SECONDS", 0.05)

    def slow(t, bs, s):
        for w in _windows(t, bs, s):
            time.sleep(0.03)
            yield w

    assert not checks.windows(slow)
    assert "reading what your function returned took over 0.05 s; return a list" in capsys.readouterr().out


# ----------------------------------------------------------------------------- incomplete answers (issue 29)
# The reference answers a learner may write for the real checkpoint layouts, and the incomplete answers the
# checks must refuse: each names what is missing in its one line.

_GPT2_BUFFER = r"\.attn\.(bias|masked_bias)$"


def _hf_to_gptlab_full(hf, transpose=is_conv1d):
    """A complete answer: strip an existing prefix, skip the mask buffers and the tied head, transpose Conv1D."""
    import re

    out = {}
    for k, v in hf.items():
        k = k.removeprefix("transformer.")
        if k == "lm_head.weight" or re.search(r"^h\.\d+" + _GPT2_BUFFER, k):
            continue
        out["transformer." + k] = v.t() if transpose(k) and v.dim() == 2 else v
    return out


CASES["hf_to_gptlab"] = (_hf_to_gptlab_full, [
    (lambda hf: _hf_to_gptlab_full(hf, transpose=lambda k: k.endswith(("c_attn.weight", "c_fc.weight"))), "square"),
    (lambda hf: _hf_to_gptlab_full(hf, transpose=lambda k: True), "only the four"),
])


def _probe_edit_last_only(model, idx):
    """Literally the tour's check as a function: edit the last token, compare every earlier position."""
    base, _ = model(idx)
    j = idx.clone()
    j[:, -1] = (j[:, -1] + 1) % base.size(-1)
    return torch.allclose(model(j)[0][:, :-1], base[:, :-1])


def _probe_position_0_only(model, idx):
    base, _ = model(idx)
    for t in range(1, idx.size(1)):
        j = idx.clone()
        j[:, t] = (j[:, t] + 1) % base.size(-1)
        if not torch.allclose(model(j)[0][:, 0], base[:, 0]):
            return False
    return True


@pytest.mark.parametrize("probe", [_probe_edit_last_only, _probe_position_0_only])
def test_causality_probe_rejects_incomplete_probes(probe, capsys):
    assert bool(checks.causality_probe(probe)) is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "position 2 reads token 3" in out and "EVERY later token" in out, out


def _hf_keeps_buffers(hf):
    return {("transformer." + k.removeprefix("transformer.")): (v.t() if is_conv1d(k) else v)
            for k, v in hf.items() if k != "lm_head.weight"}


def _hf_drops_every_attn_bias(hf):  # `endswith("attn.bias")` also drops the real c_attn.bias
    return {k: v for k, v in _hf_keeps_buffers(hf).items() if not k.endswith(("attn.bias", "attn.masked_bias"))}


def _hf_prefixes_twice(hf):
    import re

    return {"transformer." + k: (v.t() if is_conv1d(k) else v)
            for k, v in hf.items() if k != "lm_head.weight" and not re.search(_GPT2_BUFFER, k) or "c_attn.bias" in k or "c_proj.bias" in k}


@pytest.mark.parametrize(("wrong", "phrase"), [
    (_hf_keeps_buffers, "causal-mask buffer"),
    (_hf_drops_every_attn_bias, "real bias that also ends in 'attn.bias'"),
    (_hf_prefixes_twice, "second prefix"),
    (lambda hf: {k: v for k, v in _hf_to_gptlab_full(hf).items()}
                | {"transformer.h.0.attn.c_attn.weight": _hf_to_gptlab_full(hf)["transformer.h.0.attn.c_attn.weight"].t()},
     "wrong shape"),
])
def test_hf_to_gptlab_rejects_mappings_that_fail_on_openais_checkpoint(wrong, phrase, capsys):
    assert bool(checks.hf_to_gptlab(wrong)) is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and phrase in out, out


@pytest.mark.parametrize("lookup", [lambda i, w: w[i], lambda i, w: F.embedding(i, w),
                                    lambda i, w: w.index_select(0, i.flatten()).view(*i.shape, -1)])
def test_embedding_lookup_rejects_indexing_into_the_weight(lookup, capsys):
    assert bool(checks.embedding_lookup(lookup)) is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "one-hot × matrix" in out, out


# ----------------------------------------------------------------------------- the classic slips (issue 30)
# Each lesson's misconceptions in docs/teaching.md, written as the wrong answer a learner hands in: the check names the
# slip in its one line (the right answers still pass: test_check_passes_the_reference_in_one_line).


def _mask_after_softmax(x, wq, wk, wv, fill=0.0):
    q, k, v = x @ wq, x @ wk, x @ wv
    T = x.size(-2)
    wei = F.softmax(q @ k.transpose(-2, -1) / k.size(-1) ** 0.5, dim=-1)
    return wei.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), fill) @ v


def _mask_with_zero(x, wq, wk, wv):
    q, k, v = x @ wq, x @ wk, x @ wv
    T = x.size(-2)
    att = (q @ k.transpose(-2, -1) / k.size(-1) ** 0.5).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), 0.0)
    return F.softmax(att, dim=-1) @ v


def _params_without(c, *, mlp=1.0, attn_proj=True):
    """gptlab's count with the MLP scaled by `mlp` (0: missing, 0.25: hidden width C) and/or the attention's c_proj dropped."""
    C, L, b = c.n_embd, c.n_layer, int(c.bias)
    full_mlp = 8 * C * C + 5 * C * b
    small_mlp = {1.0: full_mlp, 0.0: 0, 0.25: 2 * C * C + 2 * C * b}[mlp]
    return _param_count(c) - L * (full_mlp - small_mlp) - (0 if attn_proj else L * (C * C + C * b))


def _ce(l, t):
    return F.cross_entropy(l.flatten(0, 1), t.flatten())


def _sample_ids(l, _):
    return torch.multinomial(F.softmax(l, -1), 1, generator=torch.Generator().manual_seed(0))


SLIPS = [
    ("loss_at_init", lambda v: -math.log(v), "MINUS the log probability"),
    ("embedding_lookup", lambda i, w: F.one_hot(i, w.size(0)) @ w, "F.one_hot returns integers"),
    ("embedding_lookup", lambda i, w: torch.einsum("btv,vc->btc", F.one_hot(i, w.size(0)), w), "F.one_hot returns integers"),
    ("windows", lambda t, b, s: _windows(t, b, s)[::-1], "shuffled order"),
    ("attention_head", _mask_after_softmax, "you applied the mask after the softmax"),
    ("attention_head", lambda *a: _mask_after_softmax(*a, fill=float("-inf")), "you applied the mask after the softmax"),
    ("attention_head", _mask_with_zero, "masked the scores with 0, not -inf"),
    ("attention_head", lambda *a: _head(*a, mask=False), "bidirectional"),
    ("gpt_param_count", lambda c: _params_without(c, mlp=0.0), "the MLP is missing"),
    ("gpt_param_count", lambda c: _params_without(c, mlp=0.25), "4·C wide"),
    ("gpt_param_count", lambda c: _params_without(c, attn_proj=False), "output projection c_proj (C, C) is missing"),
    ("cross_entropy", lambda l, t: _ce(l, t) / math.log(2), "you returned bits"),
    ("cross_entropy", lambda l, t: _ce(l, t).exp(), "perplexity"),
    ("top_k", lambda l, k: _sample_ids(top_k_filter(l, k), k), "you returned token ids"),
    ("top_k", lambda l, k: F.softmax(top_k_filter(l, k), -1), "returned probabilities"),
    ("top_p", lambda l, p: top_p_filter(l, p).argmax(-1), "you returned token ids"),
    ("previous_token_score", lambda w: w.diagonal(1, -2, -1).mean(-1), "lower-triangular"),
    ("mean_attention_distance", lambda w: -mean_attention_distance(w), "never looks ahead"),
    ("lora_forward", lambda x, w, b, A, B, a: (a / A.size(0)) * (x @ A.t() @ B.t()), "LoRA is not a separate model"),
    ("cross_attention", lambda *a: checks._cross_ref(*a, causal=True), "read bidirectionally"),
    ("expected_calibration_error", lambda c, k, n: _ece(c, k, n, signed=True), "over- and under-confident bins cancel"),
]


@pytest.mark.parametrize(("name", "wrong", "phrase"), SLIPS, ids=[f"{n}-{p[:24]}" for n, _, p in SLIPS])
def test_check_names_the_classic_slip(name, wrong, phrase, capsys):
    assert bool(getattr(checks, name)(wrong)) is False
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"✗ {name}:") and phrase in out, out


def test_a_param_count_hint_needs_the_exact_slip(capsys):
    """Off by something else than a block part: no MLP/attention story is told."""
    assert not checks.gpt_param_count(lambda c: _param_count(c) - 7 * c.n_embd * c.n_embd)
    out = capsys.readouterr().out
    assert "MLP" not in out and "attention" not in out, out
