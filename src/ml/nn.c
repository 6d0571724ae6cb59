/* nn.c: NeuralNetwork (Model field 500), NeuralNetworkClassifier (403) and
 * NeuralNetworkRegressor (303): loading, shape inference, execution.
 *
 * Layers supported (NeuralNetworkLayer oneof field): convolution (100, with
 * groups, stride, dilation, valid/same padding), pooling (120: max, average,
 * L2; valid, same, include-last-pixel, global), activation (130, all 13),
 * innerProduct (140), batchnorm (160, precomputed statistics), softmax (175)
 * and softmaxND (950), padding (200: constant, reflection, replication),
 * upsample (210: nearest, bilinear with aligned corners or half-pixel
 * centers), unary (220), add (230), multiply (231), average (240), scale
 * (245), bias (250), max (260), min (261), reshape (300, channel-first),
 * flatten (301), permute (310), concat (320), and the ND forms
 * addBroadcastable (880), multiplyBroadcastable (900), subtractBroadcastable
 * (905), maxBroadcastable (875), minBroadcastable (870), flattenTo2D (1130),
 * squeeze (1120), expandDims (1125), reshapeStatic (1140),
 * rankPreservingReshape (1150), concatND (980) and transpose (985). Any
 * other layer is refused at load, naming it.
 *
 * Weights (WeightParams) may be float32 (floatValue), float16
 * (float16Value), or quantized rawValue of 1..8 bits (packed most significant
 * bit first, as coremltools writes them) with linear scale/bias per tensor or
 * per output channel, or with a lookup table of 2^bits floats. All are
 * expanded to float32 at load.
 *
 * Image inputs: resized to the declared size, converted to the color space,
 * then the NeuralNetworkPreprocessing scaler: y = channelScale * x + bias. */
#include <stdio.h>
#include <string.h>

#include "nn.h"
#include "simd.h"

#define MAX_BLOB_FLOATS ((size_t)1 << 28)

struct nnb {
    struct cml__build *b;
    struct nn_net     *net;
    size_t             cap_blobs;
    bool               exact; /* EXACT_ARRAY_MAPPING */
    bool               rank4_image;
};

static int nfail(struct nnb *s, const char *layer, const char *fmt, ...) CAI__PRINTF(3, 4);
static int nfail(struct nnb *s, const char *layer, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cai__fail(s->b->err, CAI_EFORMAT, "NeuralNetwork layer '%s': %s", layer, msg);
}

static size_t shape_n(const struct nn_shape *sh)
{
    size_t n = 1;
    for (int i = 0; i < sh->rank; i++)
        n *= (size_t)sh->d[i];
    return n;
}

static bool shape_ok(const struct nn_shape *sh)
{
    size_t n = 1;
    if (sh->rank < 1 || sh->rank > NN_MAX_RANK)
        return false;
    for (int i = 0; i < sh->rank; i++)
        if (sh->d[i] <= 0 || sh->d[i] > ((int64_t)1 << 28) || !cai__mul_size(n, (size_t)sh->d[i], &n))
            return false;
    return n <= MAX_BLOB_FLOATS;
}

static int find_blob(const struct nn_net *net, const char *name)
{
    for (size_t i = net->n_blobs; i-- > 0;)
        if (strcmp(net->blobs[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int add_blob(struct nnb *s, const char *name, const struct nn_shape *sh, const char *layer)
{
    struct nn_net *net = s->net;
    if (!shape_ok(sh))
        return nfail(s, layer, "output shape is empty or too large");
    if (net->n_blobs == s->cap_blobs)
        return nfail(s, layer, "too many blobs");
    size_t n = shape_n(sh);
    if (net->n_floats > MAX_BLOB_FLOATS - n)
        return nfail(s, layer, "network needs more than %zu floats of activations",
                     MAX_BLOB_FLOATS);
    struct nn_blob *bl = &net->blobs[net->n_blobs];
    bl->name = name;
    bl->shape = *sh;
    bl->n = n;
    bl->off = net->n_floats;
    net->n_floats += (n + 15) & ~(size_t)15;
    return (int)net->n_blobs++;
}

/* ---- weights -------------------------------------------------------------------- */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Decodes the WeightParams at field `field` of `parent` into n floats.
 * n_ch: output channels for per-channel linear quantization (axis 0). */
static int load_wp(struct nnb *s, const struct cml__pb *parent, uint32_t field, size_t n,
                   size_t n_ch, const char *layer, const char *what, bool required, float **out)
{
    struct cml__build *b = s->b;
    struct cml__pb_field f;
    struct cml__pb wp;
    *out = NULL;
    int rc = cml__mm_find(parent, field, &f, b->err);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (required && n)
            return nfail(s, layer, "%s missing", what);
        return 0;
    }
    if ((rc = cml__pb_len(&f, what, b->err)))
        return rc;
    cml__pb_sub(&wp, parent, &f);
    float *fv;
    size_t nf;
    if ((rc = cml__mm_floats(&b->m->arena, &wp, 1, what, &fv, &nf, b->err)))
        return rc;
    struct cml__pb_field f16, raw, q, i8;
    int has16 = cml__mm_find(&wp, 2, &f16, b->err), hasraw = cml__mm_find(&wp, 30, &raw, b->err);
    int hasq = cml__mm_find(&wp, 40, &q, b->err), has8 = cml__mm_find(&wp, 31, &i8, b->err);
    if (has16 < 0 || hasraw < 0 || hasq < 0 || has8 < 0)
        return b->err->code;
    float *w = cml__arena_array(&b->m->arena, n ? n : 1, sizeof(float));
    if (!w)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory for %zu weights", n);
    if (nf) {
        if (nf != n)
            return nfail(s, layer, "%s: %zu float values, expected %zu", what, nf, n);
        memcpy(w, fv, n * sizeof(float));
    } else if (has16 && f16.n_bytes) {
        if ((rc = cml__pb_len(&f16, what, b->err)))
            return rc;
        if (f16.n_bytes != 2 * n)
            return nfail(s, layer, "%s: %zu float16 bytes, expected %zu", what, f16.n_bytes,
                         2 * n);
        for (size_t i = 0; i < n; i++)
            w[i] = half_to_float((uint16_t)(f16.data[2 * i] | f16.data[2 * i + 1] << 8));
    } else if (hasraw && raw.n_bytes) {
        if ((rc = cml__pb_len(&raw, what, b->err)))
            return rc;
        if (!hasq)
            return nfail(s, layer, "%s: rawValue without quantization parameters", what);
        struct cml__pb qm, sub;
        struct cml__pb_field g, lin = {0}, lut = {0};
        cml__pb_sub(&qm, &wp, &q);
        uint64_t bits = 0;
        struct cml__pb r = qm;
        while ((rc = cml__pb_next(&r, &g, b->err)) > 0) {
            if (g.num == 1)
                rc = cml__pb_u64(&g, "QuantizationParams.numberOfBits", &bits, b->err);
            else if (g.num == 101)
                lin = g;
            else if (g.num == 102)
                lut = g;
            if (rc < 0)
                return rc;
        }
        if (rc < 0)
            return rc;
        if (bits < 1 || bits > 8)
            return nfail(s, layer, "%s: numberOfBits %llu not in 1..8", what,
                         (unsigned long long)bits);
        size_t need_bits;
        if (!cai__mul_size(n, (size_t)bits, &need_bits) || (need_bits + 7) / 8 > raw.n_bytes)
            return nfail(s, layer, "%s: rawValue has %zu bytes, %zu weights of %llu bits need "
                         "more", what, raw.n_bytes, n, (unsigned long long)bits);
        float *sc = NULL, *bi = NULL, *table = NULL;
        size_t n_sc = 0, n_bi = 0, n_table = 0;
        if (lin.num) {
            if ((rc = cml__pb_len(&lin, what, b->err)))
                return rc;
            cml__pb_sub(&sub, &qm, &lin);
            if ((rc = cml__mm_floats(&b->m->arena, &sub, 1, "linearQuantization.scale", &sc,
                                     &n_sc, b->err)) ||
                (rc = cml__mm_floats(&b->m->arena, &sub, 2, "linearQuantization.bias", &bi, &n_bi,
                                     b->err)))
                return rc;
            if ((n_sc != 1 && n_sc != n_ch) || (n_bi != 0 && n_bi != 1 && n_bi != n_ch))
                return nfail(s, layer, "%s: %zu scales / %zu biases for %zu channels", what,
                             n_sc, n_bi, n_ch);
        } else if (lut.num) {
            if ((rc = cml__pb_len(&lut, what, b->err)))
                return rc;
            cml__pb_sub(&sub, &qm, &lut);
            if ((rc = cml__mm_floats(&b->m->arena, &sub, 1, "lookupTableQuantization.floatValue",
                                     &table, &n_table, b->err)))
                return rc;
            if (n_table != ((size_t)1 << bits))
                return nfail(s, layer, "%s: lookup table has %zu entries, expected %zu", what,
                             n_table, (size_t)1 << bits);
        } else {
            return nfail(s, layer, "%s: quantization type missing", what);
        }
        size_t per_ch = n_ch ? n / n_ch : n;
        for (size_t i = 0; i < n; i++) {
            size_t bitpos = i * (size_t)bits;
            unsigned v = 0;
            for (uint64_t k = 0; k < bits; k++, bitpos++)
                v = (v << 1) | ((raw.data[bitpos >> 3] >> (7 - (bitpos & 7))) & 1u);
            if (table) {
                w[i] = table[v];
            } else {
                size_t c = per_ch ? i / per_ch : 0;
                float scale = sc[n_sc == 1 ? 0 : c];
                float bias = n_bi == 0 ? 0.0f : bi[n_bi == 1 ? 0 : c];
                w[i] = (float)v * scale + bias;
            }
        }
    } else if (has8 && i8.n_bytes) {
        return cai__fail(b->err, CAI_EUNSUPPORTED,
                         "NeuralNetwork layer '%s': %s: int8 weights with dynamic activation "
                         "quantization are not supported", layer, what);
    } else if (n) {
        return nfail(s, layer, "%s: no values (expected %zu)", what, n);
    }
    *out = w;
    return 0;
}

/* ---- layer decoding --------------------------------------------------------------- */

static int get_u64s(struct nnb *s, const struct cml__pb *m, uint32_t num, const char *what,
                    uint64_t **v, size_t *n)
{
    return cml__mm_varints(&s->b->m->arena, m, num, what, v, n, s->b->err);
}

static int get_scalar_u64(struct nnb *s, const struct cml__pb *m, uint32_t num, const char *what,
                          uint64_t *v)
{
    struct cml__pb_field f;
    int rc = cml__mm_find(m, num, &f, s->b->err);
    if (rc <= 0)
        return rc;
    return cml__pb_u64(&f, what, v, s->b->err);
}

static int get_float(struct nnb *s, const struct cml__pb *m, uint32_t num, const char *what,
                     float *v)
{
    struct cml__pb_field f;
    int rc = cml__mm_find(m, num, &f, s->b->err);
    if (rc <= 0)
        return rc;
    return cml__pb_float(&f, what, v, s->b->err);
}

static int get_i64(struct nnb *s, const struct cml__pb *m, uint32_t num, const char *what,
                   int64_t *v)
{
    struct cml__pb_field f;
    int rc = cml__mm_find(m, num, &f, s->b->err);
    if (rc <= 0)
        return rc;
    return cml__pb_i64(&f, what, v, s->b->err);
}

static int get_sub(struct nnb *s, const struct cml__pb *m, uint32_t num, const char *what,
                   struct cml__pb *sub)
{
    struct cml__pb_field f;
    int rc = cml__mm_find(m, num, &f, s->b->err);
    if (rc <= 0)
        return rc;
    if ((rc = cml__pb_len(&f, what, s->b->err)))
        return rc;
    cml__pb_sub(sub, m, &f);
    return 1;
}

/* BorderAmounts { repeated EdgeSizes borderAmounts = 10 { start = 1; end = 2; } }: [H, W]. */
static int border(struct nnb *s, const struct cml__pb *m, const char *layer, int64_t e[4])
{
    struct cml__pb r = *m, sub;
    struct cml__pb_field f, g;
    int rc, k = 0;
    memset(e, 0, 4 * sizeof(int64_t));
    while ((rc = cml__pb_next(&r, &f, s->b->err)) > 0) {
        if (f.num != 10)
            continue;
        if (k >= 2)
            return nfail(s, layer, "more than two border amounts");
        if ((rc = cml__pb_len(&f, "BorderAmounts", s->b->err)))
            return rc;
        cml__pb_sub(&sub, m, &f);
        uint64_t v;
        while ((rc = cml__pb_next(&sub, &g, s->b->err)) > 0) {
            if (g.num != 1 && g.num != 2)
                continue;
            if ((rc = cml__pb_u64(&g, "EdgeSizes", &v, s->b->err)))
                return rc;
            if (v > 65536)
                return nfail(s, layer, "padding %llu too large", (unsigned long long)v);
            e[2 * k + (g.num - 1)] = (int64_t)v;
        }
        if (rc < 0)
            return rc;
        k++;
    }
    return rc;
}

static void chw_of(const struct nn_shape *sh, int64_t *c, int64_t *h, int64_t *w)
{
    int r = sh->rank;
    if (r >= 3) {
        *c = sh->d[r - 3];
        *h = sh->d[r - 2];
        *w = sh->d[r - 1];
    } else {
        *c = sh->d[r - 1];
        *h = *w = 1;
    }
}

/* Output spatial size for a window of `k` (dilated) over `in` padded by
 * pa + pb, stride st. */
static int64_t out_size(int64_t in, int64_t k, int64_t st, int64_t pa, int64_t pb)
{
    int64_t span = in + pa + pb - k;
    return span < 0 ? 0 : span / st + 1;
}

static void same_pad(int64_t in, int64_t k, int64_t st, int top_left, int64_t *pa, int64_t *pb,
                     int64_t *out)
{
    int64_t o = (in + st - 1) / st;
    int64_t total = (o - 1) * st + k - in;
    total = total < 0 ? 0 : total;
    *pa = top_left ? total - total / 2 : total / 2;
    *pb = total - *pa;
    *out = o;
}

static int layer_conv(struct nnb *s, struct nn_layer *L, const struct cml__pb *p,
                      const struct nn_shape *in, struct nn_shape *out)
{
    uint64_t cout = 0, kch = 0, groups = 1, *ks, *st, *dil;
    size_t n_ks, n_st, n_dil;
    int rc;
    bool deconv = false, has_bias = false;
    struct cml__pb_field f;
    if ((rc = get_scalar_u64(s, p, 1, "outputChannels", &cout)) < 0 ||
        (rc = get_scalar_u64(s, p, 2, "kernelChannels", &kch)) < 0 ||
        (rc = get_scalar_u64(s, p, 10, "nGroups", &groups)) < 0 ||
        (rc = get_u64s(s, p, 20, "kernelSize", &ks, &n_ks)) ||
        (rc = get_u64s(s, p, 30, "stride", &st, &n_st)) ||
        (rc = get_u64s(s, p, 40, "dilationFactor", &dil, &n_dil)))
        return rc;
    if ((rc = cml__mm_find(p, 60, &f, s->b->err)) < 0 ||
        (rc && (rc = cml__pb_bool(&f, "isDeconvolution", &deconv, s->b->err))))
        return rc;
    if ((rc = cml__mm_find(p, 70, &f, s->b->err)) < 0 ||
        (rc && (rc = cml__pb_bool(&f, "hasBias", &has_bias, s->b->err))))
        return rc;
    if (deconv)
        return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                         "NeuralNetwork layer '%s': deconvolution is not supported", L->name);
    int64_t C, H, W;
    if (in->rank < 3)
        return nfail(s, L->name, "convolution needs a [C, H, W] input");
    chw_of(in, &C, &H, &W);
    groups = groups ? groups : 1;
    L->kh = n_ks >= 1 ? (int64_t)ks[0] : 3;
    L->kw = n_ks >= 2 ? (int64_t)ks[1] : 3;
    L->sh = n_st >= 1 ? (int64_t)st[0] : 1;
    L->sw = n_st >= 2 ? (int64_t)st[1] : 1;
    L->dh = n_dil >= 1 ? (int64_t)dil[0] : 1;
    L->dw = n_dil >= 2 ? (int64_t)dil[1] : 1;
    if (cout == 0 || cout > (1u << 20) || groups > cout || cout % groups || (uint64_t)C % groups ||
        kch != (uint64_t)C / groups || L->kh < 1 || L->kw < 1 || L->kh > 4096 || L->kw > 4096 ||
        L->sh < 1 || L->sw < 1 || L->dh < 1 || L->dw < 1 || L->sh > 4096 || L->sw > 4096 ||
        L->dh > 4096 || L->dw > 4096)
        return nfail(s, L->name,
                     "bad convolution geometry (outputChannels %llu, kernelChannels %llu, "
                     "nGroups %llu, input channels %lld)", (unsigned long long)cout,
                     (unsigned long long)kch, (unsigned long long)groups, (long long)C);
    L->cout = (int64_t)cout;
    L->cin = C;
    L->groups = (int64_t)groups;
    int64_t ekh = (L->kh - 1) * L->dh + 1, ekw = (L->kw - 1) * L->dw + 1, Ho, Wo;
    struct cml__pb sub;
    if ((rc = get_sub(s, p, 51, "same", &sub)) < 0)
        return rc;
    if (rc) {
        uint64_t mode = 0;
        if ((rc = get_scalar_u64(s, &sub, 1, "asymmetryMode", &mode)) < 0)
            return rc;
        same_pad(H, ekh, L->sh, mode == 1, &L->pad_t, &L->pad_b, &Ho);
        same_pad(W, ekw, L->sw, mode == 1, &L->pad_l, &L->pad_r, &Wo);
    } else {
        int64_t e[4] = {0};
        if ((rc = get_sub(s, p, 50, "valid", &sub)) < 0)
            return rc;
        if (rc) {
            struct cml__pb ba;
            if ((rc = get_sub(s, &sub, 1, "paddingAmounts", &ba)) < 0)
                return rc;
            if (rc && (rc = border(s, &ba, L->name, e)))
                return rc;
        }
        L->pad_t = e[0];
        L->pad_b = e[1];
        L->pad_l = e[2];
        L->pad_r = e[3];
        Ho = out_size(H, ekh, L->sh, L->pad_t, L->pad_b);
        Wo = out_size(W, ekw, L->sw, L->pad_l, L->pad_r);
    }
    if (Ho <= 0 || Wo <= 0)
        return nfail(s, L->name, "kernel larger than the padded input");
    size_t nw = (size_t)cout * kch * (size_t)L->kh * (size_t)L->kw;
    if ((rc = load_wp(s, p, 90, nw, (size_t)cout, L->name, "weights", true, &L->w)))
        return rc;
    if (has_bias && (rc = load_wp(s, p, 91, (size_t)cout, (size_t)cout, L->name, "bias", true,
                                  &L->b)))
        return rc;
    *out = *in;
    out->d[out->rank - 3] = L->cout;
    out->d[out->rank - 2] = Ho;
    out->d[out->rank - 1] = Wo;
    return 0;
}

static int layer_pool(struct nnb *s, struct nn_layer *L, const struct cml__pb *p,
                      const struct nn_shape *in, struct nn_shape *out)
{
    uint64_t type = 0, *ks, *st;
    size_t n_ks, n_st;
    struct cml__pb_field f;
    int rc;
    if ((rc = get_scalar_u64(s, p, 1, "type", &type)) < 0 ||
        (rc = get_u64s(s, p, 10, "kernelSize", &ks, &n_ks)) ||
        (rc = get_u64s(s, p, 20, "stride", &st, &n_st)))
        return rc;
    if ((rc = cml__mm_find(p, 50, &f, s->b->err)) < 0 ||
        (rc && (rc = cml__pb_bool(&f, "avgPoolExcludePadding", &L->exclude_pad, s->b->err))))
        return rc;
    if ((rc = cml__mm_find(p, 60, &f, s->b->err)) < 0 ||
        (rc && (rc = cml__pb_bool(&f, "globalPooling", &L->global, s->b->err))))
        return rc;
    if (type > 2)
        return nfail(s, L->name, "unknown pooling type %llu", (unsigned long long)type);
    if (in->rank < 3)
        return nfail(s, L->name, "pooling needs a [C, H, W] input");
    L->pool_type = (int)type;
    int64_t C, H, W, Ho, Wo;
    chw_of(in, &C, &H, &W);
    L->kh = n_ks >= 1 ? (int64_t)ks[0] : 3;
    L->kw = n_ks >= 2 ? (int64_t)ks[1] : 3;
    L->sh = n_st >= 1 ? (int64_t)st[0] : 1;
    L->sw = n_st >= 2 ? (int64_t)st[1] : 1;
    L->dh = L->dw = 1;
    if (L->global) {
        Ho = Wo = 1;
    } else {
        if (L->kh < 1 || L->kw < 1 || L->sh < 1 || L->sw < 1 || L->kh > 4096 || L->kw > 4096 ||
            L->sh > 4096 || L->sw > 4096)
            return nfail(s, L->name, "bad pooling geometry");
        struct cml__pb sub;
        if ((rc = get_sub(s, p, 31, "same", &sub)) < 0)
            return rc;
        if (rc) {
            uint64_t mode = 0;
            if ((rc = get_scalar_u64(s, &sub, 1, "asymmetryMode", &mode)) < 0)
                return rc;
            same_pad(H, L->kh, L->sh, mode == 1, &L->pad_t, &L->pad_b, &Ho);
            same_pad(W, L->kw, L->sw, mode == 1, &L->pad_l, &L->pad_r, &Wo);
        } else if ((rc = get_sub(s, p, 32, "includeLastPixel", &sub)) != 0) {
            if (rc < 0)
                return rc;
            uint64_t *pa;
            size_t n_pa;
            if ((rc = get_u64s(s, &sub, 10, "paddingAmounts", &pa, &n_pa)))
                return rc;
            L->pad_t = L->pad_b = n_pa >= 1 ? (int64_t)pa[0] : 0;
            L->pad_l = L->pad_r = n_pa >= 2 ? (int64_t)pa[1] : 0;
            if (L->pad_t > 4096 || L->pad_l > 4096)
                return nfail(s, L->name, "padding too large");
            /* Caffe: ceil, and the last window must start inside the input
             * plus the leading padding. */
            Ho = (H + 2 * L->pad_t - L->kh + L->sh - 1) / L->sh + 1;
            Wo = (W + 2 * L->pad_l - L->kw + L->sw - 1) / L->sw + 1;
            if (L->pad_t && (Ho - 1) * L->sh >= H + L->pad_t)
                Ho--;
            if (L->pad_l && (Wo - 1) * L->sw >= W + L->pad_l)
                Wo--;
            L->pad_b = (Ho - 1) * L->sh + L->kh - H - L->pad_t;
            L->pad_r = (Wo - 1) * L->sw + L->kw - W - L->pad_l;
        } else {
            int64_t e[4] = {0};
            if ((rc = get_sub(s, p, 30, "valid", &sub)) < 0)
                return rc;
            if (rc) {
                struct cml__pb ba;
                if ((rc = get_sub(s, &sub, 1, "paddingAmounts", &ba)) < 0)
                    return rc;
                if (rc && (rc = border(s, &ba, L->name, e)))
                    return rc;
            }
            L->pad_t = e[0];
            L->pad_b = e[1];
            L->pad_l = e[2];
            L->pad_r = e[3];
            Ho = out_size(H, L->kh, L->sh, L->pad_t, L->pad_b);
            Wo = out_size(W, L->kw, L->sw, L->pad_l, L->pad_r);
        }
    }
    if (Ho <= 0 || Wo <= 0)
        return nfail(s, L->name, "window larger than the padded input");
    *out = *in;
    out->d[out->rank - 2] = Ho;
    out->d[out->rank - 1] = Wo;
    return 0;
}

static int layer_act(struct nnb *s, struct nn_layer *L, const struct cml__pb *p,
                     const struct nn_shape *in)
{
    struct cml__pb r = *p, sub;
    struct cml__pb_field f;
    int rc;
    int64_t C, H, W;
    chw_of(in, &C, &H, &W);
    L->act = 0;
    while ((rc = cml__pb_next(&r, &f, s->b->err)) > 0) {
        if (f.num < 5 || f.num > 71)
            continue;
        if ((rc = cml__pb_len(&f, "ActivationParams", s->b->err)))
            return rc;
        L->act = (int)f.num;
        cml__pb_sub(&sub, p, &f);
        L->alpha = L->beta = 0.0f;
        if (f.num == ACT_PRELU || f.num == ACT_PSOFTPLUS) {
            /* alpha (and beta) WeightParams: one value or one per channel. */
            struct cml__pb_field g;
            struct cml__pb wp;
            for (uint32_t k = 1; k <= (f.num == ACT_PSOFTPLUS ? 2u : 1u); k++) {
                if ((rc = cml__mm_find(&sub, k, &g, s->b->err)) < 0)
                    return rc;
                size_t n = 0;
                if (rc) {
                    float *fv;
                    cml__pb_sub(&wp, &sub, &g);
                    if ((rc = cml__mm_floats(&s->b->m->arena, &wp, 1, "alpha", &fv, &n,
                                             s->b->err)))
                        return rc;
                    if (n == 0) {
                        size_t n16;
                        struct cml__pb_field h;
                        if ((rc = cml__mm_find(&wp, 2, &h, s->b->err)) < 0)
                            return rc;
                        n16 = rc ? h.n_bytes / 2 : 0;
                        n = n16;
                    }
                }
                if (n != 1 && n != (size_t)C)
                    return nfail(s, L->name, "activation parameter has %zu values for %lld "
                                 "channels", n, (long long)C);
                float *v;
                if ((rc = load_wp(s, &sub, k, n, n, L->name, "activation parameter", true, &v)))
                    return rc;
                if (k == 1) {
                    L->alpha_c = v;
                    L->n_alpha = (int64_t)n;
                } else {
                    L->beta_c = v;
                    L->n_beta = (int64_t)n;
                }
            }
        } else {
            if ((rc = get_float(s, &sub, 1, "alpha", &L->alpha)) < 0 ||
                (rc = get_float(s, &sub, 2, "beta", &L->beta)) < 0)
                return rc;
        }
    }
    if (rc < 0)
        return rc;
    switch (L->act) {
    case ACT_LINEAR: case ACT_RELU: case ACT_LEAKY: case ACT_THRESH: case ACT_PRELU:
    case ACT_TANH: case ACT_STANH: case ACT_SIGMOID: case ACT_HSIGMOID: case ACT_ELU:
    case ACT_SOFTSIGN: case ACT_SOFTPLUS: case ACT_PSOFTPLUS:
        return 0;
    default:
        return nfail(s, L->name, "unknown activation %d", L->act);
    }
}

static int layer_bn(struct nnb *s, struct nn_layer *L, const struct cml__pb *p,
                    const struct nn_shape *in)
{
    uint64_t ch = 0;
    float eps = 0.0f, *g, *be, *mu, *var;
    struct cml__pb_field f;
    bool cmv = false, inorm = false;
    int rc;
    int64_t C, H, W;
    chw_of(in, &C, &H, &W);
    if ((rc = get_scalar_u64(s, p, 1, "channels", &ch)) < 0 ||
        (rc = get_float(s, p, 10, "epsilon", &eps)) < 0)
        return rc;
    if ((rc = cml__mm_find(p, 5, &f, s->b->err)) < 0 ||
        (rc && (rc = cml__pb_bool(&f, "computeMeanVar", &cmv, s->b->err))))
        return rc;
    if ((rc = cml__mm_find(p, 6, &f, s->b->err)) < 0 ||
        (rc && (rc = cml__pb_bool(&f, "instanceNormalization", &inorm, s->b->err))))
        return rc;
    if (cmv || inorm)
        return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                         "NeuralNetwork layer '%s': batchnorm computing its own mean/variance",
                         L->name);
    if (ch != (uint64_t)C)
        return nfail(s, L->name, "batchnorm has %llu channels, input has %lld",
                     (unsigned long long)ch, (long long)C);
    size_t n = (size_t)C;
    if ((rc = load_wp(s, p, 15, n, n, L->name, "gamma", true, &g)) ||
        (rc = load_wp(s, p, 16, n, n, L->name, "beta", true, &be)) ||
        (rc = load_wp(s, p, 17, n, n, L->name, "mean", true, &mu)) ||
        (rc = load_wp(s, p, 18, n, n, L->name, "variance", true, &var)))
        return rc;
    L->mul = cml__arena_array(&s->b->m->arena, n, sizeof(float));
    L->add = cml__arena_array(&s->b->m->arena, n, sizeof(float));
    if (!L->mul || !L->add)
        return cai__fail(s->b->err, CAI_ENOMEM, "out of memory");
    for (size_t c = 0; c < n; c++) {
        L->mul[c] = g[c] / sqrtf(var[c] + eps);
        L->add[c] = be[c] - mu[c] * L->mul[c];
    }
    L->cout = C;
    return 0;
}

static int norm_axis(struct nnb *s, const char *layer, int64_t axis, int rank, int *out)
{
    if (axis < -rank || axis >= rank)
        return nfail(s, layer, "axis %lld out of range for rank %d", (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 0;
}

/* Decodes one layer; `in` holds the input shapes. Sets L and *out. */
static int decode_layer(struct nnb *s, struct nn_layer *L, uint32_t kind,
                        const struct cml__pb *p, const struct nn_shape *in, int n_in,
                        struct nn_shape *out)
{
    int rc = 0;
    *out = in[0];
    switch (kind) {
    case 100:
        L->kind = NN_CONV;
        return layer_conv(s, L, p, &in[0], out);
    case 120:
        L->kind = NN_POOL;
        return layer_pool(s, L, p, &in[0], out);
    case 130:
        L->kind = NN_ACT;
        return layer_act(s, L, p, &in[0]);
    case 140: {
        uint64_t cin = 0, cout = 0;
        bool has_bias = false;
        struct cml__pb_field f;
        L->kind = NN_INNER;
        if ((rc = get_scalar_u64(s, p, 1, "inputChannels", &cin)) < 0 ||
            (rc = get_scalar_u64(s, p, 2, "outputChannels", &cout)) < 0)
            return rc;
        if ((rc = cml__mm_find(p, 10, &f, s->b->err)) < 0 ||
            (rc && (rc = cml__pb_bool(&f, "hasBias", &has_bias, s->b->err))))
            return rc;
        if ((rc = cml__mm_find(p, 22, &f, s->b->err)) < 0)
            return rc;
        if (rc && f.u)
            return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                             "NeuralNetwork layer '%s': int8 dynamic quantization", L->name);
        const struct nn_shape *x = &in[0];
        int ax = x->rank >= 3 && x->d[x->rank - 1] == 1 && x->d[x->rank - 2] == 1 ?
                     x->rank - 3 : x->rank - 1;
        if (cin == 0 || cout == 0 || cout > (1u << 24) || (uint64_t)x->d[ax] != cin)
            return nfail(s, L->name, "innerProduct takes %llu inputs, blob has %lld on axis %d",
                         (unsigned long long)cin, (long long)x->d[ax], ax);
        L->cin = (int64_t)cin;
        L->cout = (int64_t)cout;
        if ((rc = load_wp(s, p, 20, (size_t)(cin * cout), (size_t)cout, L->name, "weights", true,
                          &L->w)))
            return rc;
        if (has_bias &&
            (rc = load_wp(s, p, 21, (size_t)cout, (size_t)cout, L->name, "bias", true, &L->b)))
            return rc;
        out->d[ax] = (int64_t)cout;
        return 0;
    }
    case 160:
        L->kind = NN_BN;
        return layer_bn(s, L, p, &in[0]);
    case 175: /* legacy softmax: over channels */
        L->kind = NN_SOFTMAX;
        L->axis = in[0].rank >= 3 ? in[0].rank - 3 : in[0].rank - 1;
        return 0;
    case 950: {
        int64_t axis = -1;
        L->kind = NN_SOFTMAX;
        if ((rc = get_i64(s, p, 1, "axis", &axis)) < 0)
            return rc;
        return norm_axis(s, L->name, axis, in[0].rank, &L->axis);
    }
    case 200: {
        struct cml__pb sub;
        int64_t e[4] = {0};
        L->kind = NN_PAD;
        if (in[0].rank < 3)
            return nfail(s, L->name, "padding needs a [C, H, W] input");
        if ((rc = get_sub(s, p, 1, "constant", &sub)) < 0)
            return rc;
        if (rc) {
            L->pad_mode = 0;
            if ((rc = get_float(s, &sub, 1, "value", &L->pad_value)) < 0)
                return rc;
        } else {
            struct cml__pb_field f;
            if ((rc = cml__mm_find(p, 2, &f, s->b->err)) < 0)
                return rc;
            L->pad_mode = rc ? 1 : 2;
        }
        if ((rc = get_sub(s, p, 10, "paddingAmounts", &sub)) < 0)
            return rc;
        if (rc && (rc = border(s, &sub, L->name, e)))
            return rc;
        L->pad_t = e[0];
        L->pad_b = e[1];
        L->pad_l = e[2];
        L->pad_r = e[3];
        int r = in[0].rank;
        if (L->pad_mode == 1 && (L->pad_t >= in[0].d[r - 2] || L->pad_b >= in[0].d[r - 2] ||
                                 L->pad_l >= in[0].d[r - 1] || L->pad_r >= in[0].d[r - 1]))
            return nfail(s, L->name, "reflection padding must be smaller than the input");
        out->d[r - 2] += L->pad_t + L->pad_b;
        out->d[r - 1] += L->pad_l + L->pad_r;
        return 0;
    }
    case 210: {
        uint64_t *sf, mode = 0, lmode = 0;
        size_t n_sf;
        float *frac;
        size_t n_frac;
        L->kind = NN_UPSAMPLE;
        if ((rc = get_u64s(s, p, 1, "scalingFactor", &sf, &n_sf)) ||
            (rc = get_scalar_u64(s, p, 5, "mode", &mode)) < 0 ||
            (rc = get_scalar_u64(s, p, 6, "linearUpsampleMode", &lmode)) < 0 ||
            (rc = cml__mm_floats(&s->b->m->arena, p, 7, "fractionalScalingFactor", &frac, &n_frac,
                                 s->b->err)))
            return rc;
        if (n_frac)
            return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                             "NeuralNetwork layer '%s': fractional upsampling", L->name);
        L->up_h = n_sf >= 1 ? (int64_t)sf[0] : 1;
        L->up_w = n_sf >= 2 ? (int64_t)sf[1] : 1;
        if (L->up_h < 1 || L->up_w < 1 || L->up_h > 4096 || L->up_w > 4096 || in[0].rank < 3 ||
            mode > 1 || lmode > 2)
            return nfail(s, L->name, "bad upsample parameters");
        if (mode == 1 && lmode == 0)
            return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                             "NeuralNetwork layer '%s': bilinear upsampling in DEFAULT mode "
                             "(use ALIGN_CORNERS_TRUE or _FALSE)", L->name);
        L->up_mode = mode == 0 ? 0 : lmode == 1 ? 1 : 2;
        out->d[in[0].rank - 2] *= L->up_h;
        out->d[in[0].rank - 1] *= L->up_w;
        return 0;
    }
    case 220: {
        uint64_t t = 0;
        L->kind = NN_UNARY;
        L->scale = 0.0f;
        if ((rc = get_scalar_u64(s, p, 1, "type", &t)) < 0 ||
            (rc = get_float(s, p, 2, "alpha", &L->alpha)) < 0 ||
            (rc = get_float(s, p, 3, "epsilon", &L->eps)) < 0 ||
            (rc = get_float(s, p, 4, "shift", &L->shift)) < 0 ||
            (rc = get_float(s, p, 5, "scale", &L->scale)) < 0)
            return rc;
        if (t > 7)
            return nfail(s, L->name, "unknown unary operation %llu", (unsigned long long)t);
        /* proto3 cannot tell an unset scale from 0; a zero scale would make
         * the layer constant, so it is read as the documented default 1. */
        if (L->scale == 0.0f)
            L->scale = 1.0f;
        L->unary = (int)t;
        return 0;
    }
    case 230: case 231: case 240: case 260: case 261:
    case 880: case 900: case 905: case 875: case 870: {
        L->kind = kind == 230 || kind == 880 ? NN_ADD : kind == 231 || kind == 900 ? NN_MUL :
                  kind == 905 ? NN_SUB : kind == 240 ? NN_AVERAGE :
                  kind == 260 || kind == 875 ? NN_MAX : NN_MIN;
        if (n_in == 1 && (kind == 230 || kind == 231)) {
            if ((rc = get_float(s, p, 1, "alpha", &L->scalar)) < 0)
                return rc;
            return 0;
        }
        if (n_in < 2)
            return nfail(s, L->name, "needs two inputs");
        int r = 0;
        for (int k = 0; k < n_in; k++)
            r = in[k].rank > r ? in[k].rank : r;
        out->rank = r;
        for (int i = 0; i < r; i++) {
            int64_t d = 1;
            for (int k = 0; k < n_in; k++) {
                int off = r - in[k].rank;
                int64_t dk = i >= off ? in[k].d[i - off] : 1;
                if (dk != 1 && d != 1 && dk != d)
                    return nfail(s, L->name, "input shapes do not broadcast");
                d = dk != 1 ? dk : d;
            }
            out->d[i] = d;
        }
        return 0;
    }
    case 245:
    case 250: {
        uint64_t *shp;
        size_t n_shp;
        int64_t C, H, W;
        chw_of(&in[0], &C, &H, &W);
        L->kind = kind == 245 ? NN_SCALE : NN_BIAS;
        if ((rc = get_u64s(s, p, 1, "shape", &shp, &n_shp)))
            return rc;
        size_t n = n_shp ? (size_t)shp[0] : 1;
        for (size_t i = 1; i < n_shp; i++)
            n *= (size_t)shp[i];
        if (n != 1 && n != (size_t)C)
            return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                             "NeuralNetwork layer '%s': %s shape other than [1] or [C]", L->name,
                             kind == 245 ? "scale" : "bias");
        L->cout = (int64_t)n;
        if (kind == 245) {
            bool hb = false;
            struct cml__pb_field f;
            if ((rc = load_wp(s, p, 2, n, n, L->name, "scale", true, &L->mul)))
                return rc;
            if ((rc = cml__mm_find(p, 3, &f, s->b->err)) < 0 ||
                (rc && (rc = cml__pb_bool(&f, "hasBias", &hb, s->b->err))))
                return rc;
            if (hb) {
                uint64_t *bs;
                size_t n_bs, nb = 1;
                if ((rc = get_u64s(s, p, 4, "shapeBias", &bs, &n_bs)))
                    return rc;
                for (size_t i = 0; i < n_bs; i++)
                    nb *= (size_t)bs[i];
                if (nb != n)
                    return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                                     "NeuralNetwork layer '%s': scale and bias shapes differ",
                                     L->name);
                if ((rc = load_wp(s, p, 5, n, n, L->name, "bias", true, &L->add)))
                    return rc;
            }
        } else if ((rc = load_wp(s, p, 2, n, n, L->name, "bias", true, &L->add))) {
            return rc;
        }
        return 0;
    }
    case 300:
    case 1140:
    case 1150: { /* reshape (legacy, CHANNEL_FIRST), reshapeStatic, rankPreservingReshape */
        uint64_t *ts, mode = 0;
        size_t n_ts;
        L->kind = NN_COPY;
        if ((rc = get_u64s(s, p, 1, "targetShape", &ts, &n_ts)) ||
            (kind == 300 && (rc = get_scalar_u64(s, p, 2, "mode", &mode)) < 0))
            return rc;
        if (mode != 0)
            return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                             "NeuralNetwork layer '%s': CHANNEL_LAST reshape", L->name);
        if (n_ts == 0 || n_ts > NN_MAX_RANK)
            return nfail(s, L->name, "targetShape has %zu dimensions", n_ts);
        if (kind == 300 && n_ts == 4)
            n_ts = 3, ts++; /* [Seq, C, H, W]: Seq = 1 */
        out->rank = (int)n_ts;
        size_t known = 1;
        int infer = -1;
        for (size_t i = 0; i < n_ts; i++) {
            int64_t d = (int64_t)ts[i];
            if (d == -1 && infer < 0) {
                infer = (int)i;
                d = 1;
            } else if (d == 0 && kind != 300 && (int)i < in[0].rank) {
                d = in[0].d[i];
            } else if (d <= 0 || d > ((int64_t)1 << 28)) {
                return nfail(s, L->name, "bad targetShape[%zu] %lld", i, (long long)d);
            }
            out->d[i] = d;
            known *= (size_t)d;
        }
        size_t total = shape_n(&in[0]);
        if (infer >= 0) {
            if (known == 0 || total % known)
                return nfail(s, L->name, "cannot infer a dimension of targetShape");
            out->d[infer] = (int64_t)(total / known);
            known = total;
        }
        if (known != total)
            return nfail(s, L->name, "targetShape has %zu elements, input %zu", known, total);
        return 0;
    }
    case 301: { /* flatten: [.., C, H, W] -> [.., C*H*W, 1, 1] */
        uint64_t mode = 0;
        L->kind = NN_COPY;
        if ((rc = get_scalar_u64(s, p, 1, "mode", &mode)) < 0)
            return rc;
        L->chan_last_flatten = mode == 1 && in[0].rank >= 3;
        if (in[0].rank >= 3) {
            int r = in[0].rank;
            out->d[r - 3] = in[0].d[r - 3] * in[0].d[r - 2] * in[0].d[r - 1];
            out->d[r - 2] = out->d[r - 1] = 1;
        }
        return 0;
    }
    case 1130: { /* flattenTo2D */
        int64_t axis = 1;
        int ax = 0;
        L->kind = NN_COPY;
        if ((rc = get_i64(s, p, 1, "axis", &axis)) < 0)
            return rc;
        if (axis == in[0].rank)
            ax = in[0].rank;
        else if ((rc = norm_axis(s, L->name, axis, in[0].rank, &ax)))
            return rc;
        int64_t a = 1, c = 1;
        for (int i = 0; i < in[0].rank; i++)
            *(i < ax ? &a : &c) *= in[0].d[i];
        out->rank = 2;
        out->d[0] = a;
        out->d[1] = c;
        return 0;
    }
    case 1120: case 1125: { /* squeeze, expandDims */
        uint64_t *axes;
        size_t n_ax;
        bool all = false;
        struct cml__pb_field f;
        L->kind = NN_COPY;
        if ((rc = get_u64s(s, p, 1, "axes", &axes, &n_ax)))
            return rc;
        if (kind == 1120 && ((rc = cml__mm_find(p, 2, &f, s->b->err)) < 0 ||
                             (rc && (rc = cml__pb_bool(&f, "squeezeAll", &all, s->b->err)))))
            return rc;
        bool mark[2 * NN_MAX_RANK] = {false};
        int r = in[0].rank, ro = kind == 1120 ? r : r + (int)n_ax;
        if (ro > NN_MAX_RANK || n_ax > NN_MAX_RANK)
            return nfail(s, L->name, "rank too large");
        for (size_t i = 0; i < n_ax; i++) {
            int ax = 0;
            if ((rc = norm_axis(s, L->name, (int64_t)axes[i], kind == 1120 ? r : ro, &ax)))
                return rc;
            mark[ax] = true;
        }
        out->rank = 0;
        if (kind == 1120) {
            for (int i = 0; i < r; i++)
                if (!((all || mark[i]) && in[0].d[i] == 1))
                    out->d[out->rank++] = in[0].d[i];
            if (out->rank == 0)
                out->d[out->rank++] = 1;
        } else {
            int k = 0;
            for (int i = 0; i < ro; i++)
                out->d[out->rank++] = mark[i] ? 1 : in[0].d[k++];
        }
        return 0;
    }
    case 310:
    case 985: {
        uint64_t *ax;
        size_t n_ax;
        L->kind = NN_TRANSPOSE;
        if ((rc = get_u64s(s, p, 1, "axes", &ax, &n_ax)))
            return rc;
        int r = in[0].rank, base = 0;
        if (kind == 310) { /* legacy (Seq, C, H, W) permutation on [.., C, H, W] */
            if (n_ax != 4 || ax[0] != 0 || r < 3)
                return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                                 "NeuralNetwork layer '%s': permute must keep the sequence axis",
                                 L->name);
            base = r - 3;
            for (int i = 0; i < base; i++)
                L->perm[i] = i;
            for (int i = 0; i < 3; i++)
                L->perm[base + i] = base + (int)ax[i + 1] - 1;
        } else {
            if (n_ax != (size_t)r)
                return nfail(s, L->name, "transpose has %zu axes for rank %d", n_ax, r);
            for (int i = 0; i < r; i++)
                L->perm[i] = (int)(ax[i] < (uint64_t)r ? ax[i] : (uint64_t)NN_MAX_RANK);
        }
        bool seen[NN_MAX_RANK] = {false};
        for (int i = 0; i < r; i++) {
            if (L->perm[i] < 0 || L->perm[i] >= r || seen[L->perm[i]])
                return nfail(s, L->name, "axes are not a permutation");
            seen[L->perm[i]] = true;
            out->d[i] = in[0].d[L->perm[i]];
        }
        return 0;
    }
    case 320:
    case 980: {
        L->kind = NN_CONCAT;
        int r = in[0].rank;
        if (kind == 320) {
            struct cml__pb_field f;
            bool seq = false;
            if ((rc = cml__mm_find(p, 100, &f, s->b->err)) < 0 ||
                (rc && (rc = cml__pb_bool(&f, "sequenceConcat", &seq, s->b->err))))
                return rc;
            if (seq)
                return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                                 "NeuralNetwork layer '%s': sequence concat", L->name);
            L->axis = r >= 3 ? r - 3 : r - 1;
        } else {
            int64_t axis = 0;
            struct cml__pb_field f;
            if ((rc = get_i64(s, p, 1, "axis", &axis)) < 0)
                return rc;
            if ((rc = cml__mm_find(p, 2, &f, s->b->err)) < 0)
                return rc;
            if (rc && f.u)
                return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                                 "NeuralNetwork layer '%s': interleaved concat", L->name);
            if ((rc = norm_axis(s, L->name, axis, r, &L->axis)))
                return rc;
        }
        for (int k = 1; k < n_in; k++) {
            if (in[k].rank != r)
                return nfail(s, L->name, "inputs differ in rank");
            for (int i = 0; i < r; i++)
                if (i != L->axis && in[k].d[i] != in[0].d[i])
                    return nfail(s, L->name, "inputs differ off the concat axis");
            out->d[L->axis] += in[k].d[L->axis];
        }
        return 0;
    }
    default:
        return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                         "NeuralNetwork layer '%s': layer type (field %u) is not supported",
                         L->name, kind);
    }
}

static int load_layer(struct nnb *s, const struct cml__pb *msg, size_t idx)
{
    struct cml__build *b = s->b;
    struct nn_net *net = s->net;
    struct nn_layer *L = &net->layers[net->n_layers];
    struct cml__pb r = *msg, params = {0};
    struct cml__pb_field f;
    char **ins, **outs, *name = NULL;
    size_t n_ins, n_outs;
    uint32_t kind = 0;
    int rc;
    memset(L, 0, sizeof(*L));
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        if (f.num == 1) {
            if ((rc = cml__mm_string(&b->m->arena, &f, "NeuralNetworkLayer.name", &name, b->err)))
                return rc;
        } else if (f.num >= 100) {
            if ((rc = cml__pb_len(&f, "NeuralNetworkLayer.layer", b->err)))
                return rc;
            kind = f.num;
            cml__pb_sub(&params, msg, &f);
        }
    }
    if (rc < 0)
        return rc;
    char fallback[32];
    snprintf(fallback, sizeof(fallback), "#%zu", idx);
    L->name = name && name[0] ? name : cml__arena_strndup(&b->m->arena, fallback, strlen(fallback));
    if (!L->name)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    if ((rc = cml__mm_strings(&b->m->arena, msg, 2, "NeuralNetworkLayer.input", &ins, &n_ins,
                              b->err)) ||
        (rc = cml__mm_strings(&b->m->arena, msg, 3, "NeuralNetworkLayer.output", &outs, &n_outs,
                              b->err)))
        return rc;
    if (kind == 0)
        return nfail(s, L->name, "no layer parameters");
    if (n_ins == 0 || n_ins > 64)
        return nfail(s, L->name, "%zu inputs", n_ins);
    if (n_outs != 1)
        return cai__fail(b->err, CAI_EUNSUPPORTED,
                         "NeuralNetwork layer '%s': %zu outputs (only 1 is supported)", L->name,
                         n_outs);
    struct nn_shape in_shapes[64];
    L->in = cml__arena_array(&b->m->arena, n_ins, sizeof(int32_t));
    if (!L->in)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    L->n_in = (int)n_ins;
    for (size_t i = 0; i < n_ins; i++) {
        int bl = find_blob(net, ins[i]);
        if (bl < 0)
            return nfail(s, L->name, "input '%s' is not produced by an earlier layer or input",
                         ins[i]);
        L->in[i] = bl;
        in_shapes[i] = net->blobs[bl].shape;
    }
    struct nn_shape out;
    if ((rc = decode_layer(s, L, kind, &params, in_shapes, (int)n_ins, &out)))
        return rc;
    if (L->kind != NN_CONCAT && L->kind != NN_ADD && L->kind != NN_MUL && L->kind != NN_SUB &&
        L->kind != NN_MAX && L->kind != NN_MIN && L->kind != NN_AVERAGE && n_ins != 1)
        return nfail(s, L->name, "takes one input, has %zu", n_ins);
    if ((rc = add_blob(s, outs[0], &out, L->name)) < 0)
        return rc;
    L->out = rc;
    net->n_layers++;
    return 0;
}

/* ---- preprocessing and I/O -------------------------------------------------------------- */

static int load_preprocessing(struct nnb *s, const struct cml__pb *nnmsg, struct cml__node *nd)
{
    struct cml__build *b = s->b;
    struct cml__pb r = *nnmsg, pm, sc;
    struct cml__pb_field f, g;
    int rc;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        if (f.num != 2)
            continue;
        if ((rc = cml__pb_len(&f, "NeuralNetwork.preprocessing", b->err)))
            return rc;
        cml__pb_sub(&pm, nnmsg, &f);
        char *feat = NULL;
        bool have_scaler = false;
        struct cml__pb rp = pm;
        while ((rc = cml__pb_next(&rp, &g, b->err)) > 0) {
            if (g.num == 1 &&
                (rc = cml__mm_string(&b->m->arena, &g, "preprocessing.featureName", &feat, b->err)))
                return rc;
            if (g.num == 11)
                return cai__fail(b->err, CAI_EUNSUPPORTED,
                                 "NeuralNetwork preprocessing: meanImage is not supported");
            if (g.num == 10) {
                if ((rc = cml__pb_len(&g, "preprocessing.scaler", b->err)))
                    return rc;
                cml__pb_sub(&sc, &pm, &g);
                have_scaler = true;
            }
        }
        if (rc < 0)
            return rc;
        if (!have_scaler)
            continue;
        int which = -1;
        for (size_t i = 0; i < nd->n_in; i++)
            if ((!feat || !feat[0] || strcmp(b->m->slots[nd->in[i]].name, feat) == 0) &&
                b->m->slots[nd->in[i]].desc.type == CML_TYPE_IMAGE)
                which = (int)i;
        if (which < 0)
            return cai__fail(b->err, CAI_EFORMAT,
                             "NeuralNetwork preprocessing: '%s' is not an image input",
                             feat ? feat : "");
        struct nn_pre *pre = &s->net->pre[which];
        float cs = 0.0f, blue = 0.0f, green = 0.0f, red = 0.0f, gray = 0.0f;
        struct cml__pb_field h;
        if ((rc = cml__mm_find(&sc, 10, &h, b->err)) < 0 ||
            (rc && (rc = cml__pb_float(&h, "channelScale", &cs, b->err))))
            return rc;
        if ((rc = get_float(s, &sc, 20, "blueBias", &blue)) < 0 ||
            (rc = get_float(s, &sc, 21, "greenBias", &green)) < 0 ||
            (rc = get_float(s, &sc, 22, "redBias", &red)) < 0 ||
            (rc = get_float(s, &sc, 30, "grayBias", &gray)) < 0)
            return rc;
        struct cml__pb_field present;
        int has_cs = cml__mm_find(&sc, 10, &present, b->err);
        pre->scale = has_cs > 0 ? cs : 1.0f;
        enum cml_color_space csp = b->m->slots[nd->in[which]].desc.color_space;
        if (csp == CML_COLOR_GRAYSCALE || csp == CML_COLOR_GRAYSCALE_F16) {
            pre->bias[0] = gray;
        } else if (csp == CML_COLOR_BGR) {
            pre->bias[0] = blue;
            pre->bias[1] = green;
            pre->bias[2] = red;
        } else {
            pre->bias[0] = red;
            pre->bias[1] = green;
            pre->bias[2] = blue;
        }
    }
    return rc;
}

static int input_shape(struct nnb *s, const struct cml_feature *f, struct nn_shape *sh)
{
    memset(sh, 0, sizeof(*sh));
    if (f->type == CML_TYPE_IMAGE) {
        if (f->width < 1 || f->height < 1)
            return cai__fail(s->b->err, CAI_EFORMAT, "image input '%s' has no size", f->name);
        int64_t c = f->color_space == CML_COLOR_RGB || f->color_space == CML_COLOR_BGR ? 3 : 1;
        if (f->color_space == CML_COLOR_INVALID)
            return cai__fail(s->b->err, CAI_EFORMAT, "image input '%s': no color space",
                             f->name);
        if (s->exact || s->rank4_image) {
            sh->rank = 4;
            sh->d[0] = 1;
            sh->d[1] = c;
            sh->d[2] = f->height;
            sh->d[3] = f->width;
        } else {
            sh->rank = 3;
            sh->d[0] = c;
            sh->d[1] = f->height;
            sh->d[2] = f->width;
        }
        return 0;
    }
    if (f->type == CML_TYPE_DOUBLE || f->type == CML_TYPE_INT64) {
        sh->rank = s->exact ? 1 : 3;
        sh->d[0] = sh->d[1] = sh->d[2] = 1;
        return 0;
    }
    if (f->type != CML_TYPE_MULTIARRAY || f->n_dims < 1 || f->n_dims > NN_MAX_RANK)
        return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                         "NeuralNetwork input '%s': needs a multiarray of rank 1..5 or an image",
                         f->name);
    if (s->exact) {
        sh->rank = f->n_dims;
        for (int i = 0; i < f->n_dims; i++)
            sh->d[i] = f->shape[i];
    } else if (f->n_dims == 1) { /* rank-5 mapping: (C) -> [C, 1, 1] */
        sh->rank = 3;
        sh->d[0] = f->shape[0];
        sh->d[1] = sh->d[2] = 1;
    } else if (f->n_dims == 3 || f->n_dims == 5) { /* (C, H, W) or (S, B, C, H, W) */
        sh->rank = 3;
        for (int i = 0; i < 3; i++)
            sh->d[i] = f->shape[f->n_dims - 3 + i];
        if (f->n_dims == 5 && (f->shape[0] != 1 || f->shape[1] != 1))
            return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                             "NeuralNetwork input '%s': sequence/batch axes must be 1", f->name);
    } else {
        return cai__fail(s->b->err, CAI_EUNSUPPORTED,
                         "NeuralNetwork input '%s': rank %d under the rank-5 mapping", f->name,
                         f->n_dims);
    }
    if (!shape_ok(sh))
        return cai__fail(s->b->err, CAI_EFORMAT, "NeuralNetwork input '%s': bad shape", f->name);
    return 0;
}

/* ---- run ---------------------------------------------------------------------------------- */

static int run_nn(const struct cml__node *nd, struct cml__exec *x)
{
    const struct nn_net *net = nd->impl;
    float *mem = (float *)x->scratch;
    for (size_t i = 0; i < nd->n_in; i++) {
        const struct nn_blob *bl = &net->blobs[net->in_blob[i]];
        const struct cml_value *v = &x->vals[nd->in[i]];
        float *dst = mem + bl->off;
        const char *nm = x->m->slots[nd->in[i]].name;
        if (v->type == CML_TYPE_IMAGE) {
            const struct cml_feature *f = &x->m->slots[nd->in[i]].desc;
            const struct nn_pre *pre = &net->pre[i];
            cml__image_to_planar(v, (int)f->width, (int)f->height, f->color_space, dst);
            size_t plane = (size_t)f->width * (size_t)f->height, n_ch = bl->n / plane;
            for (size_t c = 0; c < n_ch; c++)
                for (size_t k = 0; k < plane; k++)
                    dst[c * plane + k] = dst[c * plane + k] * pre->scale + pre->bias[c < 3 ? c : 0];
        } else if (v->type == CML_TYPE_MULTIARRAY) {
            if (v->n_elem != bl->n)
                return cml__run_fail(x, CAI_EINVAL, "input '%s': expected %zu values, got %zu",
                                     nm, bl->n, v->n_elem);
            for (size_t k = 0; k < bl->n; k++)
                dst[k] = (float)v->data[k];
        } else if (v->type == CML_TYPE_DOUBLE || v->type == CML_TYPE_INT64) {
            dst[0] = (float)(v->type == CML_TYPE_DOUBLE ? v->f64 : (double)v->i64);
        } else {
            return cml__run_fail(x, CAI_EINVAL, "input '%s': not a multiarray or image", nm);
        }
    }
    for (size_t i = 0; i < net->n_layers; i++)
        cml__nn_run_layer(net, &net->layers[i], mem);
    for (size_t o = 0; o < nd->n_out; o++) {
        if ((int)o == nd->label_out || (int)o == nd->probs_out || net->out_blob[o] < 0)
            continue;
        const struct nn_blob *bl = &net->blobs[net->out_blob[o]];
        double *dst = x->buf[nd->out[o]];
        for (size_t k = 0; k < bl->n; k++)
            dst[k] = (double)mem[bl->off + k];
        cml__publish(x, nd->out[o], bl->n);
    }
    if (nd->labels) {
        const struct nn_blob *bl = &net->blobs[net->probs_blob];
        double *p = cml__probs_buf(x, nd, (double *)(mem + net->n_floats));
        for (size_t k = 0; k < bl->n; k++)
            p[k] = (double)mem[bl->off + k];
        cml__publish_class(x, nd, p);
    }
    return 0;
}

/* Batches: rows run layer by layer in blocks, each row in its own copy of
 * the blob memory (`stride` floats apart), so every layer kernel runs
 * unchanged per row while inner products over a block become one GEMM. */
#define NN_BATCH_FLOATS 32768 /* floats of blob memory per block (128 KiB) */
#define NN_BATCH_ROWS   16

static int run_batch(const struct cml__node *nd, const double *X, size_t n_rows, size_t n_cols,
                     double *scratch, const struct cml_batch_out *out)
{
    const struct nn_net *net = nd->impl;
    const struct nn_blob *in = &net->blobs[net->in_blob[0]];
    float *mem = (float *)scratch;
    size_t S = net->stride, K = net->n_classes;
    if (n_cols != in->n)
        return CAI_EINVAL;
    for (size_t r0 = 0; r0 < n_rows; r0 += net->batch_rows) {
        size_t nb = CAI_MIN(net->batch_rows, n_rows - r0);
        for (size_t r = 0; r < nb; r++) {
            const double *src = X + (r0 + r) * n_cols;
            float *dst = mem + r * S + in->off;
            if (net->simd) {
                cml__x512_to_f32(src, dst, n_cols);
                continue;
            }
            for (size_t k = 0; k < n_cols; k++)
                dst[k] = (float)src[k];
        }
        size_t n_run = net->n_layers - net->softmax_head;
        for (size_t i = 0; i < n_run; i++)
            cml__nn_run_layer_rows(net, &net->layers[i], mem, nb, S);
        if (net->softmax_head) {
            /* the classifier's softmax with rows in lanes, straight into out */
            const struct nn_layer *L = &net->layers[n_run];
            float *tmp = mem + net->batch_rows * S;
            for (size_t r = 0; r < nb; r += 16)
                cml__x512_softmax_rows(mem + r * S + net->blobs[L->in[0]].off, S,
                                       CAI_MIN((size_t)16, nb - r), K, tmp,
                                       out->probs ? out->probs + (r0 + r) * K : NULL,
                                       out->class_index ? out->class_index + r0 + r : NULL);
            continue;
        }
        for (size_t r = 0; r < nb; r++) {
            const float *m = mem + r * S;
            if (nd->labels) {
                const float *p = m + net->blobs[net->probs_blob].off;
                size_t best = 0;
                for (size_t k = 1; k < K; k++)
                    if ((double)p[k] > (double)p[best])
                        best = k;
                if (out->class_index)
                    out->class_index[r0 + r] = (int32_t)best;
                if (out->probs)
                    for (size_t k = 0; k < K; k++)
                        out->probs[(r0 + r) * K + k] = (double)p[k];
            } else if (out->values) {
                const struct nn_blob *bl = &net->blobs[net->out_blob[nd->values_out]];
                for (size_t k = 0; k < bl->n; k++)
                    out->values[(r0 + r) * bl->n + k] = (double)m[bl->off + k];
            }
        }
    }
    return 0;
}

/* Sets up the batch path when the network takes one multiarray and gives
 * class scores or one value blob: block size and scratch, and (SIMD) the
 * inner products' transposed weights. */
static int setup_batch(struct cml__build *b, struct cml__node *nd, struct nn_net *net)
{
    net->simd = b->m->simd;
    for (size_t i = 0; i < net->n_layers && net->simd; i++) {
        struct nn_layer *L = &net->layers[i];
        if (L->kind != NN_INNER)
            continue;
        L->ldw = (L->cout + 15) / 16 * 16;
        L->wt = cml__arena_array(&b->m->arena, (size_t)L->cin, (size_t)L->ldw * sizeof(float));
        if (!L->wt)
            return cai__fail(b->err, CAI_ENOMEM, "out of memory");
        L->finite = true;
        for (int64_t o = 0; o < L->cout; o++) {
            for (int64_t k = 0; k < L->cin; k++) {
                L->wt[k * L->ldw + o] = L->w[o * L->cin + k];
                L->finite &= isfinite(L->w[o * L->cin + k]) != 0;
            }
        }
    }
    /* An activation right after an inner product, on its output, runs in
     * the GEMM's epilogue. */
    for (size_t i = 0; i + 1 < net->n_layers && net->simd; i++) {
        struct nn_layer *L = &net->layers[i], *N = &net->layers[i + 1];
        if (L->kind == NN_INNER && N->kind == NN_ACT && N->in[0] == L->out &&
            cml__x512_act_f32(N->act, N->alpha, N->beta, NULL, NULL, 0)) {
            L->fused = N;
            N->skip = true;
        }
    }
    if (nd->n_in != 1 || b->m->slots[nd->in[0]].desc.type != CML_TYPE_MULTIARRAY)
        return 0;
    if (nd->labels) {
        if (net->probs_blob < 0)
            return 0;
    } else if (nd->values_out < 0 || net->out_blob[nd->values_out] < 0 ||
               !cml__batch_values_ok(b, nd, net->blobs[net->out_blob[nd->values_out]].n)) {
        return 0;
    }
    net->stride = (net->n_floats + 15) / 16 * 16;
    net->batch_rows = CAI_MAX((size_t)1, CAI_MIN((size_t)NN_BATCH_ROWS,
                                                 NN_BATCH_FLOATS / net->stride));
    const struct nn_layer *last = &net->layers[net->n_layers - 1];
    if (nd->labels && net->simd && last->kind == NN_SOFTMAX && last->out == net->probs_blob &&
        net->blobs[last->out].n == (size_t)net->blobs[last->out].shape.d[last->axis])
        net->softmax_head = true;
    nd->n_scratch = CAI_MAX(nd->n_scratch,
                            (net->batch_rows * net->stride + 16 * net->n_classes + 1) / 2);
    nd->run_batch = run_batch;
    return 0;
}

int cml__load_nn(struct cml__build *b, const struct cml__mm_model *mm)
{
    const struct cml__pb *msg = &mm->type_msg;
    bool cls = mm->type_field == CML__MM_NN_CLASSIFIER;
    struct nn_net *net = cml__arena_alloc(&b->m->arena, sizeof(*net));
    struct cml__labels *labels = cml__arena_alloc(&b->m->arena, sizeof(*labels));
    struct nnb s = {.b = b, .net = net};
    struct cml__pb_field f;
    int rc;
    if (!net || !labels)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    uint64_t amap = 0, imap = 0;
    if ((rc = get_scalar_u64(&s, msg, 5, "arrayInputShapeMapping", &amap)) < 0 ||
        (rc = get_scalar_u64(&s, msg, 6, "imageInputShapeMapping", &imap)) < 0)
        return rc;
    s.exact = amap == 1;
    s.rank4_image = imap == 1;
    size_t n_layers;
    if ((rc = cml__mm_count(msg, 1, &n_layers, b->err)))
        return rc;
    if (n_layers == 0)
        return cai__fail(b->err, CAI_EFORMAT, "NeuralNetwork: no layers");
    struct cml__node *nd = cml__node_add(b, mm);
    if (!nd)
        return b->err ? b->err->code : CAI_ENOMEM;
    if ((rc = cml__bind_inputs(b, nd, mm)))
        return rc;
    s.cap_blobs = n_layers + nd->n_in;
    net->layers = cml__arena_array(&b->m->arena, n_layers, sizeof(*net->layers));
    net->blobs = cml__arena_array(&b->m->arena, s.cap_blobs, sizeof(*net->blobs));
    net->in_blob = cml__arena_array(&b->m->arena, nd->n_in + 1, sizeof(int32_t));
    net->pre = cml__arena_array(&b->m->arena, nd->n_in + 1, sizeof(*net->pre));
    if (!net->layers || !net->blobs || !net->in_blob || !net->pre)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    for (size_t i = 0; i < nd->n_in; i++) {
        const struct cml__slot *sl = &b->m->slots[nd->in[i]];
        struct nn_shape sh;
        if ((rc = input_shape(&s, &sl->desc, &sh)))
            return rc;
        if ((rc = add_blob(&s, sl->name, &sh, sl->name)) < 0)
            return rc;
        net->in_blob[i] = rc;
        net->pre[i].blob = rc;
        net->pre[i].scale = 1.0f;
    }
    if ((rc = load_preprocessing(&s, msg, nd)))
        return rc;
    struct cml__pb r = *msg, lm;
    size_t idx = 0;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        if (f.num != 1)
            continue;
        if ((rc = cml__pb_len(&f, "NeuralNetwork.layers", b->err)))
            return rc;
        cml__pb_sub(&lm, msg, &f);
        if ((rc = load_layer(&s, &lm, idx)) < 0) {
            if (b->err && strncmp(b->err->msg, "NeuralNetwork layer", 19) != 0) {
                char pre[48];
                snprintf(pre, sizeof(pre), "NeuralNetwork.layers[%zu]", idx);
                cai__error_prefix(b->err, pre);
            }
            return rc;
        }
        idx++;
    }
    if (rc < 0)
        return rc;
    /* Outputs: each names a blob (the label output of a classifier excepted). */
    size_t caps[256];
    if (mm->desc.n_outputs > 256)
        return cai__fail(b->err, CAI_EUNSUPPORTED, "NeuralNetwork: too many outputs");
    net->out_blob = cml__arena_array(&b->m->arena, mm->desc.n_outputs + 1, sizeof(int32_t));
    if (!net->out_blob)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    net->probs_blob = -1;
    if (cls) {
        if ((rc = cml__mm_labels(&b->m->arena, msg, 100, 101,
                                 "NeuralNetworkClassifier.ClassLabels", labels, b->err)))
            return rc;
        if (labels->n < 1)
            return cai__fail(b->err, CAI_EFORMAT, "NeuralNetworkClassifier: no class labels");
        char *lpl = NULL;
        if ((rc = cml__mm_find(msg, 200, &f, b->err)) < 0 ||
            (rc && (rc = cml__mm_string(&b->m->arena, &f, "labelProbabilityLayerName", &lpl,
                                        b->err))))
            return rc;
        const char *pname = mm->desc.predicted_probs;
        int pb = pname[0] ? find_blob(net, pname) : -1;
        if (pb < 0 && lpl && lpl[0])
            pb = find_blob(net, lpl);
        if (pb < 0)
            pb = net->layers[net->n_layers - 1].out;
        if (net->blobs[pb].n != labels->n)
            return cai__fail(b->err, CAI_EFORMAT,
                             "NeuralNetworkClassifier: probability blob '%s' has %zu values for "
                             "%zu classes", net->blobs[pb].name, net->blobs[pb].n, labels->n);
        net->probs_blob = pb;
        net->n_classes = labels->n;
    }
    for (size_t o = 0; o < mm->desc.n_outputs; o++) {
        const struct cml_feature *of = &mm->desc.outputs[o];
        int bl = find_blob(net, of->name);
        net->out_blob[o] = bl;
        caps[o] = bl >= 0 ? net->blobs[bl].n : 1;
        if (bl < 0 && !(cls && (of->type == CML_TYPE_INT64 || of->type == CML_TYPE_STRING ||
                                of->type == CML_TYPE_DICT)))
            return cai__fail(b->err, CAI_EFORMAT,
                             "NeuralNetwork: output '%s' is not produced by any layer", of->name);
        if (bl >= 0 && of->type != CML_TYPE_MULTIARRAY && of->type != CML_TYPE_DICT &&
            net->blobs[bl].n != 1)
            return cai__fail(b->err, CAI_EFORMAT,
                             "NeuralNetwork: output '%s' is a scalar but its blob has %zu values",
                             of->name, net->blobs[bl].n);
    }
    if ((rc = cml__bind_outputs(b, nd, mm, caps, 1)))
        return rc;
    /* The kernel layer's dot product (AVX2/AVX-512 when the CPU has them);
     * NULL only when COREAI_ISA names an unusable table: plain loops then. */
    net->kern = cai__kernels_get();
    nd->impl = net;
    nd->run = run_nn;
    /* Scratch: the blobs as floats, then K doubles for class scores. */
    nd->n_scratch = (net->n_floats + 1) / 2 + net->n_classes + 2;
    if (cls) {
        if ((rc = cml__bind_classifier(b, nd, mm, labels)))
            return rc;
    } else if ((rc = cml__bind_regressor(b, nd, mm))) {
        return rc;
    }
    if ((rc = setup_batch(b, nd, net)))
        return rc;
    cml__node_info(b, nd, "%zu layers, %zu activation floats, %s mapping", net->n_layers,
                   net->n_floats, s.exact ? "exact-rank" : "rank-5");
    return 0;
}
