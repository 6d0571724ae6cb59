/* source.c: checkpoint tensor sources (safetensors files, sharded or not;
 * PyTorch checkpoints through torch_source.c) and the strided gather. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert_int.h"
#include "../format/safetensors.h"
#include "../tensor/types.h"

/* ---- the list ---------------------------------------------------------------- */

int cai__src_add(struct cai_src *src, const struct cai_src_tensor *t, struct cai_error *err)
{
    if (src->n_tensors == src->cap) {
        size_t cap = src->cap ? src->cap * 2 : 16;
        struct cai_src_tensor *p = cai__realloc(src->tensors, cap * sizeof(*p));
        if (!p)
            return cai__fail(err, CAI_ENOMEM, "out of memory listing tensors");
        src->tensors = p;
        src->cap = cap;
    }
    struct cai_src_tensor *d = &src->tensors[src->n_tensors];
    *d = *t;
    d->name = cai__strdup(t->name);
    if (!d->name)
        return cai__fail(err, CAI_ENOMEM, "out of memory listing tensors");
    src->n_tensors++;
    return 0;
}

static int cmp_src(const void *a, const void *b)
{
    return strcmp(((const struct cai_src_tensor *)a)->name,
                  ((const struct cai_src_tensor *)b)->name);
}

int cai__src_finish(struct cai_src *src, const char *what, struct cai_error *err)
{
    if (src->n_tensors > 1)
        qsort(src->tensors, (size_t)src->n_tensors, sizeof(*src->tensors), cmp_src);
    for (uint64_t i = 1; i < src->n_tensors; i++)
        if (strcmp(src->tensors[i - 1].name, src->tensors[i].name) == 0)
            return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%.64s\" appears twice", what,
                             src->tensors[i].name);
    return 0;
}

int cai__src_add_owner(struct cai_src *src, void *owner, void (*close_fn)(void *),
                       struct cai_error *err)
{
    void **o = cai__realloc(src->owners, (src->n_owners + 1) * sizeof(*o));
    if (o)
        src->owners = o;
    void (**c)(void *) = cai__realloc(src->owner_close, (src->n_owners + 1) * sizeof(*c));
    if (c)
        src->owner_close = c;
    if (!o || !c) {
        close_fn(owner);
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    }
    src->owners[src->n_owners] = owner;
    src->owner_close[src->n_owners] = close_fn;
    src->n_owners++;
    return 0;
}

void cai__src_close(struct cai_src *src)
{
    for (uint64_t i = 0; i < src->n_tensors; i++)
        cai__free(src->tensors[i].name);
    cai__free(src->tensors);
    for (uint32_t i = 0; i < src->n_owners; i++)
        src->owner_close[i](src->owners[i]);
    cai__free(src->owners);
    cai__free(src->owner_close);
    memset(src, 0, sizeof(*src));
}

const struct cai_src_tensor *cai__src_find(const struct cai_src *src, const char *name)
{
    uint64_t lo = 0, hi = src->n_tensors;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(src->tensors[mid].name, name);
        if (c == 0)
            return &src->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool cai__src_in_bounds(const struct cai_src_tensor *t, uint64_t n_storage_elems)
{
    if (t->n_elem == 0)
        return t->offset <= n_storage_elems;
    uint64_t last = t->offset;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t step;
        if (t->shape[d] < 1 || t->stride[d] < 0 ||
            !cai__mul_u64((uint64_t)(t->shape[d] - 1), (uint64_t)t->stride[d], &step) ||
            !cai__add_u64(last, step, &last))
            return false;
    }
    return last < n_storage_elems;
}

/* ---- gather ------------------------------------------------------------------- */

static float load_elem(const uint8_t *p, int dtype)
{
    if (dtype == CAI_ST_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    return dtype == CAI_ST_F16 ? cai__fp16_to_f32(h) : cai__bf16_to_f32(h);
}

void cai__src_read_f32(const struct cai_src_tensor *t, float *out)
{
    size_t es = t->dtype == CAI_ST_F32 ? 4 : 2;
    if (t->n_elem == 0)
        return;
    uint32_t nd = t->n_dims;
    int64_t idx[CAI_SRC_MAX_DIMS] = {0};
    /* Walk rows of the innermost dimension; carry into the outer ones. */
    int64_t inner = nd ? t->shape[nd - 1] : 1, istride = nd ? t->stride[nd - 1] : 1;
    uint64_t rows = t->n_elem / (uint64_t)inner, o = 0;
    for (uint64_t r = 0; r < rows; r++) {
        uint64_t base = t->offset;
        for (uint32_t d = 0; d + 1 < nd; d++)
            base += (uint64_t)idx[d] * (uint64_t)t->stride[d];
        const uint8_t *p = t->storage + base * es;
        if (istride == 1 && t->dtype == CAI_ST_F32) {
            memcpy(out + o, p, (size_t)inner * 4);
        } else {
            for (int64_t i = 0; i < inner; i++)
                out[o + (uint64_t)i] = load_elem(p + (uint64_t)i * (uint64_t)istride * es, t->dtype);
        }
        o += (uint64_t)inner;
        for (int d = (int)nd - 2; d >= 0; d--) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
    }
}

/* ---- JSON files ------------------------------------------------------------------ */

int cai__json_load(struct cai_json **j, const char *dir, const char *name, bool required,
                   struct cai_error *err)
{
    char path[4096];
    char *text;
    size_t n;
    struct stat st;
    *j = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (stat(path, &st) != 0 && errno == ENOENT && !required)
        return 1;
    int rc = cai__read_file(path, &text, &n, err);
    if (rc)
        return rc;
    rc = cai__json_parse(j, text, n, 128, path, err);
    cai__free(text);
    return rc;
}

/* ---- safetensors --------------------------------------------------------------- */

static void st_close_owner(void *p)
{
    cai__st_close(p);
}

static int add_safetensors(struct cai_src *src, const char *path, struct cai_error *err)
{
    struct cai_safetensors *st;
    int rc = cai__st_open(&st, path, err);
    if (rc)
        return rc;
    if ((rc = cai__src_add_owner(src, st, st_close_owner, err)) < 0)
        return rc;
    for (uint64_t i = 0; i < st->n_tensors; i++) {
        const struct cai_st_tensor *s = &st->tensors[i];
        struct cai_src_tensor t;
        memset(&t, 0, sizeof(t));
        t.name = s->name;
        t.dtype = s->dtype;
        t.n_dims = s->n_dims;
        t.n_elem = s->n_elem;
        t.storage = s->data;
        int64_t stride = 1;
        for (int d = (int)s->n_dims - 1; d >= 0; d--) {
            t.shape[d] = s->shape[d];
            t.stride[d] = stride;
            stride *= s->shape[d] ? s->shape[d] : 1; /* n_elem fits u64: no overflow */
        }
        if ((rc = cai__src_add(src, &t, err)) < 0)
            return rc;
    }
    return 0;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* model.safetensors.index.json: opens every file its weight_map names. */
static int add_sharded(struct cai_src *src, const char *dir, struct cai_error *err)
{
    struct cai_json *j;
    char path[4096];
    int rc = cai__json_load(&j, dir, "model.safetensors.index.json", true, err);
    if (rc)
        return rc;
    const struct cai_json_node *root = cai__json_root(j);
    const struct cai_json_node *map = cai__json_get(j, root, "weight_map");
    if (!cai__json_is(map, CAI_JSON_OBJECT) || map->n == 0) {
        cai__json_free(j);
        return cai__fail(err, CAI_EFORMAT, "%s/model.safetensors.index.json: no \"weight_map\" "
                         "object", dir);
    }
    /* Each distinct file once, in first-seen order. */
    const struct cai_json_node **files = cai__calloc(map->n, sizeof(*files));
    uint32_t n_files = 0;
    if (!files) {
        cai__json_free(j);
        return cai__fail(err, CAI_ENOMEM, "out of memory");
    }
    for (const struct cai_json_node *k = cai__json_first(j, map); k; k = cai__json_next(j, map, k)) {
        const struct cai_json_node *f = cai__json_value(k);
        if (!cai__json_is(f, CAI_JSON_STRING) || f->len == 0 || memchr(f->s, '/', f->len) ||
            memchr(f->s, 0, f->len) || f->len > 255) {
            rc = cai__fail(err, CAI_EFORMAT, "%s/model.safetensors.index.json: tensor \"%.64s\" "
                           "maps to an invalid file name", dir, k->s);
            goto out;
        }
        bool seen = false;
        for (uint32_t i = 0; i < n_files && !seen; i++)
            seen = files[i]->len == f->len && memcmp(files[i]->s, f->s, f->len) == 0;
        if (!seen)
            files[n_files++] = f;
    }
    for (uint32_t i = 0; i < n_files; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]->s);
        if ((rc = add_safetensors(src, path, err)) < 0)
            goto out;
    }
    if ((rc = cai__src_finish(src, dir, err)) < 0)
        goto out;
    for (const struct cai_json_node *k = cai__json_first(j, map); k; k = cai__json_next(j, map, k))
        if (!cai__src_find(src, k->s)) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: tensor \"%.64s\" is in the index but not in %s",
                           dir, k->s, cai__json_value(k)->s);
            goto out;
        }
out:
    cai__free(files);
    cai__json_free(j);
    return rc;
}

int cai__src_open(struct cai_src *src, const char *path, struct cai_error *err)
{
    char p[4096];
    struct stat st;
    int rc;
    memset(src, 0, sizeof(*src));
    if (stat(path, &st) != 0)
        return cai__fail(err, CAI_EIO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        snprintf(p, sizeof(p), "%s/model.safetensors", path);
        if (exists(p)) {
            src->format = "safetensors";
            rc = add_safetensors(src, p, err);
        } else if (snprintf(p, sizeof(p), "%s/model.safetensors.index.json", path), exists(p)) {
            src->format = "safetensors";
            rc = add_sharded(src, path, err);
        } else if (snprintf(p, sizeof(p), "%s/pytorch_model.bin", path), exists(p)) {
            src->format = "pytorch";
            rc = cai__src_add_torch(src, p, err);
        } else {
            return cai__fail(err, CAI_EIO, "%s: no model.safetensors, model.safetensors.index.json "
                             "or pytorch_model.bin in this folder", path);
        }
    } else if (ends_with(path, ".safetensors")) {
        src->format = "safetensors";
        rc = add_safetensors(src, path, err);
    } else {
        src->format = "pytorch";
        rc = cai__src_add_torch(src, path, err);
    }
    if (rc == 0)
        rc = cai__src_finish(src, path, err);
    if (rc)
        cai__src_close(src);
    return rc;
}
