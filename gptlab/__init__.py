"""gptlab: the finalized pieces of the gptlab course, one module per concern.

    config      GPTConfig and presets
    model       CausalSelfAttention, MLP, Block, GPT, KVCache
    tokenizers  CharTokenizer, train_bpe, gpt2
    data        dataset registry, fetch(), token windows, token shards
    training    the training loop (one process or DDP under torchrun)
    checkpoint  safetensors checkpoints, validated on load
    distributed process groups and rank helpers
    generation  sampling, beam search, streaming
    pretrained  load_hf_gpt2
    attention   capture attention weights, head scores
    viz         attention plots, widget, offline HTML view
    diagrams    concept figures drawn by code
    metrics     perplexity, bits per char, BLEU/chrF/ROUGE, diversity, memorization
    tasks       the applications' data and prompt formats
    finetune    classifier head, freezing, fine-tuning loop
    lora        low-rank adapters
    rnn         CharLSTM, the recurrent baseline
    scaling     scaling-law fit (Chinchilla form)
    checks      one-line exercise checks
    device      get_device, seed_everything
    course      fast mode and the shared lesson checkpoints
"""

from gptlab.config import GPTConfig
from gptlab.model import GPT

__all__ = ["GPT", "GPTConfig"]
__version__ = "0.1.0"
