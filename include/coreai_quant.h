/* coreai_quant.h: the quantizer's public API (coreai-optimization).
 *
 * cai_quantize() reads a model (GGUF or .coreaimodel), quantizes its weight
 * matrices into the engine's block formats and writes a new model file
 * (.gguf when the output name ends in ".gguf", else .coreaimodel). Methods
 * and parameters are described in docs/QUANTIZATION.md. Conventions as in
 * coreai.h: 0 or a negative CAI_E* code, a one-line reason in err, nothing
 * printed. */
#ifndef COREAI_QUANT_H
#define COREAI_QUANT_H

#include "coreai.h"

#ifdef __cplusplus
extern "C" {
#endif

enum cai_quant_precision {
    CAI_QUANT_F16 = 0, /* every weight matrix to f16 (a dequantized source) */
    CAI_QUANT_INT8,    /* q8_0, group-wise round-to-nearest (GPTQ with calibration) */
    CAI_QUANT_INT4,    /* q4_0 (q4_K where rows are multiples of 256); calibrated: AWQ + GPTQ */
    CAI_QUANT_MIXED,   /* per-tensor formats chosen from measured sensitivity for target_bpw */
};

/* Parses "f16", "int8", "int4", "mixed"; -1 when unknown. */
CAI_API int cai_quant_precision_parse(const char *name);
/* The valid --target-device names, NULL-terminated. */
CAI_API const char *const *cai_quant_devices(void);

/* Progress of a long stage ("calibrate", "sensitivity", "quantize", "write"). */
typedef void (*cai_quant_progress_fn)(void *user, const char *stage, uint64_t done, uint64_t total);

/* One weight tensor as written. */
struct cai_quant_tensor {
    const char *name;
    const char *type;     /* "q4_0", ... */
    int64_t     n_elem;
    double      bpw;
    /* Relative error: with calibration, the output error of the matmul on
     * the calibration inputs, |dW x|^2 / |W x|^2 (measured with the input's
     * X^T X on up to 128 rows); without, the weights' |dW|^2 / |W|^2. */
    double      rel_err;
    float       awq_alpha;   /* AWQ exponent chosen (0: no scaling); -1 when not run */
    double      sens;        /* mixed: measured KLD with only this tensor at its lowest format; else 0 */
};
typedef void (*cai_quant_tensor_fn)(void *user, const struct cai_quant_tensor *t);

struct cai_quant_params {
    int         precision;        /* enum cai_quant_precision */
    const char *calibration_path; /* plain text, or NULL (round-to-nearest) */
    float       target_bpw;       /* mixed: bits per weight over the 2-D weights (> 0, required) */
    const char *target_device;    /* NULL or "cpu" (default), "ref", "avx2", "avx512" */
    bool        awq;              /* activation-aware scaling (with calibration); default true */
    bool        gptq;             /* error-compensating rounding (with calibration); default true */
    bool        reorder;          /* with calibration: regroup residual and feed-forward channels
                                   * by activation size (exact); default false */
    int         n_calib_tokens;   /* most calibration tokens used (default 4096) */
    int         seq_len;          /* calibration sequence length (default 512) */
    int         n_sens_tokens;    /* mixed: tokens of the per-tensor KLD probe (default 64) */
    float       damp;             /* GPTQ damping, fraction of mean diag(H) (default 0.01) */
    int         awq_grid;         /* alpha grid points past 0 (default 10) */
    int         awq_rows;         /* rows per matrix in the AWQ error (default 32) */
    int         n_threads;        /* 0: all online CPUs */
    const char *formats;          /* mixed: comma-separated candidate formats (e.g.
                                   * "q4_0,q4_K,q5_0,q6_K,q8_0"); NULL: all of q4_0, q4_K,
                                   * q4_1, q5_0, q5_K, q5_1, q6_K, q8_0 */
    int         embd_type;        /* token embedding / output matrix: a CAI type id
                                   * (q8_0 = 8, f16 = 1, ...), or -1 for the default
                                   * (q8_0; f16 for precision f16) */
    /* Input of the output head (the logits matmul): 1 f32 as computed, 0
     * rounded to 8 bits per block like every other matmul input (llama.cpp's
     * arithmetic), -1 (default) f32 for int8 and 8-bit otherwise. Stored as
     * the file key coreai.head.f32_input; ignored for precision f16.
     * docs/QUANTIZATION.md, "Head input". */
    int         head_f32_input;
    cai_quant_progress_fn progress;
    cai_quant_tensor_fn   on_tensor;
    void                 *user;
};
CAI_API struct cai_quant_params cai_quant_params_default(void);

struct cai_quant_summary {
    int      n_tensors;        /* weight matrices written */
    uint64_t n_weights;        /* elements of the 2-D weights */
    double   bpw;              /* bits per weight over the 2-D weights (docs/FORMAT.md) */
    double   bpw_all;          /* over every tensor (llama-quantize's figure) */
    double   mean_rel_err;     /* mean over the quantized matrices */
    double   max_rel_err;
    char     worst[72];        /* the matrix with max_rel_err */
    uint64_t calib_tokens;     /* 0 without calibration */
    double   predicted_kld;    /* mixed: the allocation's predicted KLD (sum of parts) */
    double   seconds;
    char     method[32];       /* as recorded in coreai.quantization.method */
};

/* Quantizes in_path into out_path (atomically written). */
CAI_API int cai_quantize(const char *in_path, const char *out_path,
                         const struct cai_quant_params *p, struct cai_quant_summary *summary,
                         struct cai_error *err);

#ifdef __cplusplus
}
#endif
#endif /* COREAI_QUANT_H */
