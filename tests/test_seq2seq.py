"""The encoder-decoder baseline: masks, an explicit forward, decoding through gptlab.generation."""

import math

import pytest
import torch
from torch.nn import functional as F

from gptlab.config import GPTConfig
from gptlab.generation import beam_search, generate
from gptlab.model import GPT
from gptlab.seq2seq import Attention, EncoderDecoder, Seq2SeqConfig

CFG = dict(vocab_size=50, block_size=16, n_head=2, n_embd=16)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    m = EncoderDecoder(Seq2SeqConfig(**{**CFG, "n_encoder_layer": 2, "n_decoder_layer": 2, **kw}))
    for p in m.parameters():  # non-trivial biases and LayerNorm gains, so the check below sees them
        p.data.add_(0.05 * torch.randn_like(p))
    return m.eval()


def test_parameters_match_a_gpt_of_six_layers():
    s = EncoderDecoder(Seq2SeqConfig(vocab_size=3000, block_size=48, n_encoder_layer=2, n_decoder_layer=3, n_head=4, n_embd=128))
    g = GPT(GPTConfig(vocab_size=3000, block_size=96, n_layer=6, n_head=4, n_embd=128))
    # 2 encoder blocks (12 C^2 each) + 3 decoder blocks (16 C^2) = 6 GPT blocks; two 48-position tables = one of 96
    assert abs(s.get_num_params() - g.get_num_params()) / g.get_num_params() < 0.002


def _ln(x, ln):
    return F.layer_norm(x, (x.size(-1),), ln.weight, ln.bias, 1e-5)


def _attend(xq, xkv, att_mod, allowed):
    """Multi-head attention written out: allowed (T, S) or (B, T, S) booleans."""
    B, T, C = xq.shape
    nh, hs = att_mod.n_head, C // att_mod.n_head
    q = (xq @ att_mod.c_q.weight.T + att_mod.c_q.bias).view(B, T, nh, hs).transpose(1, 2)
    kv = xkv @ att_mod.c_kv.weight.T + att_mod.c_kv.bias
    k = kv[..., :C].reshape(B, -1, nh, hs).transpose(1, 2)
    v = kv[..., C:].reshape(B, -1, nh, hs).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / math.sqrt(hs)
    s = s.masked_fill(~(allowed if allowed.dim() == 4 else allowed[:, None]), float("-inf"))
    y = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
    return y @ att_mod.c_proj.weight.T + att_mod.c_proj.bias


def _mlp(x, mlp):
    return mlp.c_proj(F.gelu(mlp.c_fc(x), approximate="tanh"))


def _self_attn_causal(x, attn):
    B, T, C = x.shape
    nh, hs = attn.n_head, C // attn.n_head
    q, k, v = (x @ attn.c_attn.weight.T + attn.c_attn.bias).split(C, dim=2)
    q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
    s = (q @ k.transpose(-1, -2) / math.sqrt(hs)).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C) @ attn.c_proj.weight.T + attn.c_proj.bias


def test_forward_equals_an_explicit_computation():
    m = _model()
    src = torch.tensor([[1, 2, 3, 4, 0, 0], [5, 6, 7, 8, 9, 10]])
    src_mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6], dtype=torch.bool)
    tgt = torch.tensor([[11, 12, 13], [14, 15, 16]])
    logits, _ = m(src, tgt, src_mask=src_mask)

    key_ok = src_mask[:, None, :]  # (B, 1, S): every query may see every real source token
    x = m.wte.weight[src] + m.encoder.wpe.weight[:6]
    for blk in m.encoder.h:
        h = _ln(x, blk.ln_1)
        x = x + _attend(h, h, blk.attn, key_ok.expand(2, 6, 6))
        x = x + _mlp(_ln(x, blk.ln_2), blk.mlp)
    memory = _ln(x, m.encoder.ln_f)
    y = m.wte.weight[tgt] + m.decoder.wpe.weight[:3]
    for blk in m.decoder.h:
        y = y + _self_attn_causal(_ln(y, blk.ln_1), blk.attn)
        y = y + _attend(_ln(y, blk.ln_x), memory, blk.cross, key_ok.expand(2, 3, 6))
        y = y + _mlp(_ln(y, blk.ln_2), blk.mlp)
    expected = _ln(y, m.decoder.ln_f) @ m.wte.weight.T
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


def test_decoder_is_causal_and_encoder_bidirectional():
    m = _model()
    src = torch.tensor([[1, 2, 3, 4, 5]])
    tgt = torch.tensor([[6, 7, 8, 9]])
    base, _ = m(src, tgt)
    tgt2 = tgt.clone()
    tgt2[0, 2] = 30
    changed, _ = m(src, tgt2)
    torch.testing.assert_close(changed[:, :2], base[:, :2])  # target positions 0, 1 cannot see position 2
    assert not torch.allclose(changed[:, 2:], base[:, 2:])
    src2 = src.clone()
    src2[0, -1] = 40
    mem, mem2 = m.encode(src), m.encode(src2)
    assert not torch.allclose(mem[:, 0], mem2[:, 0])  # the first source token sees the last one
    assert not torch.allclose(m(src2, tgt)[0][:, 0], base[:, 0])  # so does every target token


def test_padding_gets_zero_cross_attention_and_changes_nothing():
    m = _model()
    src = torch.tensor([[1, 2, 3, 0, 0]])
    mask = torch.tensor([[True, True, True, False, False]])
    tgt = torch.tensor([[6, 7, 8]])
    for blk in m.decoder.h:
        blk.cross.capture = True
    base, _ = m(src, tgt, src_mask=mask)
    for blk in m.decoder.h:
        att = blk.cross.att  # (B, n_head, T, S)
        assert att.shape == (1, 2, 3, 5)
        assert (att[..., 3:] == 0).all() and torch.allclose(att.sum(-1), torch.ones(1, 2, 3))
    other, _ = m(torch.tensor([[1, 2, 3, 44, 45]]), tgt, src_mask=mask)
    torch.testing.assert_close(other, base)
    short, _ = m(src[:, :3], tgt)  # the same as no padding at all
    torch.testing.assert_close(short, base, rtol=1e-5, atol=1e-5)


def test_flash_and_explicit_attention_agree():
    m = _model()
    src, tgt = torch.tensor([[1, 2, 3, 0]]), torch.tensor([[6, 7, 8]])
    mask = torch.tensor([[True, True, True, False]])
    a, _ = m(src, tgt, src_mask=mask)
    for mod in m.modules():
        if hasattr(mod, "flash"):
            mod.flash = False
    b, _ = m(src, tgt, src_mask=mask)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_decoding_through_generation_cached_equals_uncached():
    m = _model()
    src = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    dec = m.condition(src, mask)
    start = torch.tensor([[7], [7]])
    a = generate(dec, start, 8, do_sample=False)
    b = generate(dec, start, 8, do_sample=False, use_cache=False)
    assert torch.equal(a, b)
    # row by row gives the same tokens as the padded batch
    for i, n in enumerate((4, 2)):
        one = generate(m.condition(src[i : i + 1, :n]), start[:1], 8, do_sample=False)
        assert torch.equal(one, a[i : i + 1])
    # the stop token ends decoding; beam search shares one memory row across beams
    stop = int(a[0, 3])
    s = generate(m.condition(src[:1]), start[:1], 8, do_sample=False, stop_tokens=stop)
    assert s.size(1) <= 4 and int(s[0, -1]) == stop
    beams = beam_search(m.condition(src[:1]), start[:1], 6, num_beams=3)
    beams_nc = beam_search(m.condition(src[:1]), start[:1], 6, num_beams=3, use_cache=False)
    assert torch.equal(beams, beams_nc) and beams.size(1) == 7


def test_bad_inputs_fail_clearly():
    m = _model()
    with pytest.raises(ValueError, match="src"):
        m.encode(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="block_size"):
        m.encode(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        m(torch.tensor([[1, 2]]), torch.tensor([[60]]))
    with pytest.raises(ValueError, match="memory_mask"):
        m(torch.tensor([[1, 2]]), torch.tensor([[3]]), src_mask=torch.tensor([[1, 1]]))
    with pytest.raises(ValueError, match="n_encoder_layer"):
        Seq2SeqConfig(n_encoder_layer=0)
    with pytest.raises(TypeError, match="Seq2SeqConfig"):
        EncoderDecoder(GPTConfig())
    assert isinstance(m.decoder.h[0].cross, Attention)


def test_source_and_target_batches_must_agree():
    m = _model()
    src, tgt = torch.randint(0, 50, (2, 4)), torch.randint(0, 50, (3, 2))
    with pytest.raises(ValueError, match=r"src has 2 rows but idx \(the target ids\) has 3: each source sentence needs its own"):
        m(src, tgt)
    with pytest.raises(ValueError, match=r"has 3 rows but the memory holds 2 source sentences"):
        m.decode(tgt, m.encode(src))
    two = m.condition(src)  # beam search shares one memory row among its beams: two rows cannot be shared
    with pytest.raises(ValueError, match=r"has 1 rows but the memory holds 2 source sentences: .*model.condition\(src\[i : i \+ 1\]\)"):
        beam_search(two, torch.tensor([[1]]), 3, num_beams=2)
    one = beam_search(m.condition(src[:1]), torch.tensor([[1]]), 3, num_beams=2)  # the fix the message names works
    assert one.shape == (1, 4)
    assert m(src, tgt[:2])[0].shape == (2, 2, 50)
