/* mlmodel.c: decoding of the Model message, its ModelDescription and
 * FeatureTypes, plus the small helpers every type decoder uses. See
 * mlmodel.h. Field numbers are from Apple's public Core ML specification. */
#include <stdio.h>
#include <string.h>

#include "mlmodel.h"

/* ---- arena -------------------------------------------------------------- */

struct cml__arena_chunk {
    struct cml__arena_chunk *next;
    size_t                   cap, used;
    _Alignas(16) unsigned char data[];
};

#define ARENA_CHUNK (64u * 1024u)

void *cml__arena_alloc(struct cml__arena *a, size_t n_bytes)
{
    size_t n = (n_bytes + 15) & ~(size_t)15;
    if (n < n_bytes)
        return NULL;
    struct cml__arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
        size_t total;
        if (!cai__add_size(sizeof(*c), cap, &total))
            return NULL;
        c = cai__malloc(total);
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        if (n > ARENA_CHUNK / 4 && a->head) {
            /* A big block gets its own chunk behind the current one, so the
             * current chunk's free space is not wasted. */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    a->n_bytes += n;
    memset(p, 0, n);
    return p;
}

void *cml__arena_array(struct cml__arena *a, size_t n, size_t size)
{
    size_t total;
    if (!cai__mul_size(n, size, &total))
        return NULL;
    return cml__arena_alloc(a, total);
}

char *cml__arena_strndup(struct cml__arena *a, const char *s, size_t n)
{
    size_t total;
    if (!cai__add_size(n, 1, &total))
        return NULL;
    char *p = cml__arena_alloc(a, total);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void cml__arena_free(struct cml__arena *a)
{
    if (!a)
        return;
    struct cml__arena_chunk *c = a->head;
    while (c) {
        struct cml__arena_chunk *next = c->next;
        cai__free(c);
        c = next;
    }
    a->head = NULL;
    a->n_bytes = 0;
}

/* ---- type names ----------------------------------------------------------- */

const char *cml__mm_type_name(uint32_t t)
{
    switch (t) {
    case CML__MM_PIPELINE_CLASSIFIER: return "pipelineClassifier";
    case CML__MM_PIPELINE_REGRESSOR: return "pipelineRegressor";
    case CML__MM_PIPELINE: return "pipeline";
    case CML__MM_GLM_REGRESSOR: return "glmRegressor";
    case CML__MM_SVR: return "supportVectorRegressor";
    case CML__MM_TREE_REGRESSOR: return "treeEnsembleRegressor";
    case CML__MM_NN_REGRESSOR: return "neuralNetworkRegressor";
    case CML__MM_BAYESIAN_PROBIT: return "bayesianProbitRegressor";
    case CML__MM_GLM_CLASSIFIER: return "glmClassifier";
    case CML__MM_SVC: return "supportVectorClassifier";
    case CML__MM_TREE_CLASSIFIER: return "treeEnsembleClassifier";
    case CML__MM_NN_CLASSIFIER: return "neuralNetworkClassifier";
    case CML__MM_KNN_CLASSIFIER: return "kNearestNeighborsClassifier";
    case CML__MM_NN: return "neuralNetwork";
    case CML__MM_ITEM_SIMILARITY: return "itemSimilarityRecommender";
    case CML__MM_ML_PROGRAM: return "mlProgram";
    case CML__MM_CUSTOM: return "customModel";
    case CML__MM_LINKED: return "linkedModel";
    case CML__MM_CLASS_CONFIDENCE: return "classConfidenceThresholding";
    case CML__MM_ONE_HOT: return "oneHotEncoder";
    case CML__MM_IMPUTER: return "imputer";
    case CML__MM_FEATURE_VECTORIZER: return "featureVectorizer";
    case CML__MM_DICT_VECTORIZER: return "dictVectorizer";
    case CML__MM_SCALER: return "scaler";
    case CML__MM_CATEGORICAL_MAPPING: return "categoricalMapping";
    case CML__MM_NORMALIZER: return "normalizer";
    case CML__MM_ARRAY_FEATURE_EXTRACTOR: return "arrayFeatureExtractor";
    case CML__MM_NMS: return "nonMaximumSuppression";
    case CML__MM_IDENTITY: return "identity";
    default:
        if (t >= 2000 && t <= 2006)
            return "appleBuiltinModel";
        if (t == 3000)
            return "serializedModel";
        return "unknown";
    }
}

static bool is_type_field(uint32_t num)
{
    return (num >= 200 && num <= 202) || (num >= 300 && num <= 304) ||
           (num >= 400 && num <= 404) || (num >= 500 && num <= 502) || num == 555 ||
           num == 556 || num == 560 || (num >= 600 && num <= 610) || num == 900 ||
           (num >= 2000 && num <= 2006) || num == 3000;
}

/* ---- generic helpers -------------------------------------------------------- */

int cml__mm_find(const struct cml__pb *msg, uint32_t num, struct cml__pb_field *f,
                 struct cai_error *err)
{
    struct cml__pb r = *msg;
    struct cml__pb_field g;
    int found = 0, rc;
    while ((rc = cml__pb_next(&r, &g, err)) > 0) {
        if (g.num == num) {
            *f = g;
            found = 1;
        }
    }
    return rc < 0 ? rc : found;
}

int cml__mm_count(const struct cml__pb *msg, uint32_t num, size_t *n, struct cai_error *err)
{
    struct cml__pb r = *msg;
    struct cml__pb_field g;
    size_t c = 0;
    int rc;
    while ((rc = cml__pb_next(&r, &g, err)) > 0)
        c += g.num == num;
    *n = c;
    return rc < 0 ? rc : 0;
}

static int oom(struct cai_error *err, const char *what)
{
    return cai__fail(err, CAI_ENOMEM, "%s: out of memory", what);
}

/* Counts the elements of repeated numeric field `num` across all records. */
static int count_elems(const struct cml__pb *msg, uint32_t num, enum cml__pb_wire w,
                       const char *what, size_t *n, struct cai_error *err)
{
    struct cml__pb r = *msg;
    struct cml__pb_field f;
    size_t total = 0;
    int rc;
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        if (f.num != num)
            continue;
        size_t k;
        rc = cml__pb_count_repeated(&f, w, what, &k, err);
        if (rc)
            return rc;
        total += k; /* bounded by the buffer size: cannot overflow */
    }
    *n = total;
    return rc;
}

int cml__mm_doubles(struct cml__arena *a, const struct cml__pb *msg, uint32_t num,
                    const char *what, double **out, size_t *n, struct cai_error *err)
{
    size_t total;
    *out = NULL;
    *n = 0;
    int rc = count_elems(msg, num, CML__PB_I64, what, &total, err);
    if (rc || total == 0)
        return rc;
    double *v = cml__arena_array(a, total, sizeof(*v));
    if (!v)
        return oom(err, what);
    struct cml__pb r = *msg;
    struct cml__pb_field f;
    size_t k = 0;
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        if (f.num == num && (rc = cml__pb_read_doubles(&f, what, v, total, &k, err)) != 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    *out = v;
    *n = k;
    return 0;
}

int cml__mm_floats(struct cml__arena *a, const struct cml__pb *msg, uint32_t num,
                   const char *what, float **out, size_t *n, struct cai_error *err)
{
    size_t total;
    *out = NULL;
    *n = 0;
    int rc = count_elems(msg, num, CML__PB_I32, what, &total, err);
    if (rc || total == 0)
        return rc;
    float *v = cml__arena_array(a, total, sizeof(*v));
    if (!v)
        return oom(err, what);
    struct cml__pb r = *msg;
    struct cml__pb_field f;
    size_t k = 0;
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        if (f.num == num && (rc = cml__pb_read_floats(&f, what, v, total, &k, err)) != 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    *out = v;
    *n = k;
    return 0;
}

int cml__mm_varints(struct cml__arena *a, const struct cml__pb *msg, uint32_t num,
                    const char *what, uint64_t **out, size_t *n, struct cai_error *err)
{
    size_t total;
    *out = NULL;
    *n = 0;
    int rc = count_elems(msg, num, CML__PB_VARINT, what, &total, err);
    if (rc || total == 0)
        return rc;
    uint64_t *v = cml__arena_array(a, total, sizeof(*v));
    if (!v)
        return oom(err, what);
    struct cml__pb r = *msg;
    struct cml__pb_field f;
    size_t k = 0;
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        if (f.num == num && (rc = cml__pb_read_varints(&f, what, v, total, &k, err)) != 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    *out = v;
    *n = k;
    return 0;
}

int cml__mm_string(struct cml__arena *a, const struct cml__pb_field *f, const char *what,
                   char **out, struct cai_error *err)
{
    int rc = cml__pb_len(f, what, err);
    if (rc)
        return rc;
    *out = cml__arena_strndup(a, (const char *)f->data, f->n_bytes);
    return *out ? 0 : oom(err, what);
}

int cml__mm_strings(struct cml__arena *a, const struct cml__pb *msg, uint32_t num,
                    const char *what, char ***out, size_t *n, struct cai_error *err)
{
    size_t total;
    *out = NULL;
    *n = 0;
    int rc = cml__mm_count(msg, num, &total, err);
    if (rc || total == 0)
        return rc;
    char **v = cml__arena_array(a, total, sizeof(*v));
    if (!v)
        return oom(err, what);
    struct cml__pb r = *msg;
    struct cml__pb_field f;
    size_t k = 0;
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        if (f.num != num)
            continue;
        if (k >= total)
            return cai__fail(err, CAI_EFORMAT, "%s: more elements than counted", what);
        if ((rc = cml__mm_string(a, &f, what, &v[k++], err)) != 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    *out = v;
    *n = k;
    return 0;
}

int cml__mm_labels(struct cml__arena *a, const struct cml__pb *msg, uint32_t str_field,
                   uint32_t int_field, const char *what, struct cml__labels *out,
                   struct cai_error *err)
{
    struct cml__pb r = *msg, sub;
    struct cml__pb_field f, last = {0};
    int rc;
    memset(out, 0, sizeof(*out));
    /* A oneof: the last member present wins. */
    while ((rc = cml__pb_next(&r, &f, err)) > 0)
        if (f.num == str_field || f.num == int_field)
            last = f;
    if (rc < 0)
        return rc;
    if (last.num == 0)
        return 0;
    if ((rc = cml__pb_len(&last, what, err)) != 0)
        return rc;
    cml__pb_sub(&sub, msg, &last);
    if (last.num == str_field) {
        out->is_str = true;
        return cml__mm_strings(a, &sub, 1, what, &out->str, &out->n, err);
    }
    uint64_t *v;
    rc = cml__mm_varints(a, &sub, 1, what, &v, &out->n, err);
    out->i64 = (int64_t *)v; /* same size and representation */
    return rc;
}

/* ---- FeatureType ------------------------------------------------------------- */

static int decode_array_type(struct cml_feature *ft, const struct cml__pb *msg, int depth,
                             struct cai_error *err)
{
    struct cml__pb r = *msg;
    struct cml__pb_field f;
    int rc;
    (void)depth;
    ft->array_type = CML_ARRAY_INVALID;
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        switch (f.num) {
        case 1: { /* repeated int64 shape */
            size_t k;
            uint64_t tmp[CML_MAX_DIMS];
            if ((rc = cml__pb_count_repeated(&f, CML__PB_VARINT, "ArrayFeatureType.shape", &k,
                                             err)) != 0)
                return rc;
            if (k > (size_t)(CML_MAX_DIMS - ft->n_dims))
                return cai__fail(err, CAI_EUNSUPPORTED,
                                 "ArrayFeatureType.shape: more than %d dimensions", CML_MAX_DIMS);
            size_t n = 0;
            if ((rc = cml__pb_read_varints(&f, "ArrayFeatureType.shape", tmp, k, &n, err)) != 0)
                return rc;
            for (size_t i = 0; i < n; i++) {
                int64_t d = (int64_t)tmp[i];
                if (d < 0 || d > ((int64_t)1 << 40))
                    return cai__fail(err, CAI_EFORMAT, "ArrayFeatureType.shape[%d]: bad size %lld",
                                     ft->n_dims, (long long)d);
                ft->shape[ft->n_dims++] = d;
            }
            break;
        }
        case 2: {
            int32_t t;
            if ((rc = cml__pb_i32(&f, "ArrayFeatureType.dataType", &t, err)) != 0)
                return rc;
            ft->array_type = (enum cml_array_type)t;
            break;
        }
        case 21:
        case 31:
            ft->flexible = true;
            break;
        default:
            break;
        }
    }
    return rc;
}

static int decode_key_type(struct cml_feature *ft, const struct cml__pb *msg, const char *what,
                           struct cai_error *err)
{
    struct cml__pb r = *msg;
    struct cml__pb_field f;
    int rc;
    ft->key_type = CML_TYPE_INVALID;
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        if (f.num == 1)
            ft->key_type = CML_TYPE_INT64;
        else if (f.num == 2 || f.num == 3) /* dict: stringKeyType=2; sequence: stringType=3 */
            ft->key_type = CML_TYPE_STRING;
    }
    if (rc == 0 && ft->key_type == CML_TYPE_INVALID)
        return cai__fail(err, CAI_EFORMAT, "%s: key/element type missing", what);
    return rc;
}

static int decode_feature_type(struct cml_feature *ft, const struct cml__pb *msg, int depth,
                               struct cai_error *err)
{
    struct cml__pb r = *msg, sub;
    struct cml__pb_field f;
    int rc;
    if (depth > CML__PB_MAX_DEPTH)
        return cai__fail(err, CAI_EFORMAT, "FeatureType: nesting deeper than %d",
                         CML__PB_MAX_DEPTH);
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        if (f.num == 1000) {
            if ((rc = cml__pb_bool(&f, "FeatureType.isOptional", &ft->optional, err)) != 0)
                return rc;
            continue;
        }
        if (f.num < 1 || f.num > 8)
            continue;
        if ((rc = cml__pb_len(&f, "FeatureType.Type", err)) != 0)
            return rc;
        cml__pb_sub(&sub, &r, &f);
        ft->type = (enum cml_type)f.num;
        ft->n_dims = 0;
        ft->flexible = false;
        switch (f.num) {
        case CML_TYPE_IMAGE: {
            struct cml__pb ri = sub;
            struct cml__pb_field g;
            int32_t cs = 0;
            while ((rc = cml__pb_next(&ri, &g, err)) > 0) {
                if (g.num == 1)
                    rc = cml__pb_i64(&g, "ImageFeatureType.width", &ft->width, err);
                else if (g.num == 2)
                    rc = cml__pb_i64(&g, "ImageFeatureType.height", &ft->height, err);
                else if (g.num == 3)
                    rc = cml__pb_i32(&g, "ImageFeatureType.colorSpace", &cs, err);
                else if (g.num == 21 || g.num == 31)
                    ft->flexible = true;
                if (rc < 0)
                    return rc;
            }
            if (rc < 0)
                return rc;
            if (ft->width < 0 || ft->height < 0 || ft->width > 65536 || ft->height > 65536)
                return cai__fail(err, CAI_EFORMAT, "ImageFeatureType: bad size %lldx%lld",
                                 (long long)ft->width, (long long)ft->height);
            ft->color_space = (enum cml_color_space)cs;
            break;
        }
        case CML_TYPE_MULTIARRAY:
            if ((rc = decode_array_type(ft, &sub, depth + 1, err)) != 0)
                return rc;
            break;
        case CML_TYPE_DICT:
            if ((rc = decode_key_type(ft, &sub, "DictionaryFeatureType", err)) != 0)
                return rc;
            break;
        case CML_TYPE_SEQUENCE:
            if ((rc = decode_key_type(ft, &sub, "SequenceFeatureType", err)) != 0)
                return rc;
            break;
        case CML_TYPE_STATE:
            break;
        default:
            break;
        }
    }
    if (rc < 0)
        return rc;
    if (ft->type == CML_TYPE_INVALID)
        return cai__fail(err, CAI_EFORMAT, "FeatureType: no type given");
    return 0;
}

static int decode_feature(struct cml_feature *ft, struct cml__arena *a, const struct cml__pb *msg,
                          int depth, const char *what, size_t idx, struct cai_error *err)
{
    struct cml__pb r = *msg, sub;
    struct cml__pb_field f;
    int rc;
    char *name = NULL, *desc = NULL;
    bool have_type = false;
    memset(ft, 0, sizeof(*ft));
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        if (f.num == 1) {
            rc = cml__mm_string(a, &f, "FeatureDescription.name", &name, err);
        } else if (f.num == 2) {
            rc = cml__mm_string(a, &f, "FeatureDescription.shortDescription", &desc, err);
        } else if (f.num == 3) {
            if ((rc = cml__pb_len(&f, "FeatureDescription.type", err)) != 0)
                break;
            cml__pb_sub(&sub, &r, &f);
            memset(ft, 0, sizeof(*ft));
            rc = decode_feature_type(ft, &sub, depth + 1, err);
            have_type = true;
        }
        if (rc < 0)
            break;
    }
    if (rc < 0) {
        char pre[64];
        snprintf(pre, sizeof(pre), "ModelDescription.%s[%zu]", what, idx);
        cai__error_prefix(err, pre);
        return rc;
    }
    if (!name || !name[0])
        return cai__fail(err, CAI_EFORMAT, "ModelDescription.%s[%zu]: feature has no name", what,
                         idx);
    if (!have_type)
        return cai__fail(err, CAI_EFORMAT, "ModelDescription.%s[%zu] '%s': feature has no type",
                         what, idx, name);
    ft->name = name;
    ft->description = desc ? desc : "";
    return 0;
}

static int decode_features(struct cml__arena *a, const struct cml__pb *msg, uint32_t num,
                           const char *what, int depth, struct cml_feature **out, size_t *n,
                           struct cai_error *err)
{
    size_t total;
    int rc = cml__mm_count(msg, num, &total, err);
    *out = NULL;
    *n = 0;
    if (rc || total == 0)
        return rc;
    struct cml_feature *v = cml__arena_array(a, total, sizeof(*v));
    if (!v)
        return oom(err, what);
    struct cml__pb r = *msg, sub;
    struct cml__pb_field f;
    size_t k = 0;
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        if (f.num != num)
            continue;
        if ((rc = cml__pb_len(&f, what, err)) != 0)
            return rc;
        cml__pb_sub(&sub, &r, &f);
        if ((rc = decode_feature(&v[k], a, &sub, depth + 1, what, k, err)) != 0)
            return rc;
        for (size_t j = 0; j < k; j++)
            if (strcmp(v[j].name, v[k].name) == 0)
                return cai__fail(err, CAI_EFORMAT, "ModelDescription.%s: duplicate name '%s'",
                                 what, v[k].name);
        k++;
    }
    if (rc < 0)
        return rc;
    *out = v;
    *n = k;
    return 0;
}

static int decode_metadata(struct cml__mm_desc *d, struct cml__arena *a, const struct cml__pb *msg,
                           struct cai_error *err)
{
    struct cml__pb r = *msg;
    struct cml__pb_field f;
    int rc;
    char *s;
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        if (f.num < 1 || f.num > 4)
            continue;
        if ((rc = cml__mm_string(a, &f, "Metadata", &s, err)) != 0)
            return rc;
        if (f.num == 1)
            d->short_description = s;
        else if (f.num == 2)
            d->version = s;
        else if (f.num == 3)
            d->author = s;
        else
            d->license = s;
    }
    return rc;
}

static int decode_desc(struct cml__mm_desc *d, struct cml__arena *a, const struct cml__pb *msg,
                       int depth, struct cai_error *err)
{
    struct cml__pb r = *msg, sub;
    struct cml__pb_field f;
    int rc;
    char *s;
    d->predicted_feature = d->predicted_probs = "";
    d->short_description = d->author = d->license = d->version = "";
    if ((rc = decode_features(a, msg, 1, "input", depth, &d->inputs, &d->n_inputs, err)) != 0)
        return rc;
    if ((rc = decode_features(a, msg, 10, "output", depth, &d->outputs, &d->n_outputs, err)) != 0)
        return rc;
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        switch (f.num) {
        case 11:
            if ((rc = cml__mm_string(a, &f, "ModelDescription.predictedFeatureName", &s, err)))
                return rc;
            d->predicted_feature = s;
            break;
        case 12:
            if ((rc = cml__mm_string(a, &f, "ModelDescription.predictedProbabilitiesName", &s,
                                     err)))
                return rc;
            d->predicted_probs = s;
            break;
        case 100:
            if ((rc = cml__pb_len(&f, "ModelDescription.metadata", err)) != 0)
                return rc;
            cml__pb_sub(&sub, &r, &f);
            if ((rc = decode_metadata(d, a, &sub, err)) != 0)
                return rc;
            break;
        default:
            break;
        }
    }
    return rc;
}

int cml__mm_model_decode(struct cml__mm_model *m, struct cml__arena *a, const struct cml__pb *msg,
                         int depth, struct cai_error *err)
{
    struct cml__pb r = *msg, sub;
    struct cml__pb_field f;
    int rc;
    bool have_desc = false;
    memset(m, 0, sizeof(*m));
    if (depth > CML__PB_MAX_DEPTH)
        return cai__fail(err, CAI_EFORMAT, "Model: nesting deeper than %d", CML__PB_MAX_DEPTH);
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        if (f.num == 1) {
            if ((rc = cml__pb_i32(&f, "Model.specificationVersion", &m->spec_version, err)) != 0)
                return rc;
        } else if (f.num == 2) {
            if ((rc = cml__pb_len(&f, "Model.description", err)) != 0)
                return rc;
            cml__pb_sub(&sub, &r, &f);
            memset(&m->desc, 0, sizeof(m->desc));
            if ((rc = decode_desc(&m->desc, a, &sub, depth + 1, err)) != 0)
                return rc;
            have_desc = true;
        } else if (f.num == 10) {
            if ((rc = cml__pb_bool(&f, "Model.isUpdatable", &m->is_updatable, err)) != 0)
                return rc;
        } else if (is_type_field(f.num)) {
            if ((rc = cml__pb_len(&f, cml__mm_type_name(f.num), err)) != 0)
                return rc;
            m->type_field = f.num;
            cml__pb_sub(&m->type_msg, &r, &f);
            m->type_off = f.off;
        }
    }
    if (rc < 0)
        return rc;
    if (!have_desc) {
        m->desc.predicted_feature = m->desc.predicted_probs = "";
        m->desc.short_description = m->desc.author = m->desc.license = m->desc.version = "";
    }
    if (m->type_field == 0)
        return cai__fail(err, CAI_EFORMAT, "Model: no model type (Model.Type oneof is empty)");
    return 0;
}
