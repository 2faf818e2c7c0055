"""gptlab: the finalized pieces of the gptlab course, one module per concern.

    config      GPTConfig and presets
    model       CausalSelfAttention, MLP, Block, GPT, KVCache
    tokenizers  CharTokenizer, train_bpe, gpt2
    data        dataset registry, fetch(), token windows
    training    the training loop and checkpoints
    generation  sampling, beam search, streaming
    pretrained  load_hf_gpt2
    viz         attention maps
    device      get_device, seed_everything
"""

from gptlab.config import GPTConfig
from gptlab.model import GPT

__all__ = ["GPT", "GPTConfig"]
__version__ = "0.1.0"
