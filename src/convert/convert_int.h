/* convert_int.h: internals shared by the converter's files.
 *
 * A checkpoint, whatever its container (safetensors files, a PyTorch zip),
 * is seen as a list of source tensors: a dtype, a shape, element strides and
 * a pointer to the bytes of the storage they index. Every source validates
 * its tensors when it is opened (each element index falls inside the
 * storage), so gathering needs no further checks. */
#ifndef CAI_CONVERT_INT_H
#define CAI_CONVERT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/base.h"
#include "../base/json.h"
#include "../format/coreaimodel_write.h"

#define CAI_SRC_MAX_DIMS 8

struct cai_src_tensor {
    char          *name;     /* Hugging Face name, owned */
    int            dtype;    /* enum cai_st_dtype: F32, F16 or BF16 are converted */
    uint32_t       n_dims;
    int64_t        shape[CAI_SRC_MAX_DIMS];  /* outermost first */
    int64_t        stride[CAI_SRC_MAX_DIMS]; /* in elements, >= 0 */
    uint64_t       n_elem;
    const uint8_t *storage;  /* the storage's first byte (may be unaligned) */
    uint64_t       offset;   /* in elements */
};

/* All tensors of a checkpoint, sorted by name, plus what keeps them alive. */
struct cai_src {
    struct cai_src_tensor *tensors;
    uint64_t               n_tensors;
    size_t                 cap;
    const char            *format;  /* "safetensors" or "pytorch" */
    void                 **owners;  /* opened files, closed by cai__src_close */
    void                 (**owner_close)(void *);
    uint32_t               n_owners;
};

/* Opens the weights of a model folder (model.safetensors, the sharded
 * safetensors index, or pytorch_model.bin, in that order of preference) or a
 * single checkpoint file (.safetensors, .pt/.pth/.bin). */
int  cai__src_open(struct cai_src *src, const char *path, struct cai_error *err);
void cai__src_close(struct cai_src *src);
const struct cai_src_tensor *cai__src_find(const struct cai_src *src, const char *name);
/* Appends a tensor (the name is copied); keeps the list unsorted until
 * cai__src_finish sorts it and refuses duplicates. */
int  cai__src_add(struct cai_src *src, const struct cai_src_tensor *t, struct cai_error *err);
int  cai__src_finish(struct cai_src *src, const char *what, struct cai_error *err);
int  cai__src_add_owner(struct cai_src *src, void *owner, void (*close_fn)(void *),
                        struct cai_error *err);
/* Gathers a source tensor (F32, F16 or BF16) into n_elem floats, row-major. */
void cai__src_read_f32(const struct cai_src_tensor *t, float *out);
/* True when every element index of t lies in a storage of n_storage_elems. */
bool cai__src_in_bounds(const struct cai_src_tensor *t, uint64_t n_storage_elems);

/* PyTorch checkpoint (zip) source: adds its tensors to src. */
int cai__src_add_torch(struct cai_src *src, const char *path, struct cai_error *err);

/* Adds the tokenizer.ggml.* keys (and tokenizer.chat_template) read from
 * `dir`/tokenizer.json and `dir`/tokenizer_config.json. n_vocab is the
 * embedding's row count: the vocabulary is padded to it. */
int cai__hf_tokenizer(struct cai_cam_writer *w, const char *dir, uint32_t n_vocab,
                      struct cai_error *err);

/* Reads `dir`/`name` and parses it as JSON; *j is NULL (and 1 returned) when
 * the file does not exist and !required. */
int cai__json_load(struct cai_json **j, const char *dir, const char *name, bool required,
                   struct cai_error *err);

#endif /* CAI_CONVERT_INT_H */
