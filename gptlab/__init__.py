"""gptlab: the finalized pieces of the gptlab course, one module per concern.

Lower layers never import upper ones (tests/test_imports.py checks it), so each
module can be read with only the ones above it in this list in mind:

    config       GPTConfig, TrainConfig and the one PRESETS table           lessons 05, 06
    device       device, seeds, bf16 autocast, eval_mode                   05, 06, 14
    datasets     the dataset registry and pinned, checked fetch()           00-02, 10-13
    files        the writer lock shared by checkpoints and token shards     06
    tokenizers   CharTokenizer, train_bpe, gpt2                             01
    model        attention kernel, CausalSelfAttention, MLP, Block, GPT     03, 04, 05
    generation   sampling, beam search, streaming                           07
    metrics      perplexity, BLEU/chrF/ROUGE, diversity, bootstrap          10
    data         token windows, get_batch, padded batches, token shards     02, 06, 11-13
    checkpoint   the one checkpoint format (LM, classifier, adapters)       06, 11-14
    lora         low-rank adapters                                          11, 14
    distributed  process groups, rank helpers                               14
    training     the one training loop (fit) and pretraining (train)        06
    seq2seq      the encoder-decoder                                        12, 15
    finetune     classifier head, freezing, fine-tuning adapters of fit     11-13
    tasks        the applications' data, prompt formats, translate()        11-13
    pretrained   load_hf_gpt2                                               09
    attention    capture attention weights, head scores                     08
    rnn          CharLSTM, the recurrent baseline                           15
    scaling      scaling-law fit (Chinchilla form)                          15
    viz, diagrams, checks, course, cli: pictures, exercise checks, lesson helpers, the command line

Importing the package imports nothing heavy: `GPT`, `GPTConfig` and the submodules load on first
use (PEP 562's module `__getattr__`). So `gptlab --help` answers without loading PyTorch (0.04
instead of 1.7 CPU-seconds on the course machine), while `from gptlab import GPT, GPTConfig` and
`import gptlab; gptlab.viz` work as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ below loads these
    from gptlab.config import GPTConfig
    from gptlab.model import GPT

__all__ = ["GPT", "GPTConfig"]
__version__ = "0.1.0"

# Every submodule, so that `gptlab.viz` works after a bare `import gptlab` (and tab completion lists them).
_SUBMODULES = frozenset({
    "attention", "checkpoint", "checks", "cli", "config", "course", "data", "datasets", "device", "diagrams",
    "distributed", "files", "finetune", "generation", "lora", "metrics", "model", "pretrained", "rnn", "scaling",
    "seq2seq", "tasks", "tokenizers", "training", "viz",
})


def __getattr__(name: str) -> Any:
    """Load `GPT`, `GPTConfig` or a submodule the first time it is asked for (then it is a plain attribute)."""
    if name in ("GPT", "GPTConfig"):
        value = getattr(importlib.import_module("gptlab.model" if name == "GPT" else "gptlab.config"), name)
        globals()[name] = value  # later lookups find the plain attribute, not this function
        return value
    if name in _SUBMODULES:
        # What `import gptlab.<name>` does anyway (it also binds the attribute); not a layering dependency.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'gptlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
