/* zip.h: a validating, zero-copy reader for the ZIP archives torch.save
 * writes (PyTorch checkpoints, .pt/.pth/.bin since PyTorch 1.6).
 *
 * Only STORED (uncompressed) entries are supported, which is what torch.save
 * writes: their bytes are used in place from the mapping. ZIP64 end records
 * and extra fields are understood (torch uses them for files > 4 GiB).
 * Refused, with a message naming the entry: compressed or encrypted entries,
 * multi-disk archives, names that are empty, contain NUL or backslashes,
 * start with '/', or have a ".." component, duplicate names, sizes that
 * disagree (stored entries have equal compressed and uncompressed sizes),
 * local headers that do not match the central directory, data outside the
 * file or overlapping another entry or the central directory, and counts
 * that cannot fit. The central directory is the authority (torch writes
 * sizes only there and in data descriptors). */
#ifndef CAI_ZIP_H
#define CAI_ZIP_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/base.h"

struct cai_zip_entry {
    char          *name;    /* NUL-terminated */
    uint64_t       offset;  /* of the entry's data in the file */
    uint64_t       n_bytes;
    uint32_t       crc32;   /* as recorded; see cai__zip_check_crc */
    const uint8_t *data;
};

struct cai_zip {
    char                 *path;
    struct cai_map        map;
    uint64_t              n_entries;
    struct cai_zip_entry *entries; /* sorted by name */
};

int  cai__zip_open(struct cai_zip **out, const char *path, struct cai_error *err);
int  cai__zip_open_buffer(struct cai_zip **out, const void *data, uint64_t n_bytes,
                          const char *name, struct cai_error *err);
void cai__zip_close(struct cai_zip *z); /* NULL is a no-op */

const struct cai_zip_entry *cai__zip_find(const struct cai_zip *z, const char *name);
/* Checks an entry's CRC-32; CAI_EFORMAT naming it when it does not match. */
int cai__zip_check_crc(const struct cai_zip *z, const struct cai_zip_entry *e,
                       struct cai_error *err);
uint32_t cai__crc32(uint32_t crc, const void *data, uint64_t n_bytes);

#endif /* CAI_ZIP_H */
