/* fe.c: the feature-engineering models pipelines are made of.
 *
 *  Scaler (604)                out = (x + shiftValue) * scaleValue, per element
 *                              (a single shift/scale value applies to all).
 *  Normalizer (607)            out = x / norm(x), norm LMax (max |x_i|), L1, L2;
 *                              a zero norm leaves x unchanged (as scikit-learn).
 *  ArrayFeatureExtractor (609) out = x[extractIndex...]; one index may feed a
 *                              scalar output.
 *  OneHotEncoder (600)         a category (int64 or string) -> its one-hot
 *                              vector, or with a dictionary output the sparse
 *                              {index: 1.0}; unknown categories are an error
 *                              (ErrorOnUnknown) or all zeros (IgnoreUnknown).
 *  Imputer (601)               replaces the replace value (NaN by default for
 *                              doubles) by the imputed value (scalar or per
 *                              element).
 *  FeatureVectorizer (602)     concatenates the listed input columns; each is
 *                              a scalar, an array of inputDimensions values,
 *                              or a dictionary {index: value} expanded into
 *                              inputDimensions slots.
 *  DictVectorizer (603)        a dictionary -> array by the key's position in
 *                              the index mapping; keys not in it are ignored.
 *  Identity (900)              outputs = inputs. */
#include <stdlib.h>
#include <string.h>

#include "ml.h"

/* ---- Scaler ------------------------------------------------------------------ */

struct scaler {
    size_t  n;
    double *shift, *scale; /* [n] */
};

static int run_scaler(const struct cml__node *nd, struct cml__exec *x)
{
    const struct scaler *s = nd->impl;
    const double *in = cml__gather(x, nd, s->n, x->scratch);
    if (!in)
        return x->err->code;
    double *y = x->buf[nd->out[0]];
    for (size_t i = 0; i < s->n; i++)
        y[i] = (in[i] + s->shift[i]) * s->scale[i];
    cml__publish(x, nd->out[0], s->n);
    return 0;
}

/* Broadcasts v[n_v] (n_v 0, 1 or n) into a new [n] array, `dflt` when empty. */
static double *broadcast(struct cml__build *b, const double *v, size_t n_v, size_t n, double dflt,
                         const char *what)
{
    if (n_v != 0 && n_v != 1 && n_v != n) {
        cai__fail(b->err, CAI_EFORMAT, "%s: %zu values for %zu features", what, n_v, n);
        return NULL;
    }
    double *o = cml__arena_array(&b->m->arena, n, sizeof(double));
    if (!o) {
        cai__fail(b->err, CAI_ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        o[i] = n_v == 0 ? dflt : v[n_v == 1 ? 0 : i];
    return o;
}

/* Total declared element count of the node's inputs, 0 when unknown. */
static size_t declared_in(struct cml__build *b, struct cml__node *nd)
{
    size_t n = 0;
    for (size_t i = 0; i < nd->n_in; i++) {
        size_t e = cml__input_elems(b, nd, i);
        if (e == 0)
            return 0;
        n += e;
    }
    return n;
}

static int load_scaler(struct cml__build *b, const struct cml__mm_model *mm, struct cml__node *nd)
{
    struct scaler *s = cml__arena_alloc(&b->m->arena, sizeof(*s));
    double *sh, *sc;
    size_t n_sh, n_sc;
    int rc;
    if (!s)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    if ((rc = cml__mm_doubles(&b->m->arena, &mm->type_msg, 1, "Scaler.shiftValue", &sh, &n_sh,
                              b->err)) ||
        (rc = cml__mm_doubles(&b->m->arena, &mm->type_msg, 2, "Scaler.scaleValue", &sc, &n_sc,
                              b->err)))
        return rc;
    s->n = declared_in(b, nd);
    if (s->n == 0)
        s->n = CAI_MAX(n_sh, n_sc);
    if (s->n == 0)
        return cai__fail(b->err, CAI_EFORMAT, "Scaler: input size unknown");
    if (!(s->shift = broadcast(b, sh, n_sh, s->n, 0.0, "Scaler.shiftValue")) ||
        !(s->scale = broadcast(b, sc, n_sc, s->n, 1.0, "Scaler.scaleValue")))
        return b->err->code;
    nd->impl = s;
    nd->run = run_scaler;
    nd->n_scratch = s->n;
    cml__node_info(b, nd, "%zu features", s->n);
    return cml__bind_outputs(b, nd, mm, NULL, s->n);
}

/* ---- Normalizer ------------------------------------------------------------------ */

struct normalizer {
    size_t n;
    int    norm; /* 0 LMax, 1 L1, 2 L2 */
};

static int run_normalizer(const struct cml__node *nd, struct cml__exec *x)
{
    const struct normalizer *s = nd->impl;
    const double *in = cml__gather(x, nd, s->n, x->scratch);
    if (!in)
        return x->err->code;
    double *y = x->buf[nd->out[0]];
    double norm = 0.0;
    for (size_t i = 0; i < s->n; i++) {
        double a = fabs(in[i]);
        if (s->norm == 0)
            norm = a > norm ? a : norm;
        else if (s->norm == 1)
            norm += a;
        else
            norm += in[i] * in[i];
    }
    if (s->norm == 2)
        norm = sqrt(norm);
    for (size_t i = 0; i < s->n; i++)
        y[i] = norm > 0.0 ? in[i] / norm : in[i];
    cml__publish(x, nd->out[0], s->n);
    return 0;
}

static int load_normalizer(struct cml__build *b, const struct cml__mm_model *mm,
                           struct cml__node *nd)
{
    struct normalizer *s = cml__arena_alloc(&b->m->arena, sizeof(*s));
    struct cml__pb_field f;
    int32_t t = 0;
    int rc;
    if (!s)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    if ((rc = cml__mm_find(&mm->type_msg, 1, &f, b->err)) < 0)
        return rc;
    if (rc && (rc = cml__pb_i32(&f, "Normalizer.normType", &t, b->err)) != 0)
        return rc;
    if (t < 0 || t > 2)
        return cai__fail(b->err, CAI_EFORMAT, "Normalizer.normType: unknown value %d", t);
    s->norm = t;
    s->n = declared_in(b, nd);
    if (s->n == 0)
        return cai__fail(b->err, CAI_EUNSUPPORTED, "Normalizer: input size must be declared");
    nd->impl = s;
    nd->run = run_normalizer;
    nd->n_scratch = s->n;
    cml__node_info(b, nd, "%zu features, %s", s->n, t == 0 ? "LMax" : t == 1 ? "L1" : "L2");
    return cml__bind_outputs(b, nd, mm, NULL, s->n);
}

/* ---- ArrayFeatureExtractor ------------------------------------------------------------ */

struct extractor {
    size_t    n;
    uint64_t *idx; /* [n] */
    uint64_t  max_idx;
};

static int run_extractor(const struct cml__node *nd, struct cml__exec *x)
{
    const struct extractor *s = nd->impl;
    const struct cml_value *v = &x->vals[nd->in[0]];
    double *y = x->buf[nd->out[0]];
    if (v->type == CML_TYPE_MULTIARRAY) {
        if (s->max_idx >= v->n_elem)
            return cml__run_fail(x, CAI_EINVAL, "ArrayFeatureExtractor: index %llu >= %zu inputs",
                                 (unsigned long long)s->max_idx, v->n_elem);
        for (size_t i = 0; i < s->n; i++)
            y[i] = v->data[s->idx[i]];
    } else if ((v->type == CML_TYPE_DOUBLE || v->type == CML_TYPE_INT64) && s->max_idx == 0) {
        for (size_t i = 0; i < s->n; i++)
            y[i] = v->type == CML_TYPE_DOUBLE ? v->f64 : (double)v->i64;
    } else {
        return cml__run_fail(x, CAI_EINVAL, "ArrayFeatureExtractor: input '%s' is not an array",
                             x->m->slots[nd->in[0]].name);
    }
    cml__publish(x, nd->out[0], s->n);
    return 0;
}

static int load_extractor(struct cml__build *b, const struct cml__mm_model *mm,
                          struct cml__node *nd)
{
    struct extractor *s = cml__arena_alloc(&b->m->arena, sizeof(*s));
    int rc;
    if (!s)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    if (nd->n_in != 1)
        return cai__fail(b->err, CAI_EFORMAT, "ArrayFeatureExtractor: needs one input, has %zu",
                         nd->n_in);
    if ((rc = cml__mm_varints(&b->m->arena, &mm->type_msg, 1, "ArrayFeatureExtractor.extractIndex",
                              &s->idx, &s->n, b->err)))
        return rc;
    if (s->n == 0)
        return cai__fail(b->err, CAI_EFORMAT, "ArrayFeatureExtractor.extractIndex: empty");
    size_t n_in = declared_in(b, nd);
    for (size_t i = 0; i < s->n; i++) {
        if (n_in && s->idx[i] >= n_in)
            return cai__fail(b->err, CAI_EFORMAT,
                             "ArrayFeatureExtractor.extractIndex[%zu] = %llu out of range (%zu "
                             "inputs)", i, (unsigned long long)s->idx[i], n_in);
        s->max_idx = s->idx[i] > s->max_idx ? s->idx[i] : s->max_idx;
    }
    nd->impl = s;
    nd->run = run_extractor;
    cml__node_info(b, nd, "%zu indexes", s->n);
    return cml__bind_outputs(b, nd, mm, NULL, s->n);
}

/* ---- OneHotEncoder ---------------------------------------------------------------------- */

struct onehot {
    struct cml__labels cats; /* categories, int64 or string */
    bool               ignore_unknown;
    bool               sparse_out;
    int64_t           *iota; /* [n] 0..n-1: keys of the sparse output */
};

static long find_cat(const struct onehot *s, const struct cml_value *v, bool *ok)
{
    *ok = true;
    if (s->cats.is_str) {
        if (v->type != CML_TYPE_STRING || !v->str) {
            *ok = false;
            return -1;
        }
        for (size_t i = 0; i < s->cats.n; i++)
            if (strcmp(s->cats.str[i], v->str) == 0)
                return (long)i;
        return -1;
    }
    int64_t key;
    if (v->type == CML_TYPE_INT64)
        key = v->i64;
    else if (v->type == CML_TYPE_DOUBLE && v->f64 == floor(v->f64) && fabs(v->f64) < 9e18)
        key = (int64_t)v->f64;
    else if (v->type == CML_TYPE_MULTIARRAY && v->n_elem == 1 && v->data[0] == floor(v->data[0]) &&
             fabs(v->data[0]) < 9e18)
        key = (int64_t)v->data[0];
    else {
        *ok = false;
        return -1;
    }
    for (size_t i = 0; i < s->cats.n; i++)
        if (s->cats.i64[i] == key)
            return (long)i;
    return -1;
}

static int run_onehot(const struct cml__node *nd, struct cml__exec *x)
{
    const struct onehot *s = nd->impl;
    const struct cml_value *v = &x->vals[nd->in[0]];
    bool ok;
    long k = find_cat(s, v, &ok);
    const char *nm = x->m->slots[nd->in[0]].name;
    if (!ok)
        return cml__run_fail(x, CAI_EINVAL, "OneHotEncoder: input '%s' must be %s", nm,
                             s->cats.is_str ? "a string" : "an integer");
    if (k < 0 && !s->ignore_unknown)
        return cml__run_fail(x, CAI_EINVAL, "OneHotEncoder: input '%s': unknown category", nm);
    int32_t o = nd->out[0];
    double *y = x->buf[o];
    if (s->sparse_out) {
        struct cml_value *dv = &x->vals[o];
        memset(dv, 0, sizeof(*dv));
        dv->type = CML_TYPE_DICT;
        y[0] = 1.0;
        dv->data = y;
        dv->keys_i64 = k >= 0 ? &s->iota[k] : s->iota;
        dv->n_elem = k >= 0 ? 1 : 0;
        return 0;
    }
    memset(y, 0, s->cats.n * sizeof(double));
    if (k >= 0)
        y[k] = 1.0;
    cml__publish(x, o, s->cats.n);
    return 0;
}

static int load_onehot(struct cml__build *b, const struct cml__mm_model *mm, struct cml__node *nd)
{
    struct onehot *s = cml__arena_alloc(&b->m->arena, sizeof(*s));
    struct cml__pb_field f;
    int rc;
    if (!s)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    if (nd->n_in != 1 || mm->desc.n_outputs != 1)
        return cai__fail(b->err, CAI_EFORMAT, "OneHotEncoder: needs one input and one output");
    if ((rc = cml__mm_labels(&b->m->arena, &mm->type_msg, 1, 2, "OneHotEncoder.CategoryType",
                             &s->cats, b->err)))
        return rc;
    if (s->cats.n == 0)
        return cai__fail(b->err, CAI_EFORMAT, "OneHotEncoder: no categories");
    int32_t hu = 0;
    if ((rc = cml__mm_find(&mm->type_msg, 11, &f, b->err)) < 0)
        return rc;
    if (rc && (rc = cml__pb_i32(&f, "OneHotEncoder.handleUnknown", &hu, b->err)) != 0)
        return rc;
    s->ignore_unknown = hu == 1;
    s->sparse_out = mm->desc.outputs[0].type == CML_TYPE_DICT;
    s->iota = cml__arena_array(&b->m->arena, s->cats.n, sizeof(int64_t));
    if (!s->iota)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->cats.n; i++)
        s->iota[i] = (int64_t)i;
    nd->impl = s;
    nd->run = run_onehot;
    cml__node_info(b, nd, "%zu %s categories%s", s->cats.n, s->cats.is_str ? "string" : "int64",
                   s->sparse_out ? ", sparse" : "");
    return cml__bind_outputs(b, nd, mm, NULL, s->cats.n);
}

/* ---- Imputer ---------------------------------------------------------------------------- */

struct imputer {
    size_t      n;         /* elements (1 for scalars) */
    double     *imp;       /* [n] */
    double      replace;   /* NaN: replace NaNs */
    const char *imp_str, *replace_str; /* string imputer */
    bool        is_str;
};

static int run_imputer(const struct cml__node *nd, struct cml__exec *x)
{
    const struct imputer *s = nd->impl;
    int32_t o = nd->out[0];
    if (s->is_str) {
        const struct cml_value *v = &x->vals[nd->in[0]];
        if (v->type != CML_TYPE_STRING)
            return cml__run_fail(x, CAI_EINVAL, "Imputer: input must be a string");
        x->vals[o] = *v;
        if (strcmp(v->str, s->replace_str) == 0)
            x->vals[o].str = s->imp_str;
        return 0;
    }
    const double *in = cml__gather(x, nd, s->n, x->scratch);
    if (!in)
        return x->err->code;
    double *y = x->buf[o];
    bool nan_rep = isnan(s->replace);
    for (size_t i = 0; i < s->n; i++)
        y[i] = (nan_rep ? isnan(in[i]) : in[i] == s->replace) ? s->imp[i] : in[i];
    cml__publish(x, o, s->n);
    return 0;
}

static int load_imputer(struct cml__build *b, const struct cml__mm_model *mm, struct cml__node *nd)
{
    struct imputer *s = cml__arena_alloc(&b->m->arena, sizeof(*s));
    struct cml__pb r = mm->type_msg, sub;
    struct cml__pb_field f;
    double *imp = NULL;
    size_t n_imp = 0;
    int rc;
    if (!s)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    s->replace = (double)NAN;
    double dv;
    int64_t iv;
    char *str;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        switch (f.num) {
        case 1:
            if ((rc = cml__pb_double(&f, "Imputer.imputedDoubleValue", &dv, b->err)))
                return rc;
            imp = cml__arena_alloc(&b->m->arena, sizeof(double));
            if (!imp)
                return cai__fail(b->err, CAI_ENOMEM, "out of memory");
            imp[0] = dv;
            n_imp = 1;
            break;
        case 2:
            if ((rc = cml__pb_i64(&f, "Imputer.imputedInt64Value", &iv, b->err)))
                return rc;
            imp = cml__arena_alloc(&b->m->arena, sizeof(double));
            if (!imp)
                return cai__fail(b->err, CAI_ENOMEM, "out of memory");
            imp[0] = (double)iv;
            n_imp = 1;
            break;
        case 3:
            if ((rc = cml__mm_string(&b->m->arena, &f, "Imputer.imputedStringValue", &str, b->err)))
                return rc;
            s->imp_str = str;
            s->is_str = true;
            break;
        case 4:
        case 5: {
            if ((rc = cml__pb_len(&f, "Imputer.imputedArray", b->err)))
                return rc;
            cml__pb_sub(&sub, &r, &f);
            if (f.num == 4) {
                rc = cml__mm_doubles(&b->m->arena, &sub, 1, "Imputer.imputedDoubleArray", &imp,
                                     &n_imp, b->err);
            } else {
                uint64_t *u;
                rc = cml__mm_varints(&b->m->arena, &sub, 1, "Imputer.imputedInt64Array", &u,
                                     &n_imp, b->err);
                if (!rc && n_imp) {
                    imp = cml__arena_array(&b->m->arena, n_imp, sizeof(double));
                    if (!imp)
                        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
                    for (size_t i = 0; i < n_imp; i++)
                        imp[i] = (double)(int64_t)u[i];
                }
            }
            if (rc)
                return rc;
            break;
        }
        case 6:
        case 7:
            return cai__fail(b->err, CAI_EUNSUPPORTED, "Imputer: dictionary imputation");
        case 11:
            if ((rc = cml__pb_double(&f, "Imputer.replaceDoubleValue", &s->replace, b->err)))
                return rc;
            break;
        case 12:
            if ((rc = cml__pb_i64(&f, "Imputer.replaceInt64Value", &iv, b->err)))
                return rc;
            s->replace = (double)iv;
            break;
        case 13:
            if ((rc = cml__mm_string(&b->m->arena, &f, "Imputer.replaceStringValue", &str,
                                     b->err)))
                return rc;
            s->replace_str = str;
            break;
        default:
            break;
        }
    }
    if (rc < 0)
        return rc;
    nd->impl = s;
    nd->run = run_imputer;
    if (s->is_str) {
        if (!s->replace_str)
            s->replace_str = "";
        cml__node_info(b, nd, "string");
        return cml__bind_outputs(b, nd, mm, NULL, 1);
    }
    if (n_imp == 0)
        return cai__fail(b->err, CAI_EFORMAT, "Imputer: no imputed value");
    s->n = declared_in(b, nd);
    if (s->n == 0)
        s->n = n_imp;
    if (!(s->imp = broadcast(b, imp, n_imp, s->n, 0.0, "Imputer.imputedValue")))
        return b->err->code;
    nd->n_scratch = s->n;
    cml__node_info(b, nd, "%zu features", s->n);
    return cml__bind_outputs(b, nd, mm, NULL, s->n);
}

/* ---- FeatureVectorizer ------------------------------------------------------------------- */

struct fvec {
    size_t  n_cols, n_out;
    int32_t *col_in;  /* [n_cols] index into the node's inputs */
    size_t  *dims;    /* [n_cols] */
};

static int run_fvec(const struct cml__node *nd, struct cml__exec *x)
{
    const struct fvec *s = nd->impl;
    double *y = x->buf[nd->out[0]];
    size_t k = 0;
    for (size_t c = 0; c < s->n_cols; c++) {
        const struct cml_value *v = &x->vals[nd->in[s->col_in[c]]];
        const char *nm = x->m->slots[nd->in[s->col_in[c]]].name;
        size_t d = s->dims[c];
        switch (v->type) {
        case CML_TYPE_DOUBLE:
        case CML_TYPE_INT64:
            if (d != 1)
                return cml__run_fail(x, CAI_EINVAL, "FeatureVectorizer: '%s' has 1 value, "
                                     "expected %zu", nm, d);
            y[k] = v->type == CML_TYPE_DOUBLE ? v->f64 : (double)v->i64;
            break;
        case CML_TYPE_MULTIARRAY:
            if (v->n_elem != d)
                return cml__run_fail(x, CAI_EINVAL, "FeatureVectorizer: '%s' has %zu values, "
                                     "expected %zu", nm, v->n_elem, d);
            memcpy(y + k, v->data, d * sizeof(double));
            break;
        case CML_TYPE_DICT:
            if (!v->keys_i64 && v->n_elem)
                return cml__run_fail(x, CAI_EINVAL, "FeatureVectorizer: '%s' needs int64 keys",
                                     nm);
            memset(y + k, 0, d * sizeof(double));
            for (size_t i = 0; i < v->n_elem; i++) {
                if (v->keys_i64[i] < 0 || (uint64_t)v->keys_i64[i] >= d)
                    return cml__run_fail(x, CAI_EINVAL, "FeatureVectorizer: '%s' key %lld out "
                                         "of range", nm, (long long)v->keys_i64[i]);
                y[k + (size_t)v->keys_i64[i]] = v->data[i];
            }
            break;
        default:
            return cml__run_fail(x, CAI_EINVAL, "FeatureVectorizer: '%s' is not numeric", nm);
        }
        k += d;
    }
    cml__publish(x, nd->out[0], s->n_out);
    return 0;
}

static int load_fvec(struct cml__build *b, const struct cml__mm_model *mm, struct cml__node *nd)
{
    struct fvec *s = cml__arena_alloc(&b->m->arena, sizeof(*s));
    struct cml__pb r = mm->type_msg, sub;
    struct cml__pb_field f, g;
    int rc;
    if (!s)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    if ((rc = cml__mm_count(&mm->type_msg, 1, &s->n_cols, b->err)))
        return rc;
    if (s->n_cols == 0)
        return cai__fail(b->err, CAI_EFORMAT, "FeatureVectorizer.inputList: empty");
    s->col_in = cml__arena_array(&b->m->arena, s->n_cols, sizeof(*s->col_in));
    s->dims = cml__arena_array(&b->m->arena, s->n_cols, sizeof(*s->dims));
    if (!s->col_in || !s->dims)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    size_t c = 0;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        if (f.num != 1)
            continue;
        if ((rc = cml__pb_len(&f, "FeatureVectorizer.inputList", b->err)))
            return rc;
        cml__pb_sub(&sub, &r, &f);
        char *name = NULL;
        uint64_t dim = 0;
        while ((rc = cml__pb_next(&sub, &g, b->err)) > 0) {
            if (g.num == 1)
                rc = cml__mm_string(&b->m->arena, &g, "InputColumn.inputColumn", &name, b->err);
            else if (g.num == 2)
                rc = cml__pb_u64(&g, "InputColumn.inputDimensions", &dim, b->err);
            if (rc < 0)
                return rc;
        }
        if (rc < 0)
            return rc;
        if (!name || dim == 0 || dim > (1u << 24))
            return cai__fail(b->err, CAI_EFORMAT,
                             "FeatureVectorizer.inputList[%zu]: needs a column name and "
                             "1..2^24 dimensions", c);
        s->col_in[c] = -1;
        for (size_t i = 0; i < nd->n_in; i++)
            if (strcmp(b->m->slots[nd->in[i]].name, name) == 0)
                s->col_in[c] = (int32_t)i;
        if (s->col_in[c] < 0)
            return cai__fail(b->err, CAI_EFORMAT,
                             "FeatureVectorizer.inputList[%zu]: '%s' is not an input", c, name);
        s->dims[c] = (size_t)dim;
        s->n_out += (size_t)dim;
        c++;
    }
    if (rc < 0)
        return rc;
    nd->impl = s;
    nd->run = run_fvec;
    cml__node_info(b, nd, "%zu columns -> %zu features", s->n_cols, s->n_out);
    return cml__bind_outputs(b, nd, mm, NULL, s->n_out);
}

/* ---- DictVectorizer ------------------------------------------------------------------------ */

struct dvec {
    struct cml__labels keys;  /* index mapping: position = output index */
    size_t            *order; /* [n] positions sorted by key, for binary search */
};

static int cmp_key(const struct dvec *s, size_t i, size_t j)
{
    if (s->keys.is_str)
        return strcmp(s->keys.str[i], s->keys.str[j]);
    int64_t x = s->keys.i64[i], y = s->keys.i64[j];
    return x < y ? -1 : x > y;
}

/* Heap sort of s->order by key (qsort has no context argument, and a
 * global one would make concurrent loads race). */
static void sift(const struct dvec *s, size_t *o, size_t root, size_t n)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && cmp_key(s, o[c], o[c + 1]) < 0)
            c++;
        if (cmp_key(s, o[root], o[c]) >= 0)
            return;
        size_t t = o[root];
        o[root] = o[c];
        o[c] = t;
        root = c;
    }
}

static void sort_keys(const struct dvec *s, size_t *o, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(s, o, i, n);
    for (size_t end = n; end-- > 1;) {
        size_t t = o[0];
        o[0] = o[end];
        o[end] = t;
        sift(s, o, 0, end);
    }
}

static long dvec_find(const struct dvec *s, const char *ks, int64_t ki)
{
    size_t lo = 0, hi = s->keys.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2, p = s->order[mid];
        int c = s->keys.is_str ? strcmp(s->keys.str[p], ks) :
                                 (s->keys.i64[p] < ki ? -1 : s->keys.i64[p] > ki);
        if (c == 0)
            return (long)p;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int run_dvec(const struct cml__node *nd, struct cml__exec *x)
{
    const struct dvec *s = nd->impl;
    const struct cml_value *v = &x->vals[nd->in[0]];
    double *y = x->buf[nd->out[0]];
    if (v->type != CML_TYPE_DICT || (v->n_elem && (s->keys.is_str ? !v->keys_str : !v->keys_i64)))
        return cml__run_fail(x, CAI_EINVAL, "DictVectorizer: input must be a dictionary with %s "
                             "keys", s->keys.is_str ? "string" : "int64");
    memset(y, 0, s->keys.n * sizeof(double));
    for (size_t i = 0; i < v->n_elem; i++) {
        if (s->keys.is_str && !v->keys_str[i])
            continue;
        long p = dvec_find(s, s->keys.is_str ? v->keys_str[i] : NULL,
                           s->keys.is_str ? 0 : v->keys_i64[i]);
        if (p >= 0)
            y[p] = v->data[i];
    }
    cml__publish(x, nd->out[0], s->keys.n);
    return 0;
}

static int load_dvec(struct cml__build *b, const struct cml__mm_model *mm, struct cml__node *nd)
{
    struct dvec *s = cml__arena_alloc(&b->m->arena, sizeof(*s));
    int rc;
    if (!s)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    if (nd->n_in != 1)
        return cai__fail(b->err, CAI_EFORMAT, "DictVectorizer: needs one input");
    if ((rc = cml__mm_labels(&b->m->arena, &mm->type_msg, 1, 2, "DictVectorizer.Map", &s->keys,
                             b->err)))
        return rc;
    if (s->keys.n == 0)
        return cai__fail(b->err, CAI_EFORMAT, "DictVectorizer: empty index mapping");
    s->order = cml__arena_array(&b->m->arena, s->keys.n, sizeof(size_t));
    if (!s->order)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->keys.n; i++)
        s->order[i] = i;
    sort_keys(s, s->order, s->keys.n);
    nd->impl = s;
    nd->run = run_dvec;
    cml__node_info(b, nd, "%zu %s keys", s->keys.n, s->keys.is_str ? "string" : "int64");
    return cml__bind_outputs(b, nd, mm, NULL, s->keys.n);
}

/* ---- Identity ------------------------------------------------------------------------------- */

static int run_identity(const struct cml__node *nd, struct cml__exec *x)
{
    for (size_t i = 0; i < nd->n_out && i < nd->n_in; i++)
        x->vals[nd->out[i]] = x->vals[nd->in[i]];
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

int cml__load_fe(struct cml__build *b, const struct cml__mm_model *mm)
{
    struct cml__node *nd = cml__node_add(b, mm);
    int rc;
    if (!nd)
        return b->err ? b->err->code : CAI_ENOMEM;
    if ((rc = cml__bind_inputs(b, nd, mm)) != 0)
        return rc;
    if (nd->n_in == 0 || mm->desc.n_outputs == 0)
        return cai__fail(b->err, CAI_EFORMAT, "%s: needs inputs and outputs",
                         cml__mm_type_name(mm->type_field));
    switch (mm->type_field) {
    case CML__MM_SCALER: rc = load_scaler(b, mm, nd); break;
    case CML__MM_NORMALIZER: rc = load_normalizer(b, mm, nd); break;
    case CML__MM_ARRAY_FEATURE_EXTRACTOR: rc = load_extractor(b, mm, nd); break;
    case CML__MM_ONE_HOT: rc = load_onehot(b, mm, nd); break;
    case CML__MM_IMPUTER: rc = load_imputer(b, mm, nd); break;
    case CML__MM_FEATURE_VECTORIZER: rc = load_fvec(b, mm, nd); break;
    case CML__MM_DICT_VECTORIZER: rc = load_dvec(b, mm, nd); break;
    default:
        nd->run = run_identity;
        rc = cml__bind_outputs(b, nd, mm, NULL, 1);
        break;
    }
    if (rc)
        cai__error_prefix(b->err, cml__mm_type_name(mm->type_field));
    return rc;
}
