/* hf.c: Hugging Face decoder-only checkpoints (Llama, Mistral, Qwen2) to
 * .coreaimodel (cai__convert_hf).
 *
 * config.json gives the hyperparameters, written under GGUF's key names for
 * the engine's architecture ("llama" for Llama and Mistral, "qwen2"); tensor
 * names are mapped to GGUF's (blk.N.attn_q.weight, ...). For "llama" the
 * rows of q_proj and k_proj (and their biases) are permuted as llama.cpp's
 * converter does: Hugging Face pairs element i of a head with i + d/2 for
 * rotary embedding, the engine's "llama" RoPE pairs 2i with 2i + 1, so row
 * h·d + half·d/2 + i moves to h·d + 2i + half. Qwen2 uses NEOX-style RoPE,
 * which pairs like Hugging Face, so its rows stay, and its biases are kept.
 * 1-D tensors (norms, biases) are written as f32; matrices keep the
 * checkpoint's dtype or take the requested one. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert.h"
#include "convert_int.h"
#include "../format/safetensors.h"
#include "../tensor/types.h"

struct hparams {
    const char *arch;        /* "llama" or "qwen2" */
    const char *model_type;
    uint32_t    n_embd, n_layer, n_ff, n_head, n_head_kv, n_ctx, head_dim;
    double      eps, rope_base, rope_linear; /* rope_linear 0: no scaling */
    int         tied;        /* -1 unknown, 0, 1 */
};

struct job {
    const struct cai_src_tensor *t;
    uint32_t                     type;       /* output GGUF type */
    uint32_t                     perm_heads; /* 0: no permutation */
    char                         name[72];
    int                          layer;      /* for ordering; -1 before, n_layer after */
    int                          rank;       /* order within a layer */
};

/* ---- config.json ------------------------------------------------------------------ */

static int cfg_u32(const struct cai_json *j, const struct cai_json_node *o, const char *key,
                   bool required, uint32_t lo, uint32_t hi, uint32_t *out, const char *path,
                   struct cai_error *err)
{
    const struct cai_json_node *v = cai__json_get(j, o, key);
    uint64_t x;
    if (!v || v->type == CAI_JSON_NULL) {
        if (required)
            return cai__fail(err, CAI_EFORMAT, "%s: \"%s\" is missing", path, key);
        return 0;
    }
    if (!cai__json_u64(v, &x) || x < lo || x > hi)
        return cai__fail(err, CAI_EFORMAT, "%s: \"%s\" must be an integer in [%u, %u]", path, key,
                         lo, hi);
    *out = (uint32_t)x;
    return 0;
}

static int cfg_f64(const struct cai_json *j, const struct cai_json_node *o, const char *key,
                   double *out, const char *path, struct cai_error *err)
{
    const struct cai_json_node *v = cai__json_get(j, o, key);
    if (!v || v->type == CAI_JSON_NULL)
        return 0;
    if (!cai__json_f64(v, out) || !(*out > 0) || *out > 1e30)
        return cai__fail(err, CAI_EFORMAT, "%s: \"%s\" must be a positive number", path, key);
    return 0;
}

static int read_config(const char *path, struct hparams *hp, char *model_type, size_t cap,
                       struct cai_error *err)
{
    char *text;
    size_t n;
    struct cai_json *j;
    int rc = cai__read_file(path, &text, &n, err);
    if (rc)
        return rc;
    rc = cai__json_parse(&j, text, n, 32, path, err);
    cai__free(text);
    if (rc)
        return rc;
    const struct cai_json_node *r = cai__json_root(j);
    const struct cai_json_node *mt = cai__json_get(j, r, "model_type");
    memset(hp, 0, sizeof(*hp));
    hp->tied = -1;
    if (!cai__json_is(mt, CAI_JSON_STRING) || mt->len >= cap) {
        rc = cai__fail(err, CAI_EFORMAT, "%s: \"model_type\" is missing", path);
        goto out;
    }
    memcpy(model_type, mt->s, mt->len + 1);
    hp->model_type = model_type;
    if (strcmp(model_type, "llama") == 0 || strcmp(model_type, "mistral") == 0) {
        hp->arch = "llama";
    } else if (strcmp(model_type, "qwen2") == 0) {
        hp->arch = "qwen2";
    } else {
        rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: model_type \"%s\" is not supported (llama, "
                       "mistral and qwen2 are)", path, model_type);
        goto out;
    }
    const struct cai_json_node *act = cai__json_get(j, r, "hidden_act");
    if (act && !cai__json_str_eq(act, "silu")) {
        rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: hidden_act \"%.32s\" is not supported (silu "
                       "is)", path, act->type == CAI_JSON_STRING ? act->s : "?");
        goto out;
    }
    bool b = false;
    if (cai__json_bool(cai__json_get(j, r, "mlp_bias"), &b) && b) {
        rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: mlp_bias is not supported", path);
        goto out;
    }
    if ((rc = cfg_u32(j, r, "hidden_size", true, 1, 1u << 16, &hp->n_embd, path, err)) < 0 ||
        (rc = cfg_u32(j, r, "num_hidden_layers", true, 1, 4096, &hp->n_layer, path, err)) < 0 ||
        (rc = cfg_u32(j, r, "intermediate_size", true, 1, 1u << 20, &hp->n_ff, path, err)) < 0 ||
        (rc = cfg_u32(j, r, "num_attention_heads", true, 1, 1024, &hp->n_head, path, err)) < 0)
        goto out;
    hp->n_head_kv = hp->n_head;
    hp->n_ctx = 4096;
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = cfg_u32(j, r, "num_key_value_heads", false, 1, 1024, &hp->n_head_kv, path, err)) <
            0 ||
        (rc = cfg_u32(j, r, "max_position_embeddings", false, 1, 1u << 24, &hp->n_ctx, path,
                      err)) < 0 ||
        (rc = cfg_u32(j, r, "head_dim", false, 2, 4096, &hp->head_dim, path, err)) < 0)
        goto out;
    if (hp->n_head % hp->n_head_kv || hp->head_dim % 2 || hp->head_dim == 0) {
        rc = cai__fail(err, CAI_EFORMAT, "%s: heads (%u), kv heads (%u) and head_dim (%u) do not "
                       "fit together", path, hp->n_head, hp->n_head_kv, hp->head_dim);
        goto out;
    }
    hp->eps = 1e-6;
    hp->rope_base = 10000.0;
    if ((rc = cfg_f64(j, r, "rms_norm_eps", &hp->eps, path, err)) < 0 ||
        (rc = cfg_f64(j, r, "rope_theta", &hp->rope_base, path, err)) < 0)
        goto out;
    /* Rotary settings: "rope_scaling" (transformers 4) or "rope_parameters" (5). */
    const char *keys[] = {"rope_parameters", "rope_scaling"};
    for (size_t i = 0; i < 2; i++) {
        const struct cai_json_node *rp = cai__json_get(j, r, keys[i]);
        if (!cai__json_is(rp, CAI_JSON_OBJECT))
            continue;
        if ((rc = cfg_f64(j, rp, "rope_theta", &hp->rope_base, path, err)) < 0)
            goto out;
        const struct cai_json_node *ty = cai__json_get(j, rp, "rope_type");
        if (!ty)
            ty = cai__json_get(j, rp, "type");
        if (!ty || cai__json_str_eq(ty, "default"))
            continue;
        if (cai__json_str_eq(ty, "linear")) {
            if ((rc = cfg_f64(j, rp, "factor", &hp->rope_linear, path, err)) < 0)
                goto out;
            continue;
        }
        rc = cai__fail(err, CAI_EUNSUPPORTED, "%s: rope type \"%.32s\" is not supported yet "
                       "(default and linear are)", path, ty->type == CAI_JSON_STRING ? ty->s : "?");
        goto out;
    }
    if (cai__json_bool(cai__json_get(j, r, "tie_word_embeddings"), &b))
        hp->tied = b;
out:
    cai__json_free(j);
    return rc;
}

/* ---- tensor names --------------------------------------------------------------- */

/* Maps a Hugging Face name; returns 1 to skip it, 0 mapped, < 0 unknown. */
static int map_name(const char *hf, const struct hparams *hp, struct job *jb)
{
    static const struct {
        const char *hf, *gguf;
        int         perm; /* 1: q (n_head), 2: k (n_head_kv) */
    } layer_map[] = {
        {"input_layernorm.weight", "attn_norm.weight", 0},
        {"self_attn.q_proj.weight", "attn_q.weight", 1},
        {"self_attn.k_proj.weight", "attn_k.weight", 2},
        {"self_attn.v_proj.weight", "attn_v.weight", 0},
        {"self_attn.q_proj.bias", "attn_q.bias", 1},
        {"self_attn.k_proj.bias", "attn_k.bias", 2},
        {"self_attn.v_proj.bias", "attn_v.bias", 0},
        {"self_attn.o_proj.weight", "attn_output.weight", 0},
        {"post_attention_layernorm.weight", "ffn_norm.weight", 0},
        {"mlp.gate_proj.weight", "ffn_gate.weight", 0},
        {"mlp.up_proj.weight", "ffn_up.weight", 0},
        {"mlp.down_proj.weight", "ffn_down.weight", 0},
    };
    jb->perm_heads = 0;
    if (strcmp(hf, "model.embed_tokens.weight") == 0) {
        snprintf(jb->name, sizeof(jb->name), "token_embd.weight");
        jb->layer = -1;
        return 0;
    }
    if (strcmp(hf, "model.norm.weight") == 0) {
        snprintf(jb->name, sizeof(jb->name), "output_norm.weight");
        jb->layer = (int)hp->n_layer;
        return 0;
    }
    if (strcmp(hf, "lm_head.weight") == 0) {
        if (hp->tied == 1)
            return 1;
        snprintf(jb->name, sizeof(jb->name), "output.weight");
        jb->layer = (int)hp->n_layer;
        jb->rank = 1;
        return 0;
    }
    const char *pfx = "model.layers.";
    if (strncmp(hf, pfx, strlen(pfx)) != 0)
        return -1;
    const char *p = hf + strlen(pfx);
    char *end;
    if (*p < '0' || *p > '9')
        return -1;
    unsigned long il = strtoul(p, &end, 10);
    if (*end != '.' || il >= hp->n_layer)
        return -1;
    if (strcmp(end + 1, "self_attn.rotary_emb.inv_freq") == 0)
        return 1;
    for (size_t i = 0; i < CAI_ARRAY_LEN(layer_map); i++) {
        if (strcmp(end + 1, layer_map[i].hf) != 0)
            continue;
        snprintf(jb->name, sizeof(jb->name), "blk.%lu.%s", il, layer_map[i].gguf);
        jb->layer = (int)il;
        jb->rank = (int)i;
        if (strcmp(hp->arch, "llama") == 0 && layer_map[i].perm)
            jb->perm_heads = layer_map[i].perm == 1 ? hp->n_head : hp->n_head_kv;
        return 0;
    }
    return -1;
}

static int cmp_job(const void *a, const void *b)
{
    const struct job *x = a, *y = b;
    if (x->layer != y->layer)
        return x->layer < y->layer ? -1 : 1;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* ---- tensor data ------------------------------------------------------------------ */

/* Rows of a [rows][cols] matrix (cols = 1 for a bias): within each of the
 * `heads` heads of d rows, row half·d/2 + i moves to 2i + half. */
static int permute_rows(float *x, uint64_t rows, uint64_t cols, uint32_t heads)
{
    uint64_t d = rows / heads, half = d / 2;
    float *tmp = cai__malloc_array((size_t)(d * cols), sizeof(float));
    if (!tmp)
        return CAI_ENOMEM;
    for (uint32_t h = 0; h < heads; h++) {
        float *head = x + (uint64_t)h * d * cols;
        memcpy(tmp, head, (size_t)(d * cols) * sizeof(float));
        for (uint64_t i = 0; i < half; i++)
            for (uint64_t s = 0; s < 2; s++)
                memcpy(head + (2 * i + s) * cols, tmp + (s * half + i) * cols,
                       (size_t)cols * sizeof(float));
    }
    cai__free(tmp);
    return 0;
}

static int fill_tensor(void *user, void *dst, uint64_t n_bytes, struct cai_error *err)
{
    const struct job *jb = user;
    const struct cai_src_tensor *t = jb->t;
    (void)n_bytes;
    float *f = jb->type == CAI_TYPE_F32 ? dst : cai__malloc_array((size_t)t->n_elem, sizeof(float));
    if (!f)
        return cai__fail(err, CAI_ENOMEM, "out of memory converting \"%s\"", t->name);
    cai__src_read_f32(t, f);
    if (jb->perm_heads) {
        uint64_t cols = t->n_dims == 2 ? (uint64_t)t->shape[1] : 1;
        if (permute_rows(f, (uint64_t)t->shape[0], cols, jb->perm_heads) < 0) {
            if (f != dst)
                cai__free(f);
            return cai__fail(err, CAI_ENOMEM, "out of memory converting \"%s\"", t->name);
        }
    }
    if (jb->type == CAI_TYPE_F16) {
        uint16_t *o = dst;
        for (uint64_t i = 0; i < t->n_elem; i++)
            o[i] = cai__f32_to_fp16(f[i]);
    } else if (jb->type == CAI_TYPE_BF16) {
        uint16_t *o = dst;
        for (uint64_t i = 0; i < t->n_elem; i++)
            o[i] = cai__f32_to_bf16(f[i]);
    }
    if (f != dst)
        cai__free(f);
    return 0;
}

static uint32_t gguf_type_of(int st_dtype)
{
    return st_dtype == CAI_ST_F16 ? CAI_TYPE_F16 : st_dtype == CAI_ST_BF16 ? CAI_TYPE_BF16
                                                                           : CAI_TYPE_F32;
}

/* ---- the conversion ------------------------------------------------------------------- */

static char *dir_of(const char *path)
{
    const char *s = strrchr(path, '/');
    if (!s)
        return cai__strdup(".");
    return s == path ? cai__strdup("/") : cai__strndup(path, (size_t)(s - path));
}

static const char *base_of(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *s = path + n;
    while (s > path && s[-1] != '/')
        s--;
    return s;
}

static int add_hparams(struct cai_cam_writer *w, const struct hparams *hp, uint32_t file_type,
                       const char *name, struct cai_error *err)
{
    char key[96];
    int rc = 0;
#define K(suffix) (snprintf(key, sizeof(key), "%s.%s", hp->arch, suffix), key)
    if (!rc) rc = cai__cam_writer_add_str(w, "general.architecture", hp->arch, err);
    if (!rc) rc = cai__cam_writer_add_str(w, "general.name", name, err);
    if (!rc) rc = cai__cam_writer_add_u32(w, "general.file_type", file_type, err);
    if (!rc) rc = cai__cam_writer_add_u32(w, K("context_length"), hp->n_ctx, err);
    if (!rc) rc = cai__cam_writer_add_u32(w, K("embedding_length"), hp->n_embd, err);
    if (!rc) rc = cai__cam_writer_add_u32(w, K("block_count"), hp->n_layer, err);
    if (!rc) rc = cai__cam_writer_add_u32(w, K("feed_forward_length"), hp->n_ff, err);
    if (!rc) rc = cai__cam_writer_add_u32(w, K("attention.head_count"), hp->n_head, err);
    if (!rc) rc = cai__cam_writer_add_u32(w, K("attention.head_count_kv"), hp->n_head_kv, err);
    if (!rc) rc = cai__cam_writer_add_f32(w, K("rope.freq_base"), (float)hp->rope_base, err);
    if (!rc) rc = cai__cam_writer_add_f32(w, K("attention.layer_norm_rms_epsilon"),
                                          (float)hp->eps, err);
    if (!rc) rc = cai__cam_writer_add_u32(w, K("rope.dimension_count"), hp->head_dim, err);
    if (!rc && hp->head_dim * hp->n_head != hp->n_embd) {
        rc = cai__cam_writer_add_u32(w, K("attention.key_length"), hp->head_dim, err);
        if (!rc) rc = cai__cam_writer_add_u32(w, K("attention.value_length"), hp->head_dim, err);
    }
    if (!rc && hp->rope_linear > 0) {
        rc = cai__cam_writer_add_str(w, K("rope.scaling.type"), "linear", err);
        if (!rc) rc = cai__cam_writer_add_f32(w, K("rope.scaling.factor"),
                                              (float)hp->rope_linear, err);
    }
#undef K
    return rc;
}

/* Builds the job for one source tensor: name, checks, output type. */
static int plan_tensor(const struct cai_src_tensor *t, const struct hparams *hp, int dtype,
                       struct job *jb, const char *path, struct cai_error *err)
{
    memset(jb, 0, sizeof(*jb));
    jb->t = t;
    int m = map_name(t->name, hp, jb);
    if (m < 0)
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: tensor \"%.64s\" is not part of a %s model "
                         "this converter knows", path, t->name, hp->model_type);
    if (m > 0)
        return 1;
    if (t->dtype != CAI_ST_F32 && t->dtype != CAI_ST_F16 && t->dtype != CAI_ST_BF16)
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: tensor \"%.64s\" has dtype %s (F32, F16 and "
                         "BF16 are supported)", path, t->name, cai__st_dtype_name(t->dtype));
    bool vec = strstr(jb->name, "norm") || strstr(jb->name, ".bias");
    if (t->n_dims != (vec ? 1u : 2u) || t->n_elem == 0)
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%.64s\" has %u dimensions, expected %d",
                         path, t->name, t->n_dims, vec ? 1 : 2);
    if (jb->perm_heads) {
        uint32_t heads = jb->perm_heads;
        if ((uint64_t)t->shape[0] != (uint64_t)heads * hp->head_dim)
            return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%.64s\" has %lld rows, expected %u "
                             "heads x %u", path, t->name, (long long)t->shape[0], heads,
                             hp->head_dim);
    }
    if (vec)
        jb->type = CAI_TYPE_F32;
    else if (dtype == CAI_CONVERT_F32)
        jb->type = CAI_TYPE_F32;
    else if (dtype == CAI_CONVERT_F16)
        jb->type = CAI_TYPE_F16;
    else if (dtype == CAI_CONVERT_BF16)
        jb->type = CAI_TYPE_BF16;
    else
        jb->type = gguf_type_of(t->dtype);
    return 0;
}

int cai__convert_hf(const struct cai_convert_params *p, struct cai_error *err)
{
    struct cai_src src;
    struct cai_cam_writer *w = NULL;
    struct job *jobs = NULL;
    struct hparams hp;
    char model_type[64], cfg_path[4096];
    char *dir = NULL;
    struct stat st;
    int rc;

    if (!p || !p->model || !p->output)
        return cai__fail(err, CAI_EINVAL, "convert: a model path and an output path are needed");
    if (p->architecture && strcmp(p->architecture, "decoder-only") != 0)
        return cai__fail(err, CAI_EINVAL, "convert: architecture \"%s\" is not supported "
                         "(decoder-only is)", p->architecture);
    if (stat(p->model, &st) != 0)
        return cai__fail(err, CAI_EIO, "%s: no such file or folder", p->model);
    dir = S_ISDIR(st.st_mode) ? cai__strdup(p->model) : dir_of(p->model);
    if (!dir)
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    if (p->config)
        snprintf(cfg_path, sizeof(cfg_path), "%s", p->config);
    else
        snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", dir);
    if ((rc = read_config(cfg_path, &hp, model_type, sizeof(model_type), err)) < 0) {
        cai__free(dir);
        return rc;
    }
    if ((rc = cai__src_open(&src, p->model, err)) < 0) {
        cai__free(dir);
        return rc;
    }
    if (hp.tied < 0)
        hp.tied = cai__src_find(&src, "lm_head.weight") == NULL;

    jobs = cai__calloc(src.n_tensors ? (size_t)src.n_tensors : 1, sizeof(*jobs));
    if (!jobs) {
        rc = cai__fail(err, CAI_ENOMEM, "out of memory");
        goto out;
    }
    size_t n_jobs = 0;
    for (uint64_t i = 0; i < src.n_tensors; i++) {
        rc = plan_tensor(&src.tensors[i], &hp, p->dtype, &jobs[n_jobs], p->model, err);
        if (rc < 0)
            goto out;
        if (rc == 0)
            n_jobs++;
    }
    rc = 0;
    qsort(jobs, n_jobs, sizeof(*jobs), cmp_job);
    const struct cai_src_tensor *emb = cai__src_find(&src, "model.embed_tokens.weight");
    if (!emb || emb->n_dims != 2 || emb->shape[0] < 1 || emb->shape[0] > (1 << 22)) {
        rc = cai__fail(err, CAI_EFORMAT, "%s: model.embed_tokens.weight is missing or not a "
                       "matrix", p->model);
        goto out;
    }
    uint32_t file_type = 0;
    double bits = 0, elems = 0;
    for (size_t i = 0; i < n_jobs; i++) {
        if (jobs[i].t->n_dims != 2)
            continue;
        uint32_t ty = jobs[i].type;
        if (file_type == 0 && ty != CAI_TYPE_F32)
            file_type = ty == CAI_TYPE_F16 ? 1 : 32;
        bits += (double)jobs[i].t->n_elem * (ty == CAI_TYPE_F32 ? 32 : 16);
        elems += (double)jobs[i].t->n_elem;
    }

    if ((rc = cai__cam_writer_new(&w, err)) < 0)
        goto out;
    if (p->alignment && (rc = cai__cam_writer_set_alignment(w, p->alignment, err)) < 0)
        goto out;
    if ((rc = add_hparams(w, &hp, file_type, base_of(p->model), err)) < 0)
        goto out;
    if ((rc = cai__hf_tokenizer(w, p->tokenizer_dir ? p->tokenizer_dir : dir,
                                (uint32_t)emb->shape[0], err)) < 0)
        goto out;
    if ((rc = cai__cam_writer_add_str(w, "coreai.format_version", "1.0", err)) < 0 ||
        (rc = cai__cam_writer_add_str(w, "coreai.converter", CAI_CONVERTER_NAME, err)) < 0 ||
        (rc = cai__cam_writer_add_str(w, "coreai.source.format", src.format, err)) < 0 ||
        (rc = cai__cam_writer_add_str(w, "coreai.source.name", base_of(p->model), err)) < 0 ||
        (rc = cai__cam_writer_add_str(w, "coreai.quantization.method", "none", err)) < 0 ||
        (rc = cai__cam_writer_add_f32(w, "coreai.quantization.bits",
                                      elems > 0 ? (float)(bits / elems) : 0.0f, err)) < 0)
        goto out;
    for (size_t i = 0; i < n_jobs; i++) {
        const struct cai_src_tensor *t = jobs[i].t;
        int64_t ne[2];
        uint32_t nd = t->n_dims;
        ne[0] = t->shape[nd - 1]; /* GGUF lists the innermost dimension first */
        if (nd == 2)
            ne[1] = t->shape[0];
        if ((rc = cai__cam_writer_add_tensor_fn(w, jobs[i].name, nd, ne, jobs[i].type, fill_tensor,
                                                &jobs[i], err)) < 0)
            goto out;
    }
    rc = cai__cam_writer_write(w, p->output, p->progress, p->progress_user, err);
out:
    cai__cam_writer_free(w);
    cai__free(jobs);
    cai__src_close(&src);
    cai__free(dir);
    return rc;
}
