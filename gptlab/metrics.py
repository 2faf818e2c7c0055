"""Is this generated text any good? The numbers people report, in one place (lesson 10; 11-13 use them).

Three families, each answering a different question:

- **How surprised is a model by a text?** `perplexity` and `bits_per_char`: the
  model's average negative log-likelihood per token (or per character, which
  compares models whose tokenizers differ). Texts longer than the context window
  are scored with the standard sliding window.
- **How close is a text to a reference?** `bleu` and `chrf` (translation) wrap
  sacreBLEU, `rouge` (summarization) wraps Google's rouge-score. These are the
  implementations papers cite; a hand-written BLEU differs in tokenization and
  smoothing details and gives numbers nobody can compare against, so the package
  has none (lesson 10 derives BLEU by hand and checks it against this one).
- **What does a set of samples look like?** `distinct_n` and `self_bleu`
  (diversity across samples), `repetition_rate` (degeneration inside one sample),
  `memorized_fraction` (copying the training text rather than generalising),
  `nonword_rate` (made-up words: a character model's misspellings).

Is system B better than A, or lucky on this test set? `paired_bootstrap` resamples the
test set (Koehn, 2004) from `corpus_stats`, the per-sentence counts BLEU and chrF sum (or
any per-item table, e.g. per-prompt NLL sums); `bootstrap_interval` gives one system's
interval the same way. `spearman` (on average ranks) compares a metric with human ratings.

Scales: `bleu`, `chrf`, `rouge` and `self_bleu` are on 0-100, as papers print them;
`distinct_n`, `repetition_rate` and `memorized_fraction` are fractions in [0, 1].

Word-level helpers split a `str` on whitespace; pass a list of tokens or ids to
count in other units (e.g. `list(text)` for characters).
"""

from __future__ import annotations

import functools
import math
import operator
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Union

import torch
import torch.nn as nn
from torch.nn import functional as F

from gptlab.device import eval_mode

__all__ = [
    "token_nlls",
    "perplexity",
    "bits_per_char",
    "ngrams",
    "distinct_n",
    "repetition_rate",
    "self_bleu",
    "bleu",
    "chrf",
    "rouge",
    "memorized_fraction",
    "nonword_rate",
    "paired_bootstrap",
    "bootstrap_interval",
    "average_ranks",
    "spearman",
    "words",
    "compression_ratio",
    "novel_ngrams",
    "unsupported_ngrams",
]

Tokens = Union[str, Sequence[Any]]

# ----------------------------------------------------------------------------- argument checks


def _check_n(n: Any, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive integer (the n-gram length), got {n!r}")
    return n


def _check_texts(texts: Any, name: str) -> list[str]:
    """A non-empty list of strings (a lone str is a common slip: it would be read as a list of characters)."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, got one str; wrap it: [{name[:-1] if name.endswith('s') else name}]")
    if not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{name} is empty: give at least one string")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(t).__name__}")
    return list(texts)


def _check_references(references: Any, n_hyp: int) -> list[list[str]]:
    """references[i] is a str (one reference) or a non-empty list of str (several) for hypothesis i."""
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(
            f"references must be a list with one entry per hypothesis (a str, or a list of str for several references), "
            f"got {type(references).__name__}"
        )
    if len(references) != n_hyp:
        raise ValueError(
            f"references has {len(references)} entries but there are {n_hyp} hypotheses; give one entry "
            "(a str, or a list of str for several references) per hypothesis"
        )
    out: list[list[str]] = []
    for i, r in enumerate(references):
        if not isinstance(r, (str, Sequence)):
            raise TypeError(f"references[{i}] must be a str or a list of str, got {type(r).__name__}")
        out.append(_check_texts([r] if isinstance(r, str) else r, f"references[{i}]"))
    return out


def _tokens(x: Any, name: str) -> tuple:
    """A str splits on whitespace (words); a list/tuple/1-D tensor of tokens or ids is used as is."""
    if isinstance(x, str):
        return tuple(x.split())
    if isinstance(x, torch.Tensor):
        if x.dim() != 1:
            raise ValueError(f"{name} must be a 1-D tensor of token ids, got shape {tuple(x.shape)}")
        return tuple(x.tolist())
    if isinstance(x, Sequence):
        return tuple(x)
    raise TypeError(f"{name} must be a str (split into words) or a list of tokens/ids, got {type(x).__name__}")


def ngrams(tokens: Sequence[Any], n: int) -> list[tuple]:
    """The n-grams of `tokens` in order: ngrams("a b c".split(), 2) -> [("a", "b"), ("b", "c")]."""
    _check_n(n)
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


# ----------------------------------------------------------------------------- model-based: perplexity


def _check_ids(model: nn.Module, ids: Any) -> torch.Tensor:
    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        raise TypeError(f"model must be a gptlab GPT (an nn.Module with .config.block_size), got {type(model).__name__}")
    if isinstance(ids, torch.Tensor):
        if ids.dim() == 2 and ids.size(0) == 1:
            ids = ids[0]
        if ids.dim() != 1 or ids.dtype not in (torch.long, torch.int32, torch.int64):
            raise ValueError(f"ids must be a 1-D tensor (or list) of integer token ids, got shape {tuple(ids.shape)} dtype {ids.dtype}")
        ids = ids.long()
    elif isinstance(ids, Sequence) and not isinstance(ids, str):
        if any(isinstance(i, bool) for i in ids):
            raise TypeError("ids must be integer token ids, not booleans")
        try:
            ids = torch.tensor([operator.index(i) for i in ids], dtype=torch.long)
        except TypeError:
            raise TypeError("ids must be a list of integer token ids (encode text with the model's tokenizer first)") from None
    else:
        raise TypeError(f"ids must be a 1-D tensor or list of integer token ids, got {type(ids).__name__}")
    if ids.numel() < 2:
        raise ValueError(f"ids has {ids.numel()} token(s): perplexity needs at least 2 (the first token is context, never scored)")
    return ids


def _windows(n_targets: int, block: int, stride: int) -> list[tuple[int, int]]:
    """(end, n_new) per window over inputs ids[end-block:end] (the first: ids[:end]); it scores its last n_new targets."""
    end = min(block, n_targets)
    out = [(end, end)]
    while end < n_targets:
        new_end = min(end + stride, n_targets)
        out.append((new_end, new_end - end))
        end = new_end
    return out


@torch.no_grad()
def token_nlls(model: nn.Module, ids: Any, *, stride: int | None = None, batch_size: int = 8) -> torch.Tensor:
    """Negative log-likelihood (nats, float64) of ids[1:], each given its left context: shape (len(ids) - 1,).

    A model sees at most block_size tokens. The first window, ids[:block_size],
    scores all of its next-token predictions in one forward pass (token t sees
    all t tokens before it). Each later window is moved `stride` tokens to the
    right and scores only the `stride` tokens that are new, so every token after
    the first window is scored once and with at least block_size - stride + 1
    tokens of context (the first window's see 1 to block_size).
    stride=None means stride 1: every token beyond the first window sees the last
    block_size tokens, exactly what it saw when the model generated it (the
    sliding-window rule of gptlab.generation); a larger stride is proportionally
    cheaper and scores some tokens with less context. Whether that raises the
    loss is an empirical question, not a rule: lesson 10 measures it for its model.
    (This is Hugging Face's "perplexity of fixed-length models" recipe, with the
    last window aligned to the end of the text so it too has a full block.)
    A text of at most block_size + 1 tokens is one window: the plain full-context
    loss, whatever the stride. Runs in eval mode without gradients and restores
    the model's mode.
    """
    ids = _check_ids(model, ids)
    block = model.config.block_size
    if stride is None:
        stride = 1
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= block:
        raise ValueError(f"stride must be None or an integer in [1, block_size={block}], got {stride!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer (windows per forward pass), got {batch_size!r}")
    device = next(model.parameters()).device
    ids = ids.to(device)
    x_all, y_all = ids[:-1], ids[1:]
    windows = _windows(len(y_all), block, stride)
    with eval_mode(model):
        out = []
        end, _ = windows[0]
        logits, _ = model(x_all[None, :end])
        out.append(F.cross_entropy(logits[0].float(), y_all[:end], reduction="none").double())
        rest = windows[1:]  # every later window is a full block ending at `end`
        for i in range(0, len(rest), batch_size):
            chunk = rest[i : i + batch_size]
            ends = torch.tensor([e for e, _ in chunk], device=device)
            x = x_all[ends[:, None] - block + torch.arange(block, device=device)]  # (B, block)
            n_new = max(k for _, k in chunk)
            logits, _ = model(x, last_only=n_new == 1)  # stride 1 needs only the last position
            for row, (e, k) in enumerate(chunk):
                lg = logits[row, -k:].float()
                out.append(F.cross_entropy(lg, y_all[e - k : e], reduction="none").double())
        return torch.cat(out).cpu()


def perplexity(model: nn.Module, ids: Any, *, stride: int | None = None, batch_size: int = 8) -> float:
    """exp(mean negative log-likelihood per token) of `ids` (a 1-D tensor or list of token ids) under `model`.

    The first token is context only; the other len(ids) - 1 are scored. For texts
    longer than the context window see `token_nlls` (sliding window, each token
    scored once). 1 is a perfect model; a uniform guess over V tokens scores V.
    Perplexities of models with different tokenizers are not comparable (their
    tokens differ); use `bits_per_char` for that.
    """
    nll = token_nlls(model, ids, stride=stride, batch_size=batch_size)
    return math.exp(nll.mean().item())


def bits_per_char(model: nn.Module, text: str, tokenizer: Any, *, stride: int | None = None, batch_size: int = 8) -> float:
    """Bits the model needs per character of `text`: total negative log2-likelihood / characters predicted.

    Tokenizer-independent: a character model and a BPE model split the same text
    into different numbers of tokens, so their per-token losses (and perplexities)
    are not comparable, but both assign a probability to the whole text, and
    log2 of that over the number of characters is. The first token is context
    only, so its characters are not counted.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not (hasattr(tokenizer, "encode") and hasattr(tokenizer, "decode")):
        raise TypeError(f"tokenizer must have encode/decode (e.g. CharTokenizer, tiktoken), got {type(tokenizer).__name__}")
    ids = list(tokenizer.encode(text))
    if len(ids) < 2:
        raise ValueError(f"text encodes to {len(ids)} token(s): bits_per_char needs at least 2 (the first is context)")
    n_chars = len(text) - len(tokenizer.decode(ids[:1]))
    if n_chars <= 0:
        raise ValueError("text has no characters after its first token to score")
    nll = token_nlls(model, ids, stride=stride, batch_size=batch_size)
    return nll.sum().item() / math.log(2) / n_chars


# ----------------------------------------------------------------------------- diversity, repetition, copying


def distinct_n(texts: Sequence[Tokens], n: int) -> float:
    """Distinct n-grams / all n-grams, pooled over `texts` (Li et al., 2016): 1 means no n-gram is ever repeated.

    Each text is a str (split on whitespace) or a list of tokens. Low values mean
    the samples keep saying the same things, within or across samples. It says
    nothing about quality: random words score 1.
    """
    n = _check_n(n)
    if isinstance(texts, (str, torch.Tensor)) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of texts (str or token lists), got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("texts is empty: give at least one text")
    grams: list[tuple] = []
    for i, t in enumerate(texts):
        grams += ngrams(_tokens(t, f"texts[{i}]"), n)
    if not grams:
        raise ValueError(f"no text has {n} or more tokens, so there are no {n}-grams to count")
    return len(set(grams)) / len(grams)


def repetition_rate(text_or_ids: Tokens, n: int) -> float:
    """Share of the n-grams of one text that repeat an earlier n-gram of the same text.

    0 for a text that never repeats itself; a greedy loop ("the the the ...")
    approaches 1. A str is split on whitespace; a list or 1-D tensor of ids is
    used as is.
    """
    n = _check_n(n)
    grams = ngrams(_tokens(text_or_ids, "text_or_ids"), n)
    if not grams:
        raise ValueError(f"text_or_ids has fewer than {n} tokens: no {n}-grams to count")
    seen: set[tuple] = set()
    repeats = 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams)


@functools.lru_cache(maxsize=4)
def _corpus_index(corpus: Union[str, tuple], n: int) -> frozenset:
    """Every n-gram of the corpus, built once per (corpus, n): a str's hash is cached, so a lookup is cheap."""
    toks = tuple(corpus.split()) if isinstance(corpus, str) else corpus
    return frozenset(ngrams(toks, n))


def memorized_fraction(texts: Sequence[Tokens], corpus: Union[str, Sequence[Any]], n: int = 8) -> float:
    """Share of the n-grams of `texts` that occur verbatim in `corpus` (the training text), pooled over texts.

    A high value means the model copies long stretches of its training data
    rather than composing new text (Carlini et al. study extraction of memorized
    training data this way). Word n-grams for str inputs (split on whitespace);
    pass token lists (texts and corpus alike) for other units. The corpus's n-gram
    set is built once and cached, so repeated calls on a 1 MB corpus are fast.
    """
    n = _check_n(n)
    if isinstance(texts, (str, torch.Tensor)) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of texts (str or token lists), got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("texts is empty: give at least one text")
    if isinstance(corpus, str):
        key: Union[str, tuple] = corpus
    else:
        key = _tokens(corpus, "corpus")
    if not (corpus.strip() if isinstance(corpus, str) else key):
        raise ValueError("corpus is empty: give the training text")
    index = _corpus_index(key, n)
    grams: list[tuple] = []
    for i, t in enumerate(texts):
        grams += ngrams(_tokens(t, f"texts[{i}]"), n)
    if not grams:
        raise ValueError(f"no text has {n} or more tokens, so there are no {n}-grams to look up")
    return sum(g in index for g in grams) / len(grams)


@functools.lru_cache(maxsize=4)
def _vocabulary(corpus: str) -> frozenset:
    """The corpus's words (as `words` splits them), built once per corpus: a str's hash is cached."""
    return frozenset(words(corpus))


def nonword_rate(texts: Sequence[str], corpus: str) -> float:
    """Share of the words of `texts` that never occur in `corpus` (the training text), pooled over texts.

    A character model that samples an unlikely letter writes a word nobody wrote
    ("winge", "grasin"): this counts such words, so a claim like "truncating the
    tail removes misspellings" can be measured (lesson 10). Words as in `words`
    (lowercased runs of ASCII letters and digits). Human text scores above 0 too:
    names and rare words of held-out text are missing from any finite corpus, so
    read the rate beside human text's.
    """
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("texts is empty: give at least one text")
    if not isinstance(corpus, str) or not corpus.strip():
        raise ValueError("corpus must be the training text, a non-empty str")
    vocab = _vocabulary(corpus)
    ws = [w for t in texts for w in words(t)]
    if not ws:
        raise ValueError("the texts have no words (runs of ASCII letters or digits) to look up")
    return sum(w not in vocab for w in ws) / len(ws)


# ----------------------------------------------------------------------------- reference-based: sacreBLEU, rouge-score

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _ref_streams(refs: list[list[str]]) -> list[list[str | None]]:
    """sacreBLEU wants one stream per reference slot; a hypothesis with fewer references gets None (ignored)."""
    k = max(len(r) for r in refs)
    return [[r[j] if j < len(r) else None for r in refs] for j in range(k)]


def bleu(hypotheses: Sequence[str], references: Sequence[Union[str, Sequence[str]]], *, tokenize: str = "13a") -> float:
    """Corpus BLEU (Papineni et al., 2002) on 0-100, computed by sacreBLEU (Post, 2018).

    references[i] is one reference (a str) or several (a list of str) for
    hypotheses[i]; the number may differ between hypotheses. BLEU is a corpus
    metric: n-gram matches and lengths are summed over all sentences first, so it
    is not the mean of sentence scores. `tokenize` is sacreBLEU's: "13a" (its
    default, the WMT standard) for English and other space-separated languages;
    **"zh" for Chinese targets** (it splits every Chinese character into its own
    token; with "13a" a whole unspaced sentence would be a single word). A warning
    says so when the references contain Chinese and tokenize is "13a".
    """
    import sacrebleu
    from sacrebleu.metrics import BLEU

    hyps = _check_texts(hypotheses, "hypotheses")
    refs = _check_references(references, len(hyps))
    if not isinstance(tokenize, str) or tokenize not in BLEU.TOKENIZERS:
        raise ValueError(f"unknown tokenize={tokenize!r}; use one of sacreBLEU's: {sorted(BLEU.TOKENIZERS)}")
    if tokenize == "13a" and any(_CJK.search(s) for r in refs for s in r):
        warnings.warn("the references contain Chinese characters; pass tokenize='zh' for Chinese BLEU", stacklevel=2)
    return float(sacrebleu.corpus_bleu(hyps, _ref_streams(refs), tokenize=tokenize).score)


def chrf(hypotheses: Sequence[str], references: Sequence[Union[str, Sequence[str]]], *, word_order: int = 0) -> float:
    """Corpus chrF (Popović, 2015) on 0-100 through sacreBLEU: F-score of character n-grams (1-6), beta 2.

    Works on characters, so it needs no tokenizer and suits Chinese and rich
    morphology, and gives partial credit for a word with a wrong ending.
    word_order=2 adds word 1-2-grams (chrF++). With several references per
    hypothesis sacreBLEU scores each sentence against its best-matching one.
    """
    import sacrebleu

    hyps = _check_texts(hypotheses, "hypotheses")
    refs = _check_references(references, len(hyps))
    if isinstance(word_order, bool) or not isinstance(word_order, int) or word_order < 0:
        raise ValueError(f"word_order must be an integer >= 0 (0: chrF, 2: chrF++), got {word_order!r}")
    return float(sacrebleu.corpus_chrf(hyps, _ref_streams(refs), word_order=word_order).score)


def corpus_stats(hypotheses: list[str], references: list, metric: str = "bleu") -> tuple[torch.Tensor, Callable[[torch.Tensor], float]]:
    """Per-sentence sufficient statistics of a corpus metric, and the function that scores their sum.

    Corpus BLEU and chrF are not means of sentence scores: they add up counts
    (matched n-grams, lengths) over the corpus and score the totals. So
    `score(stats.sum(0))` is exactly the corpus score (sacreBLEU's own figure, as in
    gptlab.metrics: BLEU with its "zh" tokenization, chrF), and a resampled test set
    is scored by summing the rows it drew -- no re-tokenizing, so 1,000 bootstrap
    samples take a second. references[i] is a str or a list of str, as for `bleu`. Uses the
    statistics methods sacreBLEU's own significance tests use.
    """
    from sacrebleu.metrics import BLEU, CHRF

    if metric not in ("bleu", "chrf"):
        raise ValueError(f'metric must be "bleu" (zh tokenization) or "chrf", got {metric!r}')
    hyps = _check_texts(hypotheses, "hypotheses")
    refs = _check_references(references, len(hyps))
    m = BLEU(tokenize="zh") if metric == "bleu" else CHRF()
    stats = torch.tensor(m._extract_corpus_statistics(hyps, _ref_streams(refs)), dtype=torch.float64)

    def score(total: torch.Tensor) -> float:
        vals = [int(v) if float(v).is_integer() else float(v) for v in total.tolist()]
        return float(m._compute_score_from_stats(vals).score)

    return stats, score


def paired_bootstrap(
    stats_a: torch.Tensor, stats_b: torch.Tensor, score: Callable[[torch.Tensor], float],
    *, n_samples: int = 1000, seed: int = 0, alpha: float = 0.05,
) -> dict[str, float]:
    """Paired bootstrap resampling (Koehn, 2004) of score(B) - score(A) on one test set.

    stats_a, stats_b: (n, k) per-sentence statistics of the two systems on the same n
    test sentences (corpus_stats), and `score` turns a summed (k,) row into the metric.
    Draw n_samples test sets of n sentences with replacement -- the *same* draw for both
    systems, hence paired -- and score both on each. Returns the two scores, their
    difference, the (alpha/2, 1 - alpha/2) percentile interval of the resampled
    differences, and the fraction of samples in which B does not beat A (a one-sided
    p-value for "B is better").
    """
    if stats_a.dim() != 2 or stats_a.shape != stats_b.shape or stats_a.size(0) == 0:
        raise ValueError(f"stats_a and stats_b must be equally long (n, k) tables with n >= 1, "
                         f"got {tuple(stats_a.shape)} and {tuple(stats_b.shape)}")
    diffs = sorted(score(c @ stats_b) - score(c @ stats_a) for c in _resamples(stats_a, n_samples, seed, alpha))
    a, b = score(stats_a.sum(0)), score(stats_b.sum(0))
    low, high = _percentiles(diffs, alpha)
    return {
        "a": a,
        "b": b,
        "diff": b - a,
        "low": low,
        "high": high,
        "p_b_not_better": sum(d <= 0 for d in diffs) / n_samples,
    }


def bootstrap_interval(
    stats: torch.Tensor, score: Callable[[torch.Tensor], float], *, n_samples: int = 1000, seed: int = 0, alpha: float = 0.05,
) -> tuple[float, float]:
    """(alpha/2, 1 - alpha/2) percentile interval of score(stats) over test sets resampled with replacement.

    The one-system half of `paired_bootstrap`: how much one system's score would
    move on another test set of the same size drawn like this one. `stats` is an
    (n, k) table of per-item statistics (e.g. a prompt's summed NLL and its
    character count) and `score` turns a summed (k,) row into the metric.
    """
    if stats.dim() != 2 or stats.size(0) == 0:
        raise ValueError(f"stats must be an (n, k) table with n >= 1, got shape {tuple(stats.shape)}")
    return _percentiles(sorted(score(c @ stats) for c in _resamples(stats, n_samples, seed, alpha)), alpha)


def _resamples(stats: torch.Tensor, n_samples: int, seed: int, alpha: float) -> Iterator[torch.Tensor]:
    """n_samples rows of counts: how often each of the n items is drawn in a resample of n with replacement."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), e.g. 0.05 for a 95% interval, got {alpha!r}")
    n = stats.size(0)
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_samples):
        yield torch.bincount(torch.randint(0, n, (n,), generator=g), minlength=n).to(stats.dtype)


def _percentiles(sorted_values: list[float], alpha: float) -> tuple[float, float]:
    k = len(sorted_values)
    return sorted_values[int(math.floor(alpha / 2 * k))], sorted_values[min(k - 1, int(math.ceil((1 - alpha / 2) * k)) - 1)]


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n of `values`, ties sharing the mean of the ranks they span: [3, 1, 3] -> [2.5, 1.0, 2.5]."""
    vals = [float(v) for v in values]
    order = sorted(range(len(vals)), key=vals.__getitem__)
    ranks = [0.0] * len(vals)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and vals[order[j + 1]] == vals[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's r of the average ranks (ties handled, as scipy.stats.spearmanr).

    Human ratings on a 4-12 rubric tie often; ranking ties by their order in the
    list would make the value depend on that order. NaN when either side is constant.
    """
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"spearman needs two equally long lists of at least 2 values, got {len(a)} and {len(b)}")
    ra = torch.tensor(average_ranks(a), dtype=torch.float64)
    rb = torch.tensor(average_ranks(b), dtype=torch.float64)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.square().sum() * rb.square().sum()).sqrt()
    return float("nan") if denom == 0 else float((ra * rb).sum() / denom)




@functools.lru_cache(maxsize=2)
def _rouge_scorer(tokenizer: Any = None) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True, tokenizer=tokenizer)


def _drops_chars(text: str) -> bool:
    """Whether rouge-score's default tokenizer would drop letters or digits of `text` (anything non-ASCII)."""
    return any(ord(c) > 127 and unicodedata.category(c)[0] in "LN" for c in text)


ROUGE_MAX_CELLS = 4_000_000  # ROUGE-L's table of hypothesis x reference tokens: ~150 MB of Python ints at most


def _check_rouge_sizes(hyps: list[str], refs: list[list[str]], tokenizer: Any) -> None:
    """Refuse a pair whose ROUGE-L table would be too large, before rouge-score builds it.

    rouge-score computes the longest common subsequence with a full table of
    Python ints, len(hypothesis) x len(reference) tokens: two 20,000-word texts
    need over 5 GB. ROUGE is a summary metric; texts that long are refused by name.
    """
    if tokenizer is None:
        from rouge_score.tokenizers import DefaultTokenizer

        tokenizer = DefaultTokenizer(use_stemmer=False)  # stemming changes words, not their number
    for i, (h, rs) in enumerate(zip(hyps, refs)):
        n_h = len(tokenizer.tokenize(h))
        for r in rs:
            n_r = len(tokenizer.tokenize(r))
            if n_h * n_r > ROUGE_MAX_CELLS:
                raise ValueError(f"rouge: hypothesis {i} has {n_h:,} tokens and its reference {n_r:,}; ROUGE-L's table would "
                                 f"need {n_h * n_r:,} cells, more than the {ROUGE_MAX_CELLS:,} (~150 MB) allowed. ROUGE scores "
                                 "summaries: score shorter texts, or split long ones into parts")


def rouge(hypotheses: Sequence[str], references: Sequence[Union[str, Sequence[str]]], *, tokenizer: Any = None) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures (Lin, 2004) on 0-100, by Google's rouge-score.

    Porter stemming is on ("models" matches "model"). With several references per
    hypothesis each metric takes the maximum over the references, as the SciTLDR
    paper (Cachola et al., 2020) does, then averages over hypotheses.
    Returns {"rouge1": ..., "rouge2": ..., "rougeL": ...}.

    Beware: rouge-score's default tokenizer lowercases and keeps only the ASCII
    letters a-z and digits; **every other character is dropped** (Chinese scores 0,
    "café" becomes "caf"). A warning says so when that happens. Pass `tokenizer`
    (an object with a tokenize(text) -> list[str] method, as rouge-score accepts)
    for other languages. A pair too long for ROUGE-L's table (ROUGE_MAX_CELLS tokens x tokens) is refused.
    """
    hyps = _check_texts(hypotheses, "hypotheses")
    refs = _check_references(references, len(hyps))
    if tokenizer is not None and not callable(getattr(tokenizer, "tokenize", None)):
        raise TypeError(f"tokenizer must have a tokenize(text) -> list[str] method, got {type(tokenizer).__name__}")
    if tokenizer is None and any(_drops_chars(s) for s in hyps + [s for r in refs for s in r]):
        warnings.warn(
            "rouge-score's default tokenizer keeps only ASCII letters and digits; non-ASCII characters are dropped "
            "(pass tokenizer= for other languages)",
            stacklevel=2,
        )
    _check_rouge_sizes(hyps, refs, tokenizer)
    scorer = _rouge_scorer(tokenizer)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for h, r in zip(hyps, refs):
        best = scorer.score_multi(r, h)  # per metric, the reference with the highest F-measure
        for k in totals:
            totals[k] += best[k].fmeasure
    return {k: 100.0 * v / len(hyps) for k, v in totals.items()}


def self_bleu(texts: Sequence[str], n: int = 4) -> float:
    """Self-BLEU (Zhu et al., 2018, Texygen) on 0-100: each text's BLEU against all the others, averaged.

    High means the samples resemble each other (low diversity); 100 means they
    are identical. Sentence BLEU up to n-grams of length `n`, by sacreBLEU with
    its default smoothing ("exp") and effective order (Texygen used NLTK with
    its smoothing method 1, so absolute values differ slightly; compare
    self-BLEU only with self-BLEU computed the same way).
    """
    from sacrebleu.metrics import BLEU

    n = _check_n(n)
    texts = _check_texts(texts, "texts")
    if len(texts) < 2:
        raise ValueError(f"self_bleu needs at least 2 texts (each is scored against the others), got {len(texts)}")
    scorer = BLEU(max_ngram_order=n, effective_order=True)
    scores = [scorer.sentence_score(t, texts[:i] + texts[i + 1 :]).score for i, t in enumerate(texts)]
    return float(sum(scores) / len(scores))


# ----------------------------------------------------------------------------- a summary against its source

# Function words that say nothing about faithfulness: "the" missing from the abstract is no hallucination.
STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or but not no is are was were be been being this that these "
    "those it its we our us they their them which who whom what when where how than then as into onto over under "
    "also can could may might will would should do does did has have had such via using use used both each".split()
)


def words(text: str) -> list[str]:
    """Lowercased runs of ASCII letters and digits: the units ROUGE counts (rouge-score's tokenizer, unstemmed)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return re.findall(r"[a-z0-9]+", text.lower())


def compression_ratio(summary: str, source: str) -> float:
    """Words of the source per word of the summary (SciTLDR's abstracts: ~160 words into ~20, about 8x)."""
    n_sum, n_src = len(words(summary)), len(words(source))
    if n_sum == 0:
        raise ValueError("the summary has no words: compression ratio is undefined")
    return n_src / n_sum


def novel_ngrams(summary: str, source: str, n: int = 2) -> float:
    """Share of the summary's n-grams that do not occur in the source (See et al., 2017).

    0 means pure copying (every n-gram comes from the source), 1 means nothing is
    copied. Extractive summaries score 0; human TLDRs are far from it. Words as in
    `words`; a summary with fewer than n words has no n-grams (ValueError).
    """
    n = _check_n(n)
    grams = ngrams(words(summary), n)
    if not grams:
        raise ValueError(f"the summary has fewer than {n} words: no {n}-grams to count")
    have = set(ngrams(words(source), n))
    return sum(g not in have for g in grams) / len(grams)


def unsupported_ngrams(summary: str, source: str, n: int = 1, *, ignore: frozenset[str] = STOPWORDS) -> list[str]:
    """The summary's n-grams absent from the source, in order, each once: candidate hallucinations.

    A crude faithfulness probe in the spirit of Maynez et al. (2020): a number, a
    name or a technical word that the source never mentions is where an
    unfaithful summary shows itself. Absence is not proof (paraphrase, "model" vs
    "models"): a person reads the list. n-grams made only of `ignore` words
    (function words) are skipped.
    """
    n = _check_n(n)
    have = set(ngrams(words(source), n))
    out: dict[str, None] = {}
    for g in ngrams(words(summary), n):
        if g not in have and not all(w in ignore for w in g):
            out[" ".join(g)] = None
    return list(out)
