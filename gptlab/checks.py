"""Exercise checks (every lesson's exercises): run a learner's function against the course's reference and say what is wrong, in one line.

    from gptlab import checks as check
    check.attention_head(my_attention_head)
    # ✗ attention_head: case 2 (T=5): position 1 attends to position 3 — your mask lets the future in

Why one line: a wall of traceback teaches nothing; "wrong shape (2, 5, 8), expected (2, 5, 4)"
or "softmax over the wrong axis" tells the learner what to change. Each check feeds several
inputs (edge cases included) to the learner's function and to gptlab's reference, and if the
answer is wrong it also compares it with the mistakes people actually make, to name the mistake.
Every check returns a Result that is truthy on a pass (so tests and graders can use it) and is deterministic and
fast (well under 2 s on a CPU).
"""

from __future__ import annotations

import math
import operator
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = [
    "loss_at_init", "causality_probe",                 # 00
    "bpe_merge", "pair_counts",                        # 01
    "windows", "embedding_lookup",                     # 02
    "causal_mask", "attention_head",                   # 03
    "layer_norm", "gelu",                              # 04
    "gpt_param_count", "tied_head",                    # 05
    "cross_entropy", "lr_schedule",                    # 06
    "top_k", "top_p",                                  # 07
    "previous_token_score", "mean_attention_distance",  # 08
    "hf_to_gptlab", "is_conv1d",                       # 09
    "modified_precision", "brevity_penalty",           # 10
    "lcs_length",                                      # 10, 13
    "last_token_pool", "lora_forward",                 # 11
    "target_only_targets", "novel_ngram_share",        # 12, 13
    "cross_attention",                                 # 12
    "rms_norm", "int8_quantize",                       # 14
    "lstm_step", "expected_calibration_error",         # 15
]


class Wrong(Exception):
    """Raised inside a check with the one-line explanation."""


@dataclass
class _Mistake:
    name: str
    fn: Callable[..., Any]
    hint: str


class Result:
    """What a check returns: truthy when every case passed; `line` is what it printed.

    A notebook shows the printed line only: `_ipython_display_` keeps Jupyter from
    echoing the return value underneath it (a `;` does not do that under nbval).
    """

    def __init__(self, ok: bool, line: str) -> None:
        self.ok, self.line = ok, line

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return self.line

    def _ipython_display_(self) -> None:
        pass


def _text(e: BaseException) -> str:
    """str(e) on one line, at most 200 characters, even when the learner's exception cannot be printed."""
    try:
        return " ".join(str(e).split())[:200]
    except BaseException:  # a __str__ that raises (or exits) is itself the learner's bug
        return "(its message cannot be printed: its __str__ raised too)"


def _report(name: str, run: Callable[[], int]) -> Result:
    """Run a check body; print exactly one line; the Result is truthy when every case passed.

    Whatever the learner's code does -- raise any exception (one whose message
    cannot be printed included), call sys.exit(), raise a bare BaseException --
    ends in that one line. Only KeyboardInterrupt goes through: the learner stopping a run.
    """
    try:
        line = f"✓ {name}: all {run()} cases pass"
    except KeyboardInterrupt:
        raise
    except NotImplementedError:
        line = f"✗ {name}: not implemented yet — replace `raise NotImplementedError` in the exercise with your code"
    except Wrong as e:
        line = f"✗ {name}: {str(e)[:500]}"
    except BaseException as e:  # the learner's code crashed (or exited): say where, in one line
        line = f"✗ {name}: your function raised {type(e).__name__}: {_text(e)}"
    print(line)
    return Result(line.startswith("✓"), line)


def _as_int(x: Any, what: str) -> int:
    """The learner's answer as a plain int (a one-element integer tensor or numpy int too).

    Comparing the learner's object itself would run *its* __eq__/__ne__: an int
    subclass, or any object, whose __eq__ always says True would pass every case.
    int.__index__ reads the real value of an int subclass, whatever it overrides.
    """
    if isinstance(x, torch.Tensor) and x.numel() == 1 and not x.is_floating_point() and x.dtype != torch.bool:
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, int):
        if isinstance(x, bool) or not hasattr(type(x), "__index__") or isinstance(x, torch.Tensor):
            raise Wrong(f"{what}: expected an int, got {type(x).__name__}")
        x = operator.index(x)  # numpy integers and other int-like objects
    return int.__index__(x)


MAX_ITEMS = 10_000  # what a check reads from a learner's iterator at most (the cases need far fewer)
MAX_SECONDS = 10.0


def _take(items: Any, what: str, limit: int = MAX_ITEMS) -> list:
    """Materialise what the learner returned, at most `limit` items and `seconds` long.

    An endless generator would otherwise grow memory until the kernel is killed.
    """
    try:
        it = iter(items)
    except TypeError:
        raise Wrong(f"{what}: expected a list, got {type(items).__name__}") from None
    out: list = []
    seconds = MAX_SECONDS
    deadline = time.monotonic() + seconds
    for item in it:
        if len(out) == limit:
            raise Wrong(f"{what}: your function returned more than {limit:,} items (an endless generator?); return a list")
        if time.monotonic() > deadline:
            raise Wrong(f"{what}: reading what your function returned took over {seconds:g} s; return a list")
        out.append(item)
    return out


def _tensor(x: Any, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except Exception:
        raise Wrong(f"{what}: expected a tensor, got {type(x).__name__}") from None


def _first_diff(got: torch.Tensor, want: torch.Tensor, atol: float, rtol: float) -> str:
    bad = ~torch.isclose(got.double(), want.double(), atol=atol, rtol=rtol, equal_nan=True)
    idx = tuple(int(i) for i in bad.nonzero()[0])
    return f"first difference at index {idx}: got {got[idx].item():.6g}, expected {want[idx].item():.6g}"


def _same(got: Any, want: torch.Tensor, case: str, *, atol: float = 1e-5, rtol: float = 1e-5,
          mistakes: Iterable[_Mistake] = (), args: tuple = ()) -> None:
    """Compare a tensor answer with the reference; name a known mistake when the answer matches one."""
    got = _tensor(got, case)
    if tuple(got.shape) != tuple(want.shape):
        raise Wrong(f"{case}: wrong shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if want.dtype == torch.bool and got.dtype != torch.bool:
        raise Wrong(f"{case}: expected a bool tensor, got {got.dtype}")
    if want.dtype == torch.bool:
        if torch.equal(got, want):
            return
        idx = tuple(int(i) for i in (got != want).nonzero()[0])
        raise Wrong(f"{case}: first difference at index {idx}: got {bool(got[idx])}, expected {bool(want[idx])}")
    if torch.allclose(got.double(), want.double(), atol=atol, rtol=rtol, equal_nan=True):
        return
    for m in mistakes:
        try:
            alt = _tensor(m.fn(*args), m.name)
        except Exception:
            continue
        if alt.shape == got.shape and torch.allclose(got.double(), alt.double(), atol=atol, rtol=rtol, equal_nan=True):
            raise Wrong(f"{case}: {m.hint}")
    raise Wrong(f"{case}: {_first_diff(got, want, atol, rtol)}")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- lesson 00


def loss_at_init(fn: Callable[[int], float]) -> Result:
    """fn(vocab_size) -> the cross-entropy (nats) of a model that guesses uniformly: ln V."""

    def run() -> int:
        sizes = [2, 65, 50257, 1]
        for v in sizes:
            got = fn(v)
            if isinstance(got, torch.Tensor):
                got = got.item()
            if not isinstance(got, (int, float)):
                raise Wrong(f"V={v}: expected a number, got {type(got).__name__}")
            want = math.log(v)
            if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
                if v > 1 and math.isclose(got, math.log2(v), rel_tol=1e-6):
                    raise Wrong(f"V={v}: got {got:.4f} = log2(V), bits; PyTorch's cross-entropy uses the natural log (nats)")
                if math.isclose(got, 1 / v, rel_tol=1e-6):
                    raise Wrong(f"V={v}: got {got:.4g} = 1/V, the probability; the loss is -ln(probability)")
                if v > 1 and math.isclose(got, -want, rel_tol=1e-6):
                    raise Wrong(f"V={v}: got {got:.4g} = ln(1/V), a negative loss; the loss is MINUS the log probability, -ln(1/V) = ln V")
                raise Wrong(f"V={v}: got {got:.6g}, expected {want:.6g}")
        return len(sizes)

    return _report("loss_at_init", run)


class _Bidirectional(torch.nn.Module):
    """A toy 'language model' whose every position sees the whole sequence (a leak)."""

    def __init__(self, vocab: int = 11) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, vocab)

    def forward(self, idx: torch.Tensor, targets: Any = None) -> tuple[torch.Tensor, None]:
        e = self.emb(idx)
        return e + e.mean(dim=1, keepdim=True), None


class _Causal(_Bidirectional):
    def forward(self, idx: torch.Tensor, targets: Any = None) -> tuple[torch.Tensor, None]:
        e = self.emb(idx)
        prefix = e.cumsum(dim=1) / torch.arange(1, idx.size(1) + 1).view(1, -1, 1)
        return e + prefix, None


class _LeaksAtEnd(_Causal):
    """Causal except that the first position peeks at the last token."""

    def forward(self, idx: torch.Tensor, targets: Any = None) -> tuple[torch.Tensor, None]:
        logits, _ = super().forward(idx)
        logits = logits.clone()
        logits[:, 0] += self.emb(idx[:, -1])
        return logits, None


class _LeaksInMiddle(_Causal):
    """Causal except that position 2 reads token 3: a leak that involves neither the last token nor position 0."""

    def forward(self, idx: torch.Tensor, targets: Any = None) -> tuple[torch.Tensor, None]:
        logits, _ = super().forward(idx)
        logits = logits.clone()
        logits[:, 2] += self.emb(idx[:, 3])
        return logits, None


def causality_probe(fn: Callable[[torch.nn.Module, torch.Tensor], bool]) -> Result:
    """fn(model, idx) -> True if no output at position t depends on tokens after t (model(idx) -> (logits, loss))."""

    def run() -> int:
        from gptlab import GPT, GPTConfig

        torch.manual_seed(0)
        gpt = GPT(GPTConfig.from_preset("tiny")).eval()
        cases = [
            ("a gptlab GPT", gpt, torch.randint(0, gpt.config.vocab_size, (1, 8), generator=_gen(0)), True),
            ("a causal toy model", _Causal(), torch.randint(0, 11, (2, 6), generator=_gen(1)), True),
            ("a bidirectional model", _Bidirectional(), torch.randint(0, 11, (2, 6), generator=_gen(2)), False),
            ("a model whose FIRST position peeks at the last token", _LeaksAtEnd(), torch.randint(0, 11, (1, 7), generator=_gen(3)), False),
            # Catches the two incomplete probes: "edit only the last token" and "look only at position 0".
            ("a model whose position 2 reads token 3 (of 6)", _LeaksInMiddle(), torch.randint(0, 11, (2, 6), generator=_gen(4)), False),
        ]
        for what, model, idx, want in cases:
            with torch.no_grad():
                got = fn(model, idx.clone())
            if isinstance(got, torch.Tensor):
                got = bool(got.item())
            if not isinstance(got, bool):
                raise Wrong(f"{what}: expected True or False, got {type(got).__name__}")
            if got != want:
                if want:
                    hint = "it is causal, but your probe says it leaks: compare only the positions BEFORE the token you change"
                elif isinstance(model, _LeaksInMiddle):
                    hint = ("it leaks the future, but your probe says causal: change EVERY later token in turn (not only the last) "
                            "and compare every position before it (not only position 0)")
                else:
                    hint = ("it leaks the future, but your probe says causal: change a later token and compare every earlier position, "
                            "not only the last one")
                raise Wrong(f"{what}: {hint}")
        return len(cases)

    return _report("causality_probe", run)


# ----------------------------------------------------------------------------- lesson 01


def bpe_merge(fn: Callable[[list[int], tuple[int, int], int], list[int]]) -> Result:
    """fn(ids, pair, new_id) -> ids with every occurrence of pair replaced, left to right (gptlab.tokenizers.merge)."""
    from gptlab.tokenizers import merge as ref

    def run() -> int:
        cases = [
            ([1, 2, 3, 1, 2], (1, 2), 4),
            ([5, 5, 5], (5, 5), 6),
            ([5, 5, 5, 5], (5, 5), 6),
            ([7, 8, 9], (8, 9), 10),
            ([7, 8, 9], (9, 7), 10),
            ([], (1, 2), 3),
            ([1], (1, 1), 3),
        ]
        for ids, pair, new in cases:
            got = fn(list(ids), pair, new)
            want = ref(ids, pair, new)
            if isinstance(got, torch.Tensor):
                got = got.tolist()
            if not isinstance(got, (list, tuple)):
                raise Wrong(f"merge({ids}, {pair}, {new}): expected a list, got {type(got).__name__}")
            if list(got) != want:
                got = list(got)
                hint = ""
                if len(got) > len(want) and got.count(new) >= want.count(new):
                    hint = " — after a merge, skip BOTH tokens of the pair (overlapping runs merge left first)"
                elif got == want[:-1]:
                    hint = " — the final token is missing: the loop must still copy the last position"
                raise Wrong(f"merge({ids}, {pair}, {new}): got {got}, expected {want}{hint}")
        return len(cases)

    return _report("bpe_merge", run)


def pair_counts(fn: Callable[[list[int]], dict]) -> Result:
    """fn(ids) -> {(a, b): count} of adjacent pairs (gptlab.tokenizers.get_pair_counts)."""
    from gptlab.tokenizers import get_pair_counts as ref

    def run() -> int:
        cases = [[1, 2, 3, 1, 2], [5, 5, 5], [4], [], list(torch.randint(0, 6, (40,), generator=_gen(0)).tolist())]
        for ids in cases:
            got = fn(list(ids))
            want = ref(ids)
            if not isinstance(got, dict):
                raise Wrong(f"ids={ids[:8]}: expected a dict, got {type(got).__name__}")
            got = {tuple(k): int(v) for k, v in got.items()}
            if got != want:
                if got and set(got) == set(want) and set(got.values()) == {1}:
                    raise Wrong(f"ids={ids[:8]}: every pair counted once; count each occurrence (overlaps too: [5, 5, 5] has (5, 5) twice)")
                missing = sorted(set(want) - set(got))[:3]
                extra = sorted(set(got) - set(want))[:3]
                off = next(((k, got[k], want[k]) for k in want if k in got and got[k] != want[k]), None)
                detail = (f"missing pairs {missing}" if missing else f"pairs that are not adjacent {extra}" if extra
                          else f"pair {off[0]} counted {off[1]}, expected {off[2]}")
                raise Wrong(f"ids={ids[:8]}{'…' if len(ids) > 8 else ''}: {detail}")
        return len(cases)

    return _report("pair_counts", run)


# ----------------------------------------------------------------------------- lesson 02


def windows(fn: Callable[[list[int], int, int], list]) -> Result:
    """fn(tokens, block_size, stride) -> list of (x, y) windows, y = x shifted by one (gptlab.data.TokenWindows)."""
    from gptlab.data import TokenWindows

    def run() -> int:
        cases = [(list(range(10)), 4, 4), (list(range(10)), 4, 2), (list(range(5)), 4, 1), (list(range(23)), 3, 5), (list(range(9)), 8, 8)]
        for tokens, bs, stride in cases:
            ref = TokenWindows(tokens, bs, stride)
            want = [(ref[i][0].tolist(), ref[i][1].tolist()) for i in range(len(ref))]
            case = f"{len(tokens)} tokens, block_size={bs}, stride={stride}"
            got = []
            for i, pair in enumerate(_take(fn(list(tokens), bs, stride), case, limit=10 * len(want) + 10)):
                pair = _take(pair, f"{case}: window {i}", limit=2)
                if len(pair) != 2:
                    raise Wrong(f"{case}: window {i} is not an (x, y) pair")
                x, y = pair
                x, y = _tensor(x, f"{case}: window {i} x"), _tensor(y, f"{case}: window {i} y")
                if x.numel() > 10 * bs or y.numel() > 10 * bs:
                    raise Wrong(f"{case}: window {i} holds {max(x.numel(), y.numel()):,} tokens; a window holds block_size={bs}")
                got.append((x.tolist(), y.tolist()))
            if len(got) != len(want):
                hint = " — the last window needs block_size + 1 tokens (x and its shifted y)" if abs(len(got) - len(want)) == 1 else ""
                raise Wrong(f"{case}: {len(got)} windows, expected {len(want)}{hint}")
            _windows_order_slip(got, want, case)
            for i, ((gx, gy), (wx, wy)) in enumerate(zip(got, want)):
                if gx != wx:
                    raise Wrong(f"{case}: window {i} x = {gx}, expected {wx}")
                if gy != wy:
                    hint = " — y is x shifted by ONE (the next token at every position)" if gy == gx else ""
                    raise Wrong(f"{case}: window {i} y = {gy}, expected {wy}{hint}")
        return len(cases)

    return _report("windows", run)


def _windows_order_slip(got: list, want: list, case: str) -> None:
    """Lesson 02: the windows come in text order; shuffling belongs to the batches, after a contiguous split."""
    if got != want and sorted(map(repr, got)) == sorted(map(repr, want)):
        raise Wrong(f"{case}: the right windows in a shuffled order; return them in text order (window i starts at i * stride): "
                    "the lesson splits the text contiguously first, since shuffled overlapping windows would leak "
                    "validation text into training; shuffle batches later, not here")


class _Lookups(TorchFunctionMode):
    """Records the row lookups (indexing, F.embedding, index_select, gather...) done directly on one tensor."""

    _NAMES = ("__getitem__", "embedding", "index_select", "gather", "take", "take_along_dim")

    def __init__(self, watched: torch.Tensor) -> None:
        super().__init__()
        self.watched, self.lookups = watched, []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in self._NAMES and any(a is self.watched for a in (*args, *kwargs.values())):
            key = args[1] if name == "__getitem__" and len(args) > 1 else None
            keys = key if isinstance(key, tuple) else (key,)
            if name != "__getitem__" or any(isinstance(k, (torch.Tensor, list)) for k in keys):  # slices are fine
                self.lookups.append("weight[idx]" if name == "__getitem__" else name)
        return func(*args, **kwargs)


def _one_hot_dtype_slip(fn: Callable[..., Any], idx: torch.Tensor, weight: torch.Tensor, case: str) -> Any:
    """Call fn; name the classic slip of lesson 02's one-hot × matrix: F.one_hot returns integers (int64)."""
    try:
        return fn(idx, weight)
    except RuntimeError as e:
        text = _text(e).lower()  # "expected m1 and m2 to have the same dtype, but got: long int != float", or einsum's wording
        if "long" in text and "float" in text:
            raise Wrong(f"{case}: F.one_hot returns integers (int64) and the weight is float: convert it first, "
                        "F.one_hot(idx, V).float() @ weight") from None
        raise


def embedding_lookup(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Result:
    """fn(idx (B, T) ids, weight (V, C)) -> (B, T, C) via one-hot × matrix; equals nn.Embedding's lookup."""

    def run() -> int:
        cases = [((2, 3), 5, 4), ((1, 1), 3, 2), ((3, 7), 11, 6)]
        for n, ((B, T), V, C) in enumerate(cases):
            idx = torch.randint(0, V, (B, T), generator=_gen(n))
            w = torch.randn(V, C, generator=_gen(10 + n))
            watched = w.clone()
            with _Lookups(watched) as seen:
                got = _one_hot_dtype_slip(fn, idx.clone(), watched, f"case {n}")
            if seen.lookups:
                raise Wrong(f"case {n}: you looked rows up in `weight` ({seen.lookups[0]}); the exercise asks for "
                            "one-hot × matrix: F.one_hot(idx, V).float() @ weight")
            _same(got, F.embedding(idx, w), f"case {n} (B={B}, T={T}, V={V}, C={C})")
        return len(cases)

    return _report("embedding_lookup", run)


# ----------------------------------------------------------------------------- lesson 03


def causal_mask(fn: Callable[[int], torch.Tensor]) -> Result:
    """fn(T) -> (T, T) bool mask, True where query i may attend to key j (j <= i)."""

    def run() -> int:
        for T in (1, 2, 5, 8):
            got = _tensor(fn(T), f"T={T}")
            want = torch.ones(T, T, dtype=torch.bool).tril()
            if got.dtype != torch.bool:
                raise Wrong(f"T={T}: expected a bool tensor (True = may attend), got {got.dtype}")
            if tuple(got.shape) != (T, T):
                raise Wrong(f"T={T}: wrong shape {tuple(got.shape)}, expected {(T, T)}")
            if not torch.equal(got, want):
                future = (got & ~want).nonzero()
                if len(future):
                    i, j = future[0].tolist()
                    raise Wrong(f"T={T}: position {i} may attend to position {j} — your mask lets the future in")
                i, j = (want & ~got).nonzero()[0].tolist()
                what = "itself" if i == j else f"the earlier position {j}"
                raise Wrong(f"T={T}: position {i} may not attend to {what}; each token sees itself and everything before it")
        return 4

    return _report("causal_mask", run)


def _head_ref(x: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, wv: torch.Tensor, *, scale: float | None = None,
              dim: int = -1, offset: int = 0, masked: bool = True) -> torch.Tensor:
    q, k, v = x @ wq, x @ wk, x @ wv
    T = x.size(-2)
    att = q @ k.transpose(-2, -1) * (scale if scale is not None else k.size(-1) ** -0.5)
    if masked:
        allowed = torch.ones(T, T, dtype=torch.bool).tril(offset)
        att = att.masked_fill(~allowed, float("-inf"))
    return F.softmax(att, dim=dim).nan_to_num(0.0) @ v


def _mask_after_softmax(x: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, wv: torch.Tensor, *, fill: float = 0.0,
                        before: bool = False) -> torch.Tensor:
    """The head with the mask in the wrong place: after the softmax (filled with `fill`), or before it filled with 0."""
    q, k, v = x @ wq, x @ wk, x @ wv
    T = x.size(-2)
    future = ~torch.ones(T, T, dtype=torch.bool).tril()
    att = q @ k.transpose(-2, -1) * k.size(-1) ** -0.5
    if before:
        return F.softmax(att.masked_fill(future, fill), dim=-1) @ v
    return F.softmax(att, dim=-1).masked_fill(future, fill) @ v


def _mask_order_slips() -> list[_Mistake]:
    """Lesson 03's misconception (docs/teaching.md): the mask applied after the softmax, or with 0 instead of -inf."""
    after = ("you applied the mask after the softmax: the future already took its share of each row, so the kept weights "
             "no longer sum to 1; mask the SCORES with -inf, then take the softmax")
    return [
        _Mistake("after0", lambda *a: _mask_after_softmax(*a, fill=0.0), after),
        _Mistake("after-inf", lambda *a: _mask_after_softmax(*a, fill=float("-inf")), after + " (filling weights with -inf gives inf/NaN)"),
        _Mistake("fill0", lambda *a: _mask_after_softmax(*a, fill=0.0, before=True),
                 "you masked the scores with 0, not -inf: exp(0) = 1, so every future position still gets weight; fill with float('-inf')"),
    ]


def attention_head(fn: Callable[..., torch.Tensor]) -> Result:
    """fn(x (B, T, C), w_q, w_k, w_v (C, head_size)) -> (B, T, head_size): one causal, scaled attention head."""

    def run() -> int:
        cases = [(2, 5, 8, 4), (1, 1, 4, 2), (3, 7, 6, 6)]
        for n, (B, T, C, hs) in enumerate(cases):
            g = _gen(n)
            x = torch.randn(B, T, C, generator=g)
            ws = [torch.randn(C, hs, generator=g) for _ in range(3)]
            args = (x, *ws)
            mistakes = [
                _Mistake("noscale", lambda *a: _head_ref(*a, scale=1.0), "the scores are not divided by sqrt(head_size)"),
                _Mistake("sqrtC", lambda *a, C=C: _head_ref(*a, scale=C ** -0.5),
                         "scaled by sqrt(C), the model width; divide by sqrt(head_size)"),
                _Mistake("axis", lambda *a: _head_ref(*a, dim=-2), "softmax over the wrong axis: normalise each ROW (over keys, dim=-1)"),
                _Mistake("nomask", lambda *a: _head_ref(*a, masked=False),
                         "no causal mask: every position sees the future (that is BERT's bidirectional attention; GPT's is causal)"),
                *_mask_order_slips(),
                _Mistake("offby1", lambda *a: _head_ref(*a, offset=1),
                         "each position also sees the NEXT token: your mask lets the future in (tril, not tril(1))"),
                _Mistake("strict", lambda *a: _head_ref(*a, offset=-1),
                         "each position is hidden from itself: the diagonal must be allowed"),
            ]
            got = fn(*(a.clone() for a in args))
            _same(got, _head_ref(*args), f"case {n} (B={B}, T={T}, C={C}, head_size={hs})", mistakes=mistakes, args=args)
        return len(cases)

    return _report("attention_head", run)


# ----------------------------------------------------------------------------- lesson 04


def layer_norm(fn: Callable[..., torch.Tensor]) -> Result:
    """fn(x, weight, bias, eps=1e-5) -> LayerNorm over the last axis (biased variance), as nn.LayerNorm."""

    def run() -> int:
        cases = [(2, 3, 8), (1, 1, 4), (4, 16), (2, 6)]
        eps = 1e-5
        for n, shape in enumerate(cases):
            g = _gen(n)
            # the last case has a variance near eps, where eps's place matters
            x = torch.randn(*shape, generator=g) * 3e-3 if n == 3 else torch.randn(*shape, generator=g) * 3 + 1
            w, b = torch.randn(shape[-1], generator=g), torch.randn(shape[-1], generator=g)
            args = (x, w, b, eps)

            def var_ln(x, w, b, eps, unbiased=False, inside=True, dim=-1):
                mu = x.mean(dim, keepdim=True)
                var = x.var(dim, keepdim=True, unbiased=unbiased)
                den = (var + eps).sqrt() if inside else var.sqrt() + eps
                return (x - mu) / den * w + b

            mistakes = [
                _Mistake("unbiased", lambda *a: var_ln(*a, unbiased=True),
                         "unbiased variance (divides by n-1); LayerNorm uses the biased one (x.var(unbiased=False))"),
                _Mistake("eps", lambda *a: var_ln(*a, inside=False),
                         "eps is added outside the square root; it goes inside: sqrt(var + eps)"),
                _Mistake("affine", lambda x, w, b, eps: var_ln(x, torch.ones_like(w), torch.zeros_like(b), eps),
                         "the learned weight and bias are not applied"),
            ]
            got = fn(x.clone(), w.clone(), b.clone(), eps)
            _same(got, F.layer_norm(x, (shape[-1],), w, b, eps), f"case {n} (shape {shape})", atol=1e-5, mistakes=mistakes, args=args)
        return len(cases)

    return _report("layer_norm", run)


def gelu(fn: Callable[[torch.Tensor], torch.Tensor]) -> Result:
    """fn(x) -> GELU in GPT-2's tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    def run() -> int:
        xs = [torch.linspace(-6, 6, 101), torch.zeros(3), torch.randn(4, 5, generator=_gen(0)) * 3]
        for n, x in enumerate(xs):
            mistakes = [
                _Mistake("erf", lambda x: F.gelu(x), "this is the exact (erf) GELU; GPT-2 uses the tanh approximation"),
                _Mistake("relu", lambda x: F.relu(x), "this is ReLU; GELU is smooth and slightly negative for x < 0"),
                _Mistake("cubic", lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x)), "the 0.044715·x³ term is missing"),
            ]
            _same(fn(x.clone()), F.gelu(x, approximate="tanh"), f"case {n} (shape {tuple(x.shape)})", atol=1e-6,
                  mistakes=mistakes, args=(x,))
        return len(xs)

    return _report("gelu", run)


# ----------------------------------------------------------------------------- lesson 05


def gpt_param_count(fn: Callable[[Any], int]) -> Result:
    """fn(config: GPTConfig) -> the parameter count of gptlab.GPT(config), tied matrix counted once."""

    def run() -> int:
        from gptlab import GPT, GPTConfig

        cfgs = [GPTConfig.from_preset("gpt2"), GPTConfig.from_preset("tiny"), GPTConfig.from_preset("shakespeare-char"),
                GPTConfig.from_preset("tiny", bias=False, n_layer=3)]
        for cfg in cfgs:
            with torch.device("meta"):
                want = GPT(cfg).get_num_params()
            got = _as_int(fn(cfg), _cfg_str(cfg))
            if got != want:
                diff = got - want
                V, C, L = cfg.vocab_size, cfg.n_embd, cfg.n_layer
                hints = {V * C: "the tied lm_head is counted twice (it is the same matrix as wte)",
                         -cfg.block_size * C: "the position embedding wpe is missing"}
                hint = (hints.get(diff) or _block_count_slip(cfg, diff)
                        or ("biases or LayerNorm parameters are off" if abs(diff) < 20 * L * C + 10 * C else ""))
                raise Wrong(f"{_cfg_str(cfg)}: got {got:,}, expected {want:,} (off by {diff:+,}){' — ' + hint if hint else ''}")
        return len(cfgs)

    return _report("gpt_param_count", run)


def _block_count_slip(cfg: Any, diff: int) -> str:
    """Lesson 05's misconception, "the parameters are mostly attention": a block counted without (part of) its MLP."""
    C, L, b = cfg.n_embd, cfg.n_layer, int(cfg.bias)
    mlp, attn = 8 * C * C + 5 * C * b, 4 * C * C + 4 * C * b  # c_fc (C, 4C) and c_proj (4C, C); c_attn (C, 3C) and c_proj
    slips = {
        -L * mlp: "the MLP is missing from every block: it holds 8·C² weights, twice the attention's 4·C² "
                  "(the parameters are not mostly attention)",
        -L * (6 * C * C + 3 * C * b): "the MLP's hidden layer is 4·C wide, not C: c_fc is (C, 4C) and c_proj (4C, C)",
        -L * (C * C + C * b): "the attention's output projection c_proj (C, C) is missing",
        -L * (4 * C * C + C * b): "the MLP's second matrix c_proj (4C, C) is missing",
        -L * attn: "every block is 4·C² short: the attention (c_attn (C, 3C) and c_proj (C, C)) or the MLP's c_fc (C, 4C) is missing",
    }  # without biases the last two coincide: the later, less specific hint wins
    return slips.get(diff, "")


def _cfg_str(cfg: Any) -> str:
    return f"n_layer={cfg.n_layer}, n_embd={cfg.n_embd}, vocab={cfg.vocab_size}, block={cfg.block_size}, bias={cfg.bias}"


def tied_head(fn: Callable[[torch.nn.Module], bool]) -> Result:
    """fn(model) -> True if the model's lm_head and token embedding are one tensor (tied), not just equal values."""

    def run() -> int:
        from gptlab import GPT, GPTConfig

        torch.manual_seed(0)
        tied = GPT(GPTConfig.from_preset("tiny"))
        copied = GPT(GPTConfig.from_preset("tiny"))
        copied.lm_head.weight = torch.nn.Parameter(copied.transformer.wte.weight.detach().clone())
        untied = GPT(GPTConfig.from_preset("tiny"))
        untied.lm_head.weight = torch.nn.Parameter(torch.randn_like(untied.lm_head.weight))
        for what, model, want in (("a tied GPT", tied, True), ("a GPT whose head is an equal COPY", copied, False),
                                  ("an untied GPT", untied, False)):
            got = fn(model)
            if got is not want:
                hint = ("equal values are not the same tensor: compare storage (a.data_ptr() == b.data_ptr()) or `is`"
                        if what.startswith("a GPT whose") else "expected " + str(want))
                raise Wrong(f"{what}: got {got!r} — {hint}")
        return 3

    return _report("tied_head", run)


# ----------------------------------------------------------------------------- lesson 06


def _loss_unit_slips(want: torch.Tensor) -> list[_Mistake]:
    """Lesson 06 reads one loss three ways (nats, bits, perplexity); the function must return the nats."""
    return [
        _Mistake("bits", lambda *a: want / math.log(2),
                 "you returned bits (log base 2, or the loss / ln 2); the training loss is in nats (natural log, as "
                 "F.cross_entropy); convert to bits (per character, to compare tokenizers) only when you report it"),
        _Mistake("ppl", lambda *a: want.exp(),
                 "you returned the perplexity exp(loss); return the loss itself (nats); perplexity is a way to read it"),
    ]


def cross_entropy(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Result:
    """fn(logits (B, T, V), targets (B, T)) -> mean -log softmax(logits)[target] over positions whose target != -100."""

    def run() -> int:
        cases = [(2, 3, 5, False), (1, 1, 2, False), (3, 4, 7, True)]
        for n, (B, T, V, ignore) in enumerate(cases):
            g = _gen(n)
            logits = torch.randn(B, T, V, generator=g) * 2
            targets = torch.randint(0, V, (B, T), generator=g)
            if ignore:
                targets[0, :2] = -100
                targets[-1, -1] = -100
            want = F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-100)
            safe = targets.clamp(min=0)
            keep = (targets != -100).float()
            nll = -F.log_softmax(logits, -1).gather(-1, safe[..., None])[..., 0]
            mistakes = [
                _Mistake("sum", lambda *a, nll=nll, keep=keep: (nll * keep).sum(),
                         "you summed the losses; average them over the (non-ignored) positions"),
                _Mistake("ignore", lambda *a, nll=nll, keep=keep: (nll * keep).sum() / nll.numel(),
                         "the average counts the ignored (-100) positions; divide by the number of real targets"),
                _Mistake("axis",
                         lambda *a, logits=logits, safe=safe, keep=keep:
                         (-F.log_softmax(logits, 1).gather(-1, safe[..., None])[..., 0] * keep).sum() / keep.sum(),
                         "softmax over the wrong axis: normalise over the vocabulary (last axis)"),
                _Mistake("nolog",
                         lambda *a, logits=logits, safe=safe, keep=keep:
                         (-(F.softmax(logits, -1).gather(-1, safe[..., None])[..., 0]) * keep).sum() / keep.sum(),
                         "missing log: the loss is -log p(target)"),
                *_loss_unit_slips(want),
            ]
            got = fn(logits.clone(), targets.clone())
            got = _tensor(got, f"case {n}")
            if got.dim() != 0:
                raise Wrong(f"case {n}: expected a scalar (0-dim) loss, got shape {tuple(got.shape)}")
            _same(got, want, f"case {n} (B={B}, T={T}, V={V}{', with -100 targets' if ignore else ''})", atol=1e-5,
                  mistakes=mistakes, args=())
        return len(cases)

    return _report("cross_entropy", run)


def lr_schedule(fn: Callable[[int, Any], float]) -> Result:
    """fn(step, cfg: TrainConfig) -> learning rate: linear warmup, then cosine decay to min_lr (gptlab.training.lr_at)."""

    def run() -> int:
        from gptlab.config import TrainConfig
        from gptlab.training import lr_at

        cfgs = [TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=100, lr_decay_steps=100),
                TrainConfig(lr=6e-4, min_lr=6e-5, warmup_steps=0, max_steps=50, lr_decay_steps=40)]
        n = 0
        for cfg in cfgs:
            for step in range(cfg.max_steps + 5):
                got, want = fn(step, cfg), lr_at(step, cfg)
                if isinstance(got, torch.Tensor):
                    got = got.item()
                n += 1
                if not math.isclose(float(got), want, rel_tol=1e-6, abs_tol=1e-12):
                    where = ("warmup" if step < cfg.warmup_steps
                             else "after the decay ends" if step >= (cfg.lr_decay_steps or cfg.max_steps) else "cosine decay")
                    hint = ""
                    if where == "warmup" and math.isclose(float(got), cfg.lr * step / cfg.warmup_steps, rel_tol=1e-6):
                        hint = " — warmup must not start at 0: use lr * (step + 1) / (warmup_steps + 1)"
                    elif where != "warmup" and want > 0 and math.isclose(float(got), (want - cfg.min_lr) * cfg.lr / (cfg.lr - cfg.min_lr),
                                                                         rel_tol=1e-6):
                        hint = " — the cosine must end at min_lr, not at 0"
                    raise Wrong(f"step {step} ({where}, warmup={cfg.warmup_steps}, decay until {cfg.lr_decay_steps}): "
                                f"got {float(got):.6g}, expected {want:.6g}{hint}")
        return n

    return _report("lr_schedule", run)


# ----------------------------------------------------------------------------- lesson 07


def _not_a_choice(got: Any, logits: torch.Tensor, case: str) -> Any:
    """Lesson 07's misconception, "the model writes text": a filter reshapes the distribution, the decoder then chooses."""
    if isinstance(got, torch.Tensor) and not got.is_floating_point() and got.dim() >= 1 and got.size(0) == logits.size(0) \
            and got.shape != logits.shape:
        raise Wrong(f"{case}: you returned token ids {tuple(got.shape)}, a choice; return the filtered logits {tuple(logits.shape)}: "
                    "the model gives a distribution, the filter reshapes it, and the decoder samples from it afterwards")
    return got


def top_k(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> Result:
    """fn(logits (B, V), k) -> logits with all but the k largest of each row set to -inf (gptlab.generation.top_k_filter)."""
    from gptlab.generation import top_k_filter

    def run() -> int:
        cases = [(1, 10, 3), (2, 7, 1), (3, 5, 5), (2, 50, 10)]
        for n, (B, V, k) in enumerate(cases):
            logits = torch.randn(B, V, generator=_gen(n))
            args = (logits, k)
            mistakes = [
                _Mistake("zero", lambda l, k: top_k_filter(l, k).masked_fill(top_k_filter(l, k).isinf(), 0.0),
                         "removed logits are set to 0; use -inf (softmax of 0 is not 0)"),
                _Mistake("k-1", lambda l, k: top_k_filter(l, max(1, k - 1)), "keeps k-1 tokens; keep exactly k"),
                _Mistake("k+1", lambda l, k: top_k_filter(l, min(k + 1, l.size(-1))), "keeps k+1 tokens; keep exactly k"),
                _Mistake("smallest", lambda l, k: -top_k_filter(-l, k), "keeps the k SMALLEST logits; keep the largest"),
                _Mistake("probs", lambda l, k: F.softmax(top_k_filter(l, k), -1),
                         "returned probabilities; return the filtered LOGITS (-inf where removed): sampling takes the softmax"),
            ]
            case = f"case {n} (B={B}, V={V}, k={k})"
            _same(_not_a_choice(fn(logits.clone(), k), logits, case), top_k_filter(logits, k), case, mistakes=mistakes, args=args)
        return len(cases)

    return _report("top_k", run)


def top_p(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> Result:
    """fn(logits (B, V), p) -> nucleus filter: keep the smallest top set with probability >= p, rest -inf (top_p_filter)."""
    from gptlab.generation import top_p_filter

    def excl(l: torch.Tensor, p: float) -> torch.Tensor:  # a common slip: drops the token that crosses p
        s, order = torch.sort(l, descending=True)
        drop = F.softmax(s, -1).cumsum(-1) > p
        return l.masked_fill(drop.scatter(-1, order, drop), float("-inf"))

    def run() -> int:
        cases = [(1, 6, 0.5), (2, 10, 0.9), (3, 8, 0.3), (1, 5, 1.0), (2, 20, 0.05)]
        for n, (B, V, p) in enumerate(cases):
            logits = torch.randn(B, V, generator=_gen(n)) * 2
            mistakes = [
                _Mistake("excl", excl, "the token whose probability carries the total past p is dropped; keep it (the set must reach p)"),
                _Mistake("probs", lambda l, p: F.softmax(top_p_filter(l, p), -1),
                         "returned probabilities; return the filtered LOGITS (-inf where removed)"),
                _Mistake("zero", lambda l, p: top_p_filter(l, p).masked_fill(top_p_filter(l, p).isinf(), 0.0),
                         "removed logits are set to 0; use -inf"),
            ]
            case = f"case {n} (B={B}, V={V}, p={p})"
            _same(_not_a_choice(fn(logits.clone(), p), logits, case), top_p_filter(logits, p), case, mistakes=mistakes,
                  args=(logits, p))
        return len(cases)

    return _report("top_p", run)


# ----------------------------------------------------------------------------- lesson 08


def _rand_attention(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    T = shape[-1]
    s = torch.randn(*shape, generator=_gen(seed)).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return F.softmax(s, -1)


def previous_token_score(fn: Callable[[torch.Tensor], torch.Tensor]) -> Result:
    """fn(weights (..., T, T)) -> (...): mean weight from position i to i-1 over i >= 1 (gptlab.attention.previous_token_scores)."""
    from gptlab.attention import previous_token_scores as ref

    def run() -> int:
        cases = [(1, 5, 5), (2, 3, 8, 8), (4, 2, 2)]
        for n, shape in enumerate(cases):
            w = _rand_attention(shape, n)
            T = shape[-1]
            mistakes = [
                _Mistake("diag", lambda w: w.diagonal(0, -2, -1).mean(-1),
                         "you averaged the diagonal (a token attending to itself); take the offset -1 diagonal (i -> i-1)"),
                _Mistake("above", lambda w: w.diagonal(1, -2, -1).mean(-1),
                         "you took the diagonal above (i -> i+1): GPT never attends to a later token (its maps are "
                         "lower-triangular, causal), so that diagonal is all zeros; take offset -1"),
                _Mistake("rows", lambda w, T=T: w.diagonal(-1, -2, -1).sum(-1) / T,
                         "divided by T; position 0 has no previous token, so average over the T-1 rows"),
            ]
            _same(fn(w.clone()), ref(w), f"case {n} (shape {shape})", mistakes=mistakes, args=(w,))
        return len(cases)

    return _report("previous_token_score", run)


def mean_attention_distance(fn: Callable[[torch.Tensor], torch.Tensor]) -> Result:
    """fn(weights (..., T, T)) -> (...): mean over rows of sum_j w[i, j] * (i - j) (gptlab.attention.mean_attention_distance)."""
    from gptlab.attention import mean_attention_distance as ref

    def run() -> int:
        cases = [(1, 6, 6), (2, 2, 5, 5), (3, 2, 2)]
        for n, shape in enumerate(cases):
            w = _rand_attention(shape, 20 + n)
            T = shape[-1]
            d = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).float()
            mistakes = [
                _Mistake("signed", lambda w: -ref(w),
                         "distances come out negative: use i - j (how far BACK the key is; a causal head never looks ahead)"),
                _Mistake("row0", lambda w, d=d: (w * d).sum(-1).mean(-1),
                         "row 0 is averaged in; position 0 can only look at itself, so average over queries i >= 1"),
                _Mistake("sum", lambda w, d=d: (w * d).sum(-1)[..., 1:].sum(-1), "summed over query rows; average them"),
            ]
            _same(fn(w.clone()), ref(w), f"case {n} (shape {shape})", mistakes=mistakes, args=(w,))
        return len(cases)

    return _report("mean_attention_distance", run)


# ----------------------------------------------------------------------------- lesson 09


def is_conv1d(fn: Callable[[str], bool]) -> Result:
    """fn(name) -> True for the GPT-2 weights stored (in, out) that need a transpose (gptlab.pretrained.is_conv1d)."""
    from gptlab.pretrained import is_conv1d as ref

    def run() -> int:
        names = ["h.0.attn.c_attn.weight", "h.11.attn.c_proj.weight", "h.3.mlp.c_fc.weight", "h.3.mlp.c_proj.weight",
                 "transformer.h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias", "h.0.mlp.c_proj.bias", "wte.weight",
                 "wpe.weight", "h.0.ln_1.weight", "ln_f.weight", "lm_head.weight"]
        for name in names:
            got, want = fn(name), ref(name)
            if bool(got) != want:
                hint = ("biases are 1-D: nothing to transpose" if name.endswith(".bias") else
                        "embeddings and LayerNorms are stored as nn.Embedding/nn.LayerNorm expect" if not want else
                        "this Conv1D weight is stored (in, out) and must be transposed")
                raise Wrong(f"{name!r}: got {got!r}, expected {want} — {hint}")
        return len(names)

    return _report("is_conv1d", run)


def hf_to_gptlab(fn: Callable[[dict], dict]) -> Result:
    """fn(hf_state: {name: tensor} in GPT-2's Hugging Face layout) -> a state dict gptlab.GPT loads strictly.

    Fed the two layouts real files have: OpenAI's (GPT2Model names, with the `h.N.attn.bias` and
    `h.N.attn.masked_bias` mask buffers older files carry) and a GPT2LMHeadModel state dict (names that
    already start with `transformer.`, plus `lm_head.weight`). A mapping that keeps the buffers, drops
    the real `c_attn.bias` with them, or prefixes twice would fail on OpenAI's checkpoint.
    """

    def run() -> int:
        from gptlab import GPT, GPTConfig
        from gptlab.pretrained import convert_hf_state_dict
        from gptlab.pretrained import is_conv1d as conv

        torch.manual_seed(0)
        cfg = GPTConfig.from_preset("tiny", n_embd=32, n_head=4, n_layer=2, vocab_size=40, block_size=16)
        model = GPT(cfg)
        base = {}
        for k, v in model.state_dict().items():
            if k == "lm_head.weight":
                continue
            name = k.removeprefix("transformer.")
            base[name] = v.t().contiguous() if conv(name) else v.clone()
        mask = torch.ones(cfg.block_size, cfg.block_size).tril().view(1, 1, cfg.block_size, cfg.block_size)
        openai = dict(base)
        for i in range(cfg.n_layer):
            openai[f"h.{i}.attn.bias"], openai[f"h.{i}.attn.masked_bias"] = mask.clone(), torch.tensor(-1e4)
        lm_head = {"transformer." + k: v for k, v in base.items()} | {"lm_head.weight": base["wte.weight"]}
        layouts = [("OpenAI's layout (with the attn.bias / attn.masked_bias buffers)", openai),
                   ("a GPT2LMHeadModel state dict (names start with 'transformer.')", lm_head)]
        checked = 0
        for layout, hf in layouts:
            want = convert_hf_state_dict({k: v.clone() for k, v in hf.items()}, model)
            got = fn({k: v.clone() for k, v in hf.items()})
            if not isinstance(got, dict):
                raise Wrong(f"{layout}: expected a dict of tensors, got {type(got).__name__}")
            got = {k: v for k, v in got.items() if k != "lm_head.weight"}  # tied to wte: optional
            want = {k: v for k, v in want.items() if k != "lm_head.weight"}
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            buffers = [k for k in extra if re.search(r"\.h\.\d+\.attn\.(bias|masked_bias)$", k)]
            if buffers:
                raise Wrong(f"{layout}: you kept {buffers[0]!r}, the causal-mask buffer real GPT-2 files carry; it is not a "
                            "weight and load_state_dict(strict=True) refuses it: skip names ending in '.attn.bias'/'.attn.masked_bias'")
            if any(k.startswith("transformer.transformer.") for k in extra):
                raise Wrong(f"{layout}: names that already start with 'transformer.' got a second prefix "
                            f"(e.g. {next(k for k in extra if k.startswith('transformer.transformer.'))!r})")
            if missing:
                real_bias = [k for k in missing if k.endswith(("attn.c_attn.bias", "attn.c_proj.bias"))]
                if real_bias:
                    raise Wrong(f"{layout}: {real_bias[0]!r} is missing: it is a real bias that also ends in 'attn.bias'; "
                                "skip only the buffers 'h.N.attn.bias' and 'h.N.attn.masked_bias'")
                raise Wrong(f"{layout}: missing {len(missing)} names, e.g. {missing[0]!r} (gptlab's names start with 'transformer.')")
            if extra:
                raise Wrong(f"{layout}: unexpected names, e.g. {extra[0]!r}")
            for k in want:
                g, w = _tensor(got[k], k), want[k]
                if g.shape != w.shape:
                    hint = ("Conv1D weights are (in, out): transpose them" if conv(k.removeprefix("transformer."))
                            else "transposed, but only the four Conv1D weights need it")
                    raise Wrong(f"{k}: wrong shape {tuple(g.shape)}, expected {tuple(w.shape)} — {hint}")
                if not torch.equal(g, w):
                    if g.dim() == 2 and torch.equal(g.t(), w):
                        hint = ("not transposed: it is square, so the shape check passes, but it is still (in, out)"
                                if conv(k.removeprefix("transformer."))
                                else "transposed, but only the four Conv1D weights need it")
                        raise Wrong(f"{k}: {hint}")
                    raise Wrong(f"{k}: values differ from the checkpoint's")
            fresh = GPT(cfg)
            fresh.load_state_dict({**got, "lm_head.weight": got["transformer.wte.weight"]}, strict=True)
            checked += len(want)
        return checked

    return _report("hf_to_gptlab", run)


# ----------------------------------------------------------------------------- lesson 10


def _ngram_counts(tokens: list, n: int) -> dict:
    counts: dict = {}
    for i in range(len(tokens) - n + 1):
        g = tuple(tokens[i : i + n])
        counts[g] = counts.get(g, 0) + 1
    return counts


def _mod_precision(hyp: list, refs: list[list], n: int) -> tuple[int, int]:
    h = _ngram_counts(hyp, n)
    best: dict = {}
    for r in refs:
        for g, c in _ngram_counts(r, n).items():
            best[g] = max(best.get(g, 0), c)
    return sum(min(c, best.get(g, 0)) for g, c in h.items()), sum(h.values())


def modified_precision(fn: Callable[[list, list, int], tuple[int, int]]) -> Result:
    """fn(hyp_tokens, list_of_ref_tokens, n) -> (clipped matches, total hypothesis n-grams): BLEU's p_n as a fraction."""

    def run() -> int:
        the = "the the the the the the the".split()
        cases = [
            (the, ["the cat is on the mat".split(), "there is a cat on the mat".split()], 1),
            ("the cat sat on the mat".split(), ["the cat is on the mat".split()], 2),
            ("a b c d".split(), ["a b c d".split(), "d c b a".split()], 4),
            ("a a b b".split(), ["a b".split(), "b b a".split()], 1),
            ("x".split(), ["a b".split()], 2),
        ]
        for hyp, refs, n in cases:
            got = fn(list(hyp), [list(r) for r in refs], n)
            want = _mod_precision(hyp, refs, n)
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise Wrong(f"hyp={' '.join(hyp)!r}, n={n}: return (clipped matches, total), got {got!r}")
            got = (int(got[0]), int(got[1]))
            if got != want:
                h = _ngram_counts(hyp, n)
                unclipped = sum(c for g, c in h.items() if any(g in _ngram_counts(r, n) for r in refs))
                summed = sum(min(c, sum(_ngram_counts(r, n).get(g, 0) for r in refs)) for g, c in h.items())
                hint = ""
                if got[0] == unclipped != want[0]:
                    hint = " — counts are not clipped: an n-gram scores at most as often as it appears in one reference"
                elif got[0] == summed != want[0]:
                    hint = " — clipped by the SUM over references; clip by the maximum count in any single reference"
                elif got[1] != want[1]:
                    hint = " — the total is every n-gram of the hypothesis, repeats included"
                raise Wrong(f"hyp={' '.join(hyp)!r}, n={n}: got {got}, expected {want}{hint}")
        return len(cases)

    return _report("modified_precision", run)


def brevity_penalty(fn: Callable[[int, int], float]) -> Result:
    """fn(hyp_len c, ref_len r) -> BLEU's brevity penalty: 1 if c > r, else exp(1 - r / c) (0 for an empty hypothesis)."""

    def run() -> int:
        cases = [(10, 10), (12, 10), (5, 10), (1, 20), (9, 10), (0, 5)]
        for c, r in cases:
            want = 1.0 if c > r else (0.0 if c == 0 else math.exp(1 - r / c))
            got = fn(c, r)
            got = float(got.item() if isinstance(got, torch.Tensor) else got)
            if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
                hint = ""
                if c and math.isclose(got, math.exp(1 - c / r), rel_tol=1e-9):
                    hint = " — the ratio is upside down: exp(1 - r / c) penalises SHORT hypotheses"
                elif c > r and got != 1:
                    hint = " — a hypothesis longer than the reference is not penalised: BP = 1"
                raise Wrong(f"c={c}, r={r}: got {got:.6g}, expected {want:.6g}{hint}")
        return len(cases)

    return _report("brevity_penalty", run)


def _lcs(a: list, b: list) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def lcs_length(fn: Callable[[list, list], int]) -> Result:
    """fn(a, b) -> length of the longest common subsequence (not substring): ROUGE-L's core."""

    def run() -> int:
        cases = [("police killed the gunman", "police kill the gunman"), ("the gunman kill police", "police killed the gunman"),
                 ("a b c d e", "a x c y e"), ("", "a b"), ("a a a", "a"), ("a b a b", "b a b a")]
        for a, b in cases:
            a, b = a.split(), b.split()
            want = _lcs(a, b)
            got = _as_int(fn(list(a), list(b)), f"a={' '.join(a)!r}, b={' '.join(b)!r}")
            if got != want:
                substring = max((k for k in range(len(a) + 1) for i in range(len(a) - k + 1)
                                 if any(a[i : i + k] == b[j : j + k] for j in range(len(b) - k + 1))), default=0)
                hint = " — that is the longest common SUBSTRING; a subsequence may skip words" if got == substring else ""
                raise Wrong(f"a={' '.join(a)!r}, b={' '.join(b)!r}: got {got!r}, expected {want}{hint}")
        return len(cases)

    return _report("lcs_length", run)


# ----------------------------------------------------------------------------- lesson 11


def last_token_pool(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Result:
    """fn(hidden (B, T, C), lengths (B,)) -> (B, C): each row's hidden state at its own last real token (right padding)."""

    def run() -> int:
        cases = [(3, 5, 4, [5, 2, 1]), (1, 1, 3, [1]), (4, 7, 2, [3, 7, 7, 6])]
        for n, (B, T, C, lens) in enumerate(cases):
            h = torch.randn(B, T, C, generator=_gen(n))
            lengths = torch.tensor(lens)
            want = h[torch.arange(B), lengths - 1]
            mistakes = [
                _Mistake("last", lambda h, l: h[:, -1], "took position T-1 for every row: padded rows would be pooled on padding"),
                _Mistake("first", lambda h, l: h[:, 0],
                         "took the first token; a causal model has read the whole text only at the last one"),
                _Mistake("offby1", lambda h, l, B=B, T=T: h[torch.arange(B), l.clamp(max=T - 1)],
                         "off by one: the last real token of a row of length L is at index L-1"),
                _Mistake("mean", lambda h, l: h.mean(1), "averaged over all positions, padding included"),
            ]
            _same(fn(h.clone(), lengths.clone()), want, f"case {n} (lengths {lens}, T={T})", mistakes=mistakes, args=(h, lengths))
        return len(cases)

    return _report("last_token_pool", run)


def lora_forward(fn: Callable[..., torch.Tensor]) -> Result:
    """fn(x, weight (out, in), bias, A (r, in), B (out, r), alpha) -> x W^T + b + (alpha / r) x A^T B^T."""

    def run() -> int:
        cases = [(2, 3, 8, 6, 2, 4.0), (1, 1, 4, 4, 1, 1.0), (3, 2, 5, 7, 3, 16.0)]
        for n, (B_, T, din, dout, r, alpha) in enumerate(cases):
            g = _gen(n)
            x = torch.randn(B_, T, din, generator=g)
            w, b = torch.randn(dout, din, generator=g), torch.randn(dout, generator=g)
            A, Bm = torch.randn(r, din, generator=g), torch.randn(dout, r, generator=g)
            base = x @ w.t() + b
            delta = x @ A.t() @ Bm.t()
            args = (x, w, b, A, Bm, alpha)
            mistakes = [
                _Mistake("noscale", lambda *a, base=base, delta=delta: base + delta, "the update is not scaled: multiply it by alpha / r"),
                _Mistake("inverse", lambda *a, base=base, delta=delta, r=r, alpha=alpha: base + delta * (r / alpha),
                         "scaled by r / alpha; the factor is alpha / r"),
                _Mistake("nobase", lambda *a, delta=delta, r=r, alpha=alpha: delta * (alpha / r),
                         "the frozen base layer's output x W^T + b is missing: LoRA is not a separate model, it adds a "
                         "low-rank update to the frozen layer (one that merges back into W)"),
            ]
            _same(fn(*(a.clone() if isinstance(a, torch.Tensor) else a for a in args)), base + delta * (alpha / r),
                  f"case {n} (r={r}, alpha={alpha:g})", mistakes=mistakes, args=args)
        return len(cases)

    return _report("lora_forward", run)


# ----------------------------------------------------------------------------- lessons 12, 13


def target_only_targets(fn: Callable[[list[int], list[int]], tuple[list[int], list[int]]]) -> Result:
    """fn(prompt_ids, answer_ids) -> (inputs, targets): inputs = (prompt + answer)[:-1], targets = the next tokens
    with -100 wherever the next token is still part of the prompt (gptlab.data.target_only_batch, one row)."""
    from gptlab.data import target_only_batch

    def run() -> int:
        cases = [([1, 2, 3], [4, 5]), ([7], [8]), ([1, 1, 1, 1], [2, 3, 4]), ([9, 8], [7])]
        for prompt, answer in cases:
            idx, tgt = target_only_batch([(prompt, answer)])
            want_x, want_y = idx[0].tolist(), tgt[0].tolist()
            got = fn(list(prompt), list(answer))
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise Wrong(f"prompt={prompt}, answer={answer}: return (inputs, targets), got {got!r}")
            gx, gy = [list(map(int, _tensor(v, "ids").tolist())) for v in got]
            case = f"prompt={prompt}, answer={answer}"
            if gx != want_x:
                raise Wrong(f"{case}: inputs {gx}, expected {want_x} — the input is the whole sequence but its last token")
            if gy != want_y:
                seq = prompt + answer
                if gy == seq[1:]:
                    hint = "nothing is masked: targets that are prompt tokens must be -100"
                elif gy == [-100] * len(prompt) + answer[1:]:
                    hint = "masked one too many: the first answer token is predicted from the last prompt position"
                else:
                    hint = "targets[t] is the token at t+1, or -100 while that token is still prompt"
                raise Wrong(f"{case}: targets {gy}, expected {want_y} — {hint}")
        return len(cases)

    return _report("target_only_targets", run)


def novel_ngram_share(fn: Callable[[list[str], list[str], int], float]) -> Result:
    """fn(summary_words, source_words, n) -> share of the summary's n-grams (repeats counted) absent from the source."""

    def run() -> int:
        src = "we propose a new method for training small language models on scientific text".split()
        cases = [("we propose a new method".split(), 2), ("a small model trains fast".split(), 1),
                 ("a new new method a new".split(), 2), ("new method for training small".split(), 3),
                 ("totally different words here".split(), 2)]
        for summ, n in cases:
            grams = [tuple(summ[i : i + n]) for i in range(len(summ) - n + 1)]
            have = {tuple(src[i : i + n]) for i in range(len(src) - n + 1)}
            want = sum(g not in have for g in grams) / len(grams)
            got = float(fn(list(summ), list(src), n))
            if not math.isclose(got, want, abs_tol=1e-9):
                uniq = sum(g not in have for g in set(grams)) / len(set(grams))
                copied = 1 - want
                hint = (" — that is the share of COPIED n-grams; novel = not in the source" if math.isclose(got, copied) else
                        " — count every n-gram of the summary, repeats included" if math.isclose(got, uniq) else "")
                raise Wrong(f"summary={' '.join(summ)!r}, n={n}: got {got:.4g}, expected {want:.4g}{hint}")
        return len(cases)

    return _report("novel_ngram_share", run)


def _cross_ref(y: torch.Tensor, mem: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, wv: torch.Tensor,
               src_len: torch.Tensor, *, causal: bool = False, pad: bool = True, dim: int = -1) -> torch.Tensor:
    q, k, v = y @ wq, mem @ wk, mem @ wv
    att = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))
    T, S = y.size(1), mem.size(1)
    if pad:
        att = att.masked_fill((torch.arange(S)[None, None, :] >= src_len[:, None, None]), float("-inf"))
    if causal:
        att = att.masked_fill(~torch.ones(T, S, dtype=torch.bool).tril(), float("-inf"))
    return F.softmax(att, dim=dim).nan_to_num(0.0) @ v


def cross_attention(fn: Callable[..., torch.Tensor]) -> Result:
    """fn(y (B, T, C), memory (B, S, C), w_q, w_k, w_v (C, hs), src_len (B,)) -> (B, T, hs): one cross-attention head.

    Queries come from the decoder, keys and values from the encoder's output; every target position
    may look at every REAL source position (no causal mask), never at padding (positions >= src_len).
    """

    def run() -> int:
        cases = [(2, 3, 5, 8, 4, [5, 2]), (1, 4, 1, 4, 2, [1]), (3, 2, 6, 6, 3, [6, 6, 3])]
        for n, (B, T, S, C, hs, lens) in enumerate(cases):
            g = _gen(n)
            y, mem = torch.randn(B, T, C, generator=g), torch.randn(B, S, C, generator=g)
            ws = [torch.randn(C, hs, generator=g) for _ in range(3)]
            src_len = torch.tensor(lens)
            args = (y, mem, *ws, src_len)
            mistakes = [
                _Mistake("causal", lambda *a: _cross_ref(*a, causal=True),
                         "a causal mask on cross-attention: the whole source is known, so every target position may see all of it "
                         "(the encoder side is read bidirectionally; only the decoder's self-attention is causal)"),
                _Mistake("pad", lambda *a: _cross_ref(*a, pad=False),
                         "padding positions of the source get attention: mask keys at positions >= src_len"),
                _Mistake("axis", lambda *a: _cross_ref(*a, dim=-2),
                         "softmax over the wrong axis: normalise over the source positions (dim=-1)"),
            ]
            _same(fn(*(a.clone() for a in args)), _cross_ref(*args), f"case {n} (T={T}, S={S}, src_len={lens})",
                  mistakes=mistakes, args=args)
        return len(cases)

    return _report("cross_attention", run)


# ----------------------------------------------------------------------------- lesson 14


def rms_norm(fn: Callable[..., torch.Tensor]) -> Result:
    """fn(x, weight, eps=1e-6) -> x / sqrt(mean(x**2, last axis) + eps) * weight (RMSNorm: no mean subtraction, no bias)."""

    def run() -> int:
        eps = 1e-6
        cases = [(2, 3, 8), (1, 1, 4), (4, 16)]
        for n, shape in enumerate(cases):
            g = _gen(n)
            x = torch.randn(*shape, generator=g) * 2 + 1.5
            w = torch.randn(shape[-1], generator=g)
            args = (x, w, eps)
            want = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w
            mistakes = [
                _Mistake("ln", lambda x, w, eps: F.layer_norm(x, (x.size(-1),), w, None, eps),
                         "you subtracted the mean: that is LayerNorm; RMSNorm only divides by the root mean square"),
                _Mistake("std", lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w,
                         "eps outside the square root; it goes inside: sqrt(mean(x²) + eps)"),
                _Mistake("noweight", lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps),
                         "the learned weight is not applied"),
            ]
            _same(fn(x.clone(), w.clone(), eps), want, f"case {n} (shape {shape})", atol=1e-5, mistakes=mistakes, args=args)
        return len(cases)

    return _report("rms_norm", run)


def _int8_ref(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
    return torch.round(w / scale).clamp(-127, 127).to(torch.int8), scale


def int8_quantize(fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> Result:
    """fn(w (out, in) float) -> (q int8 (out, in), scale (out, 1)): symmetric per-row int8, scale = max|row| / 127,
    q = round(w / scale); q * scale approximates w."""

    def run() -> int:
        cases = [torch.randn(4, 8, generator=_gen(0)), torch.randn(3, 5, generator=_gen(1)) * torch.tensor([[0.01], [1.0], [100.0]]),
                 torch.tensor([[0.0, 0.0], [1.0, -1.0]])]
        for n, w in enumerate(cases):
            got = fn(w.clone())
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise Wrong(f"case {n}: return (q, scale), got {type(got).__name__}")
            q, scale = _tensor(got[0], "q"), _tensor(got[1], "scale")
            want_q, want_s = _int8_ref(w)
            if q.dtype != torch.int8:
                raise Wrong(f"case {n}: q must be torch.int8 (1 byte per weight), got {q.dtype}")
            if scale.numel() == 1 and want_s.numel() > 1:
                raise Wrong(f"case {n}: one scale for the whole matrix; use one per row (out, 1) so small rows keep their precision")
            _same(scale.reshape(want_s.shape) if scale.numel() == want_s.numel() else scale, want_s, f"case {n} scale",
                  rtol=1e-5, atol=1e-12)
            if not torch.equal(q, want_q):
                trunc = torch.trunc(w / want_s).clamp(-127, 127).to(torch.int8)
                hint = " — truncated toward zero; round to the nearest integer" if torch.equal(q, trunc) else ""
                idx = tuple(int(i) for i in (q != want_q).nonzero()[0])
                raise Wrong(f"case {n}: q{list(idx)} = {int(q[idx])}, expected {int(want_q[idx])}{hint}")
        return len(cases)

    return _report("int8_quantize", run)


# ----------------------------------------------------------------------------- lesson 15


def _lstm_ref(x, h, c, W_ih, W_hh, b_ih, b_hh, order="ifgo", input_gate=True, tanh_c=True):
    gates = dict(zip(order, (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)))
    i, f, g, o = torch.sigmoid(gates["i"]), torch.sigmoid(gates["f"]), torch.tanh(gates["g"]), torch.sigmoid(gates["o"])
    c = f * c + (i * g if input_gate else g)
    return o * (torch.tanh(c) if tanh_c else c), c


def lstm_step(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> Result:
    """fn(x, h, c, W_ih, W_hh, b_ih, b_hh) -> (h_new, c_new): one LSTM step, PyTorch's gate order i, f, g, o."""

    def run() -> int:
        cases = [(1, 3, 2), (2, 5, 3), (4, 1, 6)]  # (batch, input size, hidden size)
        for k, (B, I, H) in enumerate(cases):
            g = _gen(k)
            cell = torch.nn.LSTMCell(I, H)
            with torch.no_grad():
                for p in cell.parameters():
                    p.copy_(torch.randn(p.shape, generator=g))
            x, h, c = torch.randn(B, I, generator=g), torch.randn(B, H, generator=g), torch.randn(B, H, generator=g)
            args = (x, h, c, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
            with torch.no_grad():
                want_h, want_c = cell(x, (h, c))
                got = fn(*(a.detach().clone() for a in args))
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise Wrong(f"case {k + 1}: return a tuple (h_new, c_new), got {type(got).__name__}")
            ref = [a.detach() for a in args]
            mistakes = [
                _Mistake("order", lambda ref=ref: _lstm_ref(*ref, order="ifog")[1],
                         "gates in the order i, f, o, g: PyTorch stacks them i, f, g, o"),
                _Mistake("input", lambda ref=ref: _lstm_ref(*ref, input_gate=False)[1],
                         "c_new = f*c + g forgets the input gate: c_new = f*c + i*g"),
            ]
            _same(got[1], want_c, f"case {k + 1} (B={B}, I={I}, H={H}) c_new", atol=1e-5, mistakes=mistakes)
            mistakes_h = [_Mistake("tanh", lambda ref=ref: _lstm_ref(*ref, tanh_c=False)[0],
                                   "h_new = o * tanh(c_new): the tanh is missing")]
            _same(got[0], want_h, f"case {k + 1} (B={B}, I={I}, H={H}) h_new", atol=1e-5, mistakes=mistakes_h)
        return len(cases)

    return _report("lstm_step", run)


def _ece_ref(conf, correct, n_bins, weighted=True, midpoints=False, signed=False, left_closed=False):
    """The reference ECE (weighted=False: bins weighted equally; midpoints=True: bin midpoints as confidence;
    signed=True: accuracy - confidence without the absolute value, a slip; left_closed=True: the wrong [lo, hi) bins)."""
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    total, gaps = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = ((conf >= lo) & (conf < hi)) if left_closed else ((conf > lo) & (conf <= hi))
        if m.any():
            c = (lo + hi) / 2 if midpoints else conf[m].mean()
            gap = float(correct[m].mean()) - float(c)
            gap = gap if signed else abs(gap)
            gaps.append(gap)
            total += int(m.sum()) * gap
    return total / len(conf) if weighted else sum(gaps) / len(gaps)


def expected_calibration_error(fn: Callable[[torch.Tensor, torch.Tensor, int], float]) -> Result:
    """fn(confidence, correct, n_bins) -> ECE: equal-width bins (lo, hi] on [0, 1],
    the bin-size-weighted mean |accuracy - mean confidence|."""

    def run() -> int:
        cases = [(200, 10), (1000, 15), (50, 5), (7, 10), (40, 4)]
        for k, (n, n_bins) in enumerate(cases):
            g = _gen(100 + k)
            conf = torch.rand(n, generator=g, dtype=torch.float64).clamp_min(1e-6)
            if k == 4:  # on the edges: exactly 1.0 (softmax returns it in fp32) and the inner edges 0.25, 0.5, 0.75
                conf[:12] = torch.tensor([1.0, 0.25, 0.5, 0.75], dtype=torch.float64).repeat(3)
            correct = (torch.rand(n, generator=g, dtype=torch.float64) < conf**1.5).double()
            want = _ece_ref(conf, correct, n_bins)
            got = float(fn(conf.clone(), correct.clone(), n_bins))
            if math.isclose(got, want, abs_tol=1e-6):
                continue
            case = f"case {k + 1} ({n} predictions, {n_bins} bins)"
            if math.isclose(got, _ece_ref(conf, correct, n_bins, weighted=False), abs_tol=1e-6):
                raise Wrong(f"{case}: got {got:.4g}, expected {want:.4g} — weight each bin by its share of the predictions, not equally")
            if math.isclose(got, _ece_ref(conf, correct, n_bins, signed=True), abs_tol=1e-6) \
                    or math.isclose(got, -_ece_ref(conf, correct, n_bins, signed=True), abs_tol=1e-6):
                raise Wrong(f"{case}: got {got:.4g}, expected {want:.4g} — the gaps are signed, so over- and under-confident "
                            "bins cancel: take |accuracy - confidence| per bin (a confident model is not a right one)")
            if k == 4 and math.isclose(got, _ece_ref(conf, correct, n_bins, left_closed=True), abs_tol=1e-6):
                raise Wrong(f"{case}: got {got:.4g}, expected {want:.4g} — the bins are (lo, hi]: a confidence on an edge "
                            "belongs to the bin below it, and 1.0 to the last bin (with [lo, hi) it falls out of every bin)")
            if math.isclose(got, _ece_ref(conf, correct, n_bins, midpoints=True), abs_tol=1e-6):
                raise Wrong(f"{case}: got {got:.4g}, expected {want:.4g} — "
                            "compare with the mean confidence in the bin, not the bin's midpoint")
            raise Wrong(f"{case}: got {got:.4g}, expected {want:.4g}")
        return len(cases)

    return _report("expected_calibration_error", run)
