/* quantize.c: cai_quantize(), the quantization pipeline (docs/QUANTIZATION.md).
 *
 *   1. open the model with the engine's loader (validated, weights bound);
 *   2. with calibration text: tokenize it into sequences, embed them, and
 *      run the layers one after another in f32 (qforward.c). At each matmul
 *      input the hook gathers X^T X and mean |x|, picks AWQ scales (folded
 *      into the RMSNorm weight or the previous matmul's rows), rounds with
 *      GPTQ, and hands the layer back its dequantized weights, so the next
 *      matmul (and layer) sees the activations of the quantized model;
 *      without calibration every matrix is rounded on its own;
 *   3. mixed: before 2, a float pass measures each matrix's sensitivity
 *      (mixed.c) and chooses its format for the bits-per-weight budget;
 *   4. write every tensor (in the source's order, with its metadata and our
 *      provenance keys) as GGUF or .coreaimodel. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "coreai_quant.h"
#include "quant_int.h"
#include "quantize_int.h"

#include "../format/coreaimodel.h"
#include "../format/coreaimodel_write.h"
#include "../format/gguf_write.h"

#define QUANT_TOOL_NAME "coreai-optimization 0.1.0"

static const char *const devices[] = {"cpu", "ref", "avx2", "avx512", NULL};

const char *const *cai_quant_devices(void)
{
    return devices;
}

int cai_quant_precision_parse(const char *name)
{
    static const char *names[] = {"f16", "int8", "int4", "mixed"};
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

struct cai_quant_params cai_quant_params_default(void)
{
    struct cai_quant_params p;
    memset(&p, 0, sizeof(p));
    p.precision = CAI_QUANT_INT4;
    p.awq = true;
    p.gptq = true;
    p.reorder = false;
    p.n_calib_tokens = 4096;
    p.seq_len = 512;
    p.n_sens_tokens = 64;
    p.damp = 0.01f;
    p.awq_grid = 10;
    p.awq_rows = 32;
    p.embd_type = -1;
    p.head_f32_input = -1;
    return p;
}

const char *cai__qrole_name(int role)
{
    static const char *names[CAI__QR_COUNT] = {"attn_q",      "attn_k",   "attn_v", "attn_output",
                                               "ffn_gate",    "ffn_up",   "ffn_down"};
    return role >= 0 && role < CAI__QR_COUNT ? names[role] : "?";
}

const struct cai__weight *cai__qrole_weight(const struct cai_model *m, int layer, int role)
{
    const struct cai__layer *L = &m->layers[layer];
    switch (role) {
    case CAI__QR_Q: return &L->wq;
    case CAI__QR_K: return &L->wk;
    case CAI__QR_V: return &L->wv;
    case CAI__QR_O: return &L->wo;
    case CAI__QR_GATE: return &L->w_gate;
    case CAI__QR_UP: return &L->w_up;
    default: return &L->w_down;
    }
}

/* ---- small helpers ------------------------------------------------------- */

void cai__qprogress(struct cai__qctx *c, const char *stage, uint64_t done, uint64_t total)
{
    if (c->p->progress)
        c->p->progress(c->p->user, stage, done, total);
}

int cai__qdequant(const struct cai_kernels *k, const struct cai__weight *w, float *dst)
{
    const struct cai_type_kernels *tk = &k->type[w->type];
    if (!tk->to_f32)
        return CAI_EUNSUPPORTED;
    for (int64_t r = 0; r < w->ne[1]; r++)
        tk->to_f32((const uint8_t *)w->data + (size_t)r * w->row_bytes, dst + r * w->ne[0],
                   w->ne[0]);
    return 0;
}

static struct cai__qt *find_qt(struct cai__qctx *c, const char *name)
{
    for (int i = 0; i < c->n_t; i++)
        if (strcmp(c->t[i].name, name) == 0)
            return &c->t[i];
    return NULL;
}

/* Output bytes of tensor t at type `type` (allocated once). */
static int qt_alloc(struct cai__qctx *c, struct cai__qt *t, uint32_t type, struct cai_error *err)
{
    size_t rb;
    if (!cai__row_bytes(type, t->ne[0], &rb))
        return cai__fail(err, CAI_EINVAL, "%s: rows of %lld do not fit %s", t->name,
                         (long long)t->ne[0], cai__type_info(type)->name);
    uint64_t rows = (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
    size_t n;
    if (!cai__mul_size(rb, (size_t)rows, &n))
        return cai__fail(err, CAI_EINVAL, "%s: too large", t->name);
    cai__free(t->data);
    t->data = cai__malloc(n ? n : 1);
    if (!t->data)
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", t->name);
    t->n_bytes = n;
    t->type = type;
    t->row_bytes = rb;
    (void)c;
    return 0;
}

void cai__qreport(struct cai__qctx *c, struct cai__qt *t)
{
    t->reported = true;
    if (!c->p->on_tensor)
        return;
    struct cai_quant_tensor r = {
        .name = t->name,
        .type = cai__type_info(t->type)->name,
        .n_elem = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3],
        .bpw = cai__type_bpw(t->type),
        .rel_err = t->rel_err,
        .awq_alpha = t->alpha,
        .sens = t->sens,
    };
    c->p->on_tensor(c->p->user, &r);
}

/* In place: columns (cols) or rows of W[n_rows][n_cols] in the order perm
 * (new -> old). */
static int permute(float *W, int64_t n_rows, int64_t n_cols, const int32_t *perm, bool cols)
{
    size_t n = cols ? (size_t)n_cols : (size_t)n_rows * (size_t)n_cols;
    float *tmp = cai__malloc_array(n, sizeof(float));
    if (!tmp)
        return CAI_ENOMEM;
    if (cols) {
        for (int64_t r = 0; r < n_rows; r++) {
            float *w = W + r * n_cols;
            memcpy(tmp, w, n * sizeof(float));
            for (int64_t j = 0; j < n_cols; j++)
                w[j] = tmp[perm[j]];
        }
    } else {
        memcpy(tmp, W, n * sizeof(float));
        for (int64_t r = 0; r < n_rows; r++)
            memcpy(W + r * n_cols, tmp + (size_t)perm[r] * (size_t)n_cols,
                   (size_t)n_cols * sizeof(float));
    }
    cai__free(tmp);
    return 0;
}

/* Sorts channel indices by score, largest first (insertion into order[]). */
static void order_by(const float *score, int64_t n, int32_t *order)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t j = i;
        while (j > 0 && score[order[j - 1]] < score[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = (int32_t)i;
    }
}

/* Quantized rows of t in the order perm (new -> old). */
static int permute_rows_bytes(struct cai__qt *t, const int32_t *perm)
{
    size_t n = t->row_bytes * (size_t)t->ne[1];
    uint8_t *tmp = cai__malloc(n);
    if (!tmp)
        return CAI_ENOMEM;
    memcpy(tmp, t->data, n);
    for (int64_t r = 0; r < t->ne[1]; r++)
        memcpy((uint8_t *)t->data + (size_t)r * t->row_bytes,
               tmp + (size_t)perm[r] * t->row_bytes, t->row_bytes);
    cai__free(tmp);
    return 0;
}

/* ---- round-to-nearest of a whole matrix ---------------------------------- */

struct rtn_job {
    const struct cai_kernels *k;
    const struct cai__qfmt   *f;
    const float              *W, *imp;
    int64_t                   n_out, n_in;
    uint8_t                  *dst;
    size_t                    row_bytes;
    double                   *num, *den; /* per row */
};

static void rtn_worker(void *ctx, int ith, int nth)
{
    const struct rtn_job *j = ctx;
    float deq[8192];
    for (int64_t r = j->n_out * ith / nth; r < j->n_out * (ith + 1) / nth; r++) {
        const float *w = j->W + r * j->n_in;
        uint8_t *blk = j->dst + (size_t)r * j->row_bytes;
        cai__qfmt_quantize_row(j->f, w, j->imp, blk, j->n_in);
        double num = 0.0, den = 0.0;
        for (int64_t c0 = 0; c0 < j->n_in; c0 += 8192) {
            int64_t n = CAI_MIN((int64_t)8192, j->n_in - c0);
            /* Whole groups only: 8192 is a multiple of every group size. */
            j->k->type[j->f->type].to_f32(blk + (size_t)(c0 / j->f->group) * (size_t)j->f->block_bytes,
                                          deq, n);
            for (int64_t i = 0; i < n; i++) {
                double wi = j->imp ? (double)j->imp[c0 + i] : 1.0;
                double d = (double)deq[i] - (double)w[c0 + i];
                num += wi * d * d;
                den += wi * (double)w[c0 + i] * (double)w[c0 + i];
            }
        }
        j->num[r] = num;
        j->den[r] = den;
    }
}

/* Rounds W[n_out][n_in] to `type` into t's output bytes; t->rel_err gets the
 * importance-weighted relative error (imp NULL: plain). */
int cai__qrtn_matrix(struct cai__qctx *c, struct cai__qt *t, uint32_t type, const float *W,
                     const float *imp, struct cai_error *err)
{
    const struct cai__qfmt *f = cai__qfmt_get(type);
    int rc;
    if (!f)
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: cannot quantize to type %u", t->name, type);
    if ((rc = qt_alloc(c, t, type, err)) < 0)
        return rc;
    int64_t n_out = t->ne[1], n_in = t->ne[0];
    double *num = cai__malloc_array((size_t)n_out * 2, sizeof(double));
    if (!num)
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", t->name);
    struct rtn_job j = {.k = c->k, .f = f, .W = W, .imp = imp, .n_out = n_out, .n_in = n_in,
                        .dst = t->data, .row_bytes = t->row_bytes, .num = num, .den = num + n_out};
    cai__pool_run(c->pool, rtn_worker, &j);
    double sn = 0.0, sd = 0.0;
    for (int64_t r = 0; r < n_out; r++) {
        sn += num[r];
        sd += num[n_out + r];
    }
    cai__free(num);
    t->rel_err = sd > 0.0 ? sn / sd : 0.0;
    return 0;
}

/* ---- setup --------------------------------------------------------------- */

static int role_of(const char *name, int n_layer, int *layer)
{
    int l, pos = 0;
    if (sscanf(name, "blk.%d.%n", &l, &pos) != 1 || pos == 0 || l < 0 || l >= n_layer)
        return -1;
    for (int r = 0; r < CAI__QR_COUNT; r++) {
        char want[64];
        snprintf(want, sizeof(want), "%s.weight", cai__qrole_name(r));
        if (strcmp(name + pos, want) == 0) {
            *layer = l;
            return r;
        }
    }
    return -1;
}

/* The format round-to-nearest int4 / int8 use for a row length. */
static uint32_t default_type(int precision, int64_t n_in)
{
    switch (precision) {
    case CAI_QUANT_F16: return CAI_TYPE_F16;
    case CAI_QUANT_INT8: return n_in % 32 == 0 ? CAI_TYPE_Q8_0 : CAI_TYPE_F16;
    default:
        return n_in % 256 == 0 ? CAI_TYPE_Q4_K : n_in % 32 == 0 ? CAI_TYPE_Q4_0 : CAI_TYPE_F16;
    }
}

static int build_table(struct cai__qctx *c, struct cai_error *err)
{
    const struct cai_gguf *g = c->m->gguf;
    c->t = cai__calloc((size_t)g->n_tensors, sizeof(*c->t));
    if (!c->t)
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    c->n_t = (int)g->n_tensors;
    int n_layer = c->m->hp.n_layer;
    for (int i = 0; i < c->n_t; i++) {
        struct cai__qt *t = &c->t[i];
        const struct cai_gguf_tensor *s = &g->tensors[i];
        if (s->name.len >= sizeof(t->name))
            return cai__fail(err, CAI_EFORMAT, "tensor[%d]: name too long", i);
        memcpy(t->name, s->name.ptr, (size_t)s->name.len);
        t->name[s->name.len] = '\0';
        t->src = s;
        t->n_dims = s->n_dims;
        memcpy(t->ne, s->ne, sizeof(t->ne));
        t->type = s->type;
        t->layer = -1;
        t->role = role_of(t->name, n_layer, &t->layer);
        t->alpha = -1.0f;
        const struct cai_type_info *ti = cai__type_info(s->type);
        bool matrix = s->n_dims >= 2 && ti && ti->computed;
        bool embd = strcmp(t->name, "token_embd.weight") == 0 || strcmp(t->name, "output.weight") == 0;
        if (t->role >= 0) {
            t->quant = true;
            t->want = default_type(c->p->precision, t->ne[0]);
            c->idx[t->layer][t->role] = i;
        } else if (matrix && embd) {
            t->quant = true;
            t->want = c->p->precision == CAI_QUANT_F16 ? CAI_TYPE_F16
                      : t->ne[0] % 32 == 0             ? CAI_TYPE_Q8_0
                                                       : CAI_TYPE_F16;
            if (c->p->embd_type >= 0) {
                uint32_t et = (uint32_t)c->p->embd_type;
                const struct cai__qfmt *ef = cai__qfmt_get(et);
                if (et != CAI_TYPE_F16 && et != CAI_TYPE_F32 && !ef)
                    return cai__fail(err, CAI_EINVAL, "embedding type %u is not one this "
                                     "quantizer writes", et);
                if (ef && t->ne[0] % ef->group != 0)
                    return cai__fail(err, CAI_EINVAL, "%s: rows of %lld do not fit %s", t->name,
                                     (long long)t->ne[0], ef->name);
                t->want = et;
            }
        } else if (matrix && c->p->precision == CAI_QUANT_F16 && s->type != CAI_TYPE_F32) {
            t->quant = true;
            t->want = CAI_TYPE_F16;
        }
    }
    for (int l = 0; l < n_layer; l++)
        for (int r = 0; r < CAI__QR_COUNT; r++)
            if (c->idx[l][r] < 0)
                return cai__fail(err, CAI_EFORMAT, "layer %d has no %s weight", l,
                                 cai__qrole_name(r));
    return 0;
}

/* Writes a tensor as f16 or round-to-nearest, from its source bytes. */
static int quantize_alone(struct cai__qctx *c, struct cai__qt *t, struct cai_error *err)
{
    int64_t n_in = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    struct cai__weight w = {.data = t->src->data, .type = t->src->type,
                            .ne = {n_in, rows, 1, 1}};
    if (!cai__row_bytes(w.type, n_in, &w.row_bytes))
        return cai__fail(err, CAI_EFORMAT, "%s: bad row", t->name);
    float *W = cai__malloc_array((size_t)n_in * (size_t)rows, sizeof(float));
    if (!W)
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", t->name);
    int rc = cai__qdequant(c->k, &w, W);
    if (rc < 0) {
        cai__free(W);
        return cai__fail(err, rc, "%s: cannot read type %s", t->name,
                         cai__type_info(w.type)->name);
    }
    bool embd = !strcmp(t->name, "token_embd.weight") || !strcmp(t->name, "output.weight");
    if (c->perm && embd && (rc = permute(W, rows, n_in, c->perm, true)) < 0) {
        cai__free(W);
        return cai__fail(err, rc, "%s: out of memory", t->name);
    }
    if (t->want == CAI_TYPE_F16 || t->want == CAI_TYPE_F32) {
        if ((rc = qt_alloc(c, t, t->want, err)) == 0) {
            if (t->want == CAI_TYPE_F16)
                c->k->f32_to_f16(W, t->data, n_in * rows);
            else
                memcpy(t->data, W, (size_t)(n_in * rows) * sizeof(float));
            t->rel_err = 0.0;
        }
    } else {
        struct cai__qt view = *t;
        view.ne[1] = rows;
        rc = cai__qrtn_matrix(c, &view, t->want, W, NULL, err);
        t->data = view.data;
        t->n_bytes = view.n_bytes;
        t->type = view.type;
        t->row_bytes = view.row_bytes;
        t->rel_err = view.rel_err;
    }
    cai__free(W);
    t->done = rc == 0;
    return rc;
}

/* ---- calibration text ------------------------------------------------------ */

static int load_calibration(struct cai__qctx *c, struct cai_error *err)
{
    char *text = NULL;
    size_t n_bytes = 0;
    int rc = cai__read_file(c->p->calibration_path, &text, &n_bytes, err);
    if (rc < 0)
        return rc;
    uint8_t dg[32];
    cai__sha256(text, n_bytes, dg);
    static const char hex[] = "0123456789abcdef";
    memcpy(c->digest, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        c->digest[7 + 2 * i] = hex[dg[i] >> 4];
        c->digest[8 + 2 * i] = hex[dg[i] & 15];
    }
    c->digest[71] = '\0';
    if (n_bytes > (size_t)INT32_MAX / 2) {
        cai__free(text);
        return cai__fail(err, CAI_ERANGE, "%s: calibration text too large",
                         c->p->calibration_path);
    }
    int n = cai_tokenize(c->m, text, n_bytes, false, false, NULL, 0);
    int32_t *toks = n > 0 ? cai__malloc_array((size_t)n, sizeof(int32_t)) : NULL;
    if (n > 0 && toks)
        n = cai_tokenize(c->m, text, n_bytes, false, false, toks, n);
    cai__free(text);
    if (n > 0 && !toks)
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    if (n < 0) {
        cai__free(toks);
        return cai__fail(err, n, "%s: cannot tokenize the calibration text",
                         c->p->calibration_path);
    }
    /* Sequences of seq_len tokens, each starting with BOS when the model
     * adds one (as `coreai eval` and llama-perplexity score text). */
    int32_t bos = -1;
    {
        int32_t probe[4];
        struct cai_model_info info;
        cai_model_get_info(c->m, &info);
        if (cai_tokenize(c->m, "", 0, true, false, probe, 4) == 1 && probe[0] == info.bos)
            bos = info.bos;
    }
    int body = c->seq_len - (bos >= 0 ? 1 : 0);
    int n_seq = body > 0 ? n / body : 0;
    if (n_seq > c->p->n_calib_tokens / c->seq_len)
        n_seq = c->p->n_calib_tokens / c->seq_len;
    if (n_seq < 1) {
        cai__free(toks);
        return cai__fail(err, CAI_EINVAL, "%s: %d tokens of calibration text; at least %d are "
                         "needed (one sequence of --seq-len)", c->p->calibration_path, n < 0 ? 0 : n,
                         body);
    }
    c->n_cal = (int64_t)n_seq * c->seq_len;
    c->cal = cai__malloc_array((size_t)c->n_cal, sizeof(int32_t));
    if (!c->cal) {
        cai__free(toks);
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    }
    for (int s = 0; s < n_seq; s++) {
        int32_t *dst = c->cal + (size_t)s * (size_t)c->seq_len;
        int o = 0;
        if (bos >= 0)
            dst[o++] = bos;
        memcpy(dst + o, toks + (size_t)s * (size_t)body, (size_t)body * sizeof(int32_t));
    }
    cai__free(toks);
    return 0;
}

/* Embedding rows of tokens[n] into x[n][n_embd]. */
int cai__qembed(struct cai__qctx *c, const int32_t *tokens, int64_t n, float *x)
{
    const struct cai__weight *e = &c->m->tok_embd;
    const struct cai_type_kernels *tk = &c->k->type[e->type];
    int64_t d = c->m->hp.n_embd;
    for (int64_t t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->m->hp.n_vocab)
            return CAI_ERANGE;
        tk->to_f32((const uint8_t *)e->data + (size_t)tokens[t] * e->row_bytes, x + t * d, d);
    }
    if (c->perm) {
        float *row = cai__malloc_array((size_t)d, sizeof(float));
        if (!row)
            return CAI_ENOMEM;
        for (int64_t t = 0; t < n; t++) {
            memcpy(row, x + t * d, (size_t)d * sizeof(float));
            for (int64_t j = 0; j < d; j++)
                x[t * d + j] = row[c->perm[j]];
        }
        cai__free(row);
    }
    return 0;
}

int cai__qload_matrix(struct cai__qctx *c, int layer, int role, float *dst)
{
    const struct cai__weight *w = cai__qrole_weight(c->m, layer, role);
    int rc = cai__qdequant(c->k, w, dst);
    if (rc < 0 || !c->perm)
        return rc;
    bool reads_residual = role != CAI__QR_O && role != CAI__QR_DOWN;
    return permute(dst, w->ne[1], w->ne[0], c->perm, reads_residual);
}

/* ---- the calibrated pass ---------------------------------------------------- */

/* Buffers of one layer in the calibrated pass. */
struct seq_layer {
    float *w[CAI__QR_COUNT];     /* f32 weights: source, then scaled, then dequantized */
    float *attn_norm, *ffn_norm; /* owned by the output tensors */
    float *bv;                   /* owned by the output tensor when present */
};

struct seq_ctx {
    struct cai__qctx *c;
    struct seq_layer  L;
    float            *H, *abssum, *s, *scratch;
    int32_t          *tie;
    struct cai_error *err;
};

static const int point_roles[CAI__QP_COUNT][3] = {
    {CAI__QR_Q, CAI__QR_K, CAI__QR_V},
    {CAI__QR_O, -1, -1},
    {CAI__QR_GATE, CAI__QR_UP, -1},
    {CAI__QR_DOWN, -1, -1},
};

/* Relative output error |dW x|^2 / |W x|^2 from H, on up to 128 rows. */
static double rel_output_err(struct cai__qctx *c, const float *Wref, const struct cai__qt *t,
                             const float *H, const float *s, float *E)
{
    int64_t n_in = t->ne[0], n_out = t->ne[1], ns = CAI_MIN((int64_t)128, n_out);
    float *R = E + ns * n_in;
    for (int64_t i = 0; i < ns; i++) {
        int64_t r = i * n_out / ns;
        float *e = E + i * n_in;
        c->k->type[t->type].to_f32((const uint8_t *)t->data + (size_t)r * t->row_bytes, e, n_in);
        for (int64_t j = 0; j < n_in; j++) {
            /* Back to the original input space: divide by the AWQ scale. */
            float sj = s ? s[j] : 1.0f;
            e[j] = (e[j] - Wref[r * n_in + j]) / sj;
            R[i * n_in + j] = Wref[r * n_in + j] / sj;
        }
    }
    double num = cai__quad_form_rows(c->k, E, ns, n_in, H, c->pool);
    double den = cai__quad_form_rows(c->k, R, ns, n_in, H, c->pool);
    return den > 0.0 && num >= 0.0 ? num / den : 0.0;
}

static int seq_hook(void *user, int layer, int point, float *A, int64_t n_tok, int64_t n_in,
                    struct cai__qlayer *lw)
{
    struct seq_ctx *sc = user;
    struct cai__qctx *c = sc->c;
    const struct cai_quant_params *p = c->p;
    struct cai_error *err = sc->err;
    const struct cai__hparams *hp = &c->m->hp;
    int rc;
    size_t nn = (size_t)n_in * (size_t)n_in;
    if (point == CAI__QP_FFN_DOWN && p->reorder) {
        /* Regroup the feed-forward channels by peak |h| (exact: gate and up
         * rows, down columns and h move together). */
        float *peak = sc->abssum;
        int32_t *ord = sc->tie;
        for (int64_t j = 0; j < n_in; j++)
            peak[j] = 0.0f;
        for (int64_t t = 0; t < n_tok; t++)
            for (int64_t j = 0; j < n_in; j++)
                peak[j] = fabsf(A[t * n_in + j]) > peak[j] ? fabsf(A[t * n_in + j]) : peak[j];
        order_by(peak, n_in, ord);
        struct cai__qt *tg = &c->t[c->idx[layer][CAI__QR_GATE]];
        struct cai__qt *tu = &c->t[c->idx[layer][CAI__QR_UP]];
        if ((rc = permute(A, n_tok, n_in, ord, true)) < 0 ||
            (rc = permute(sc->L.w[CAI__QR_DOWN], hp->n_embd, n_in, ord, true)) < 0 ||
            (rc = permute_rows_bytes(tg, ord)) < 0 || (rc = permute_rows_bytes(tu, ord)) < 0)
            return cai__fail(err, rc, "out of memory");
    }
    memset(sc->H, 0, nn * sizeof(float));
    memset(sc->abssum, 0, (size_t)n_in * sizeof(float));
    if ((rc = cai__qfwd_stats(c->k, c->pool, A, n_tok, n_in, sc->H, sc->abssum, err)) < 0)
        return rc;
    for (int64_t j = 0; j < n_in; j++)
        sc->abssum[j] /= (float)n_tok;

    struct cai__qt *ts[3] = {NULL, NULL, NULL};
    int n_m = 0;
    for (int i = 0; i < 3 && point_roles[point][i] >= 0; i++, n_m++)
        ts[i] = &c->t[c->idx[layer][point_roles[point][i]]];

    /* ---- AWQ: choose s, fold 1/s into the producer of A ---- */
    float alpha = -1.0f;
    bool scaled = false;
    if (p->awq) {
        struct cai__awq_mat mats[3];
        for (int i = 0; i < n_m; i++) {
            mats[i].w = sc->L.w[point_roles[point][i]];
            mats[i].n_out = ts[i]->ne[1];
            mats[i].fmt = cai__qfmt_get(ts[i]->want);
            mats[i].act_block = cai__act_block(c->k, ts[i]->want);
        }
        const int32_t *tie = NULL;
        if (point == CAI__QP_ATTN_OUT) {
            cai__awq_tie_gqa(hp->n_head, hp->n_head_kv, hp->head_dim, sc->tie);
            tie = sc->tie;
        }
        float gain;
        if ((rc = cai__awq_search(c->k, mats, n_m, A, n_tok, n_in, sc->abssum, sc->H, tie,
                                  p->awq_grid, p->awq_rows, sc->s, &alpha, &gain, c->pool,
                                  err)) < 0)
            return rc;
        scaled = alpha > 0.0f;
    }
    if (scaled) {
        const float *s = sc->s;
        cai__awq_scale_cols(A, n_tok, n_in, s, true);
        for (int i = 0; i < n_m; i++)
            cai__awq_scale_cols(sc->L.w[point_roles[point][i]], ts[i]->ne[1], n_in, s, false);
        for (int64_t a = 0; a < n_in; a++)
            for (int64_t b = 0; b < n_in; b++)
                sc->H[a * n_in + b] /= s[a] * s[b];
        if (point == CAI__QP_ATTN || point == CAI__QP_FFN) {
            float *norm = point == CAI__QP_ATTN ? sc->L.attn_norm : sc->L.ffn_norm;
            for (int64_t j = 0; j < n_in; j++)
                norm[j] /= s[j];
        } else {
            /* The producer's rows were quantized already: rescale their blocks. */
            bool att = point == CAI__QP_ATTN_OUT;
            struct cai__qt *tp = &c->t[c->idx[layer][att ? CAI__QR_V : CAI__QR_UP]];
            int group = att ? hp->n_head / hp->n_head_kv : 1;
            int hd = att ? hp->head_dim : (int)tp->ne[1];
            if ((rc = cai__awq_fold_rows(tp->type, tp->data, tp->row_bytes, tp->ne[1], tp->ne[0],
                                         s, group, hd, att ? sc->L.bv : NULL)) < 0)
                return cai__fail(err, rc, "%s: cannot rescale rows", tp->name);
        }
    }

    /* ---- round: GPTQ (or importance-weighted RTN) ---- */
    float *U = NULL;
    if (p->gptq) {
        U = cai__gptq_factor(sc->H, n_in, p->damp, err);
        if (!U)
            return err ? err->code : CAI_EINVAL;
    }
    float *imp = sc->abssum; /* reuse: diag(H) as importance */
    for (int64_t j = 0; j < n_in; j++)
        imp[j] = sc->H[j * n_in + j];
    rc = 0;
    for (int i = 0; i < n_m && rc == 0; i++) {
        struct cai__qt *t = ts[i];
        float *W = sc->L.w[point_roles[point][i]];
        int64_t n_out = t->ne[1];
        if (p->gptq) {
            if ((rc = qt_alloc(c, t, t->want, err)) < 0)
                break;
            float *Wc = cai__malloc_array((size_t)n_out * (size_t)n_in, sizeof(float));
            if (!Wc) {
                rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", t->name);
                break;
            }
            memcpy(Wc, W, (size_t)n_out * (size_t)n_in * sizeof(float));
            double loss = cai__gptq_quantize(cai__qfmt_get(t->want), Wc, n_out, n_in, U, imp,
                                             t->data, c->pool);
            cai__free(Wc);
            if (loss < 0.0) {
                rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", t->name);
                break;
            }
        } else if ((rc = cai__qrtn_matrix(c, t, t->want, W, imp, err)) < 0) {
            break;
        }
        /* Error on the calibration inputs, in the original input space
         * (H scaled back: e^T H e with e = (Q - W') / s). */
        {
            float *Horig = sc->scratch; /* n_in^2 */
            for (int64_t a = 0; a < n_in; a++)
                for (int64_t b = 0; b < n_in; b++)
                    Horig[a * n_in + b] = sc->H[a * n_in + b] *
                                          (scaled ? sc->s[a] * sc->s[b] : 1.0f);
            t->rel_err = rel_output_err(c, W, t, Horig, scaled ? sc->s : NULL,
                                        Horig + nn);
        }
        t->alpha = p->awq ? alpha : -1.0f;
        /* The layer goes on with the dequantized weights (in W's buffer). */
        if ((rc = cai__qdequant(c->k, &(struct cai__weight){.data = t->data, .type = t->type,
                                                             .ne = {n_in, n_out, 1, 1},
                                                             .row_bytes = t->row_bytes},
                                W)) < 0)
            rc = cai__fail(err, rc, "%s: cannot dequantize", t->name);
        t->done = true;
        c->n_done++;
        cai__qreport(c, t);
        cai__qprogress(c, "quantize", (uint64_t)c->n_done, (uint64_t)c->n_todo);
    }
    cai__free(U);
    (void)lw;
    return rc;
}

/* An owned f32 copy of a 1-D f32 tensor as the output's bytes. */
float *cai__qown_f32(struct cai__qctx *c, struct cai__qt *t, struct cai_error *err)
{
    if (t->data)
        return t->data;
    if (t->src->type != CAI_TYPE_F32) {
        cai__fail(err, CAI_EUNSUPPORTED, "%s: must be f32", t->name);
        return NULL;
    }
    if (qt_alloc(c, t, CAI_TYPE_F32, err) < 0)
        return NULL;
    memcpy(t->data, t->src->data, t->n_bytes);
    if (c->perm && t->ne[0] == c->m->hp.n_embd && t->n_dims == 1 &&
        permute(t->data, 1, t->ne[0], c->perm, true) < 0) {
        cai__fail(err, CAI_ENOMEM, "out of memory");
        return NULL;
    }
    return t->data;
}

/* The output matrix with GPTQ too, on the final normed states of the
 * quantized model (x[N][n_embd] is overwritten). In tied models that matrix
 * is also the token embedding; its rows then carry the compensated rounding
 * into the embedding as well, which is as close to them as plain rounding. */
static int head_gptq(struct cai__qctx *c, float *x, int64_t N, float *H, float *E,
                     struct cai_error *err)
{
    const struct cai__hparams *hp = &c->m->hp;
    int64_t d = hp->n_embd, V = hp->n_vocab;
    struct cai__qt *t = find_qt(c, "output.weight");
    if (!t)
        t = find_qt(c, "token_embd.weight");
    struct cai__qt *tn = find_qt(c, "output_norm.weight");
    const struct cai__qfmt *f = t ? cai__qfmt_get(t->want) : NULL;
    if (!t || !tn || !f || t->ne[0] != d || t->ne[1] != V || d % f->group != 0)
        return 0; /* f16 / f32 output, or an unusual shape: rounded on its own later */
    const float *norm = tn->data ? (const float *)tn->data : c->m->output_norm.data;
    for (int64_t i = 0; i < N; i++)
        c->k->rmsnorm(x + i * d, x + i * d, norm, d, hp->rms_eps);
    memset(H, 0, (size_t)d * (size_t)d * sizeof(float));
    int rc = cai__qfwd_stats(c->k, c->pool, x, N, d, H, NULL, err);
    if (rc < 0)
        return rc;
    float *W = cai__malloc_array((size_t)V * (size_t)d, sizeof(float));
    float *Wc = cai__malloc_array((size_t)V * (size_t)d, sizeof(float));
    float *imp = cai__malloc_array((size_t)d, sizeof(float));
    float *U = NULL;
    if (!W || !Wc || !imp) {
        rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", t->name);
        goto out;
    }
    if ((rc = cai__qload_output(c, W)) < 0) {
        rc = cai__fail(err, rc, "%s: cannot read its type", t->name);
        goto out;
    }
    U = cai__gptq_factor(H, d, c->p->damp, err);
    if (!U) {
        rc = err ? err->code : CAI_EINVAL;
        goto out;
    }
    for (int64_t j = 0; j < d; j++)
        imp[j] = H[j * d + j];
    if ((rc = qt_alloc(c, t, t->want, err)) < 0)
        goto out;
    memcpy(Wc, W, (size_t)V * (size_t)d * sizeof(float));
    if (cai__gptq_quantize(f, Wc, V, d, U, imp, t->data, c->pool) < 0.0) {
        rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", t->name);
        goto out;
    }
    t->rel_err = rel_output_err(c, W, t, H, NULL, E);
    t->done = true;
    c->n_done++;
    cai__qreport(c, t);
    cai__qprogress(c, "quantize", (uint64_t)c->n_done, (uint64_t)c->n_todo);
out:
    cai__free(W);
    cai__free(Wc);
    cai__free(imp);
    cai__free(U);
    return rc;
}

int cai__qcalibrated(struct cai__qctx *c, float *const *fp_layers, struct cai_error *err)
{
    const struct cai__hparams *hp = &c->m->hp;
    int64_t N = c->n_cal, d = hp->n_embd;
    int64_t wide = CAI_MAX((int64_t)hp->n_ff, (int64_t)hp->n_head * hp->head_dim);
    wide = CAI_MAX(wide, d);
    struct cai__qfwd f;
    struct seq_ctx sc = {.c = c, .err = err};
    float *x = NULL;
    int rc = cai__qfwd_init(&f, hp, c->m->rope_freqs.data, c->k, c->pool, N, c->seq_len, err);
    if (rc < 0)
        return rc;
    size_t nn = (size_t)wide * (size_t)wide;
    x = cai__malloc_array((size_t)N * (size_t)d, sizeof(float));
    sc.H = cai__malloc_array(nn, sizeof(float));
    sc.scratch = cai__malloc_array(nn + 2 * 128 * (size_t)wide, sizeof(float));
    sc.abssum = cai__malloc_array((size_t)wide, sizeof(float));
    sc.s = cai__malloc_array((size_t)wide, sizeof(float));
    sc.tie = cai__malloc_array((size_t)wide, sizeof(int32_t));
    for (int r = 0; r < CAI__QR_COUNT; r++) {
        const struct cai__qt *t = &c->t[c->idx[0][r]];
        sc.L.w[r] = cai__malloc_array((size_t)t->ne[0] * (size_t)t->ne[1], sizeof(float));
        if (!sc.L.w[r])
            rc = CAI_ENOMEM;
    }
    if (rc < 0 || !x || !sc.H || !sc.scratch || !sc.abssum || !sc.s || !sc.tie) {
        rc = cai__fail(err, CAI_ENOMEM, "calibration: out of memory");
        goto out;
    }
    if ((rc = cai__qembed(c, c->cal, N, x)) < 0) {
        rc = cai__fail(err, rc, "calibration: token out of range");
        goto out;
    }
    for (int l = 0; l < hp->n_layer; l++) {
        char name[80];
        struct cai__qt *tan, *tfn, *tbv;
        snprintf(name, sizeof(name), "blk.%d.attn_norm.weight", l);
        tan = find_qt(c, name);
        snprintf(name, sizeof(name), "blk.%d.ffn_norm.weight", l);
        tfn = find_qt(c, name);
        snprintf(name, sizeof(name), "blk.%d.attn_v.bias", l);
        tbv = find_qt(c, name);
        if (!tan || !tfn) {
            rc = cai__fail(err, CAI_EFORMAT, "layer %d: norm weights missing", l);
            goto out;
        }
        sc.L.attn_norm = cai__qown_f32(c, tan, err);
        sc.L.ffn_norm = cai__qown_f32(c, tfn, err);
        sc.L.bv = tbv ? cai__qown_f32(c, tbv, err) : NULL;
        if (!sc.L.attn_norm || !sc.L.ffn_norm || (tbv && !sc.L.bv)) {
            rc = err ? err->code : CAI_ENOMEM;
            goto out;
        }
        for (int r = 0; r < CAI__QR_COUNT; r++) {
            const struct cai__qt *t = &c->t[c->idx[l][r]];
            size_t n = (size_t)t->ne[0] * (size_t)t->ne[1];
            if (fp_layers) {
                memcpy(sc.L.w[r], fp_layers[l * CAI__QR_COUNT + r], n * sizeof(float));
            } else if ((rc = cai__qload_matrix(c, l, r, sc.L.w[r])) < 0) {
                rc = cai__fail(err, rc, "%s: cannot read its type", t->name);
                goto out;
            }
        }
        const struct cai__layer *ML = &c->m->layers[l];
        struct cai__qlayer lw = {
            .wq = sc.L.w[CAI__QR_Q], .wk = sc.L.w[CAI__QR_K], .wv = sc.L.w[CAI__QR_V],
            .wo = sc.L.w[CAI__QR_O], .wg = sc.L.w[CAI__QR_GATE], .wu = sc.L.w[CAI__QR_UP],
            .wd = sc.L.w[CAI__QR_DOWN], .bq = ML->bq.data, .bk = ML->bk.data,
            .bv = sc.L.bv, .attn_norm = sc.L.attn_norm, .ffn_norm = sc.L.ffn_norm,
        };
        if ((rc = cai__qfwd_layer(&f, &lw, l, x, seq_hook, &sc)) != 0)
            goto out;
    }
    if (c->p->gptq)
        rc = head_gptq(c, x, N, sc.H, sc.scratch, err);
out:
    cai__qfwd_deinit(&f);
    cai__free(x);
    cai__free(sc.H);
    cai__free(sc.scratch);
    cai__free(sc.abssum);
    cai__free(sc.s);
    cai__free(sc.tie);
    for (int r = 0; r < CAI__QR_COUNT; r++)
        cai__free(sc.L.w[r]);
    return rc;
}

struct cai__qt *cai__qfind(struct cai__qctx *c, const char *name)
{
    return find_qt(c, name);
}

int cai__qload_output(struct cai__qctx *c, float *dst)
{
    const struct cai__weight *w = &c->m->output;
    int rc = cai__qdequant(c->k, w, dst);
    if (rc < 0 || !c->perm)
        return rc;
    return permute(dst, w->ne[1], w->ne[0], c->perm, true);
}

/* ---- channel order ------------------------------------------------------------ */

/* The engine quantizes each matmul input in blocks of 32 (or 256) channels
 * with one scale per block, so a few large channels spread over many blocks
 * coarsen all of them. Reordering the residual stream's channels is exact
 * (permute the embedding's and every input matrix's columns, the output
 * matrices' rows and the norm weights alike; RMSNorm does not care) and puts
 * the large channels into the same blocks. The order comes from one float
 * pass over the first calibration sequence: channels sorted by their peak
 * |x| at every residual-reading input (each input normalised by its mean
 * peak; the output head's input weighted as much as all layers together). */

struct order_ctx {
    float  *score;  /* [n_embd] */
    float  *peak;   /* [n_embd] scratch */
};

static void add_peaks(float *score, float *peak, const float *A, int64_t n_tok, int64_t d,
                      float weight)
{
    double mean = 0.0;
    for (int64_t j = 0; j < d; j++)
        peak[j] = 0.0f;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t j = 0; j < d; j++)
            peak[j] = fabsf(A[t * d + j]) > peak[j] ? fabsf(A[t * d + j]) : peak[j];
    for (int64_t j = 0; j < d; j++)
        mean += (double)peak[j];
    mean /= (double)d;
    if (mean > 0.0)
        for (int64_t j = 0; j < d; j++)
            score[j] += weight * (float)((double)peak[j] / mean);
}

static int order_hook(void *user, int layer, int point, float *A, int64_t n_tok, int64_t n_in,
                      struct cai__qlayer *lw)
{
    struct order_ctx *oc = user;
    if (point == CAI__QP_ATTN || point == CAI__QP_FFN)
        add_peaks(oc->score, oc->peak, A, n_tok, n_in, 1.0f);
    (void)layer;
    (void)lw;
    return 0;
}

/* Only models whose every n_embd-sized dimension is one we permute. */
static bool can_reorder(const struct cai__qctx *c)
{
    int64_t d = c->m->hp.n_embd;
    for (int i = 0; i < c->n_t; i++) {
        const struct cai__qt *t = &c->t[i];
        const char *dot = strrchr(t->name, '.');
        size_t stem = dot ? (size_t)(dot - t->name) : strlen(t->name);
        bool touches = false;
        for (uint32_t k = 0; k < t->n_dims; k++)
            touches = touches || t->ne[k] == d;
        if (!touches || t->role >= 0 || !strcmp(t->name, "token_embd.weight") ||
            !strcmp(t->name, "output.weight"))
            continue;
        static const char *const ok_suffix[] = {"attn_norm", "ffn_norm", "output_norm",
                                                "attn_q", "attn_k", "attn_v"};
        bool ok = false;
        for (size_t k = 0; k < CAI_ARRAY_LEN(ok_suffix); k++) {
            size_t n = strlen(ok_suffix[k]);
            ok = ok || (stem >= n && !strncmp(t->name + stem - n, ok_suffix[k], n) &&
                        (k < 3 ? t->n_dims == 1 : strcmp(dot ? dot : "", ".bias") == 0));
        }
        if (!ok)
            return false;
    }
    return true;
}

static int residual_order(struct cai__qctx *c, struct cai_error *err)
{
    const struct cai__hparams *hp = &c->m->hp;
    int64_t d = hp->n_embd, N = c->seq_len;
    struct cai__qfwd f;
    struct order_ctx oc = {0};
    float *x = NULL, *w[CAI__QR_COUNT] = {0};
    int rc = cai__qfwd_init(&f, hp, c->m->rope_freqs.data, c->k, c->pool, N, c->seq_len, err);
    if (rc < 0)
        return rc;
    x = cai__malloc_array((size_t)N * (size_t)d, sizeof(float));
    oc.score = cai__calloc((size_t)d, sizeof(float));
    oc.peak = cai__malloc_array((size_t)d, sizeof(float));
    c->perm = cai__malloc_array((size_t)d, sizeof(int32_t));
    for (int r = 0; r < CAI__QR_COUNT; r++) {
        const struct cai__weight *cw = cai__qrole_weight(c->m, 0, r);
        w[r] = cai__malloc_array((size_t)(cw->ne[0] * cw->ne[1]), sizeof(float));
        if (!w[r])
            rc = CAI_ENOMEM;
    }
    if (rc < 0 || !x || !oc.score || !oc.peak || !c->perm) {
        rc = cai__fail(err, CAI_ENOMEM, "calibration: out of memory");
        goto out;
    }
    int32_t *perm = c->perm;
    c->perm = NULL; /* the pass itself runs in the source order */
    if ((rc = cai__qembed(c, c->cal, N, x)) < 0) {
        c->perm = perm;
        rc = cai__fail(err, rc, "calibration: token out of range");
        goto out;
    }
    for (int l = 0; l < hp->n_layer && rc == 0; l++) {
        for (int r = 0; r < CAI__QR_COUNT && rc == 0; r++)
            rc = cai__qload_matrix(c, l, r, w[r]);
        if (rc < 0) {
            rc = cai__fail(err, rc, "layer %d: cannot read its weights", l);
            break;
        }
        const struct cai__layer *ML = &c->m->layers[l];
        struct cai__qlayer lw = {
            .wq = w[CAI__QR_Q], .wk = w[CAI__QR_K], .wv = w[CAI__QR_V], .wo = w[CAI__QR_O],
            .wg = w[CAI__QR_GATE], .wu = w[CAI__QR_UP], .wd = w[CAI__QR_DOWN],
            .bq = ML->bq.data, .bk = ML->bk.data, .bv = ML->bv.data,
            .attn_norm = ML->attn_norm.data, .ffn_norm = ML->ffn_norm.data,
        };
        rc = cai__qfwd_layer(&f, &lw, l, x, order_hook, &oc);
        cai__qprogress(c, "reorder", (uint64_t)l + 1, (uint64_t)hp->n_layer);
    }
    c->perm = perm;
    if (rc != 0)
        goto out;
    for (int64_t t = 0; t < N; t++)
        c->k->rmsnorm(x + t * d, x + t * d, c->m->output_norm.data, d, hp->rms_eps);
    add_peaks(oc.score, oc.peak, x, N, d, 2.0f * (float)hp->n_layer);
    order_by(oc.score, d, c->perm);
out:
    if (rc != 0) {
        cai__free(c->perm);
        c->perm = NULL;
    }
    cai__qfwd_deinit(&f);
    cai__free(x);
    cai__free(oc.score);
    cai__free(oc.peak);
    for (int r = 0; r < CAI__QR_COUNT; r++)
        cai__free(w[r]);
    return rc;
}

/* ---- writing ----------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool skip_key(const char *key)
{
    return strcmp(key, "general.alignment") == 0 || strcmp(key, "general.file_type") == 0 ||
           strncmp(key, "coreai.", 7) == 0;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

struct prov {
    const char *method, *device, *source_format, *source_name, *digest;
    float       bits;
    bool        head_f32_input;
    uint64_t    calib_tokens;
    int         file_type; /* -1: none */
};

static int write_gguf(struct cai__qctx *c, const char *path, const struct prov *pv,
                      struct cai_error *err)
{
    struct cai_gguf_writer *w = NULL;
    const struct cai_gguf *g = c->m->gguf;
    int rc = cai__gguf_writer_new(&w, 3, err);
    if (rc < 0)
        return rc;
    for (uint64_t i = 0; i < g->n_kv && rc == 0; i++) {
        const struct cai_gguf_kv *kv = &g->kv[i];
        char key[256];
        if (kv->key.len >= sizeof(key) || memchr(kv->key.ptr, 0, (size_t)kv->key.len))
            continue;
        memcpy(key, kv->key.ptr, (size_t)kv->key.len);
        key[kv->key.len] = '\0';
        if (skip_key(key))
            continue;
        switch (kv->type) {
        case CAI_GGUF_STRING:
            rc = cai__gguf_writer_add_strn(w, key, kv->str.ptr, kv->str.len, err);
            break;
        case CAI_GGUF_ARRAY: {
            const uint8_t *body = kv->arr_data - 12;
            const uint8_t *end = cai__cam_skip_array(body, g->base + g->n_bytes, 1);
            if (!end || body < g->base)
                rc = cai__fail(err, CAI_EFORMAT, "key %s: array outside its file", key);
            else
                rc = cai__gguf_writer_add_raw(w, key, CAI_GGUF_ARRAY, body, (size_t)(end - body),
                                              err);
            break;
        }
        case CAI_GGUF_U8: rc = cai__gguf_writer_add_u8(w, key, (uint8_t)kv->u64, err); break;
        case CAI_GGUF_I8: rc = cai__gguf_writer_add_i8(w, key, (int8_t)kv->i64, err); break;
        case CAI_GGUF_U16: rc = cai__gguf_writer_add_u16(w, key, (uint16_t)kv->u64, err); break;
        case CAI_GGUF_I16: rc = cai__gguf_writer_add_i16(w, key, (int16_t)kv->i64, err); break;
        case CAI_GGUF_U32: rc = cai__gguf_writer_add_u32(w, key, (uint32_t)kv->u64, err); break;
        case CAI_GGUF_I32: rc = cai__gguf_writer_add_i32(w, key, (int32_t)kv->i64, err); break;
        case CAI_GGUF_F32: rc = cai__gguf_writer_add_f32(w, key, (float)kv->f64, err); break;
        case CAI_GGUF_BOOL: rc = cai__gguf_writer_add_bool(w, key, kv->u64 != 0, err); break;
        case CAI_GGUF_U64: rc = cai__gguf_writer_add_u64(w, key, kv->u64, err); break;
        case CAI_GGUF_I64: rc = cai__gguf_writer_add_i64(w, key, kv->i64, err); break;
        case CAI_GGUF_F64: rc = cai__gguf_writer_add_f64(w, key, kv->f64, err); break;
        default: rc = cai__fail(err, CAI_EFORMAT, "key %s: unknown value type", key);
        }
    }
    if (rc == 0 && pv->file_type >= 0)
        rc = cai__gguf_writer_add_u32(w, "general.file_type", (uint32_t)pv->file_type, err);
    if (rc == 0)
        rc = cai__gguf_writer_add_str(w, "coreai.converter", QUANT_TOOL_NAME, err);
    if (rc == 0)
        rc = cai__gguf_writer_add_str(w, "coreai.source.format", pv->source_format, err);
    if (rc == 0)
        rc = cai__gguf_writer_add_str(w, "coreai.source.name", pv->source_name, err);
    if (rc == 0)
        rc = cai__gguf_writer_add_str(w, "coreai.quantization.method", pv->method, err);
    if (rc == 0)
        rc = cai__gguf_writer_add_f32(w, "coreai.quantization.bits", pv->bits, err);
    if (rc == 0)
        rc = cai__gguf_writer_add_str(w, "coreai.quantization.target_device", pv->device, err);
    if (rc == 0 && pv->digest)
        rc = cai__gguf_writer_add_str(w, "coreai.quantization.calibration_digest", pv->digest,
                                      err);
    if (rc == 0 && pv->digest)
        rc = cai__gguf_writer_add_u64(w, "coreai.quantization.calibration_tokens",
                                      pv->calib_tokens, err);
    if (rc == 0 && pv->head_f32_input)
        rc = cai__gguf_writer_add_bool(w, "coreai.head.f32_input", true, err);
    for (int i = 0; i < c->n_t && rc == 0; i++) {
        const struct cai__qt *t = &c->t[i];
        const void *data = t->data ? t->data : t->src->data;
        uint64_t n = t->data ? t->n_bytes : t->src->n_bytes;
        rc = cai__gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type, data, n, err);
    }
    if (rc == 0) {
        cai__qprogress(c, "write", 0, 1);
        rc = cai__gguf_writer_write_file(w, path, err);
        cai__qprogress(c, "write", 1, 1);
    }
    cai__gguf_writer_free(w);
    return rc;
}

static void cam_progress(void *user, uint64_t done, uint64_t total)
{
    cai__qprogress(user, "write", done, total);
}

static int write_cam(struct cai__qctx *c, const char *path, const struct prov *pv,
                     struct cai_error *err)
{
    struct cai_cam_writer *w = NULL;
    const struct cai_gguf *g = c->m->gguf;
    int rc = cai__cam_writer_new(&w, err);
    if (rc < 0)
        return rc;
    for (uint64_t i = 0; i < g->n_kv && rc == 0; i++) {
        const struct cai_gguf_kv *kv = &g->kv[i];
        char key[256];
        if (kv->key.len >= sizeof(key) || memchr(kv->key.ptr, 0, (size_t)kv->key.len))
            continue;
        memcpy(key, kv->key.ptr, (size_t)kv->key.len);
        key[kv->key.len] = '\0';
        if (!skip_key(key))
            rc = cai__cam_writer_copy_kv(w, g, kv, err);
    }
    if (rc == 0 && pv->file_type >= 0)
        rc = cai__cam_writer_add_u32(w, "general.file_type", (uint32_t)pv->file_type, err);
    if (rc == 0)
        rc = cai__cam_writer_add_str(w, "coreai.format_version", "1.0", err);
    if (rc == 0)
        rc = cai__cam_writer_add_str(w, "coreai.converter", QUANT_TOOL_NAME, err);
    if (rc == 0)
        rc = cai__cam_writer_add_str(w, "coreai.source.format", pv->source_format, err);
    if (rc == 0)
        rc = cai__cam_writer_add_str(w, "coreai.source.name", pv->source_name, err);
    if (rc == 0)
        rc = cai__cam_writer_add_str(w, "coreai.quantization.method", pv->method, err);
    if (rc == 0)
        rc = cai__cam_writer_add_f32(w, "coreai.quantization.bits", pv->bits, err);
    if (rc == 0)
        rc = cai__cam_writer_add_str(w, "coreai.quantization.target_device", pv->device, err);
    if (rc == 0 && pv->digest)
        rc = cai__cam_writer_add_str(w, "coreai.quantization.calibration_digest", pv->digest, err);
    if (rc == 0 && pv->digest)
        rc = cai__cam_writer_add_u64(w, "coreai.quantization.calibration_tokens",
                                     pv->calib_tokens, err);
    if (rc == 0 && pv->head_f32_input)
        rc = cai__cam_writer_add_bool(w, "coreai.head.f32_input", true, err);
    for (int i = 0; i < c->n_t && rc == 0; i++) {
        const struct cai__qt *t = &c->t[i];
        rc = cai__cam_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type,
                                        t->data ? t->data : t->src->data, err);
    }
    if (rc == 0)
        rc = cai__cam_writer_write(w, path, cam_progress, c, err);
    cai__cam_writer_free(w);
    return rc;
}

/* ---- the entry point ------------------------------------------------------------ */

static int check_params(const char *in_path, const char *out_path, const struct cai_quant_params *p,
                        struct cai_error *err)
{
    if (!in_path || !*in_path || !out_path || !*out_path)
        return cai__fail(err, CAI_EINVAL, "input and output paths are required");
    if (strcmp(in_path, out_path) == 0)
        return cai__fail(err, CAI_EINVAL, "the output must not overwrite the input (%s)", in_path);
    if (p->precision < CAI_QUANT_F16 || p->precision > CAI_QUANT_MIXED)
        return cai__fail(err, CAI_EINVAL, "unknown precision %d (f16, int8, int4 or mixed)",
                         p->precision);
    if (p->target_device) {
        bool ok = false;
        for (int i = 0; devices[i]; i++)
            ok = ok || strcmp(devices[i], p->target_device) == 0;
        if (!ok)
            return cai__fail(err, CAI_EINVAL, "unknown target device \"%s\" (valid: cpu, ref, "
                             "avx2, avx512)", p->target_device);
    }
    if (p->formats && p->precision != CAI_QUANT_MIXED)
        return cai__fail(err, CAI_EINVAL, "a list of formats applies to mixed precision only");
    if (p->precision == CAI_QUANT_MIXED) {
        bool allowed[8];
        int rc = cai__qmixed_formats(p->formats, allowed, err);
        if (rc < 0)
            return rc;
        if (!(p->target_bpw > 0.0f) || !(p->target_bpw <= 32.0f))
            return cai__fail(err, CAI_EINVAL, "mixed precision needs a target bits per weight "
                             "in (0, 32] (--target-bpw)");
        if (!p->calibration_path)
            return cai__fail(err, CAI_EINVAL, "mixed precision needs calibration text "
                             "(--calibration) to measure sensitivity");
    } else if (p->target_bpw != 0.0f) {
        return cai__fail(err, CAI_EINVAL, "a target bits per weight applies to mixed precision "
                         "only");
    }
    if (p->precision == CAI_QUANT_F16 && p->calibration_path)
        return cai__fail(err, CAI_EINVAL, "f16 output needs no calibration");
    if (p->calibration_path &&
        (p->seq_len < 8 || p->seq_len > 1 << 16 || p->n_calib_tokens < p->seq_len ||
         p->n_calib_tokens > 1 << 22))
        return cai__fail(err, CAI_EINVAL, "calibration: need 8 <= seq_len <= 65536 and seq_len <= "
                         "calibration tokens <= 4194304");
    if (!(p->damp >= 0.0f && p->damp <= 10.0f) || p->awq_grid < 1 || p->awq_grid > 1000 ||
        p->awq_rows < 1 || p->n_threads < 0 || p->n_threads > 1024 ||
        (p->precision == CAI_QUANT_MIXED && (p->n_sens_tokens < 8 || p->n_sens_tokens > p->seq_len)))
        return cai__fail(err, CAI_EINVAL, "a tuning parameter is out of range (damp 0..10, AWQ grid "
                         "1..1000, sensitivity tokens 8..seq_len, threads 0..1024)");
    return 0;
}

int cai_quantize(const char *in_path, const char *out_path, const struct cai_quant_params *p,
                 struct cai_quant_summary *summary, struct cai_error *err)
{
    struct cai__qctx c;
    memset(&c, 0, sizeof(c));
    struct cai_quant_summary sum;
    memset(&sum, 0, sizeof(sum));
    int64_t t_start = cai__now_ns();
    if (!p)
        return cai__fail(err, CAI_EINVAL, "no parameters");
    int rc = check_params(in_path, out_path, p, err);
    if (rc < 0)
        return rc;
    c.p = p;
    c.seq_len = p->seq_len;
    memset(c.idx, 0xff, sizeof(c.idx));
    struct cai_model_params mp = cai_model_params_default();
    if ((rc = cai_model_open(&c.m, in_path, &mp, err)) < 0)
        return rc;
    if (c.m->hp.n_layer > CAI__MAX_LAYERS) {
        rc = cai__fail(err, CAI_EUNSUPPORTED, "too many layers");
        goto out;
    }
    c.k = cai__kernels_get();
    if (!c.k)
        c.k = &cai__kernels_ref;
    int nt = p->n_threads > 0 ? p->n_threads : cai__cpu()->n_cpus;
    if ((rc = cai__pool_new(&c.pool, nt < 1 ? 1 : nt)) < 0) {
        rc = cai__fail(err, rc, "cannot start %d threads", nt);
        goto out;
    }
    if ((rc = build_table(&c, err)) < 0)
        goto out;
    for (int i = 0; i < c.n_t; i++)
        c.n_todo += c.t[i].quant;

    bool calibrated = p->calibration_path != NULL;
    if (calibrated && (rc = load_calibration(&c, err)) < 0)
        goto out;
    if (calibrated && p->reorder && can_reorder(&c)) {
        if ((rc = residual_order(&c, err)) < 0)
            goto out;
        struct cai__qt *on = find_qt(&c, "output_norm.weight");
        if (on && !cai__qown_f32(&c, on, err)) {
            rc = err ? err->code : CAI_ENOMEM;
            goto out;
        }
    }
    if (p->precision == CAI_QUANT_MIXED) {
        if ((rc = cai__qmixed_plan(&c, p->target_bpw, &sum.predicted_kld, err)) < 0)
            goto out;
    } else if (calibrated) {
        if ((rc = cai__qcalibrated(&c, NULL, err)) < 0)
            goto out;
    }
    /* Everything not yet done: embeddings, and all of it without calibration. */
    for (int i = 0; i < c.n_t; i++) {
        struct cai__qt *t = &c.t[i];
        if (!t->quant || t->done)
            continue;
        if ((rc = quantize_alone(&c, t, err)) < 0)
            goto out;
        c.n_done++;
        cai__qreport(&c, t);
        cai__qprogress(&c, "quantize", (uint64_t)c.n_done, (uint64_t)c.n_todo);
    }

    /* Summary and provenance. */
    double bits2 = 0, n2 = 0, bits_all = 0, n_all = 0, errs = 0;
    for (int i = 0; i < c.n_t; i++) {
        const struct cai__qt *t = &c.t[i];
        double ne = (double)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        double nb = (double)(t->data ? t->n_bytes : t->src->n_bytes);
        bits_all += 8.0 * nb;
        n_all += ne;
        if (t->n_dims >= 2) {
            bits2 += 8.0 * nb;
            n2 += ne;
        }
        if (t->quant) {
            sum.n_tensors++;
            errs += t->rel_err;
            if (t->rel_err >= sum.max_rel_err) {
                sum.max_rel_err = t->rel_err;
                snprintf(sum.worst, sizeof(sum.worst), "%s", t->name);
            }
        }
    }
    sum.n_weights = (uint64_t)n2;
    sum.bpw = n2 > 0 ? bits2 / n2 : 0.0;
    sum.bpw_all = n_all > 0 ? bits_all / n_all : 0.0;
    sum.mean_rel_err = sum.n_tensors ? errs / sum.n_tensors : 0.0;
    sum.calib_tokens = (uint64_t)c.n_cal;
    static const char *const rtn_names[] = {"none", "rtn", "rtn", "mixed-rtn"};
    if (!calibrated)
        snprintf(sum.method, sizeof(sum.method), "%s", rtn_names[p->precision]);
    else
        snprintf(sum.method, sizeof(sum.method), "%s%s%s%s",
                 p->precision == CAI_QUANT_MIXED ? "mixed-" : "", p->awq ? "awq" : "",
                 p->awq && p->gptq ? "+" : "", p->gptq ? "gptq" : (p->awq ? "" : "rtn-imatrix"));
    struct prov pv = {
        .method = sum.method,
        .device = p->target_device ? p->target_device : "cpu",
        .source_format = cai__cam_is_file(c.m->gguf->base, (size_t)c.m->gguf->n_bytes)
                             ? "coreaimodel" : "gguf",
        .source_name = base_name(in_path),
        .digest = calibrated ? c.digest : NULL,
        .bits = (float)sum.bpw,
        .calib_tokens = (uint64_t)c.n_cal,
        .head_f32_input = p->precision != CAI_QUANT_F16 &&
                          (p->head_f32_input > 0 ||
                           (p->head_f32_input < 0 && p->precision == CAI_QUANT_INT8)),
        .file_type = p->precision == CAI_QUANT_F16    ? 1
                     : p->precision == CAI_QUANT_INT8 ? 7
                     : p->precision == CAI_QUANT_INT4 ? 2
                                                      : -1,
    };
    rc = ends_with(out_path, ".gguf") ? write_gguf(&c, out_path, &pv, err)
                                      : write_cam(&c, out_path, &pv, err);
    sum.seconds = (double)(cai__now_ns() - t_start) / 1e9;
    if (rc == 0 && summary)
        *summary = sum;
out:
    if (c.t)
        for (int i = 0; i < c.n_t; i++)
            cai__free(c.t[i].data);
    cai__free(c.t);
    cai__free(c.cal);
    cai__free(c.perm);
    cai__qmixed_free(&c);
    cai__pool_free(c.pool);
    cai_model_close(c.m);
    return rc;
}
