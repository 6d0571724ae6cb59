#!/usr/bin/env python3
"""Reference next-token distributions from llama.cpp for the engine tests.

For each prompt in tests/golden/logit_prompts.txt, llama.cpp (the PyPI
package llama-cpp-python) runs greedily for up to 64 tokens (stopping after an
end-of-generation token), keeping the logits of every position. We store, per
position, the top-K token ids with llama.cpp's log-probabilities and the
probability mass of all other tokens, so the C test can compute top-1
agreement and the KL divergence KL(llama.cpp || coreai) without shipping full
49152-wide rows. (KL over the top-K ids plus one "rest" bucket is the KL of
the coarsened distributions, a lower bound of the full KL that is within the
rest mass's contribution of it; the file records that mass and the test
reports its maximum.)

Output (default tests/golden/logits_smollm2.bin), little-endian:
  char magic[8] = "CAILOGT1"; u32 n_vocab, K, n_cases;
  per case: u32 n_prompt, n_total; i32 tokens[n_total];
            per position p in 0..n_total-1 (the distribution after tokens[0..p]):
              i32 ids[K]; f32 logprobs[K]; f32 rest_mass
Usage: scripts/make_logit_fixtures.py [MODEL.gguf [PROMPTS.txt OUT.bin]]
  Gemma 3: scripts/make_logit_fixtures.py models/gemma-3-270m-q4_k_m.gguf \
           tests/golden/logit_prompts_gemma3.txt tests/golden/logits_gemma3.bin
"""
import struct
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

K = 64
N_GEN = 64


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    prompt_file = sys.argv[2] if len(sys.argv) > 2 else "tests/golden/logit_prompts.txt"
    out_file = sys.argv[3] if len(sys.argv) > 3 else "tests/golden/logits_smollm2.bin"
    prompts = []
    with open(prompt_file, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                prompts.append(line.encode().decode("unicode_escape").encode("latin-1").decode("utf-8"))
    llm = Llama(model_path=model, n_ctx=1024, n_threads=1, logits_all=True, verbose=False,
                n_batch=512)
    n_vocab = llm.n_vocab()
    eog = {llm.token_eos()}
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    for i in range(n_vocab):
        if llama_cpp.llama_vocab_is_eog(vocab, i):
            eog.add(i)
    out = [b"CAILOGT1", struct.pack("<III", n_vocab, K, len(prompts))]
    for text in prompts:
        toks = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        n_prompt = len(toks)
        llm.reset()
        llm.eval(toks)
        seq = list(toks)
        for _ in range(N_GEN):
            row = np.array(llm.scores[len(seq) - 1], dtype=np.float64)
            nxt = int(np.argmax(row))
            seq.append(nxt)
            if nxt in eog:
                break
            llm.eval([nxt])
        n_total = len(seq)
        # Rows 0..n_total-2 exist (the last token was never evaluated when we
        # stopped on EOG or the budget); evaluate it too for a full row set.
        if n_total > llm.n_tokens:
            llm.eval(seq[llm.n_tokens:])
        rows = np.array(llm.scores[:n_total], dtype=np.float64)
        out.append(struct.pack("<II", n_prompt, n_total))
        out.append(np.array(seq, dtype="<i4").tobytes())
        for p in range(n_total):
            r = rows[p]
            m = r.max()
            lse = m + np.log(np.exp(r - m).sum())
            lp = r - lse
            top = np.argsort(-lp, kind="stable")[:K]
            rest = max(0.0, 1.0 - float(np.exp(lp[top]).sum()))
            out.append(top.astype("<i4").tobytes())
            out.append(lp[top].astype("<f4").tobytes())
            out.append(struct.pack("<f", rest))
        gen = llm.detokenize(seq[n_prompt:]).decode("utf-8", "replace")
        print(f"{n_prompt:3d} prompt + {n_total - n_prompt:2d} gen: {gen[:70]!r}", file=sys.stderr)
    with open(out_file, "wb") as f:
        f.write(b"".join(out))


if __name__ == "__main__":
    main()
