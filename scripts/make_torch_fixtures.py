#!/usr/bin/env python3
"""Builds the coreai-torch converter fixtures in tests/golden/torch/.

Tiny random-weight Llama and Qwen2 models (hidden 64, 2 layers, 4 heads,
2 KV heads) with tiny BPE tokenizers trained here (a SentencePiece-style BPE
with byte fallback for Llama, a byte-level BPE with the Qwen2 pre-tokenizer
for Qwen2), saved the way Hugging Face saves them:

  llama/       config.json tokenizer.json tokenizer_config.json
               model.safetensors pytorch_model.bin
  qwen2/       the same, with the safetensors sharded (index + 2 shards),
               tied embeddings and q/k/v biases
  llama-bf16/  llama's weights rounded to bfloat16, saved as bf16 safetensors

and for each: reference.json (token sequences and the tokenizer's ids for a
few texts) and logits.bin (float32 logits from transformers in fp32, for
every position of every sequence, concatenated in order), and
logits_f16attn.bin, the same with the attention operands (Q, K, V, the
softmax probabilities) rounded to fp16 as the engine rounds them (its KV
cache is f16), which separates the converter's exactness from the engine's
attention precision.

Needs: pip install torch transformers safetensors tokenizers
Usage: python3 scripts/make_torch_fixtures.py [OUT_DIR]
Deterministic for a given torch/transformers version (fixed seeds).
"""
import copy
import json
import os
import sys

import torch
from tokenizers import Tokenizer, Regex, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests",
                                                          "golden", "torch")

CORPUS = """The quick brown fox jumps over the lazy dog. A model file is hostile input:
every length is checked before it is used, and nothing from the file ever runs.
On-device inference maps the weights read-only and shares them between sessions.
Tokenizers split text into pieces; merges join frequent pairs, rank by rank.
Numbers like 12345 and 2024-11-27 appear, as do words such as running, runner,
ran, runs. Hello, world! Bonjour le monde. Caf\u00e9 cr\u00e8me, na\u00efve r\u00e9sum\u00e9.
def main(): return 0  # code has indentation    and    spaces.
""" * 20

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and\ttabs\nnew lines  ",
    "Numbers: 12345 and 3.14159",
    "Caf\u00e9 na\u00efve \u00fcber \u4e2d\u6587 \U0001F600",
    "runner running ran runs",
]

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CHAT_TEMPLATE_CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
                        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
CHAT_TEMPLATE_LLAMA = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                       "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}"
                       "{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}")


def spm_style_tokenizer(vocab_size):
    """A Llama-2-style tokenizer.json: <unk> <s> </s>, 256 byte tokens, then BPE pieces."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                           normalizers.Replace(" ", "\u2581")])
    tok.pre_tokenizer = None
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 3 - 256, special_tokens=[],
                                  show_progress=False)
    tok.train_from_iterator([CORPUS], trainer)
    d = json.loads(tok.to_str())
    trained = d["model"]["vocab"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in sorted(trained.items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    d["model"]["vocab"] = vocab
    d["added_tokens"] = [
        {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    d["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    d["post_processor"] = {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    s = json.dumps(d, ensure_ascii=False)
    Tokenizer.from_str(s)  # must load
    cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
           "unk_token": "<unk>", "pad_token": None, "chat_template": CHAT_TEMPLATE_LLAMA,
           "tokenizer_class": "LlamaTokenizer", "legacy": False, "model_max_length": 256}
    return s, cfg


def byte_level_tokenizer(vocab_size):
    """A Qwen2-style tokenizer.json: NFC, the Qwen2 split regex, byte-level BPE."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(specials), special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([CORPUS], trainer)
    tok.add_special_tokens(specials)
    s = tok.to_str()
    cfg = {"add_bos_token": False, "add_prefix_space": False, "bos_token": None,
           "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
           "chat_template": CHAT_TEMPLATE_CHATML, "tokenizer_class": "Qwen2Tokenizer",
           "model_max_length": 256}
    return s, cfg


def randomize(model, seed):
    """Larger-than-default random weights, so logits spread and argmax is stable."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / (p.shape[-1] ** 0.5))


def sequences(n_vocab, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, n_vocab, (n,), generator=g).tolist() for n in (5, 11, 23)]


def f16_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """Causal attention with the engine's f16 operands: Q, K, V and the softmax
    probabilities rounded to fp16 (its KV cache is f16, and it rounds Q and the
    probabilities for the f16 dot products, as llama.cpp does); fp32 otherwise."""
    n_rep = query.shape[1] // key.shape[1]
    q = query.half().float()
    k = key.half().float().repeat_interleave(n_rep, dim=1)
    v = value.half().float().repeat_interleave(n_rep, dim=1)
    scores = (q @ k.transpose(-1, -2)) * scaling
    t, n = q.shape[2], k.shape[2]
    causal = torch.ones(t, n, dtype=torch.bool).tril(n - t)
    scores = scores.masked_fill(~causal, float("-inf"))
    p = torch.softmax(scores, dim=-1).half().float()
    return (p @ v).transpose(1, 2).contiguous(), None


def f16_attention_logits(model, seqs, out_dir):
    """Also logits_f16attn.bin: the same model with f16 attention operands."""
    from transformers import AttentionInterface
    AttentionInterface.register("f16_attention", f16_attention)
    old = model.config._attn_implementation
    model.config._attn_implementation = "f16_attention"
    with torch.no_grad():
        rows = [model(torch.tensor([s])).logits[0].float() for s in seqs]
    model.config._attn_implementation = old
    torch.cat(rows).numpy().astype("<f4").tofile(os.path.join(out_dir, "logits_f16attn.bin"))


def reference(model, tok_json, seqs, out_dir):
    tok = Tokenizer.from_str(tok_json)
    model.eval()
    f16_attention_logits(model, seqs, out_dir)
    rows = []
    margins = []
    with torch.no_grad():
        for s in seqs:
            logits = model(torch.tensor([s])).logits[0].float()
            rows.append(logits)
            top2 = torch.topk(logits, 2, dim=-1).values
            margins.append(((top2[:, 0] - top2[:, 1]) /
                            (logits.max(-1).values - logits.min(-1).values)).min().item())
    torch.cat(rows).numpy().astype("<f4").tofile(os.path.join(out_dir, "logits.bin"))
    ref = {"n_vocab": model.config.vocab_size, "sequences": seqs,
           "tokenize": [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids}
                        for t in TEXTS]}
    with open(os.path.join(out_dir, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)
    print("%s: smallest top-2 margin / logit range = %.4f" % (out_dir, min(margins)))


def save(model, tok_json, tok_cfg, out_dir, shard=None, bin_too=True, dtype=None):
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, f))
    m = model.to(dtype) if dtype is not None else model
    m.save_pretrained(out_dir, safe_serialization=True,
                      **({"max_shard_size": shard} if shard else {}))
    if bin_too:
        torch.save(m.state_dict(), os.path.join(out_dir, "pytorch_model.bin"))
    gen = os.path.join(out_dir, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tok_json)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tok_cfg, f, ensure_ascii=False, indent=1)


def main():
    torch.manual_seed(0)
    # Llama: SentencePiece-style tokenizer, untied output, no biases.
    tok_json, tok_cfg = spm_style_tokenizer(512)
    n_vocab = len(json.loads(tok_json)["model"]["vocab"])
    cfg = LlamaConfig(vocab_size=n_vocab, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                      torch_dtype="float32")
    model = LlamaForCausalLM(cfg)
    randomize(model, 1)
    seqs = sequences(n_vocab, 2)
    d = os.path.join(OUT, "llama")
    save(model, tok_json, tok_cfg, d)
    reference(model, tok_json, seqs, d)

    # The same weights rounded to bf16 and saved as bf16.
    bf = LlamaForCausalLM(cfg)
    bf.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in bf.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    d = os.path.join(OUT, "llama-bf16")
    # Save a copy: .to(bfloat16) would also round the rotary inv_freq buffer.
    save(copy.deepcopy(bf), tok_json, tok_cfg, d, bin_too=False, dtype=torch.bfloat16)
    reference(bf, tok_json, seqs, d)

    # Qwen2: byte-level tokenizer, tied embeddings, q/k/v biases, sharded.
    tok_json, tok_cfg = byte_level_tokenizer(400)
    n_tok = len(json.loads(tok_json)["model"]["vocab"]) + 3
    cfg = Qwen2Config(vocab_size=n_tok + 4, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=1000000.0,
                      tie_word_embeddings=True, use_sliding_window=False,
                      bos_token_id=None, eos_token_id=n_tok - 1, torch_dtype="float32")
    model = Qwen2ForCausalLM(cfg)
    randomize(model, 3)
    seqs = sequences(n_tok, 4)
    d = os.path.join(OUT, "qwen2")
    save(model, tok_json, tok_cfg, d, shard="300KB")
    reference(model, tok_json, seqs, d)


if __name__ == "__main__":
    main()
