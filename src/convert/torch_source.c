/* torch_source.c: PyTorch checkpoints (torch.save zip archives) as a tensor
 * source (REFERENCE/formats.md §5.3).
 *
 * The archive holds <prefix>/data.pkl (the state_dict, pickled) and one
 * <prefix>/data/<key> entry per storage. data.pkl goes through the
 * restricted pickle reader (nothing in it runs); each tensor it describes is
 * checked against its storage entry: dtype from the storage type, every
 * element index (offset + sum of (size - 1) * stride) inside the entry. The
 * state_dict may also be wrapped as {"state_dict": ...} or {"model": ...}.
 * The legacy (pre-1.6, non-zip) format is refused. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "convert_int.h"
#include "../format/pickle.h"
#include "../format/safetensors.h"
#include "../format/zip.h"

static void zip_close_owner(void *p)
{
    cai__zip_close(p);
}

static void pk_close_owner(void *p)
{
    cai__pk_free(p);
}

static int dtype_of(int storage_type)
{
    const char *n = cai__pk_storage_name(storage_type);
    static const struct {
        const char *name;
        int         dtype;
    } map[] = {
        {"FloatStorage", CAI_ST_F32}, {"HalfStorage", CAI_ST_F16}, {"BFloat16Storage", CAI_ST_BF16},
        {"DoubleStorage", CAI_ST_F64}, {"LongStorage", CAI_ST_I64}, {"IntStorage", CAI_ST_I32},
        {"ShortStorage", CAI_ST_I16}, {"CharStorage", CAI_ST_I8}, {"ByteStorage", CAI_ST_U8},
        {"BoolStorage", CAI_ST_BOOL},
    };
    for (size_t i = 0; n && i < CAI_ARRAY_LEN(map); i++)
        if (strcmp(map[i].name, n) == 0)
            return map[i].dtype;
    return -1;
}

static bool is_state_dict(const struct cai_pk_obj *d)
{
    if (!d || d->type != CAI_PK_DICT || d->n == 0)
        return false;
    for (uint32_t i = 0; i < d->n; i += 2)
        if (d->items[i]->type != CAI_PK_STR || d->items[i + 1]->type != CAI_PK_TENSOR)
            return false;
    return true;
}

static int add_tensor(struct cai_src *src, const struct cai_zip *z, const char *prefix,
                      const struct cai_pk_obj *key, const struct cai_pk_obj *t,
                      struct cai_error *err)
{
    char name[512], entry[4400];
    if (key->len == 0 || key->len >= sizeof(name) || memchr(key->s, 0, key->len))
        return cai__fail(err, CAI_EFORMAT, "%s: a state_dict key is empty, too long or holds NUL",
                         z->path);
    memcpy(name, key->s, key->len);
    name[key->len] = '\0';
    const struct cai_pk_obj *st = t->storage;
    snprintf(entry, sizeof(entry), "%.4100sdata/%.*s", prefix, (int)st->len, st->s);
    const struct cai_zip_entry *ze = cai__zip_find(z, entry);
    if (!ze)
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%.64s\": storage entry \"%.80s\" is "
                         "missing", z->path, name, entry);
    uint32_t es = cai__pk_storage_elem_size(st->storage_type);
    uint64_t need;
    if (!cai__mul_u64((uint64_t)st->i, es, &need) || need > ze->n_bytes)
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%.64s\": storage of %" PRId64 " elements "
                         "does not fit its %" PRIu64 "-byte entry", z->path, name, st->i,
                         ze->n_bytes);
    struct cai_src_tensor s;
    memset(&s, 0, sizeof(s));
    s.name = name;
    s.dtype = dtype_of(st->storage_type);
    s.n_dims = t->n_dims;
    s.storage = ze->data;
    s.offset = (uint64_t)t->offset;
    s.n_elem = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        s.shape[d] = t->shape[d];
        s.stride[d] = t->stride[d];
        if (!cai__mul_u64(s.n_elem, (uint64_t)t->shape[d], &s.n_elem))
            return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%.64s\": element count overflows",
                             z->path, name);
    }
    if (!cai__src_in_bounds(&s, (uint64_t)st->i))
        return cai__fail(err, CAI_EFORMAT, "%s: tensor \"%.64s\": its sizes, strides and offset "
                         "reach past its storage of %" PRId64 " elements", z->path, name, st->i);
    return cai__src_add(src, &s, err);
}

int cai__src_add_torch(struct cai_src *src, const char *path, struct cai_error *err)
{
    struct cai_zip *z;
    struct cai_map head;
    int rc = cai__map_open(&head, path, err);
    if (rc)
        return rc;
    bool zip = head.n_bytes >= 4 && memcmp(head.data, "PK\x03\x04", 4) == 0;
    bool legacy = head.n_bytes >= 2 && head.data[0] == 0x80;
    cai__map_close(&head);
    if (!zip)
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: %s", path,
                         legacy ? "a legacy (PyTorch < 1.6) checkpoint; re-save it with a "
                                  "current torch.save"
                                : "not a PyTorch checkpoint (zip archive) or safetensors file");
    if ((rc = cai__zip_open(&z, path, err)) < 0)
        return rc;
    if ((rc = cai__src_add_owner(src, z, zip_close_owner, err)) < 0)
        return rc;
    /* The record prefix: the folder holding data.pkl (one per archive). */
    const struct cai_zip_entry *pkl = NULL;
    for (uint64_t i = 0; i < z->n_entries; i++) {
        const char *n = z->entries[i].name, *sl = strrchr(n, '/');
        if (strcmp(sl ? sl + 1 : n, "data.pkl") == 0) {
            if (pkl)
                return cai__fail(err, CAI_EFORMAT, "%s: more than one data.pkl", path);
            pkl = &z->entries[i];
        }
    }
    if (!pkl)
        return cai__fail(err, CAI_EFORMAT, "%s: no data.pkl in the archive (not a torch.save "
                         "checkpoint)", path);
    char prefix[4200];
    size_t plen = strlen(pkl->name) - strlen("data.pkl");
    snprintf(prefix, sizeof(prefix), "%.*s", (int)plen, pkl->name);
    char bo[4300];
    snprintf(bo, sizeof(bo), "%sbyteorder", prefix);
    const struct cai_zip_entry *be = cai__zip_find(z, bo);
    if (be && !(be->n_bytes == 6 && memcmp(be->data, "little", 6) == 0))
        return cai__fail(err, CAI_EUNSUPPORTED, "%s: big-endian checkpoints are not supported",
                         path);
    for (uint64_t i = 0; i < z->n_entries; i++)
        if ((rc = cai__zip_check_crc(z, &z->entries[i], err)) < 0)
            return rc;

    struct cai_pickle *pk;
    const struct cai_pk_obj *root;
    if ((rc = cai__pk_parse(&pk, &root, pkl->data, (size_t)pkl->n_bytes, pkl->name, err)) < 0) {
        cai__error_prefix(err, path);
        return rc;
    }
    if ((rc = cai__src_add_owner(src, pk, pk_close_owner, err)) < 0)
        return rc;
    const struct cai_pk_obj *sd = root;
    if (!is_state_dict(sd) && root->type == CAI_PK_DICT) {
        for (uint32_t i = 0; i < root->n; i += 2) {
            const struct cai_pk_obj *k = root->items[i];
            bool named = k->type == CAI_PK_STR &&
                         ((k->len == 10 && memcmp(k->s, "state_dict", 10) == 0) ||
                          (k->len == 5 && memcmp(k->s, "model", 5) == 0));
            if (named &&
                is_state_dict(root->items[i + 1])) {
                sd = root->items[i + 1];
                break;
            }
        }
    }
    if (!is_state_dict(sd))
        return cai__fail(err, CAI_EFORMAT, "%s: data.pkl is not a state_dict (a dict of names to "
                         "tensors); save one with torch.save(model.state_dict(), PATH)", path);
    for (uint32_t i = 0; i < sd->n; i += 2)
        if ((rc = add_tensor(src, z, prefix, sd->items[i], sd->items[i + 1], err)) < 0)
            return rc;
    return 0;
}
