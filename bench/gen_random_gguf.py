#!/usr/bin/env python3
"""Writes a random-weight F16 GGUF with the exact tensor shapes and
hyperparameters of a real model, for speed benchmarks only.

Shapes, metadata keys and tensor names follow what llama.cpp's own converter
(convert_hf_to_gguf.py) writes for the real model, so that llama.cpp and
coreai load the file the same way they load the real one:

  qwen2.5-0.5b  arch qwen2: 24 layers, d 896, 14/2 heads, ffn 4864,
                vocab 151936, tied embeddings, q/k/v biases, rope theta 1e6
  llama-3.2-1b  arch llama: 16 layers, d 2048, 32/8 heads, ffn 8192,
                vocab 128256, tied embeddings, rope theta 5e5 with llama3
                scaling (factor 32) written as rope_freqs.weight

The tokenizer is a synthetic byte-level BPE of the right size: the 256 GPT-2
byte symbols, random merges of existing tokens (every merge "a b" yields the
token "ab"), the model's real special tokens at their real ids, and padding
entries as the converter writes them. Matrix weights are N(0, 0.02) in F16;
norms are 1 and biases small, in F32 (as the converter keeps 1-D tensors).
Quantize the result with llama-quantize so the quant mixes are llama.cpp's.

Only the PyPI `gguf` package and numpy are used.
"""
import argparse
import math
import random
import sys

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover
    sys.exit("gen_random_gguf.py needs the PyPI package `gguf` (pip install gguf)")

QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
]


def llama3_specials():
    names = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 4: "<|finetune_right_pad_id|>",
             6: "<|start_header_id|>", 7: "<|end_header_id|>", 8: "<|eom_id|>", 9: "<|eot_id|>",
             10: "<|python_tag|>"}
    out, r = [], 0
    for i in range(256):
        if i in names:
            out.append(names[i])
        else:
            out.append(f"<|reserved_special_token_{r}|>")
            r += 1
    return out


MODELS = {
    "qwen2.5-0.5b": dict(
        arch="qwen2", name="Qwen2.5-0.5B-shape (random weights)", n_layer=24, n_embd=896,
        n_head=14, n_head_kv=2, n_ff=4864, n_vocab=151936, n_ctx=32768, rope_base=1e6,
        rms_eps=1e-6, qkv_bias=True, llama3_rope=None, pre="qwen2",
        n_text=151643, specials=QWEN_SPECIALS, bos=151643, eos=151643, eot=None, eom=None,
        pad=151643, add_bos=False),
    "llama-3.2-1b": dict(
        arch="llama", name="Llama-3.2-1B-shape (random weights)", n_layer=16, n_embd=2048,
        n_head=32, n_head_kv=8, n_ff=8192, n_vocab=128256, n_ctx=131072, rope_base=5e5,
        rms_eps=1e-5, qkv_bias=False,
        llama3_rope=dict(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, orig_ctx=8192),
        pre="llama-bpe", n_text=128000, specials=llama3_specials(), bos=128000, eos=128001,
        eot=128009, eom=128008, pad=None, add_bos=True),
}


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def synthetic_bpe(n_text, seed):
    """n_text byte-level tokens: 256 byte symbols + (n_text - 256) merges."""
    rnd = random.Random(seed)
    tokens = bytes_to_unicode()
    seen = set(tokens)
    merges = []
    # Prefer short pieces, as real vocabularies do: pick operands from a
    # growing pool, weighted towards the earlier (shorter) tokens.
    while len(tokens) < n_text:
        a = tokens[int(len(tokens) * rnd.random() ** 2)]
        b = tokens[int(len(tokens) * rnd.random() ** 3)]
        s = a + b
        if len(s) > 16 or s in seen:
            continue
        seen.add(s)
        tokens.append(s)
        merges.append(f"{a} {b}")
    return tokens, merges


def rope_factors(base, head_dim, p):
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    lo_wl = p["orig_ctx"] / p["low_freq_factor"]
    hi_wl = p["orig_ctx"] / p["high_freq_factor"]
    out = []
    for f in freqs:
        wl = 2 * math.pi / float(f)
        if wl < hi_wl:
            out.append(1.0)
        elif wl > lo_wl:
            out.append(p["factor"])
        else:
            smooth = (p["orig_ctx"] / wl - p["low_freq_factor"]) / \
                (p["high_freq_factor"] - p["low_freq_factor"])
            out.append(1.0 / ((1 - smooth) / p["factor"] + smooth))
    return np.array(out, dtype=np.float32)


def tensor_plan(c):
    """(name, numpy shape (rows, cols) or (n,), kind) in llama.cpp's order."""
    d, hd = c["n_embd"], c["n_embd"] // c["n_head"]
    nq, nkv = c["n_head"] * hd, c["n_head_kv"] * hd
    plan = [("token_embd.weight", (c["n_vocab"], d), "w")]
    if c["llama3_rope"]:
        plan.append(("rope_freqs.weight", (hd // 2,), "rope"))
    for i in range(c["n_layer"]):
        p = f"blk.{i}."
        plan.append((p + "attn_norm.weight", (d,), "one"))
        plan.append((p + "attn_q.weight", (nq, d), "w"))
        if c["qkv_bias"]:
            plan.append((p + "attn_q.bias", (nq,), "bias"))
        plan.append((p + "attn_k.weight", (nkv, d), "w"))
        if c["qkv_bias"]:
            plan.append((p + "attn_k.bias", (nkv,), "bias"))
        plan.append((p + "attn_v.weight", (nkv, d), "w"))
        if c["qkv_bias"]:
            plan.append((p + "attn_v.bias", (nkv,), "bias"))
        plan.append((p + "attn_output.weight", (d, nq), "w"))
        plan.append((p + "ffn_norm.weight", (d,), "one"))
        plan.append((p + "ffn_gate.weight", (c["n_ff"], d), "w"))
        plan.append((p + "ffn_up.weight", (c["n_ff"], d), "w"))
        plan.append((p + "ffn_down.weight", (d, c["n_ff"]), "w"))
    plan.append(("output_norm.weight", (d,), "one"))
    return plan


def make_tensor(kind, shape, rng, c):
    if kind == "one":
        return np.ones(shape, dtype=np.float32)
    if kind == "bias":
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
    if kind == "rope":
        hd = c["n_embd"] // c["n_head"]
        return rope_factors(c["rope_base"], hd, c["llama3_rope"])
    out = np.empty(shape, dtype=np.float16)
    rows = shape[0]
    step = max(1, (1 << 24) // shape[1])
    for r in range(0, rows, step):
        e = min(rows, r + step)
        out[r:e] = rng.standard_normal((e - r, shape[1]), dtype=np.float32) * np.float32(0.02)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=sorted(MODELS), help="which real model's shapes to copy")
    ap.add_argument("out", help="output .gguf path (F16 matrices)")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    c = MODELS[args.model]
    hd = c["n_embd"] // c["n_head"]
    arch = c["arch"]
    rng = np.random.default_rng(args.seed)

    w = gguf.GGUFWriter(args.out, arch)
    w.add_name(c["name"])
    w.add_context_length(c["n_ctx"])
    w.add_embedding_length(c["n_embd"])
    w.add_block_count(c["n_layer"])
    w.add_feed_forward_length(c["n_ff"])
    w.add_head_count(c["n_head"])
    w.add_head_count_kv(c["n_head_kv"])
    w.add_rope_freq_base(c["rope_base"])
    w.add_layer_norm_rms_eps(c["rms_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    if arch == "llama":
        w.add_vocab_size(c["n_vocab"])
        w.add_rope_dimension_count(hd)
        w.add_key_length(hd)
        w.add_value_length(hd)

    # Tokenizer: byte-level BPE ("gpt2"), real special ids, converter padding.
    text, merges = synthetic_bpe(c["n_text"], args.seed)
    tokens = text + list(c["specials"])
    types = [int(gguf.TokenType.NORMAL)] * len(text) + [int(gguf.TokenType.CONTROL)] * len(c["specials"])
    while len(tokens) < c["n_vocab"]:
        tokens.append(f"[PAD{len(tokens)}]")
        types.append(int(gguf.TokenType.UNUSED))
    assert len(tokens) == c["n_vocab"], (len(tokens), c["n_vocab"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(c["pre"])
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(c["bos"])
    w.add_eos_token_id(c["eos"])
    if c["eot"] is not None:
        w.add_eot_token_id(c["eot"])
    if c["eom"] is not None:
        w.add_eom_token_id(c["eom"])
    if c["pad"] is not None:
        w.add_pad_token_id(c["pad"])
    w.add_add_bos_token(c["add_bos"])

    # Tensor directory first, then the data streamed tensor by tensor.
    plan = tensor_plan(c)
    n_params = 0
    for name, shape, kind in plan:
        dt = np.float16 if kind == "w" else np.float32
        nbytes = int(np.prod(shape)) * np.dtype(dt).itemsize
        w.add_tensor_info(name, shape, np.dtype(dt), nbytes)
        n_params += int(np.prod(shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, shape, kind in plan:
        w.write_tensor_data(make_tensor(kind, shape, rng, c))
    w.close()
    print(f"{args.out}: {args.model} shapes, {n_params / 1e6:.1f}M parameters, "
          f"{len(merges)} merges", file=sys.stderr)


if __name__ == "__main__":
    main()
