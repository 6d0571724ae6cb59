/* tiny_model.h: builds a small random Llama-family GGUF in memory for tests
 * (2 layers, width 64, 4 heads, 2 KV heads, feed-forward 128, a byte-level
 * vocabulary of 256 byte tokens plus 3 specials). Options let a test break
 * one thing at a time for the malformed-model table. */
#ifndef CAI_TINY_MODEL_H
#define CAI_TINY_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf_write.h"
#include "tensor/types.h"

struct tiny_opts {
    const char *arch;          /* default "llama" */
    const char *skip_tensor;   /* leave this tensor out */
    const char *bad_shape;     /* give this tensor a wrong shape */
    uint32_t    head_count;    /* default 4 */
    bool        head_count_zero;
    uint32_t    head_count_kv; /* default 2 */
    uint32_t    embd;          /* metadata embedding_length (default 64) */
    uint32_t    bos;           /* default 256 */
    int         n_scores;      /* default n_vocab; other values break the vocab */
    int         n_types;       /* default n_vocab */
    const char *tok_model;     /* default "gpt2" */
    uint32_t    weight_type;   /* default CAI_TYPE_F32 for matrices */
    /* arch "gemma3": its norms and keys; sliding window (0: none) and the
     * pattern's period (0: every layer slides) */
    uint32_t    swa, swa_period;
    const uint8_t *swa_layers; /* instead of the period: one bool per layer */
    int         swa_layers_n;  /* its length (default TINY_LAYER) */
};

#define TINY_EMBD  64
#define TINY_FF    128
#define TINY_LAYER 2
#define TINY_VOCAB 259

static uint32_t tiny_rng = 12345;
static float tiny_randf(void)
{
    tiny_rng = tiny_rng * 1664525u + 1013904223u;
    return ((float)(tiny_rng >> 8) / 16777216.0f - 0.5f) * 0.2f;
}

/* The GPT-2 byte-to-unicode map: byte b -> a code point, as UTF-8 in out. */
static void tiny_byte_token(int b, char out[4])
{
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
                n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* Serialized GGUF in *buf (free with cai__free); 0 or a negative code. */
static int tiny_model_build(const struct tiny_opts *o, uint8_t **buf, size_t *n)
{
    struct cai_gguf_writer *w;
    struct cai_error err = {0};
    const char *arch = o->arch ? o->arch : "llama";
    uint32_t nh = o->head_count_zero ? 0 : o->head_count ? o->head_count : 4, nkv = o->head_count_kv ? o->head_count_kv : 2;
    uint32_t embd = o->embd ? o->embd : TINY_EMBD;
    uint32_t wt = o->weight_type ? o->weight_type : CAI_TYPE_F32;
    char key[128];
    int rc = cai__gguf_writer_new(&w, 3, &err);
    if (rc < 0)
        return rc;
    cai__gguf_writer_add_str(w, "general.architecture", arch, &err);
    cai__gguf_writer_add_str(w, "general.name", "tiny", &err);
#define KU32(suffix, v)                                                                            \
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);                                             \
    cai__gguf_writer_add_u32(w, key, v, &err)
    KU32("block_count", TINY_LAYER);
    KU32("embedding_length", embd);
    KU32("feed_forward_length", TINY_FF);
    KU32("attention.head_count", nh);
    KU32("attention.head_count_kv", nkv);
    KU32("context_length", 256);
#undef KU32
    snprintf(key, sizeof(key), "%s.attention.layer_norm_rms_epsilon", arch);
    cai__gguf_writer_add_f32(w, key, 1e-5f, &err);
    snprintf(key, sizeof(key), "%s.rope.freq_base", arch);
    cai__gguf_writer_add_f32(w, key, 10000.0f, &err);
    const bool g3 = !strcmp(arch, "gemma3");
    if (g3 && o->swa) {
        snprintf(key, sizeof(key), "%s.attention.sliding_window", arch);
        cai__gguf_writer_add_u32(w, key, o->swa, &err);
        snprintf(key, sizeof(key), "%s.attention.sliding_window_pattern", arch);
        if (o->swa_layers)
            cai__gguf_writer_add_arr(w, key, 7 /* BOOL */, o->swa_layers,
                                     (uint64_t)(o->swa_layers_n ? o->swa_layers_n : TINY_LAYER),
                                     &err);
        else
            cai__gguf_writer_add_u32(w, key, o->swa_period, &err);
        snprintf(key, sizeof(key), "%s.rope.freq_base_swa", arch);
        cai__gguf_writer_add_f32(w, key, 100.0f, &err);
    }

    /* Vocabulary: 256 byte tokens + specials. */
    static char texts[TINY_VOCAB][16];
    const char *tp[TINY_VOCAB];
    float scores[TINY_VOCAB];
    int32_t types[TINY_VOCAB];
    for (int i = 0; i < 256; i++) {
        tiny_byte_token(i, texts[i]);
        types[i] = 1;
    }
    strcpy(texts[256], "<|endoftext|>");
    strcpy(texts[257], "<|im_start|>");
    strcpy(texts[258], "<|im_end|>");
    for (int i = 0; i < TINY_VOCAB; i++) {
        tp[i] = texts[i];
        scores[i] = 0.0f;
        if (i >= 256)
            types[i] = 3;
    }
    cai__gguf_writer_add_str(w, "tokenizer.ggml.model", o->tok_model ? o->tok_model : "gpt2", &err);
    cai__gguf_writer_add_str(w, "tokenizer.ggml.pre", "default", &err);
    cai__gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", tp, TINY_VOCAB, &err);
    cai__gguf_writer_add_arr(w, "tokenizer.ggml.scores", 6 /* F32 */, scores,
                             (uint64_t)(o->n_scores ? o->n_scores : TINY_VOCAB), &err);
    cai__gguf_writer_add_arr(w, "tokenizer.ggml.token_type", 5 /* I32 */, types,
                             (uint64_t)(o->n_types ? o->n_types : TINY_VOCAB), &err);
    const char *merges[1] = {"a b"};
    cai__gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, 0, &err);
    cai__gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", o->bos ? o->bos : 256, &err);
    cai__gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 258, &err);

    /* Tensors (random f32 data; matrices optionally quantized by the caller's type). */
    struct tspec {
        char    name[64];
        int64_t ne0, ne1;
        bool    matrix;
    } ts[64];
    int nt = 0;
#define T(nm, a, b, mx)                                                                            \
    do {                                                                                           \
        snprintf(ts[nt].name, sizeof(ts[nt].name), "%s", nm);                                      \
        ts[nt].ne0 = a;                                                                            \
        ts[nt].ne1 = b;                                                                            \
        ts[nt].matrix = mx;                                                                        \
        nt++;                                                                                      \
    } while (0)
    int hd = TINY_EMBD / 4;
    T("token_embd.weight", TINY_EMBD, TINY_VOCAB, true);
    T("output_norm.weight", TINY_EMBD, 0, false);
    for (int l = 0; l < TINY_LAYER; l++) {
        char nm[64];
#define TL(sfx, a, b, mx)                                                                          \
    snprintf(nm, sizeof(nm), "blk.%d.%s", l, sfx);                                                 \
    T(nm, a, b, mx)
        TL("attn_norm.weight", TINY_EMBD, 0, false);
        TL("attn_q.weight", TINY_EMBD, 4 * hd, true);
        TL("attn_k.weight", TINY_EMBD, 2 * hd, true);
        TL("attn_v.weight", TINY_EMBD, 2 * hd, true);
        TL("attn_output.weight", 4 * hd, TINY_EMBD, true);
        TL("ffn_norm.weight", TINY_EMBD, 0, false);
        TL("ffn_gate.weight", TINY_EMBD, TINY_FF, true);
        TL("ffn_up.weight", TINY_EMBD, TINY_FF, true);
        TL("ffn_down.weight", TINY_FF, TINY_EMBD, true);
        if (g3) {
            TL("attn_q_norm.weight", hd, 0, false);
            TL("attn_k_norm.weight", hd, 0, false);
            TL("post_attention_norm.weight", TINY_EMBD, 0, false);
            TL("post_ffw_norm.weight", TINY_EMBD, 0, false);
        }
#undef TL
    }
#undef T
    void *datas[64] = {0};
    for (int i = 0; i < nt && rc == 0; i++) {
        if (o->skip_tensor && !strcmp(o->skip_tensor, ts[i].name))
            continue;
        int64_t ne0 = ts[i].ne0, ne1 = ts[i].ne1 ? ts[i].ne1 : 1;
        if (o->bad_shape && !strcmp(o->bad_shape, ts[i].name)) {
            if (ts[i].ne1)
                ne1 += 1;
            else
                ne0 += 1;
        }
        uint32_t type = ts[i].matrix ? wt : CAI_TYPE_F32;
        size_t rb;
        cai__row_bytes(type, ne0, &rb);
        size_t nbytes = rb * (size_t)ne1;
        float *f = malloc((size_t)(ne0 * ne1) * sizeof(float));
        for (int64_t k = 0; k < ne0 * ne1; k++)
            f[k] = ts[i].matrix ? tiny_randf() : 1.0f + tiny_randf();
        datas[i] = f; /* f32 data; quantized types are written as zeros-scaled garbage-free
                         random bytes by the caller's kernels in tests that need them */
        int64_t ne[2] = {ne0, ne1};
        rc = cai__gguf_writer_add_tensor(w, ts[i].name, ts[i].ne1 ? 2 : 1, ne, type,
                                         type == CAI_TYPE_F32 ? f : NULL, nbytes, &err);
    }
    if (rc == 0)
        rc = cai__gguf_writer_serialize(w, buf, n, &err);
    for (int i = 0; i < nt; i++)
        free(datas[i]);
    cai__gguf_writer_free(w);
    if (rc < 0)
        fprintf(stderr, "tiny_model_build: %s\n", err.msg);
    return rc;
}

#endif /* CAI_TINY_MODEL_H */
