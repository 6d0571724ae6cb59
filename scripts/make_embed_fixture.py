#!/usr/bin/env python3
"""Reference embeddings from llama.cpp for tests/golden/test_embed.c.

llama.cpp (the PyPI package llama-cpp-python) embeds a few texts with
SmolLM2-135M-Instruct, mean pooling, normalized to unit length (what
cai_embed computes). Output: tests/golden/embed_smollm2.txt, one text per
case: a line with the text as a JSON string, then a line with the n_embd
floats (9 significant digits), space-separated.

Usage: scripts/make_embed_fixture.py [MODEL.gguf]
"""
import json
import sys

from llama_cpp import Llama, LLAMA_POOLING_TYPE_MEAN

TEXTS = [
    "The cat sat on the mat.",
    "Paris is the capital of France.",
    "def f(x):\n    return x * 2\n",
    "\u00dcn\u00efc\u00f6d\u00e9 \u2014 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \U0001f642",
]


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    llm = Llama(model_path=model, embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN,
                n_ctx=512, n_threads=2, verbose=False)
    with open("tests/golden/embed_smollm2.txt", "w", encoding="utf-8") as f:
        for t in TEXTS:
            v = llm.embed(t, normalize=True)
            f.write(json.dumps(t) + "\n")
            f.write(" ".join("%.9g" % x for x in v) + "\n")


if __name__ == "__main__":
    main()
