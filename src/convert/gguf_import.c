/* gguf_import.c: lossless GGUF -> .coreaimodel import (cai__convert_gguf).
 *
 * Every key/value is copied byte for byte in its original order (nested
 * arrays included) except general.alignment, which the writer sets to the
 * file's alignment; every tensor keeps its name, shape, type and bytes, in
 * the original order, streamed straight from the input's mapping. The
 * provenance keys (coreai.*) are added unless the input already has them.
 * The engine therefore computes bit-identical results from both files. */
#include <string.h>

#include "convert.h"
#include "../format/coreaimodel.h"
#include "../format/gguf.h"
#include "../tensor/types.h"

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Average bits per weight over the 2-D (and larger) tensors. */
static float weight_bits(const struct cai_gguf *g, bool *quantized)
{
    double bits = 0, elems = 0;
    *quantized = false;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct cai_gguf_tensor *t = &g->tensors[i];
        const struct cai_type_info *ti = cai__type_info(t->type);
        if (ti && ti->quantized)
            *quantized = true;
        if (t->n_dims < 2)
            continue;
        bits += 8.0 * (double)t->n_bytes;
        elems += (double)t->ne[0] * (double)t->ne[1] * (double)t->ne[2] * (double)t->ne[3];
    }
    return elems > 0 ? (float)(bits / elems) : 0.0f;
}

static int add_provenance(struct cai_cam_writer *w, const struct cai_gguf *g, const char *in_path,
                          struct cai_error *err)
{
    bool quantized;
    float bits = weight_bits(g, &quantized);
    int rc = 0;
#define ADD(call, key)                                                                             \
    do {                                                                                           \
        if (!rc && !cai__cam_writer_has_kv(w, key))                                                \
            rc = call;                                                                             \
    } while (0)
    ADD(cai__cam_writer_add_str(w, "coreai.format_version", "1.0", err), "coreai.format_version");
    ADD(cai__cam_writer_add_str(w, "coreai.converter", CAI_CONVERTER_NAME, err),
        "coreai.converter");
    ADD(cai__cam_writer_add_str(w, "coreai.source.format", "gguf", err), "coreai.source.format");
    ADD(cai__cam_writer_add_str(w, "coreai.source.name", base_name(in_path), err),
        "coreai.source.name");
    ADD(cai__cam_writer_add_str(w, "coreai.quantization.method", quantized ? "gguf" : "none", err),
        "coreai.quantization.method");
    ADD(cai__cam_writer_add_f32(w, "coreai.quantization.bits", bits, err),
        "coreai.quantization.bits");
#undef ADD
    return rc;
}

int cai__convert_gguf(const char *in_path, const char *out_path, uint32_t alignment,
                      cai_cam_progress_fn progress, void *user, struct cai_error *err)
{
    struct cai_gguf *g = NULL;
    struct cai_cam_writer *w = NULL;
    struct cai_map head;
    int rc;

    /* A .coreaimodel input is re-written the same way (e.g. to realign). */
    if ((rc = cai__map_open(&head, in_path, err)) < 0)
        return rc;
    bool is_cam = cai__cam_is_file(head.data, head.n_bytes);
    cai__map_close(&head);
    rc = is_cam ? cai__cam_open(&g, in_path, err) : cai__gguf_open(&g, in_path, err);
    if (rc < 0)
        return rc;
    if ((rc = cai__cam_writer_new(&w, err)) < 0)
        goto out;
    if (alignment && (rc = cai__cam_writer_set_alignment(w, alignment, err)) < 0)
        goto out;
    for (uint64_t i = 0; i < g->n_kv; i++)
        if ((rc = cai__cam_writer_copy_kv(w, g, &g->kv[i], err)) < 0)
            goto out;
    if ((rc = add_provenance(w, g, in_path, err)) < 0)
        goto out;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct cai_gguf_tensor *t = &g->tensors[i];
        char name[72];
        if (t->name.len >= sizeof(name) || memchr(t->name.ptr, 0, (size_t)t->name.len)) {
            rc = cai__fail(err, CAI_EFORMAT, "%s: tensor[%llu] has an unusable name", in_path,
                           (unsigned long long)i);
            goto out;
        }
        memcpy(name, t->name.ptr, (size_t)t->name.len);
        name[t->name.len] = '\0';
        if ((rc = cai__cam_writer_add_tensor(w, name, t->n_dims, t->ne, t->type, t->data, err)) <
            0)
            goto out;
    }
    rc = cai__cam_writer_write(w, out_path, progress, user, err);
out:
    cai__cam_writer_free(w);
    cai__gguf_close(g);
    return rc;
}
