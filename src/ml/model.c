/* model.c: opening models, pipelines, slot binding, contexts and predict.
 *
 * See ml.h for the node/slot design. This file owns the public entry points
 * of coreml.h; each model type lives in its own file. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ml.h"
#include "simd.h"

/* Pipelines inside pipelines: deeper than this is refused (a nesting bomb). */
#define MAX_PIPELINE_DEPTH 16

/* ---- build helpers ---------------------------------------------------------- */

const char *cml__sv(const struct cml__slot *s)
{
    return s->name;
}

static int find_slot(const struct cml_model *m, const char *name)
{
    for (size_t i = m->n_slots; i-- > 0;)
        if (strcmp(m->slots[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int add_slot(struct cml__build *b, const struct cml_feature *desc, size_t cap,
                    bool is_input)
{
    struct cml_model *m = b->m;
    if (m->n_slots == m->cap_slots) {
        size_t ncap = m->cap_slots ? 2 * m->cap_slots : 16;
        if (ncap > (1u << 20))
            return cai__fail(b->err, CAI_EFORMAT, "model has too many features");
        void *p = cai__realloc(m->slots, ncap * sizeof(*m->slots));
        if (!p)
            return cai__fail(b->err, CAI_ENOMEM, "out of memory");
        m->slots = p;
        m->cap_slots = ncap;
    }
    struct cml__slot *s = &m->slots[m->n_slots];
    memset(s, 0, sizeof(*s));
    s->name = desc->name;
    s->desc = *desc;
    s->cap = cap;
    s->is_input = is_input;
    return (int)m->n_slots++;
}

struct cml__node *cml__node_add(struct cml__build *b, const struct cml__mm_model *mm)
{
    struct cml_model *m = b->m;
    if (m->n_nodes == m->cap_nodes) {
        size_t ncap = m->cap_nodes ? 2 * m->cap_nodes : 8;
        if (ncap > (1u << 20)) {
            cai__fail(b->err, CAI_EFORMAT, "model has too many parts");
            return NULL;
        }
        void *p = cai__realloc(m->nodes, ncap * sizeof(*m->nodes));
        if (!p) {
            cai__fail(b->err, CAI_ENOMEM, "out of memory");
            return NULL;
        }
        m->nodes = p;
        m->cap_nodes = ncap;
    }
    struct cml__node *nd = &m->nodes[m->n_nodes++];
    memset(nd, 0, sizeof(*nd));
    nd->type_field = mm->type_field;
    nd->info = "";
    nd->label_out = nd->probs_out = nd->values_out = -1;
    return nd;
}

void cml__node_info(struct cml__build *b, struct cml__node *nd, const char *fmt, ...)
{
    char tmp[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    char *s = cml__arena_strndup(&b->m->arena, tmp, strlen(tmp));
    nd->info = s ? s : "";
}

int cml__bind_inputs(struct cml__build *b, struct cml__node *nd, const struct cml__mm_model *mm)
{
    const struct cml__mm_desc *d = &mm->desc;
    nd->n_in = d->n_inputs;
    nd->in = cml__arena_array(&b->m->arena, d->n_inputs ? d->n_inputs : 1, sizeof(*nd->in));
    if (!nd->in)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->n_inputs; i++) {
        int s = find_slot(b->m, d->inputs[i].name);
        if (s < 0)
            return cai__fail(b->err, CAI_EFORMAT,
                             "%s: input '%s' is neither a pipeline input nor an earlier output",
                             cml__mm_type_name(mm->type_field), d->inputs[i].name);
        nd->in[i] = s;
    }
    return 0;
}

int cml__bind_outputs(struct cml__build *b, struct cml__node *nd, const struct cml__mm_model *mm,
                      const size_t *caps, size_t cap_all)
{
    const struct cml__mm_desc *d = &mm->desc;
    nd->n_out = d->n_outputs;
    nd->out = cml__arena_array(&b->m->arena, d->n_outputs ? d->n_outputs : 1, sizeof(*nd->out));
    if (!nd->out)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->n_outputs; i++) {
        size_t cap = caps ? caps[i] : cap_all;
        int s = add_slot(b, &d->outputs[i], cap ? cap : 1, false);
        if (s < 0)
            return s;
        nd->out[i] = s;
    }
    return 0;
}

size_t cml__input_elems(const struct cml__build *b, const struct cml__node *nd, size_t i)
{
    const struct cml_feature *f = &b->m->slots[nd->in[i]].desc;
    if (f->type == CML_TYPE_DOUBLE || f->type == CML_TYPE_INT64)
        return 1;
    if (f->type != CML_TYPE_MULTIARRAY || f->n_dims == 0)
        return 0;
    size_t n = 1;
    for (int k = 0; k < f->n_dims; k++)
        if (!cai__mul_size(n, (size_t)f->shape[k], &n))
            return 0;
    return n;
}

static size_t slot_elems(const struct cml__slot *s);

bool cml__batch_values_ok(const struct cml__build *b, const struct cml__node *nd, size_t n)
{
    if (nd->values_out < 0)
        return false;
    const struct cml__slot *s = &b->m->slots[nd->out[nd->values_out]];
    if (s->desc.type == CML_TYPE_DOUBLE)
        return n == 1;
    return s->desc.type == CML_TYPE_MULTIARRAY && slot_elems(s) == n && s->cap >= n;
}

static int find_out(const struct cml__build *b, const struct cml__node *nd, const char *name)
{
    if (!name || !name[0])
        return -1;
    for (size_t i = 0; i < nd->n_out; i++)
        if (strcmp(b->m->slots[nd->out[i]].name, name) == 0)
            return (int)i;
    return -1;
}

int cml__bind_classifier(struct cml__build *b, struct cml__node *nd,
                         const struct cml__mm_model *mm, const struct cml__labels *labels)
{
    const char *tn = cml__mm_type_name(mm->type_field);
    nd->labels = labels;
    nd->label_out = find_out(b, nd, mm->desc.predicted_feature);
    nd->probs_out = find_out(b, nd, mm->desc.predicted_probs);
    for (size_t i = 0; i < nd->n_out && (nd->label_out < 0 || nd->probs_out < 0); i++) {
        enum cml_type t = b->m->slots[nd->out[i]].desc.type;
        if (nd->label_out < 0 && (t == CML_TYPE_INT64 || t == CML_TYPE_STRING) &&
            (int)i != nd->probs_out)
            nd->label_out = (int)i;
        else if (nd->probs_out < 0 && t == CML_TYPE_DICT && (int)i != nd->label_out)
            nd->probs_out = (int)i;
    }
    if (nd->label_out < 0 && nd->probs_out < 0)
        return cai__fail(b->err, CAI_EFORMAT, "%s: no output for the class label or probabilities",
                         tn);
    if (nd->label_out >= 0) {
        struct cml__slot *s = &b->m->slots[nd->out[nd->label_out]];
        enum cml_type t = s->desc.type;
        if (labels->is_str ? t != CML_TYPE_STRING : (t != CML_TYPE_INT64 && t != CML_TYPE_DOUBLE))
            return cai__fail(b->err, CAI_EFORMAT,
                             "%s: output '%s' is declared %s but the class labels are %s", tn,
                             s->name, t == CML_TYPE_STRING ? "string" : "numeric",
                             labels->is_str ? "strings" : "int64");
    }
    if (nd->probs_out >= 0) {
        struct cml__slot *s = &b->m->slots[nd->out[nd->probs_out]];
        if (s->desc.type != CML_TYPE_DICT && s->desc.type != CML_TYPE_MULTIARRAY)
            return cai__fail(b->err, CAI_EFORMAT,
                             "%s: probability output '%s' must be a dictionary", tn, s->name);
        if (s->desc.type == CML_TYPE_DICT && s->desc.key_type != CML_TYPE_INVALID &&
            (s->desc.key_type == CML_TYPE_STRING) != labels->is_str)
            return cai__fail(b->err, CAI_EFORMAT,
                             "%s: probability output '%s' keys do not match the label type", tn,
                             s->name);
        s->cap = labels->n ? labels->n : 1;
    }
    return 0;
}

int cml__bind_regressor(struct cml__build *b, struct cml__node *nd,
                        const struct cml__mm_model *mm)
{
    nd->values_out = find_out(b, nd, mm->desc.predicted_feature);
    for (size_t i = 0; i < nd->n_out && nd->values_out < 0; i++) {
        enum cml_type t = b->m->slots[nd->out[i]].desc.type;
        if (t == CML_TYPE_DOUBLE || t == CML_TYPE_MULTIARRAY || t == CML_TYPE_INT64)
            nd->values_out = (int)i;
    }
    if (nd->values_out < 0)
        return cai__fail(b->err, CAI_EFORMAT, "%s: no numeric output",
                         cml__mm_type_name(mm->type_field));
    return 0;
}

/* ---- loading ------------------------------------------------------------------- */

static int load_pipeline(struct cml__build *b, const struct cml__mm_model *mm)
{
    struct cml__pb pl = mm->type_msg, sub;
    struct cml__pb_field f;
    int rc;
    if (b->depth >= MAX_PIPELINE_DEPTH)
        return cai__fail(b->err, CAI_EFORMAT, "pipelines nested deeper than %d",
                         MAX_PIPELINE_DEPTH);
    if (mm->type_field != CML__MM_PIPELINE) {
        /* PipelineClassifier / PipelineRegressor { Pipeline pipeline = 1; } */
        rc = cml__mm_find(&mm->type_msg, 1, &f, b->err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return cai__fail(b->err, CAI_EFORMAT, "%s: pipeline missing",
                             cml__mm_type_name(mm->type_field));
        if ((rc = cml__pb_len(&f, "pipeline", b->err)) != 0)
            return rc;
        cml__pb_sub(&pl, &mm->type_msg, &f);
    }
    size_t idx = 0;
    struct cml__pb r = pl;
    b->depth++;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        if (f.num != 1)
            continue;
        struct cml__mm_model child;
        if ((rc = cml__pb_len(&f, "Pipeline.models", b->err)) != 0)
            break;
        cml__pb_sub(&sub, &r, &f);
        rc = cml__mm_model_decode(&child, &b->m->arena, &sub, b->depth * 3, b->err);
        if (rc == 0)
            rc = cml__load_model(b, &child);
        if (rc < 0) {
            /* Name the innermost member only: a deep chain of prefixes
             * would push the reason out of the message. */
            if (b->err && strncmp(b->err->msg, "Pipeline.models[", 16) != 0) {
                char pre[48];
                snprintf(pre, sizeof(pre), "Pipeline.models[%zu]", idx);
                cai__error_prefix(b->err, pre);
            }
            break;
        }
        idx++;
    }
    b->depth--;
    if (rc < 0)
        return rc;
    if (idx == 0)
        return cai__fail(b->err, CAI_EFORMAT, "%s: pipeline has no models",
                         cml__mm_type_name(mm->type_field));
    return 0;
}

int cml__load_model(struct cml__build *b, const struct cml__mm_model *mm)
{
    switch (mm->type_field) {
    case CML__MM_PIPELINE:
    case CML__MM_PIPELINE_CLASSIFIER:
    case CML__MM_PIPELINE_REGRESSOR:
        return load_pipeline(b, mm);
    case CML__MM_GLM_REGRESSOR:
    case CML__MM_GLM_CLASSIFIER:
        return cml__load_glm(b, mm);
    case CML__MM_TREE_REGRESSOR:
    case CML__MM_TREE_CLASSIFIER:
        return cml__load_tree(b, mm);
    case CML__MM_SVR:
    case CML__MM_SVC:
        return cml__load_svm(b, mm);
    case CML__MM_ONE_HOT:
    case CML__MM_IMPUTER:
    case CML__MM_FEATURE_VECTORIZER:
    case CML__MM_DICT_VECTORIZER:
    case CML__MM_SCALER:
    case CML__MM_NORMALIZER:
    case CML__MM_ARRAY_FEATURE_EXTRACTOR:
    case CML__MM_IDENTITY:
        return cml__load_fe(b, mm);
    case CML__MM_NN:
    case CML__MM_NN_CLASSIFIER:
    case CML__MM_NN_REGRESSOR:
        return cml__load_nn(b, mm);
    default:
        return cai__fail(b->err, CAI_EUNSUPPORTED, "model type %s (field %u) is not supported",
                         cml__mm_type_name(mm->type_field), mm->type_field);
    }
}

static size_t slot_elems(const struct cml__slot *s)
{
    const struct cml_feature *f = &s->desc;
    if (f->type == CML_TYPE_DOUBLE || f->type == CML_TYPE_INT64)
        return 1;
    if (f->type == CML_TYPE_MULTIARRAY && f->n_dims > 0) {
        size_t n = 1;
        for (int k = 0; k < f->n_dims; k++)
            if (!cai__mul_size(n, (size_t)f->shape[k], &n))
                return s->cap;
        return n;
    }
    return s->cap;
}

static int finish(struct cml__build *b)
{
    struct cml_model *m = b->m;
    const struct cml__mm_desc *d = &m->top.desc;
    m->out_slot = cml__arena_array(&m->arena, d->n_outputs ? d->n_outputs : 1, sizeof(int32_t));
    if (!m->out_slot)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    if (d->n_outputs == 0)
        return cai__fail(b->err, CAI_EFORMAT, "ModelDescription: model has no outputs");
    for (size_t i = 0; i < d->n_outputs; i++) {
        int s = find_slot(m, d->outputs[i].name);
        if (s < 0 || m->slots[s].is_input)
            return cai__fail(b->err, CAI_EFORMAT,
                             "ModelDescription.output[%zu] '%s' is not produced by the model", i,
                             d->outputs[i].name);
        m->out_slot[i] = s;
    }
    m->label_output = cml_model_find_output(m, d->predicted_feature);
    m->probs_output = cml_model_find_output(m, d->predicted_probs);
    m->class_node = -1;
    m->values_output = -1;
    for (size_t i = m->n_nodes; i-- > 0;) {
        const struct cml__node *nd = &m->nodes[i];
        for (size_t k = 0; k < nd->n_out; k++) {
            bool is_label = nd->labels && (int)k == nd->label_out;
            bool is_probs = nd->labels && (int)k == nd->probs_out;
            for (size_t o = 0; o < d->n_outputs; o++) {
                if (m->out_slot[o] != nd->out[k])
                    continue;
                if ((is_label || is_probs) && m->class_node < 0) {
                    m->class_node = (int)i;
                    m->labels = nd->labels;
                }
                if (is_label && m->label_output < 0)
                    m->label_output = (int)o;
                if (is_probs && m->probs_output < 0)
                    m->probs_output = (int)o;
            }
        }
    }
    if (!m->labels) {
        m->values_output = m->label_output;
        for (size_t o = 0; o < d->n_outputs && m->values_output < 0; o++) {
            enum cml_type t = d->outputs[o].type;
            if (t == CML_TYPE_DOUBLE || t == CML_TYPE_MULTIARRAY || t == CML_TYPE_INT64)
                m->values_output = (int)o;
        }
        if (m->values_output >= 0)
            m->n_values = slot_elems(&m->slots[m->out_slot[m->values_output]]);
    }
    for (size_t i = 0; i < m->n_nodes; i++)
        m->n_scratch = CAI_MAX(m->n_scratch, m->nodes[i].n_scratch);
    return 0;
}

static int open_buffer(struct cml_model **out, const void *data, size_t n_bytes,
                       struct cai_error *err)
{
    struct cml__pb r;
    *out = NULL;
    struct cml_model *m = cai__calloc(1, sizeof(*m));
    if (!m)
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    struct cml__build b = {.m = m, .err = err, .depth = 0};
    m->simd = cml__simd_supported();
    cml__pb_init(&r, data, n_bytes);
    int rc = cml__mm_model_decode(&m->top, &m->arena, &r, 0, err);
    if (rc)
        goto fail;
    const struct cml__mm_desc *d = &m->top.desc;
    if (d->n_inputs == 0) {
        rc = cai__fail(err, CAI_EFORMAT, "ModelDescription: model has no inputs");
        goto fail;
    }
    m->in_slot = cml__arena_array(&m->arena, d->n_inputs, sizeof(int32_t));
    if (!m->in_slot) {
        rc = cai__fail(err, CAI_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < d->n_inputs; i++) {
        if ((rc = add_slot(&b, &d->inputs[i], 0, true)) < 0)
            goto fail;
        m->in_slot[i] = rc;
    }
    if ((rc = cml__load_model(&b, &m->top)) != 0)
        goto fail;
    if ((rc = finish(&b)) != 0)
        goto fail;
    *out = m;
    return 0;
fail:
    cml_model_close(m);
    return rc;
}

int cml_model_open_buffer(struct cml_model **out, const void *data, size_t n_bytes,
                          struct cai_error *err)
{
    if (!out || (!data && n_bytes))
        return cai__fail(err, CAI_EINVAL, "cml_model_open_buffer: NULL argument");
    return open_buffer(out, data, n_bytes, err);
}

/* Finds the model file inside an .mlpackage folder: the Manifest's root item
 * when it can be read, else the path coremltools always uses. */
static int package_model_path(const char *dir, char *path, size_t cap, struct cai_error *err)
{
    char mpath[4096], *json = NULL;
    size_t n;
    snprintf(path, cap, "%s/Data/com.apple.CoreML/model.mlmodel", dir);
    if ((size_t)snprintf(mpath, sizeof(mpath), "%s/Manifest.json", dir) >= sizeof(mpath))
        return cai__fail(err, CAI_EINVAL, "%s: path too long", dir);
    if (cai__read_file(mpath, &json, &n, NULL) != 0)
        return 0;
    /* "rootModelIdentifier": "<id>"  ...  "<id>": { ... "path": "<p>" ... } */
    const char *k = strstr(json, "\"rootModelIdentifier\"");
    const char *q1 = k ? strchr(k + 21, '"') : NULL;
    const char *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
    if (q1 && q2 && q2 - q1 < 128) {
        char key[140];
        snprintf(key, sizeof(key), "\"%.*s\"", (int)(q2 - q1 - 1), q1 + 1);
        const char *e = strstr(json, key);
        if (e == k + 0 || (e && e > q1 && e < q2 + 1))
            e = strstr(q2 + 1, key);
        const char *pk = e ? strstr(e, "\"path\"") : NULL;
        const char *p1 = pk ? strchr(pk + 6, '"') : NULL;
        const char *p2 = p1 ? strchr(p1 + 1, '"') : NULL;
        if (p1 && p2 && !memchr(p1 + 1, '}', (size_t)(p2 - p1 - 1)) &&
            !memmem(p1 + 1, (size_t)(p2 - p1 - 1), "..", 2))
            snprintf(path, cap, "%s/Data/%.*s", dir, (int)(p2 - p1 - 1), p1 + 1);
    }
    cai__free(json);
    return 0;
}

int cml_model_open(struct cml_model **out, const char *path, struct cai_error *err)
{
    struct cai_map map;
    struct stat st;
    char real[4096];
    if (!out || !path)
        return cai__fail(err, CAI_EINVAL, "cml_model_open: NULL argument");
    *out = NULL;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        int rc = package_model_path(path, real, sizeof(real), err);
        if (rc)
            return rc;
        path = real;
    }
    int rc = cai__map_open(&map, path, err);
    if (rc)
        return rc;
    rc = open_buffer(out, map.data, map.n_bytes, err);
    cai__map_close(&map);
    if (rc)
        cai__error_prefix(err, path);
    return rc;
}

void cml_model_close(struct cml_model *m)
{
    if (!m)
        return;
    cml__arena_free(&m->arena);
    cai__free(m->slots);
    cai__free(m->nodes);
    cai__free(m);
}

/* ---- description accessors ------------------------------------------------------ */

int cml_model_spec_version(const struct cml_model *m)
{
    return m->top.spec_version;
}

const char *cml_model_type_name(const struct cml_model *m)
{
    return cml__mm_type_name(m->top.type_field);
}

const char *cml_model_metadata(const struct cml_model *m, const char *key)
{
    const struct cml__mm_desc *d = &m->top.desc;
    if (!key)
        return "";
    if (strcmp(key, "shortDescription") == 0)
        return d->short_description;
    if (strcmp(key, "author") == 0)
        return d->author;
    if (strcmp(key, "license") == 0)
        return d->license;
    if (strcmp(key, "versionString") == 0)
        return d->version;
    return "";
}

size_t cml_model_n_inputs(const struct cml_model *m)
{
    return m->top.desc.n_inputs;
}

const struct cml_feature *cml_model_input(const struct cml_model *m, size_t i)
{
    return i < m->top.desc.n_inputs ? &m->top.desc.inputs[i] : NULL;
}

size_t cml_model_n_outputs(const struct cml_model *m)
{
    return m->top.desc.n_outputs;
}

const struct cml_feature *cml_model_output(const struct cml_model *m, size_t i)
{
    return i < m->top.desc.n_outputs ? &m->top.desc.outputs[i] : NULL;
}

int cml_model_find_input(const struct cml_model *m, const char *name)
{
    for (size_t i = 0; name && i < m->top.desc.n_inputs; i++)
        if (strcmp(m->top.desc.inputs[i].name, name) == 0)
            return (int)i;
    return -1;
}

int cml_model_find_output(const struct cml_model *m, const char *name)
{
    for (size_t i = 0; name && i < m->top.desc.n_outputs; i++)
        if (strcmp(m->top.desc.outputs[i].name, name) == 0)
            return (int)i;
    return -1;
}

int cml_model_label_output(const struct cml_model *m)
{
    return m->label_output;
}

int cml_model_probs_output(const struct cml_model *m)
{
    return m->probs_output;
}

size_t cml_model_n_classes(const struct cml_model *m)
{
    return m->labels ? m->labels->n : 0;
}

bool cml_model_labels_are_strings(const struct cml_model *m)
{
    return m->labels && m->labels->is_str;
}

const char *cml_model_class_str(const struct cml_model *m, size_t i)
{
    if (!m->labels || i >= m->labels->n || !m->labels->is_str)
        return NULL;
    return m->labels->str[i];
}

int64_t cml_model_class_i64(const struct cml_model *m, size_t i)
{
    if (!m->labels || i >= m->labels->n || m->labels->is_str)
        return 0;
    return m->labels->i64[i];
}

size_t cml_model_n_values(const struct cml_model *m)
{
    return m->n_values;
}

size_t cml_model_n_parts(const struct cml_model *m)
{
    return m->n_nodes;
}

const char *cml_model_part_name(const struct cml_model *m, size_t i)
{
    return i < m->n_nodes ? cml__mm_type_name(m->nodes[i].type_field) : NULL;
}

const char *cml_model_part_info(const struct cml_model *m, size_t i)
{
    return i < m->n_nodes ? m->nodes[i].info : NULL;
}

/* ---- contexts ------------------------------------------------------------------ */

struct cml_ctx {
    const struct cml_model *m;
    struct cml__exec        x;
    struct cai_error        err;
    double                 *block; /* all slot storage and scratch */
    struct cml_value       *in_vals; /* [n_inputs] staging for batch rows */
    bool                    batch_array; /* one MULTIARRAY input */
    bool                    batch_scalars; /* all inputs DOUBLE/INT64 */
};

int cml_ctx_new(struct cml_ctx **out, const struct cml_model *m, struct cai_error *err)
{
    if (!out || !m)
        return cai__fail(err, CAI_EINVAL, "cml_ctx_new: NULL argument");
    *out = NULL;
    struct cml_ctx *c = cai__calloc(1, sizeof(*c));
    if (!c)
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    c->m = m;
    size_t total = m->n_scratch, n_in = m->top.desc.n_inputs;
    for (size_t i = 0; i < m->n_slots; i++)
        if (!cai__add_size(total, m->slots[i].cap, &total))
            goto oom;
    c->x.m = m;
    c->x.vals = cai__calloc(m->n_slots, sizeof(*c->x.vals));
    c->x.buf = cai__calloc(m->n_slots, sizeof(*c->x.buf));
    c->in_vals = cai__calloc(n_in, sizeof(*c->in_vals));
    c->block = cai__malloc_aligned(total * sizeof(double) + 64);
    if (!c->x.vals || !c->x.buf || !c->in_vals || !c->block)
        goto oom;
    memset(c->block, 0, total * sizeof(double));
    double *p = c->block;
    for (size_t i = 0; i < m->n_slots; i++) {
        c->x.buf[i] = p;
        p += m->slots[i].cap;
    }
    c->x.scratch = p;
    c->x.err = &c->err;
    c->x.class_index = -1;
    c->batch_array = n_in == 1 && m->top.desc.inputs[0].type == CML_TYPE_MULTIARRAY;
    c->batch_scalars = true;
    for (size_t i = 0; i < n_in; i++) {
        enum cml_type t = m->top.desc.inputs[i].type;
        if (t != CML_TYPE_DOUBLE && t != CML_TYPE_INT64)
            c->batch_scalars = false;
    }
    *out = c;
    return 0;
oom:
    cml_ctx_free(c);
    return cai__fail(err, CAI_ENOMEM, "out of memory for a prediction context");
}

void cml_ctx_free(struct cml_ctx *c)
{
    if (!c)
        return;
    cai__free(c->x.vals);
    cai__free(c->x.buf);
    cai__free(c->in_vals);
    cai__free_aligned(c->block);
    cai__free(c);
}

const char *cml_ctx_errmsg(const struct cml_ctx *c)
{
    return c->err.msg;
}

int cml__run_fail(struct cml__exec *x, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cai__vfail(x->err, code, fmt, ap);
    va_end(ap);
    return code;
}

/* Checks one user input against its declaration and stores it in its slot. */
static int set_input(struct cml_ctx *c, size_t i, const struct cml_value *v)
{
    const struct cml_feature *f = &c->m->top.desc.inputs[i];
    struct cml_value *dst = &c->x.vals[c->m->in_slot[i]];
    const char *nm = f->name;
    switch (f->type) {
    case CML_TYPE_DOUBLE:
        if (v->type == CML_TYPE_DOUBLE || v->type == CML_TYPE_INT64) {
            *dst = cml_value_double(v->type == CML_TYPE_DOUBLE ? v->f64 : (double)v->i64);
            return 0;
        }
        if (v->type == CML_TYPE_MULTIARRAY && v->n_elem == 1 && v->data) {
            *dst = cml_value_double(v->data[0]);
            return 0;
        }
        break;
    case CML_TYPE_INT64:
        if (v->type == CML_TYPE_INT64) {
            *dst = cml_value_int64(v->i64);
            return 0;
        }
        if (v->type == CML_TYPE_DOUBLE && v->f64 == floor(v->f64) && fabs(v->f64) < 9.0e18) {
            *dst = cml_value_int64((int64_t)v->f64);
            return 0;
        }
        break;
    case CML_TYPE_STRING:
        if (v->type == CML_TYPE_STRING && v->str) {
            *dst = *v;
            return 0;
        }
        break;
    case CML_TYPE_MULTIARRAY:
        if (v->type == CML_TYPE_MULTIARRAY && (v->data || v->n_elem == 0)) {
            size_t want = 1;
            for (int k = 0; k < f->n_dims; k++)
                want *= (size_t)f->shape[k];
            if (f->n_dims > 0 && !f->flexible && v->n_elem != want)
                return cml__run_fail(&c->x, CAI_EINVAL,
                                     "input '%s': expected %zu values, got %zu", nm, want,
                                     v->n_elem);
            *dst = *v;
            if (v->n_dims <= 0 || v->n_dims > CML_MAX_DIMS) {
                dst->n_dims = f->n_dims > 0 && !f->flexible ? f->n_dims : 1;
                if (dst->n_dims == f->n_dims && !f->flexible)
                    memcpy(dst->shape, f->shape, sizeof(dst->shape));
                else
                    dst->shape[0] = (int64_t)v->n_elem;
            }
            return 0;
        }
        break;
    case CML_TYPE_DICT:
        if (v->type == CML_TYPE_DICT && (v->n_elem == 0 || v->data)) {
            bool want_str = f->key_type == CML_TYPE_STRING;
            if (v->n_elem && (want_str ? !v->keys_str : !v->keys_i64))
                return cml__run_fail(&c->x, CAI_EINVAL, "input '%s': dictionary keys must be %s",
                                     nm, want_str ? "strings" : "int64");
            *dst = *v;
            return 0;
        }
        break;
    case CML_TYPE_IMAGE:
        if (v->type == CML_TYPE_IMAGE && v->pixels && v->width > 0 && v->height > 0 &&
            (v->channels == 1 || v->channels == 3 || v->channels == 4) &&
            v->stride >= (size_t)v->width * (size_t)v->channels) {
            *dst = *v;
            return 0;
        }
        if (v->type == CML_TYPE_IMAGE)
            return cml__run_fail(&c->x, CAI_EINVAL, "input '%s': bad image geometry", nm);
        break;
    default:
        return cml__run_fail(&c->x, CAI_EUNSUPPORTED, "input '%s': unsupported feature type %d",
                             nm, (int)f->type);
    }
    static const char *const names[] = {"invalid", "int64",  "double",   "string", "image",
                                        "multiarray", "dictionary", "sequence", "state"};
    unsigned vt = (unsigned)v->type < 9 ? (unsigned)v->type : 0;
    return cml__run_fail(&c->x, CAI_EINVAL, "input '%s': expected %s, got %s", nm,
                         names[(unsigned)f->type < 9 ? f->type : 0], names[vt]);
}

static int run_nodes(struct cml_ctx *c)
{
    const struct cml_model *m = c->m;
    int cls = -1;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const struct cml__node *nd = &m->nodes[i];
        c->x.class_index = -1;
        int rc = nd->run(nd, &c->x);
        if (rc < 0)
            return rc;
        if ((int)i == m->class_node)
            cls = c->x.class_index;
    }
    c->x.class_index = cls;
    return 0;
}

int cml_predict(struct cml_ctx *c, const struct cml_value *inputs, size_t n_inputs)
{
    const struct cml_model *m = c->m;
    c->err.code = 0;
    c->err.msg[0] = '\0';
    if (n_inputs != m->top.desc.n_inputs || (!inputs && n_inputs))
        return cml__run_fail(&c->x, CAI_EINVAL, "expected %zu inputs, got %zu",
                             m->top.desc.n_inputs, n_inputs);
    for (size_t i = 0; i < n_inputs; i++) {
        int rc = set_input(c, i, &inputs[i]);
        if (rc)
            return rc;
    }
    return run_nodes(c);
}

const struct cml_value *cml_ctx_output(const struct cml_ctx *c, size_t i)
{
    if (i >= c->m->top.desc.n_outputs)
        return NULL;
    return &c->x.vals[c->m->out_slot[i]];
}

int cml_ctx_class_index(const struct cml_ctx *c)
{
    return c->x.class_index;
}

long cml_predict_batch(struct cml_ctx *c, const double *x, size_t n_rows, size_t n_cols,
                       const struct cml_batch_out *out)
{
    const struct cml_model *m = c->m;
    size_t n_in = m->top.desc.n_inputs, n_cls = cml_model_n_classes(m);
    c->err.code = 0;
    c->err.msg[0] = '\0';
    if (!x && n_rows)
        return cml__run_fail(&c->x, CAI_EINVAL, "cml_predict_batch: NULL input");
    if (!c->batch_array && !(c->batch_scalars && n_cols == n_in))
        return cml__run_fail(&c->x, CAI_EINVAL,
                             "batch input needs one multiarray input or %zu scalar inputs, "
                             "got %zu columns", n_in, n_cols);
    /* A single model with a batch kernel predicts the matrix directly. */
    if (m->n_nodes == 1 && m->nodes[0].run_batch && out && n_rows > 1 &&
        (!m->labels || m->class_node == 0) &&
        m->nodes[0].run_batch(&m->nodes[0], x, n_rows, n_cols, c->x.scratch, out) == 0) {
        if (!m->labels && out->class_index) /* as the row-by-row path reports it */
            for (size_t r = 0; r < n_rows; r++)
                out->class_index[r] = -1;
        return (long)n_rows;
    }
    const struct cml_value *probs = m->probs_output >= 0 ?
                                        &c->x.vals[m->out_slot[m->probs_output]] : NULL;
    const struct cml_value *vals = m->values_output >= 0 ?
                                       &c->x.vals[m->out_slot[m->values_output]] : NULL;
    for (size_t r = 0; r < n_rows; r++) {
        const double *row = x + r * n_cols;
        int rc;
        if (c->batch_array) {
            struct cml_value v = cml_value_array(row, n_cols);
            v.n_dims = 0;
            rc = set_input(c, 0, &v);
        } else {
            rc = 0;
            for (size_t i = 0; i < n_in && !rc; i++) {
                struct cml_value v = cml_value_double(row[i]);
                rc = set_input(c, i, &v);
            }
        }
        if (!rc)
            rc = run_nodes(c);
        if (rc) {
            char pre[32];
            snprintf(pre, sizeof(pre), "row %zu", r);
            cai__error_prefix(&c->err, pre);
            return rc;
        }
        if (out && out->class_index)
            out->class_index[r] = c->x.class_index;
        if (out && out->probs && n_cls) {
            double *dst = out->probs + r * n_cls;
            if (probs && probs->data && probs->n_elem == n_cls)
                memcpy(dst, probs->data, n_cls * sizeof(double));
            else
                memset(dst, 0, n_cls * sizeof(double));
        }
        if (out && out->values && m->n_values && vals) {
            double *dst = out->values + r * m->n_values;
            if (vals->type == CML_TYPE_DOUBLE)
                dst[0] = vals->f64;
            else if (vals->type == CML_TYPE_INT64)
                dst[0] = (double)vals->i64;
            else
                for (size_t k = 0; k < m->n_values; k++)
                    dst[k] = k < vals->n_elem ? vals->data[k] : 0.0;
        }
    }
    return (long)n_rows;
}

/* ---- run-time helpers for the model types ----------------------------------------- */

const double *cml__gather(struct cml__exec *x, const struct cml__node *nd, size_t n,
                          double *scratch)
{
    if (nd->n_in == 1) {
        const struct cml_value *v = &x->vals[nd->in[0]];
        if (v->type == CML_TYPE_MULTIARRAY && v->n_elem == n)
            return v->data;
    }
    size_t k = 0;
    for (size_t i = 0; i < nd->n_in; i++) {
        const struct cml_value *v = &x->vals[nd->in[i]];
        const char *nm = x->m->slots[nd->in[i]].name;
        switch (v->type) {
        case CML_TYPE_DOUBLE:
        case CML_TYPE_INT64:
            if (k >= n) {
                cml__run_fail(x, CAI_EINVAL, "input '%s': more than %zu values", nm, n);
                return NULL;
            }
            scratch[k++] = v->type == CML_TYPE_DOUBLE ? v->f64 : (double)v->i64;
            break;
        case CML_TYPE_MULTIARRAY:
            if (v->n_elem > n - k) {
                cml__run_fail(x, CAI_EINVAL, "input '%s': more than %zu values", nm, n);
                return NULL;
            }
            memcpy(scratch + k, v->data, v->n_elem * sizeof(double));
            k += v->n_elem;
            break;
        default:
            cml__run_fail(x, CAI_EINVAL, "input '%s': expected numbers", nm);
            return NULL;
        }
    }
    if (k != n) {
        cml__run_fail(x, CAI_EINVAL, "expected %zu input values, got %zu", n, k);
        return NULL;
    }
    return scratch;
}

void cml__publish(struct cml__exec *x, int32_t slot, size_t n)
{
    const struct cml__slot *s = &x->m->slots[slot];
    struct cml_value *v = &x->vals[slot];
    const double *d = x->buf[slot];
    memset(v, 0, sizeof(*v));
    switch (s->desc.type) {
    case CML_TYPE_DOUBLE:
        v->type = CML_TYPE_DOUBLE;
        v->f64 = n ? d[0] : 0.0;
        return;
    case CML_TYPE_INT64:
        v->type = CML_TYPE_INT64;
        v->i64 = n && isfinite(d[0]) && fabs(d[0]) < 9.0e18 ? (int64_t)d[0] : 0;
        v->f64 = n ? d[0] : 0.0;
        return;
    default:
        v->type = CML_TYPE_MULTIARRAY;
        v->data = d;
        v->n_elem = n;
        size_t want = 1;
        for (int k = 0; k < s->desc.n_dims; k++)
            want *= (size_t)s->desc.shape[k];
        if (s->desc.n_dims > 0 && want == n) {
            v->n_dims = s->desc.n_dims;
            memcpy(v->shape, s->desc.shape, sizeof(v->shape));
        } else {
            v->n_dims = 1;
            v->shape[0] = (int64_t)n;
        }
        return;
    }
}

double *cml__probs_buf(struct cml__exec *x, const struct cml__node *nd, double *fallback)
{
    return nd->probs_out >= 0 ? x->buf[nd->out[nd->probs_out]] : fallback;
}

void cml__publish_class(struct cml__exec *x, const struct cml__node *nd, const double *probs)
{
    const struct cml__labels *L = nd->labels;
    size_t best = 0;
    for (size_t k = 1; k < L->n; k++)
        if (probs[k] > probs[best])
            best = k;
    x->class_index = (int)best;
    if (nd->label_out >= 0) {
        int32_t s = nd->out[nd->label_out];
        struct cml_value *v = &x->vals[s];
        memset(v, 0, sizeof(*v));
        v->type = x->m->slots[s].desc.type;
        if (L->is_str) {
            v->str = L->str[best];
        } else {
            v->i64 = L->i64[best];
            v->f64 = (double)L->i64[best];
        }
    }
    if (nd->probs_out >= 0) {
        int32_t s = nd->out[nd->probs_out];
        struct cml_value *v = &x->vals[s];
        double *dst = x->buf[s];
        if (dst != probs)
            memcpy(dst, probs, L->n * sizeof(double));
        memset(v, 0, sizeof(*v));
        if (x->m->slots[s].desc.type == CML_TYPE_MULTIARRAY) {
            v->type = CML_TYPE_MULTIARRAY;
            v->n_dims = 1;
            v->shape[0] = (int64_t)L->n;
        } else {
            v->type = CML_TYPE_DICT;
            if (L->is_str)
                v->keys_str = (const char *const *)L->str;
            else
                v->keys_i64 = L->i64;
        }
        v->data = dst;
        v->n_elem = L->n;
    }
}
