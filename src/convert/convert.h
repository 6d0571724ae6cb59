/* convert.h: converters that write .coreaimodel files.
 *
 *  - cai__convert_gguf: lossless import of a GGUF file (every key/value and
 *    every tensor byte kept; general.alignment replaced by the file's page
 *    alignment; coreai.* provenance keys added).
 *  - cai__convert_hf: a Hugging Face decoder-only model folder (config.json,
 *    tokenizer.json, tokenizer_config.json, model.safetensors or sharded
 *    safetensors with their index, or pytorch_model.bin) or a single PyTorch
 *    checkpoint with a config, into the engine's GGUF names and hparams.
 *
 * Both write through the atomic .coreaimodel writer: a failed or killed
 * conversion leaves no output file. Library code: nothing is printed; the
 * progress callback (may be NULL) reports bytes of tensor data written. */
#ifndef CAI_CONVERT_H
#define CAI_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/base.h"
#include "../format/coreaimodel_write.h"

#define CAI_CONVERTER_NAME "coreai-torch 0.1.0"

/* Output tensor type for weight matrices and embeddings (1-D tensors such
 * as norms and biases are always f32, as the engine computes them). */
enum cai_convert_dtype {
    CAI_CONVERT_AUTO = 0, /* keep the checkpoint's dtype (f32, f16 or bf16) */
    CAI_CONVERT_F32,
    CAI_CONVERT_F16,
    CAI_CONVERT_BF16,
};

struct cai_convert_params {
    const char         *model;        /* folder or checkpoint file */
    const char         *config;       /* config.json; NULL: <model folder>/config.json */
    const char         *tokenizer_dir;/* NULL: the model folder (or the checkpoint's folder) */
    const char         *architecture; /* "decoder-only" (the only one today) or NULL */
    const char         *output;       /* .coreaimodel path */
    int                 dtype;        /* enum cai_convert_dtype */
    uint32_t            alignment;    /* 0: the default */
    cai_cam_progress_fn progress;
    void               *progress_user;
};

int cai__convert_gguf(const char *in_path, const char *out_path, uint32_t alignment,
                      cai_cam_progress_fn progress, void *user, struct cai_error *err);

int cai__convert_hf(const struct cai_convert_params *p, struct cai_error *err);

#endif /* CAI_CONVERT_H */
