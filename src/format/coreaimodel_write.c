/* coreaimodel_write.c: the .coreaimodel writer declared in coreaimodel_write.h.
 *
 * Key/value records are encoded (GGUF encoding) into one growing buffer as
 * they are added; tensors are descriptors. write() computes the layout,
 * encodes the directory, creates the temporary file, reserves its full size
 * (so a full disk fails before any data is written, where the file system
 * can tell), streams the tensors in order while hashing them, then writes the
 * tensor table and, last, the header. Only a complete, synced file is given
 * the destination name. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coreaimodel.h"
#include "coreaimodel_write.h"
#include "gguf_write.h"
#include "wbuf.h"
#include "../tensor/types.h"

#define W_MAX_NAME_LEN 64u
#define W_CHUNK        (8u << 20) /* bytes per write() and progress step */

struct wtensor {
    char           *name;
    uint32_t        n_dims;
    int64_t         ne[4];
    uint32_t        type;
    uint64_t        n_bytes;
    const void     *data;  /* borrowed, or NULL with fill */
    cai_cam_fill_fn fill;
    void           *user;
    uint16_t        flags;
    uint64_t        offset; /* relative to the data section, set by layout() */
};

struct cai_cam_writer {
    uint32_t                alignment;
    struct cai_gguf_writer *kv; /* the key/values, encoded as the directory holds them */
    struct wtensor *tensors;
    uint64_t        n_tensors;
    size_t          t_cap;
};

/* ---- writer ------------------------------------------------------------------ */

int cai__cam_writer_new(struct cai_cam_writer **out, struct cai_error *err)
{
    struct cai_cam_writer *w = cai__calloc(1, sizeof(*w));
    *out = NULL;
    if (!w || cai__gguf_writer_new(&w->kv, 3, NULL) < 0) {
        cai__free(w);
        return cai__fail(err, CAI_ENOMEM, "coreaimodel writer: out of memory");
    }
    cai__gguf_writer_set_label(w->kv, "coreaimodel writer");
    w->alignment = CAI_CAM_DEFAULT_ALIGNMENT;
    *out = w;
    return 0;
}

void cai__cam_writer_free(struct cai_cam_writer *w)
{
    if (!w)
        return;
    for (uint64_t i = 0; i < w->n_tensors; i++)
        cai__free(w->tensors[i].name);
    cai__free(w->tensors);
    cai__gguf_writer_free(w->kv);
    cai__free(w);
}

int cai__cam_writer_set_alignment(struct cai_cam_writer *w, uint32_t a, struct cai_error *err)
{
    if (a < CAI_CAM_MIN_ALIGNMENT || a > CAI_CAM_MAX_ALIGNMENT || (a & (a - 1)))
        return cai__fail(err, CAI_EINVAL, "coreaimodel writer: alignment %u is not a power of two "
                         "in [%u, %u]", a, CAI_CAM_MIN_ALIGNMENT, CAI_CAM_MAX_ALIGNMENT);
    w->alignment = a;
    return 0;
}

bool cai__cam_writer_has_kv(const struct cai_cam_writer *w, const char *key)
{
    return cai__gguf_writer_has_kv(w->kv, key);
}

int cai__cam_writer_add_raw(struct cai_cam_writer *w, const char *key, uint32_t type,
                            const void *value, size_t n_bytes, struct cai_error *err)
{
    if (key && strcmp(key, "general.alignment") == 0)
        return cai__fail(err, CAI_EINVAL, "coreaimodel writer: general.alignment is written by "
                         "the writer (use set_alignment)");
    if (type > CAI_GGUF_F64)
        return cai__fail(err, CAI_EINVAL, "coreaimodel writer: key \"%s\": unknown type %u",
                         key ? key : "", type);
    return cai__gguf_writer_add_raw(w->kv, key ? key : "", type, value, n_bytes, err);
}

/* A scalar of `n` bytes, little-endian (the caller checked `key`). */
static int add_le(struct cai_cam_writer *w, const char *key, uint32_t type, uint64_t v, size_t n,
                  struct cai_error *err)
{
    uint8_t b[8];
    cai__put_le(b, v, n);
    return cai__cam_writer_add_raw(w, key, type, b, n, err);
}

int cai__cam_writer_add_u32(struct cai_cam_writer *w, const char *key, uint32_t v,
                            struct cai_error *err)
{
    return add_le(w, key, CAI_GGUF_U32, v, 4, err);
}

int cai__cam_writer_add_i32(struct cai_cam_writer *w, const char *key, int32_t v,
                            struct cai_error *err)
{
    return add_le(w, key, CAI_GGUF_I32, (uint32_t)v, 4, err);
}

int cai__cam_writer_add_u64(struct cai_cam_writer *w, const char *key, uint64_t v,
                            struct cai_error *err)
{
    return add_le(w, key, CAI_GGUF_U64, v, 8, err);
}

int cai__cam_writer_add_f32(struct cai_cam_writer *w, const char *key, float v,
                            struct cai_error *err)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return add_le(w, key, CAI_GGUF_F32, u, 4, err);
}

int cai__cam_writer_add_bool(struct cai_cam_writer *w, const char *key, bool v,
                             struct cai_error *err)
{
    return add_le(w, key, CAI_GGUF_BOOL, v ? 1 : 0, 1, err);
}

/* Keys other than general.alignment go straight to the embedded writer. */
static bool key_ok(const char *key, struct cai_error *err)
{
    if (strcmp(key, "general.alignment") != 0)
        return true;
    cai__fail(err, CAI_EINVAL, "coreaimodel writer: general.alignment is written by the writer "
              "(use set_alignment)");
    return false;
}

int cai__cam_writer_add_strn(struct cai_cam_writer *w, const char *key, const char *v,
                             uint64_t len, struct cai_error *err)
{
    return key_ok(key, err) ? cai__gguf_writer_add_strn(w->kv, key, v, len, err) : CAI_EINVAL;
}

int cai__cam_writer_add_str(struct cai_cam_writer *w, const char *key, const char *v,
                            struct cai_error *err)
{
    return cai__cam_writer_add_strn(w, key, v, strlen(v), err);
}

int cai__cam_writer_add_arr(struct cai_cam_writer *w, const char *key, uint32_t elem_type,
                            const void *elems, uint64_t n, struct cai_error *err)
{
    return key_ok(key, err) ? cai__gguf_writer_add_arr(w->kv, key, elem_type, elems, n, err)
                            : CAI_EINVAL;
}

int cai__cam_writer_add_arr_str(struct cai_cam_writer *w, const char *key,
                                const char *const *strs, const uint32_t *lens, uint64_t n,
                                struct cai_error *err)
{
    return key_ok(key, err) ? cai__gguf_writer_add_arr_strn(w->kv, key, strs, lens, n, err)
                            : CAI_EINVAL;
}

/* Bytes of a scalar value type; 0 for STRING, ARRAY and unknown ids. */
static size_t elem_size(uint32_t t)
{
    static const uint8_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < CAI_ARRAY_LEN(sizes) ? sizes[t] : 0;
}

int cai__cam_writer_copy_kv(struct cai_cam_writer *w, const struct cai_gguf *src,
                            const struct cai_gguf_kv *kv, struct cai_error *err)
{
    char *key = cai__strndup(kv->key.ptr, (size_t)kv->key.len);
    if (!key)
        return cai__fail(err, CAI_ENOMEM, "coreaimodel writer: out of memory");
    int rc = 0;
    if (strcmp(key, "general.alignment") == 0)
        goto out;
    if (strlen(key) != kv->key.len) {
        rc = cai__fail(err, CAI_EINVAL, "coreaimodel writer: key contains a NUL byte");
        goto out;
    }
    if (kv->type == CAI_GGUF_STRING) {
        rc = cai__cam_writer_add_strn(w, key, kv->str.ptr, kv->str.len, err);
    } else if (kv->type == CAI_GGUF_ARRAY) {
        const uint8_t *body = kv->arr_data - 12;
        const uint8_t *end = cai__cam_skip_array(body, src->base + src->n_bytes, 1);
        if (!end || body < src->base) {
            rc = cai__fail(err, CAI_EINVAL, "coreaimodel writer: key \"%s\": array does not lie "
                           "inside its file", key);
            goto out;
        }
        rc = cai__cam_writer_add_raw(w, key, CAI_GGUF_ARRAY, body, (size_t)(end - body), err);
    } else {
        uint64_t v = kv->u64;
        if (kv->type == CAI_GGUF_F32) {
            float f = (float)kv->f64;
            uint32_t u;
            memcpy(&u, &f, 4);
            v = u;
        } else if (kv->type == CAI_GGUF_F64) {
            memcpy(&v, &kv->f64, 8);
        }
        rc = add_le(w, key, kv->type, v, elem_size(kv->type), err);
    }
out:
    cai__free(key);
    return rc;
}

/* ---- tensors --------------------------------------------------------------- */

static int add_tensor(struct cai_cam_writer *w, const char *name, uint32_t n_dims,
                      const int64_t *ne, uint32_t type, const void *data, cai_cam_fill_fn fill,
                      void *user, struct cai_error *err)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > W_MAX_NAME_LEN)
        return cai__fail(err, CAI_EINVAL, "coreaimodel writer: tensor name length %zu not in "
                         "1..%u", len, W_MAX_NAME_LEN);
    if (n_dims < 1 || n_dims > 4)
        return cai__fail(err, CAI_EINVAL, "coreaimodel writer: tensor \"%s\": %u dims", name,
                         n_dims);
    const struct cai_type_info *ti = cai__type_info(type);
    if (!ti || !ti->name)
        return cai__fail(err, CAI_EINVAL, "coreaimodel writer: tensor \"%s\": unknown type %u",
                         name, type);
    uint64_t rows = 1;
    size_t row;
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne[d] < 1 || (d > 0 && !cai__mul_u64(rows, (uint64_t)ne[d], &rows)))
            return cai__fail(err, CAI_EINVAL, "coreaimodel writer: tensor \"%s\": bad shape",
                             name);
    uint64_t n_bytes;
    if (!cai__row_bytes(type, ne[0], &row) || !cai__mul_u64(row, rows, &n_bytes) ||
        n_bytes > SIZE_MAX)
        return cai__fail(err, CAI_EINVAL, "coreaimodel writer: tensor \"%s\": ne[0] = %lld is "
                         "not a whole number of %s blocks, or the size overflows", name,
                         (long long)ne[0], ti->name);
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return cai__fail(err, CAI_EINVAL, "coreaimodel writer: duplicate tensor \"%s\"", name);
    if (w->n_tensors == w->t_cap) {
        size_t cap = w->t_cap ? w->t_cap * 2 : 64;
        struct wtensor *p = cai__realloc(w->tensors, cap * sizeof(*p));
        if (!p)
            return cai__fail(err, CAI_ENOMEM, "coreaimodel writer: out of memory");
        w->tensors = p;
        w->t_cap = cap;
    }
    struct wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof(*t));
    t->name = cai__strdup(name);
    if (!t->name)
        return cai__fail(err, CAI_ENOMEM, "coreaimodel writer: out of memory");
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++)
        t->ne[d] = d < (int)n_dims ? ne[d] : 1;
    t->type = type;
    t->n_bytes = n_bytes;
    t->data = data;
    t->fill = fill;
    t->user = user;
    if (n_dims == 3 && strstr(name, "_exps."))
        t->flags = CAI_CAM_FLAG_EXPERT_MAJOR;
    w->n_tensors++;
    return 0;
}

int cai__cam_writer_add_tensor(struct cai_cam_writer *w, const char *name, uint32_t n_dims,
                               const int64_t *ne, uint32_t type, const void *data,
                               struct cai_error *err)
{
    if (!data)
        return cai__fail(err, CAI_EINVAL, "coreaimodel writer: tensor \"%s\": NULL data",
                         name ? name : "?");
    return add_tensor(w, name, n_dims, ne, type, data, NULL, NULL, err);
}

int cai__cam_writer_add_tensor_fn(struct cai_cam_writer *w, const char *name, uint32_t n_dims,
                                  const int64_t *ne, uint32_t type, cai_cam_fill_fn fill,
                                  void *user, struct cai_error *err)
{
    if (!fill)
        return cai__fail(err, CAI_EINVAL, "coreaimodel writer: tensor \"%s\": NULL fill",
                         name ? name : "?");
    return add_tensor(w, name, n_dims, ne, type, NULL, fill, user, err);
}

uint64_t cai__cam_writer_n_tensors(const struct cai_cam_writer *w)
{
    return w->n_tensors;
}

uint64_t cai__cam_writer_data_bytes(const struct cai_cam_writer *w)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < w->n_tensors; i++)
        n += w->tensors[i].n_bytes;
    return n;
}

/* ---- layout ------------------------------------------------------------------ */

static bool align_up(uint64_t x, uint64_t a, uint64_t *out)
{
    uint64_t y;
    if (!cai__add_u64(x, a - 1, &y))
        return false;
    *out = y / a * a;
    return true;
}

/* Encodes the directory (GGUF v3 header) into `dir`; sets tensor offsets. */
static bool encode_dir(struct cai_cam_writer *w, struct cai__wbuf *dir)
{
    uint64_t off = 0;
    const uint8_t *kvs;
    size_t kv_bytes;
    uint64_t n_kv = cai__gguf_writer_kv_records(w->kv, &kvs, &kv_bytes);
    bool ok = cai__wb_put(dir, "GGUF", 4) && cai__wb_u32(dir, 3) &&
              cai__wb_u64(dir, w->n_tensors) &&
              cai__wb_u64(dir, n_kv + 1) && cai__wb_put(dir, kvs, kv_bytes) &&
              cai__wb_str(dir, "general.alignment", 17) && cai__wb_u32(dir, CAI_GGUF_U32) &&
              cai__wb_u32(dir, w->alignment);
    for (uint64_t i = 0; ok && i < w->n_tensors; i++) {
        struct wtensor *t = &w->tensors[i];
        if (i > 0)
            ok = align_up(off, w->alignment, &off);
        t->offset = off;
        ok = ok && cai__wb_str(dir, t->name, strlen(t->name)) && cai__wb_u32(dir, t->n_dims);
        for (uint32_t d = 0; ok && d < t->n_dims; d++)
            ok = cai__wb_u64(dir, (uint64_t)t->ne[d]);
        ok = ok && cai__wb_u32(dir, t->type) && cai__wb_u64(dir, t->offset) &&
             cai__add_u64(off, t->n_bytes, &off);
    }
    return ok;
}

/* ---- output file ----------------------------------------------------------- */

struct outfile {
    const char *path;
    int         fd;
    char       *tmp;      /* named temporary file, or NULL while unnamed */
    char       *dir;      /* the destination folder */
    bool        unnamed;  /* O_TMPFILE */
};

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return cai__strdup(".");
    if (slash == path)
        return cai__strdup("/");
    return cai__strndup(path, (size_t)(slash - path));
}

/* A fresh temporary name beside path: "<path>.tmp-<pid>-<n>". */
static char *tmp_name(const char *path, unsigned n)
{
    size_t len = strlen(path) + 48;
    char *s = cai__malloc(len);
    if (s)
        snprintf(s, len, "%s.tmp-%ld-%u", path, (long)getpid(), n);
    return s;
}

static int out_open(struct outfile *o, const char *path, struct cai_error *err)
{
    memset(o, 0, sizeof(*o));
    o->path = path;
    o->fd = -1;
    o->dir = dir_of(path);
    if (!o->dir)
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
#ifdef O_TMPFILE
    o->fd = open(o->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (o->fd >= 0) {
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
        if (access(proc, F_OK) == 0) {
            o->unnamed = true;
            return 0;
        }
        close(o->fd); /* cannot be linked later without /proc: use a named file */
        o->fd = -1;
    }
#endif
    for (unsigned n = 0; n < 100 && o->fd < 0; n++) {
        cai__free(o->tmp);
        o->tmp = tmp_name(path, n);
        if (!o->tmp)
            return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
        o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (o->fd < 0 && errno != EEXIST)
            break;
    }
    if (o->fd < 0) {
        int e = errno;
        cai__free(o->tmp);
        o->tmp = NULL;
        return cai__fail(err, CAI_EIO, "%s: cannot create a temporary file in %s: %s", path,
                         o->dir, strerror(e));
    }
    return 0;
}

/* Closes and removes whatever exists of the temporary file. */
static void out_abort(struct outfile *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    if (o->tmp)
        unlink(o->tmp);
    cai__free(o->tmp);
    cai__free(o->dir);
    o->tmp = o->dir = NULL;
}

static int io_fail(struct cai_error *err, const char *path, int e, const char *what)
{
    const char *hint = "";
    if (e == ENOSPC)
        hint = " (disk full)";
    else if (e == EFBIG)
        hint = " (the file-size limit, ulimit -f, or the file system's maximum was reached)";
    else if (e == EDQUOT)
        hint = " (disk quota exceeded)";
    return cai__fail(err, CAI_EIO, "%s: %s failed: %s%s; nothing was written to %s", path, what,
                     strerror(e), hint, path);
}

static int pwrite_all(int fd, const void *data, uint64_t n, uint64_t off)
{
    const uint8_t *p = data;
    while (n) {
        size_t chunk = (size_t)CAI_MIN(n, (uint64_t)1 << 30);
        ssize_t r = pwrite(fd, p, chunk, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (r == 0)
            return EIO;
        p += r;
        off += (uint64_t)r;
        n -= (uint64_t)r;
    }
    return 0;
}

/* Gives the finished file its name: link the unnamed file (or rename the
 * named one) over the destination, then sync the folder. */
static int out_publish(struct outfile *o, struct cai_error *err)
{
    if (fsync(o->fd) != 0)
        return io_fail(err, o->path, errno, "fsync");
    if (o->unnamed) {
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
        for (unsigned n = 0; n < 100; n++) {
            char *t = tmp_name(o->path, n);
            if (!t)
                return cai__fail(err, CAI_ENOMEM, "%s: out of memory", o->path);
            if (linkat(AT_FDCWD, proc, AT_FDCWD, t, AT_SYMLINK_FOLLOW) == 0) {
                o->tmp = t;
                break;
            }
            int e = errno;
            cai__free(t);
            if (e != EEXIST)
                return io_fail(err, o->path, e, "linking the temporary file");
        }
        if (!o->tmp)
            return io_fail(err, o->path, EEXIST, "linking the temporary file");
    }
    if (rename(o->tmp, o->path) != 0)
        return io_fail(err, o->path, errno, "rename");
    cai__free(o->tmp);
    o->tmp = NULL;
    close(o->fd);
    o->fd = -1;
    int dfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd); /* best effort: the file is complete either way */
        close(dfd);
    }
    cai__free(o->dir);
    o->dir = NULL;
    return 0;
}

/* ---- write ------------------------------------------------------------------- */

static int write_tensor(struct cai_cam_writer *w, struct outfile *o, struct wtensor *t,
                        uint64_t file_off, uint64_t *checksum, uint64_t *done, uint64_t total,
                        cai_cam_progress_fn progress, void *user, struct cai_error *err)
{
    void *buf = NULL;
    const uint8_t *src = t->data;
    (void)w;
    if (!src) {
        buf = cai__malloc(t->n_bytes ? (size_t)t->n_bytes : 1);
        if (!buf)
            return cai__fail(err, CAI_ENOMEM, "%s: out of memory for tensor \"%s\" (%" PRIu64
                             " bytes)", o->path, t->name, t->n_bytes);
        int rc = t->fill(t->user, buf, t->n_bytes, err);
        if (rc) {
            cai__free(buf);
            return rc < 0 ? rc : cai__fail(err, CAI_EIO, "tensor \"%s\": source failed", t->name);
        }
        src = buf;
    }
    struct cai_xxh64 h;
    cai__xxh64_init(&h, 0);
    uint64_t pos = 0;
    while (pos < t->n_bytes) {
        uint64_t n = CAI_MIN(t->n_bytes - pos, (uint64_t)W_CHUNK);
        cai__xxh64_update(&h, src + pos, (size_t)n);
        int e = pwrite_all(o->fd, src + pos, n, file_off + pos);
        if (e) {
            cai__free(buf);
            return io_fail(err, o->path, e, "write");
        }
        pos += n;
        *done += n;
        if (progress)
            progress(user, *done, total);
    }
    *checksum = cai__xxh64_digest(&h);
    cai__free(buf);
    return 0;
}

int cai__cam_writer_write(struct cai_cam_writer *w, const char *path, cai_cam_progress_fn progress,
                          void *user, struct cai_error *err)
{
    struct cai__wbuf dir = {0}, table = {0};
    struct outfile o = {.fd = -1};
    uint64_t a = w->alignment, table_end, dir_offset, data_offset, file_bytes, data_end = 0;
    int rc = 0;

    if (!encode_dir(w, &dir)) {
        cai__free(dir.p);
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory encoding the directory", path);
    }
    if (w->n_tensors) {
        const struct wtensor *last = &w->tensors[w->n_tensors - 1];
        data_end = last->offset + last->n_bytes; /* checked in encode_dir */
    }
    if (!cai__mul_u64(w->n_tensors, CAI_CAM_ENTRY_BYTES, &table_end) ||
        !cai__add_u64(table_end, CAI_CAM_HEADER_BYTES, &table_end) ||
        !align_up(table_end, a, &dir_offset) ||
        !align_up(dir_offset + dir.n, a, &data_offset) ||
        !cai__add_u64(data_offset, data_end, &file_bytes)) {
        cai__free(dir.p);
        return cai__fail(err, CAI_EINVAL, "%s: the model is too large for one file", path);
    }
    if (!cai__wb_reserve(&table, (size_t)(table_end - CAI_CAM_HEADER_BYTES))) {
        cai__free(dir.p);
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
    }

    if ((rc = out_open(&o, path, err)) < 0)
        goto done;
    int e = 0;
#ifdef __linux__
    /* Reserve the whole file: a full disk or the size limit fails here,
     * before any work. File systems without fallocate skip this. */
    if (file_bytes) {
        int r = posix_fallocate(o.fd, 0, (off_t)file_bytes);
        if (r == ENOSPC || r == EFBIG || r == EDQUOT)
            e = r;
    }
    if (file_bytes && !e && ftruncate(o.fd, (off_t)file_bytes) != 0)
        e = errno;
#else
    if (ftruncate(o.fd, (off_t)file_bytes) != 0)
        e = errno;
#endif
    if (!e)
        e = pwrite_all(o.fd, dir.p, dir.n, dir_offset);
    if (e) {
        rc = io_fail(err, path, e, "write");
        goto done;
    }
    uint64_t total = cai__cam_writer_data_bytes(w), done_bytes = 0;
    if (progress)
        progress(user, 0, total);
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        struct wtensor *t = &w->tensors[i];
        struct cai_cam_entry ent = {.offset = data_offset + t->offset, .n_bytes = t->n_bytes,
                                    .layout = 0, .flags = t->flags};
        rc = write_tensor(w, &o, t, ent.offset, &ent.checksum, &done_bytes, total, progress,
                          user, err);
        if (rc)
            goto done;
        cai__cam_entry_encode(&ent, table.p + table.n);
        table.n += CAI_CAM_ENTRY_BYTES;
    }

    struct cai_xxh64 hs;
    cai__xxh64_init(&hs, 0);
    cai__xxh64_update(&hs, table.p, table.n);
    cai__xxh64_update(&hs, dir.p, dir.n);
    struct cai_cam_header h = {
        .version_major = CAI_CAM_VERSION_MAJOR,
        .version_minor = CAI_CAM_VERSION_MINOR,
        .header_bytes = CAI_CAM_HEADER_BYTES,
        .alignment = w->alignment,
        .checksum_kind = CAI_CAM_CHECKSUM_XXH64,
        .file_bytes = file_bytes,
        .n_tensors = w->n_tensors,
        .table_offset = CAI_CAM_HEADER_BYTES,
        .dir_offset = dir_offset,
        .dir_bytes = dir.n,
        .data_offset = data_offset,
        .data_bytes = file_bytes - data_offset,
        .meta_checksum = cai__xxh64_digest(&hs),
    };
    uint8_t hb[CAI_CAM_HEADER_BYTES];
    cai__cam_header_encode(&h, hb);
    e = pwrite_all(o.fd, table.p, table.n, CAI_CAM_HEADER_BYTES);
    if (!e)
        e = pwrite_all(o.fd, hb, sizeof(hb), 0);
    if (e) {
        rc = io_fail(err, path, e, "write");
        goto done;
    }
    rc = out_publish(&o, err);
done:
    if (rc)
        out_abort(&o);
    cai__free(dir.p);
    cai__free(table.p);
    return rc;
}
