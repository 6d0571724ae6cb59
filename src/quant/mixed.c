/* mixed.c: per-tensor formats from measured sensitivity, for a budget of
 * bits per weight (docs/QUANTIZATION.md, "mixed").
 *
 *  1. A float pass over (the first two sequences of) the calibration text
 *     records each matmul input's second moments diag(X^T X), the residual
 *     stream entering every layer for the first n_sens tokens, and the
 *     model's log-probabilities on those tokens.
 *  2. For every matrix t and every format c it can take, the proxy error
 *     E_t(c) = sum_j diag(H)_j |dW_j|^2 of importance-weighted rounding
 *     (measured on up to 256 rows, scaled to all).
 *  3. Sensitivity: t alone is rounded to its cheapest format and the rest
 *     of the model run from t's layer on the probe tokens; the mean KL
 *     divergence from the float model is KLD_t. The predicted KLD of t at
 *     format c is KLD_t * E_t(c) / E_t(cheapest).
 *  4. Allocation: everything starts at its cheapest format; the upgrade
 *     (t, c -> c') with the largest predicted KLD saved per extra bit that
 *     still fits the budget is applied until none fits. The prediction is
 *     additive over tensors: the sum is reported as predicted_kld. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "quantize_int.h"

#define MAX_CAND 8

struct cai__qmixed {
    float **fp;    /* [n_layer * CAI__QR_COUNT] f32 weights */
    int     n_fp;
    float **norms; /* [n_layer * 2] attn_norm, ffn_norm (owned by the output tensors) */
    float  *out_norm;
};

struct cand {
    uint32_t type[MAX_CAND];
    double   bpw[MAX_CAND], err[MAX_CAND], kld[MAX_CAND];
    int      n, cur;
};

static const uint32_t k_all[] = {CAI_TYPE_Q4_0, CAI_TYPE_Q4_K, CAI_TYPE_Q4_1, CAI_TYPE_Q5_0,
                                 CAI_TYPE_Q5_K, CAI_TYPE_Q5_1, CAI_TYPE_Q6_K, CAI_TYPE_Q8_0};

/* Which of k_all the list "q4_0,q6_K,..." names (case-insensitive); NULL:
 * all. Fails on an unknown name. */
int cai__qmixed_formats(const char *list, bool allowed[8], struct cai_error *err)
{
    for (int i = 0; i < 8; i++)
        allowed[i] = list == NULL;
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        bool found = false;
        for (int i = 0; i < 8; i++) {
            const char *nm = cai__qfmt_get(k_all[i])->name;
            if (strlen(nm) == n && strncasecmp(nm, p, n) == 0) {
                allowed[i] = found = true;
            }
        }
        if (!found)
            return cai__fail(err, CAI_EINVAL, "unknown format \"%.*s\" in the mixed formats "
                             "(valid: q4_0, q4_K, q4_1, q5_0, q5_K, q5_1, q6_K, q8_0)",
                             (int)CAI_MIN(n, (size_t)32), p);
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* Formats a row of n_in may take, by increasing size. */
static int candidates(int64_t n_in, const bool allowed[8], uint32_t *out)
{
    int n = 0;
    for (size_t i = 0; i < CAI_ARRAY_LEN(k_all); i++) {
        const struct cai__qfmt *f = cai__qfmt_get(k_all[i]);
        if (allowed[i] && n_in % f->group == 0)
            out[n++] = k_all[i];
    }
    return n;
}

void cai__qmixed_free(struct cai__qctx *c)
{
    struct cai__qmixed *mx = c->mixed;
    if (!mx)
        return;
    for (int i = 0; i < mx->n_fp; i++)
        cai__free(mx->fp[i]);
    cai__free(mx->fp);
    cai__free(mx->norms);
    cai__free(mx);
    c->mixed = NULL;
}

/* ---- the float pass ------------------------------------------------------- */

struct fp_ctx {
    struct cai__qctx *c;
    float            *sq;     /* [n_layer][QP_COUNT][wide] sums of squares */
    int64_t           wide;
    float            *xin;    /* [n_layer][n_sens][n_embd] residual entering each layer */
    int64_t           n_sens;
};

static int fp_hook(void *user, int layer, int point, float *A, int64_t n_tok, int64_t n_in,
                   struct cai__qlayer *lw)
{
    struct fp_ctx *fc = user;
    float *sq = fc->sq + ((size_t)layer * CAI__QP_COUNT + (size_t)point) * (size_t)fc->wide;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t j = 0; j < n_in; j++)
            sq[j] += A[t * n_in + j] * A[t * n_in + j];
    (void)lw;
    return 0;
}

static struct cai__qlayer layer_view(struct cai__qctx *c, float *const *fp, int l)
{
    const struct cai__layer *ML = &c->m->layers[l];
    float *const *w = fp + (size_t)l * CAI__QR_COUNT;
    float *const *nm = c->mixed->norms + 2 * (size_t)l;
    struct cai__qlayer lw = {
        .wq = w[CAI__QR_Q], .wk = w[CAI__QR_K], .wv = w[CAI__QR_V], .wo = w[CAI__QR_O],
        .wg = w[CAI__QR_GATE], .wu = w[CAI__QR_UP], .wd = w[CAI__QR_DOWN],
        .bq = ML->bq.data, .bk = ML->bk.data, .bv = ML->bv.data,
        .attn_norm = nm[0], .ffn_norm = nm[1],
    };
    return lw;
}

/* logp[n][n_vocab] = log_softmax(output(norm(x))). */
static void log_probs(struct cai__qctx *c, const float *emb, const float *x, int64_t n, float *xn,
                      float *logp)
{
    const struct cai__hparams *hp = &c->m->hp;
    int64_t d = hp->n_embd, V = hp->n_vocab;
    for (int64_t t = 0; t < n; t++)
        c->k->rmsnorm(xn + t * d, x + t * d, c->mixed->out_norm, d, hp->rms_eps);
    cai__qfwd_matmul(c->k, c->pool, xn, n, d, emb, V, NULL, logp);
    for (int64_t t = 0; t < n; t++) {
        float *r = logp + t * V;
        float mx = r[0];
        for (int64_t i = 1; i < V; i++)
            mx = r[i] > mx ? r[i] : mx;
        double s = 0.0;
        for (int64_t i = 0; i < V; i++)
            s += exp((double)(r[i] - mx));
        float lse = mx + (float)log(s);
        for (int64_t i = 0; i < V; i++)
            r[i] -= lse;
    }
}

/* ---- the plan -------------------------------------------------------------- */

int cai__qmixed_plan(struct cai__qctx *c, float target_bpw, double *predicted_kld,
                     struct cai_error *err)
{
    const struct cai__hparams *hp = &c->m->hp;
    const int L = hp->n_layer;
    const int64_t d = hp->n_embd, V = hp->n_vocab;
    const int64_t wide = CAI_MAX(CAI_MAX((int64_t)hp->n_ff, (int64_t)hp->n_head * hp->head_dim), d);
    int64_t n_sens = c->p->n_sens_tokens;
    int64_t n_fp = CAI_MIN(c->n_cal, 2 * (int64_t)c->seq_len);
    const int n_mat = L * CAI__QR_COUNT;
    struct cai__qfwd f, pf;
    memset(&f, 0, sizeof(f));
    memset(&pf, 0, sizeof(pf));
    struct fp_ctx fc = {.c = c, .wide = wide, .n_sens = n_sens};
    float *x = NULL, *emb = NULL, *logp_ref = NULL, *logp = NULL, *xn = NULL, *px = NULL;
    float *deq = NULL, *imp = NULL, *rowq = NULL;
    uint8_t *blk = NULL;
    struct cand *cd = NULL;
    int rc = 0;
    bool allowed[8];
    if ((rc = cai__qmixed_formats(c->p->formats, allowed, err)) < 0)
        return rc;

    /* The smallest budget possible, before any expensive step. */
    {
        double n2 = 0.0, min_bits = 0.0;
        for (int i = 0; i < c->n_t; i++) {
            const struct cai__qt *t = &c->t[i];
            if (t->n_dims < 2)
                continue;
            double ne = (double)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
            n2 += ne;
            if (t->role >= 0) {
                uint32_t ty[MAX_CAND];
                if (candidates(t->ne[0], allowed, ty) == 0)
                    return cai__fail(err, CAI_EINVAL, "%s: rows of %lld fit none of the allowed "
                                     "formats", t->name, (long long)t->ne[0]);
                min_bits += ne * cai__type_bpw(ty[0]);
            } else {
                min_bits += t->quant ? ne * cai__type_bpw(t->want) : 8.0 * (double)t->src->n_bytes;
            }
        }
        if (n2 > 0.0 && min_bits / n2 > (double)target_bpw + 1e-6)
            return cai__fail(err, CAI_ERANGE, "target of %.4g bits per weight is below the "
                             "smallest this model allows, %.4g (the layer matrices at their "
                             "cheapest format, the rest fixed)", (double)target_bpw,
                             min_bits / n2);
    }

    c->mixed = cai__calloc(1, sizeof(*c->mixed));
    if (!c->mixed)
        return cai__fail(err, CAI_ENOMEM, "mixed: out of memory");
    struct cai__qmixed *mx = c->mixed;
    mx->fp = cai__calloc((size_t)n_mat, sizeof(float *));
    if (!mx->fp)
        return cai__fail(err, CAI_ENOMEM, "mixed: out of memory");
    mx->n_fp = n_mat;
    int64_t max_mat = 0;
    for (int l = 0; l < L; l++) {
        for (int r = 0; r < CAI__QR_COUNT; r++) {
            const struct cai__weight *w = cai__qrole_weight(c->m, l, r);
            int64_t n = w->ne[0] * w->ne[1];
            max_mat = CAI_MAX(max_mat, n);
            float *p = cai__malloc_array((size_t)n, sizeof(float));
            if (!p)
                return cai__fail(err, CAI_ENOMEM, "mixed: out of memory for f32 weights");
            mx->fp[l * CAI__QR_COUNT + r] = p;
            if ((rc = cai__qload_matrix(c, l, r, p)) < 0)
                return cai__fail(err, rc, "%s: cannot read its type",
                                 c->t[c->idx[l][r]].name);
        }
    }
    mx->norms = cai__calloc((size_t)L * 2, sizeof(float *));
    if (!mx->norms)
        return cai__fail(err, CAI_ENOMEM, "mixed: out of memory");
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < 2; k++) {
            char name[80];
            snprintf(name, sizeof(name), "blk.%d.%s.weight", l, k ? "ffn_norm" : "attn_norm");
            struct cai__qt *t = cai__qfind(c, name);
            if (!t || !(mx->norms[2 * l + k] = cai__qown_f32(c, t, err)))
                return t ? (err ? err->code : CAI_ENOMEM)
                         : cai__fail(err, CAI_EFORMAT, "%s is missing", name);
        }
    }
    {
        struct cai__qt *t = cai__qfind(c, "output_norm.weight");
        if (!t || !(mx->out_norm = cai__qown_f32(c, t, err)))
            return t ? (err ? err->code : CAI_ENOMEM)
                     : cai__fail(err, CAI_EFORMAT, "output_norm.weight is missing");
    }
    x = cai__malloc_array((size_t)n_fp * (size_t)d, sizeof(float));
    emb = cai__malloc_array((size_t)V * (size_t)d, sizeof(float));
    logp_ref = cai__malloc_array((size_t)n_sens * (size_t)V, sizeof(float));
    logp = cai__malloc_array((size_t)n_sens * (size_t)V, sizeof(float));
    xn = cai__malloc_array((size_t)n_sens * (size_t)d, sizeof(float));
    px = cai__malloc_array((size_t)n_sens * (size_t)d, sizeof(float));
    fc.sq = cai__calloc((size_t)L * CAI__QP_COUNT * (size_t)wide, sizeof(float));
    fc.xin = cai__malloc_array((size_t)L * (size_t)n_sens * (size_t)d, sizeof(float));
    deq = cai__malloc_array((size_t)max_mat, sizeof(float));
    imp = cai__malloc_array((size_t)wide, sizeof(float));
    rowq = cai__malloc_array((size_t)wide, sizeof(float));
    blk = cai__malloc((size_t)wide * 2);
    cd = cai__calloc((size_t)n_mat, sizeof(*cd));
    if (!x || !emb || !logp_ref || !logp || !xn || !px || !fc.sq || !fc.xin || !deq || !imp ||
        !rowq || !blk || !cd) {
        rc = cai__fail(err, CAI_ENOMEM, "mixed: out of memory");
        goto out;
    }
    if ((rc = cai__qload_output(c, emb)) < 0) {
        rc = cai__fail(err, rc, "output: cannot read its type");
        goto out;
    }

    /* 1. The float pass. */
    if ((rc = cai__qfwd_init(&f, hp, c->m->rope_freqs.data, c->k, c->pool, n_fp, c->seq_len,
                             err)) < 0)
        goto out;
    if ((rc = cai__qembed(c, c->cal, n_fp, x)) < 0) {
        rc = cai__fail(err, rc, "calibration: token out of range");
        goto out;
    }
    for (int l = 0; l < L; l++) {
        memcpy(fc.xin + (size_t)l * (size_t)n_sens * (size_t)d, x,
               (size_t)n_sens * (size_t)d * sizeof(float));
        struct cai__qlayer lw = layer_view(c, mx->fp, l);
        if ((rc = cai__qfwd_layer(&f, &lw, l, x, fp_hook, &fc)) != 0)
            goto out;
        cai__qprogress(c, "calibrate", (uint64_t)l + 1, (uint64_t)L);
    }
    log_probs(c, emb, x, n_sens, xn, logp_ref);
    cai__qfwd_deinit(&f);

    /* 2. Proxy errors of every format, on up to 256 rows. */
    static const int point_of[CAI__QR_COUNT] = {CAI__QP_ATTN, CAI__QP_ATTN, CAI__QP_ATTN,
                                                CAI__QP_ATTN_OUT, CAI__QP_FFN, CAI__QP_FFN,
                                                CAI__QP_FFN_DOWN};
    for (int i = 0; i < n_mat; i++) {
        int l = i / CAI__QR_COUNT, r = i % CAI__QR_COUNT;
        const struct cai__qt *t = &c->t[c->idx[l][r]];
        int64_t n_in = t->ne[0], n_out = t->ne[1], ns = CAI_MIN((int64_t)256, n_out);
        const float *sq = fc.sq + ((size_t)l * CAI__QP_COUNT + (size_t)point_of[r]) * (size_t)wide;
        const float *W = mx->fp[i];
        cd[i].n = candidates(n_in, allowed, cd[i].type);
        if (cd[i].n == 0) {
            rc = cai__fail(err, CAI_EINVAL, "%s: rows of %lld fit none of the allowed formats",
                           t->name, (long long)n_in);
            goto out;
        }
        for (int ci = 0; ci < cd[i].n; ci++) {
            const struct cai__qfmt *fm = cai__qfmt_get(cd[i].type[ci]);
            double e = 0.0;
            for (int64_t si = 0; si < ns; si++) {
                const float *w = W + (si * n_out / ns) * n_in;
                cai__qfmt_quantize_row(fm, w, sq, blk, n_in);
                c->k->type[fm->type].to_f32(blk, rowq, n_in);
                for (int64_t j = 0; j < n_in; j++) {
                    double dlt = (double)rowq[j] - (double)w[j];
                    e += (double)sq[j] * dlt * dlt;
                }
            }
            cd[i].bpw[ci] = cai__type_bpw(fm->type);
            cd[i].err[ci] = e * (double)n_out / (double)ns;
        }
    }

    /* 3. Sensitivity probes. */
    if ((rc = cai__qfwd_init(&pf, hp, c->m->rope_freqs.data, c->k, c->pool, n_sens, (int)n_sens,
                             err)) < 0)
        goto out;
    for (int i = 0; i < n_mat; i++) {
        int l = i / CAI__QR_COUNT, r = i % CAI__QR_COUNT;
        struct cai__qt *t = &c->t[c->idx[l][r]];
        int64_t n_in = t->ne[0], n_out = t->ne[1];
        const struct cai__qfmt *fm = cai__qfmt_get(cd[i].type[0]);
        const float *sq = fc.sq + ((size_t)l * CAI__QP_COUNT + (size_t)point_of[r]) * (size_t)wide;
        for (int64_t row = 0; row < n_out; row++) {
            cai__qfmt_quantize_row(fm, mx->fp[i] + row * n_in, sq, blk, n_in);
            c->k->type[fm->type].to_f32(blk, deq + row * n_in, n_in);
        }
        float *saved = mx->fp[i];
        mx->fp[i] = deq;
        memcpy(px, fc.xin + (size_t)l * (size_t)n_sens * (size_t)d,
               (size_t)n_sens * (size_t)d * sizeof(float));
        for (int ll = l; ll < L && rc == 0; ll++) {
            struct cai__qlayer lw = layer_view(c, mx->fp, ll);
            rc = cai__qfwd_layer(&pf, &lw, ll, px, NULL, NULL);
        }
        mx->fp[i] = saved;
        if (rc != 0)
            goto out;
        log_probs(c, emb, px, n_sens, xn, logp);
        double kld = 0.0;
        for (int64_t tk = 0; tk < n_sens; tk++) {
            const float *a = logp_ref + tk * V, *b = logp + tk * V;
            double s = 0.0;
            for (int64_t v = 0; v < V; v++)
                s += exp((double)a[v]) * (double)(a[v] - b[v]);
            kld += s;
        }
        kld /= (double)n_sens;
        t->sens = kld;
        double g = cd[i].err[0] > 0.0 ? kld / cd[i].err[0] : 0.0;
        for (int ci = 0; ci < cd[i].n; ci++)
            cd[i].kld[ci] = g * cd[i].err[ci];
        cai__qprogress(c, "sensitivity", (uint64_t)i + 1, (uint64_t)n_mat);
    }

    /* 4. Allocation. Fixed: every 2-D tensor that is not a layer matrix. */
    {
        double n2 = 0.0, fixed_bits = 0.0, used = 0.0;
        for (int i = 0; i < c->n_t; i++) {
            const struct cai__qt *t = &c->t[i];
            if (t->n_dims < 2)
                continue;
            double ne = (double)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
            n2 += ne;
            if (t->role < 0)
                fixed_bits += t->quant ? ne * cai__type_bpw(t->want)
                                       : 8.0 * (double)t->src->n_bytes;
        }
        double budget = (double)target_bpw * n2 - fixed_bits;
        for (int i = 0; i < n_mat; i++) {
            const struct cai__qt *t = &c->t[c->idx[i / CAI__QR_COUNT][i % CAI__QR_COUNT]];
            used += (double)(t->ne[0] * t->ne[1]) * cd[i].bpw[0];
        }
        if (used > budget + 1e-6) {
            rc = cai__fail(err, CAI_ERANGE, "target of %.4g bits per weight is below the smallest "
                           "this model allows, %.4g (the layer matrices at their cheapest "
                           "format, the rest fixed)", (double)target_bpw, (used + fixed_bits) / n2);
            goto out;
        }
        for (;;) {
            int bi = -1, bc = -1;
            double best = 0.0;
            for (int i = 0; i < n_mat; i++) {
                const struct cai__qt *t = &c->t[c->idx[i / CAI__QR_COUNT][i % CAI__QR_COUNT]];
                double ne = (double)(t->ne[0] * t->ne[1]);
                for (int ci = cd[i].cur + 1; ci < cd[i].n; ci++) {
                    double db = ne * (cd[i].bpw[ci] - cd[i].bpw[cd[i].cur]);
                    double dk = cd[i].kld[cd[i].cur] - cd[i].kld[ci];
                    if (db <= 0.0 || dk <= 0.0 || used + db > budget)
                        continue;
                    if (dk / db > best) {
                        best = dk / db;
                        bi = i;
                        bc = ci;
                    }
                }
            }
            if (bi < 0)
                break;
            const struct cai__qt *t = &c->t[c->idx[bi / CAI__QR_COUNT][bi % CAI__QR_COUNT]];
            used += (double)(t->ne[0] * t->ne[1]) * (cd[bi].bpw[bc] - cd[bi].bpw[cd[bi].cur]);
            cd[bi].cur = bc;
        }
        double pk = 0.0;
        for (int i = 0; i < n_mat; i++) {
            struct cai__qt *t = &c->t[c->idx[i / CAI__QR_COUNT][i % CAI__QR_COUNT]];
            t->want = cd[i].type[cd[i].cur];
            pk += cd[i].kld[cd[i].cur];
        }
        *predicted_kld = pk;
    }
    cai__free(emb);
    emb = NULL;
    cai__free(logp_ref);
    logp_ref = NULL;
    cai__free(logp);
    logp = NULL;

    /* 5. The calibrated pass with the chosen formats. */
    rc = cai__qcalibrated(c, mx->fp, err);
out:
    cai__qfwd_deinit(&f);
    cai__qfwd_deinit(&pf);
    cai__free(x);
    cai__free(emb);
    cai__free(logp_ref);
    cai__free(logp);
    cai__free(xn);
    cai__free(px);
    cai__free(fc.sq);
    cai__free(fc.xin);
    cai__free(deq);
    cai__free(imp);
    cai__free(rowq);
    cai__free(blk);
    cai__free(cd);
    return rc;
}
