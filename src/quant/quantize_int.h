/* quantize_int.h: state shared by quantize.c (the pipeline and the writer)
 * and mixed.c (sensitivity and the bits-per-weight allocation). */
#ifndef CAI_QUANTIZE_INT_H
#define CAI_QUANTIZE_INT_H

#include "coreai_quant.h"
#include "quant_int.h"

/* The seven weight matrices of a layer. */
enum cai__qrole {
    CAI__QR_Q = 0,
    CAI__QR_K,
    CAI__QR_V,
    CAI__QR_O,
    CAI__QR_GATE,
    CAI__QR_UP,
    CAI__QR_DOWN,
    CAI__QR_COUNT
};

/* One tensor of the output file, in the source's order. */
struct cai__qt {
    char                          name[72];
    const struct cai_gguf_tensor *src;
    uint32_t                      n_dims;
    int64_t                       ne[4];
    uint32_t                      type;      /* as written */
    int                           layer;     /* -1 outside the layers */
    int                           role;      /* enum cai__qrole, or -1 */
    bool                          quant;     /* converted (else copied, or a modified f32 vector) */
    uint32_t                      want;      /* the format chosen for it */
    void                         *data;      /* owned output bytes; NULL: the source's bytes */
    size_t                        n_bytes, row_bytes;
    double                        rel_err, sens;
    float                         alpha;
    bool                          done, reported;
};

struct cai__qmixed; /* mixed.c */

struct cai__qctx {
    const struct cai_quant_params *p;
    struct cai_model              *m;
    const struct cai_kernels      *k;
    struct cai_pool               *pool;
    struct cai__qt                *t;
    int                            n_t;
    int                            idx[CAI__MAX_LAYERS][CAI__QR_COUNT]; /* into t */
    int                            seq_len;
    int32_t                       *cal;   /* [n_cal] calibration tokens, whole sequences */
    int64_t                        n_cal;
    char                           digest[72];
    int                            n_done, n_todo;
    struct cai__qmixed            *mixed;
    int32_t                       *perm;  /* residual channel order (new -> old) or NULL */
};

const char               *cai__qrole_name(int role);
const struct cai__weight *cai__qrole_weight(const struct cai_model *m, int layer, int role);
void cai__qprogress(struct cai__qctx *c, const char *stage, uint64_t done, uint64_t total);
void cai__qreport(struct cai__qctx *c, struct cai__qt *t);
int  cai__qdequant(const struct cai_kernels *k, const struct cai__weight *w, float *dst);
int  cai__qembed(struct cai__qctx *c, const int32_t *tokens, int64_t n, float *x);
/* An owned, writable f32 copy of a 1-D f32 tensor (the output's bytes);
 * norms come in the residual channel order c->perm. NULL on failure. */
float *cai__qown_f32(struct cai__qctx *c, struct cai__qt *t, struct cai_error *err);
struct cai__qt *cai__qfind(struct cai__qctx *c, const char *name);
/* The output matrix in f32, columns in the order c->perm. */
int  cai__qload_output(struct cai__qctx *c, float *dst);
/* Layer matrix (layer, role) in f32, in the residual channel order c->perm. */
int  cai__qload_matrix(struct cai__qctx *c, int layer, int role, float *dst);
int  cai__qrtn_matrix(struct cai__qctx *c, struct cai__qt *t, uint32_t type, const float *W,
                      const float *imp, struct cai_error *err);
/* The calibrated pass over all layers; fp_layers (NULL: dequantize from the
 * source) holds [n_layer * CAI__QR_COUNT] f32 matrices. */
int  cai__qcalibrated(struct cai__qctx *c, float *const *fp_layers, struct cai_error *err);

/* mixed.c: measures sensitivities, sets every layer matrix's `want` for the
 * budget, then runs the calibrated pass. */
int  cai__qmixed_plan(struct cai__qctx *c, float target_bpw, double *predicted_kld,
                      struct cai_error *err);
void cai__qmixed_free(struct cai__qctx *c);
/* Parses the mixed candidate list (see cai_quant_params.formats). */
int  cai__qmixed_formats(const char *list, bool allowed[8], struct cai_error *err);

#endif /* CAI_QUANTIZE_INT_H */
