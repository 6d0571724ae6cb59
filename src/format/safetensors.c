/* safetensors.c: the validating safetensors reader declared in safetensors.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "../base/json.h"

static const struct {
    const char *name;
    uint32_t    bits;
} dtypes[CAI_ST_DTYPE_COUNT] = {
    [CAI_ST_BOOL] = {"BOOL", 8},         [CAI_ST_F4] = {"F4", 4},
    [CAI_ST_F6_E2M3] = {"F6_E2M3", 6},   [CAI_ST_F6_E3M2] = {"F6_E3M2", 6},
    [CAI_ST_U8] = {"U8", 8},             [CAI_ST_I8] = {"I8", 8},
    [CAI_ST_F8_E5M2] = {"F8_E5M2", 8},   [CAI_ST_F8_E4M3] = {"F8_E4M3", 8},
    [CAI_ST_F8_E8M0] = {"F8_E8M0", 8},   [CAI_ST_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8},
    [CAI_ST_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8},
    [CAI_ST_I16] = {"I16", 16},          [CAI_ST_U16] = {"U16", 16},
    [CAI_ST_F16] = {"F16", 16},          [CAI_ST_BF16] = {"BF16", 16},
    [CAI_ST_I32] = {"I32", 32},          [CAI_ST_U32] = {"U32", 32},
    [CAI_ST_F32] = {"F32", 32},          [CAI_ST_C64] = {"C64", 64},
    [CAI_ST_F64] = {"F64", 64},          [CAI_ST_I64] = {"I64", 64},
    [CAI_ST_U64] = {"U64", 64},
};

const char *cai__st_dtype_name(int dtype)
{
    return dtype >= 0 && dtype < CAI_ST_DTYPE_COUNT ? dtypes[dtype].name : NULL;
}

uint32_t cai__st_dtype_bits(int dtype)
{
    return dtype >= 0 && dtype < CAI_ST_DTYPE_COUNT ? dtypes[dtype].bits : 0;
}

/* Printable, bounded copy of a name for messages. */
static void label(char out[72], const char *s, size_t len)
{
    size_t n = CAI_MIN(len, (size_t)64);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > n)
        memcpy(out + n, "...", 4);
    else
        out[n] = '\0';
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct cai_st_tensor *)a)->name, ((const struct cai_st_tensor *)b)->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const struct cai_st_tensor *x = *(const struct cai_st_tensor *const *)a;
    const struct cai_st_tensor *y = *(const struct cai_st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    /* Empty tensors share offsets: order them before the one that starts there. */
    if (x->n_bytes != y->n_bytes)
        return x->n_bytes < y->n_bytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int parse_entry(struct cai_safetensors *st, const struct cai_json *j,
                       const struct cai_json_node *key, struct cai_st_tensor *t,
                       struct cai_error *err)
{
    const struct cai_json_node *v = cai__json_value(key);
    char nm[72];
    label(nm, key->s, key->len);
    if (key->len == 0 || memchr(key->s, 0, key->len))
        return cai__fail(err, CAI_EFORMAT, "%s: tensor name \"%s\" is empty or contains NUL",
                         st->path, nm);
    if (!cai__json_is(v, CAI_JSON_OBJECT))
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": entry is not an object", st->path,
                         nm);
    const struct cai_json_node *dt = cai__json_get(j, v, "dtype");
    const struct cai_json_node *sh = cai__json_get(j, v, "shape");
    const struct cai_json_node *of = cai__json_get(j, v, "data_offsets");
    if (!cai__json_is(dt, CAI_JSON_STRING) || !cai__json_is(sh, CAI_JSON_ARRAY) ||
        !cai__json_is(of, CAI_JSON_ARRAY))
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": needs a string \"dtype\", an array "
                         "\"shape\" and an array \"data_offsets\"", st->path, nm);
    t->dtype = -1;
    for (int d = 0; d < CAI_ST_DTYPE_COUNT; d++)
        if (cai__json_str_eq(dt, dtypes[d].name))
            t->dtype = d;
    if (t->dtype < 0) {
        char dn[72];
        label(dn, dt->s, dt->len);
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": unknown dtype \"%s\"", st->path, nm,
                         dn);
    }
    if (sh->n > CAI_ST_MAX_DIMS)
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": %u dimensions (at most %d)",
                         st->path, nm, sh->n, CAI_ST_MAX_DIMS);
    t->n_dims = sh->n;
    uint64_t n_elem = 1;
    uint32_t d = 0;
    for (const struct cai_json_node *x = cai__json_first(j, sh); x; x = cai__json_next(j, sh, x)) {
        uint64_t dim;
        if (!cai__json_u64(x, &dim) || dim > (uint64_t)INT64_MAX)
            return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": shape[%u] is not a non-negative "
                             "integer", st->path, nm, d);
        if (!cai__mul_u64(n_elem, dim, &n_elem))
            return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": element count overflows",
                             st->path, nm);
        t->shape[d++] = (int64_t)dim;
    }
    t->n_elem = n_elem;
    uint64_t begin, end, bits;
    const struct cai_json_node *b0 = cai__json_first(j, of);
    const struct cai_json_node *b1 = cai__json_next(j, of, b0);
    if (of->n != 2 || !cai__json_u64(b0, &begin) || !cai__json_u64(b1, &end))
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": data_offsets must be two "
                         "non-negative integers", st->path, nm);
    if (begin > end)
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                         "] end before they begin", st->path, nm, begin, end);
    if (!cai__mul_u64(n_elem, cai__st_dtype_bits(t->dtype), &bits))
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": byte size overflows", st->path, nm);
    if (bits % 8 != 0)
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": %" PRIu64 " %s elements do not fill "
                         "whole bytes", st->path, nm, n_elem, dtypes[t->dtype].name);
    if (end - begin != bits / 8)
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\": shape and dtype %s give %" PRIu64
                         " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64,
                         st->path, nm, dtypes[t->dtype].name, bits / 8, begin, end, end - begin);
    t->begin = begin;
    t->n_bytes = end - begin;
    t->name = cai__strndup(key->s, key->len);
    if (!t->name)
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", st->path);
    return 0;
}

static int parse_metadata(struct cai_safetensors *st, const struct cai_json *j,
                          const struct cai_json_node *v, struct cai_error *err)
{
    if (!cai__json_is(v, CAI_JSON_OBJECT))
        return cai__fail(err, CAI_EFORMAT, "%s: __metadata__ is not an object", st->path);
    if (v->n == 0)
        return 0;
    st->meta_keys = cai__calloc(v->n, sizeof(char *));
    st->meta_values = cai__calloc(v->n, sizeof(char *));
    if (!st->meta_keys || !st->meta_values)
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", st->path);
    for (const struct cai_json_node *k = cai__json_first(j, v); k; k = cai__json_next(j, v, k)) {
        const struct cai_json_node *x = cai__json_value(k);
        if (!cai__json_is(x, CAI_JSON_STRING))
            return cai__fail(err, CAI_EFORMAT, "%s: __metadata__ values must be strings",
                             st->path);
        st->meta_keys[st->n_meta] = cai__strndup(k->s, k->len);
        st->meta_values[st->n_meta] = cai__strndup(x->s, x->len);
        if (!st->meta_keys[st->n_meta] || !st->meta_values[st->n_meta])
            return cai__fail(err, CAI_ENOMEM, "%s: out of memory", st->path);
        st->n_meta++;
    }
    return 0;
}

static int st_parse(struct cai_safetensors *st, const uint8_t *b, uint64_t n, struct cai_error *err)
{
    if (n < 8)
        return cai__fail(err, CAI_EFORMAT, "%s: %" PRIu64 " bytes is too short for a safetensors "
                         "header length (8 bytes)", st->path, n);
    uint64_t hn = 0;
    for (int i = 0; i < 8; i++)
        hn |= (uint64_t)b[i] << (8 * i);
    if (hn > CAI_ST_MAX_HEADER)
        return cai__fail(err, CAI_EFORMAT, "%s: header length %" PRIu64 " exceeds the limit of %u "
                         "bytes", st->path, hn, CAI_ST_MAX_HEADER);
    if (hn > n - 8)
        return cai__fail(err, CAI_EFORMAT, "%s: header length %" PRIu64 " exceeds the %" PRIu64
                         " bytes after it (truncated file)", st->path, hn, n - 8);
    if (hn == 0 || b[8] != '{')
        return cai__fail(err, CAI_EFORMAT, "%s: header does not start with '{' (not a "
                         "safetensors file?)", st->path);
    st->header_bytes = hn;
    struct cai_json *j;
    int rc = cai__json_parse(&j, (const char *)b + 8, (size_t)hn, 8, st->path, err);
    if (rc)
        return rc;
    const struct cai_json_node *root = cai__json_root(j);
    const struct cai_json_node *meta = NULL;
    uint64_t data_bytes = n - 8 - hn;
    const struct cai_st_tensor **order = NULL;
    if (!cai__json_is(root, CAI_JSON_OBJECT)) {
        rc = cai__fail(err, CAI_EFORMAT, "%s: header is not a JSON object", st->path);
        goto out;
    }
    st->tensors = cai__calloc(root->n ? root->n : 1, sizeof(*st->tensors));
    if (!st->tensors) {
        rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", st->path);
        goto out;
    }
    for (const struct cai_json_node *k = cai__json_first(j, root); k;
         k = cai__json_next(j, root, k)) {
        if (cai__json_str_eq(k, "__metadata__")) {
            if (meta) {
                rc = cai__fail(err, CAI_EFORMAT, "%s: __metadata__ appears twice", st->path);
                goto out;
            }
            meta = cai__json_value(k);
            if ((rc = parse_metadata(st, j, meta, err)) < 0)
                goto out;
            continue;
        }
        if ((rc = parse_entry(st, j, k, &st->tensors[st->n_tensors], err)) < 0)
            goto out;
        st->n_tensors++;
    }
    if (st->n_tensors > 1)
        qsort(st->tensors, (size_t)st->n_tensors, sizeof(*st->tensors), cmp_name);
    for (uint64_t i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0) {
            char nm[72];
            label(nm, st->tensors[i].name, strlen(st->tensors[i].name));
            rc = cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\" appears twice", st->path, nm);
            goto out;
        }
    /* Contiguous from 0, no gaps or overlaps, ending at the end of the file. */
    order = cai__malloc_array(st->n_tensors ? (size_t)st->n_tensors : 1, sizeof(*order));
    if (!order) {
        rc = cai__fail(err, CAI_ENOMEM, "%s: out of memory", st->path);
        goto out;
    }
    for (uint64_t i = 0; i < st->n_tensors; i++)
        order[i] = &st->tensors[i];
    if (st->n_tensors > 1)
        qsort(order, (size_t)st->n_tensors, sizeof(*order), cmp_begin);
    uint64_t at = 0;
    for (uint64_t i = 0; i < st->n_tensors; i++) {
        const struct cai_st_tensor *t = order[i];
        if (t->begin != at) {
            char nm[72];
            label(nm, t->name, strlen(t->name));
            rc = cai__fail(err, CAI_EFORMAT, "%s: tensor \"%s\" starts at offset %" PRIu64 " but "
                           "the previous data ends at %" PRIu64 " (%s)", st->path, nm, t->begin,
                           at, t->begin < at ? "overlap" : "gap");
            goto out;
        }
        at = t->begin + t->n_bytes; /* begin <= end, both u64: no wrap */
    }
    if (at != data_bytes) {
        rc = cai__fail(err, CAI_EFORMAT, "%s: tensors cover %" PRIu64 " bytes of data but the file "
                       "holds %" PRIu64 " after the header (%s)", st->path, at, data_bytes,
                       at > data_bytes ? "offsets out of range / truncated file"
                                       : "trailing bytes");
        goto out;
    }
    for (uint64_t i = 0; i < st->n_tensors; i++)
        st->tensors[i].data = b + 8 + hn + st->tensors[i].begin;
out:
    cai__free(order);
    cai__json_free(j);
    return rc;
}

static int st_new(struct cai_safetensors **out, const char *name, struct cai_error *err)
{
    *out = cai__calloc(1, sizeof(**out));
    if (*out) {
        (*out)->map.fd = -1;
        (*out)->path = cai__strdup(name);
    }
    if (!*out || !(*out)->path) {
        cai__free(*out);
        *out = NULL;
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", name);
    }
    return 0;
}

int cai__st_open_buffer(struct cai_safetensors **out, const void *data, uint64_t n_bytes,
                        const char *name, struct cai_error *err)
{
    struct cai_safetensors *st;
    *out = NULL;
    if (!name)
        name = "<buffer>";
    if (!data && n_bytes)
        return cai__fail(err, CAI_EINVAL, "%s: NULL buffer", name);
    int rc = st_new(&st, name, err);
    if (rc)
        return rc;
    rc = st_parse(st, data, n_bytes, err);
    if (rc) {
        cai__st_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

int cai__st_open(struct cai_safetensors **out, const char *path, struct cai_error *err)
{
    struct cai_safetensors *st;
    *out = NULL;
    int rc = st_new(&st, path, err);
    if (rc)
        return rc;
    rc = cai__map_open(&st->map, path, err);
    if (rc == 0)
        rc = st_parse(st, st->map.data, st->map.n_bytes, err);
    if (rc) {
        cai__st_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void cai__st_close(struct cai_safetensors *st)
{
    if (!st)
        return;
    for (uint64_t i = 0; i < st->n_tensors; i++)
        cai__free(st->tensors[i].name);
    cai__free(st->tensors);
    for (uint64_t i = 0; i < st->n_meta; i++) {
        cai__free(st->meta_keys[i]);
        cai__free(st->meta_values[i]);
    }
    cai__free(st->meta_keys);
    cai__free(st->meta_values);
    cai__map_close(&st->map);
    cai__free(st->path);
    cai__free(st);
}

const struct cai_st_tensor *cai__st_find(const struct cai_safetensors *st, const char *name)
{
    uint64_t lo = 0, hi = st->n_tensors;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0)
            return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *cai__st_meta(const struct cai_safetensors *st, const char *key)
{
    for (uint64_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}
