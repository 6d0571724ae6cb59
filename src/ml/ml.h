/* ml.h: internals of the classic engine shared by its model-type files.
 *
 * A model is compiled at load into a flat list of nodes over a table of
 * slots. A slot is one named feature value (a pipeline input, or the output
 * of a node); a node is one leaf model (GLM, tree ensemble, scaler, neural
 * network...) that reads its input slots and writes its output slots. Names
 * are resolved to slot indexes once, at load: prediction walks the node list
 * and touches no strings. Pipelines simply append their members' nodes.
 *
 * Each model-type file provides one loader, `cml__load_<type>()`, which
 * decodes and validates the type's message, binds its inputs and outputs
 * through the helpers below and sets `run`. Loaders allocate only from the
 * model's arena; `run` allocates nothing and may assume everything the
 * loader validated. Runtime checks are left for what only the caller
 * controls: the inputs. */
#ifndef CML_ML_H
#define CML_ML_H

#include <math.h>

#include "../base/base.h"
#include "../format/mlmodel.h"
#include "coreml.h"

struct cml__exec;
struct cml__node;

typedef int (*cml__run_fn)(const struct cml__node *nd, struct cml__exec *x);
/* Optional: predicts x[n_rows][n_cols] straight into `out`, for a model that
 * is this one node with the model's own inputs. scratch: n_scratch doubles.
 * Returns 0 or CAI_EINVAL when n_cols does not fit (the caller then falls
 * back to the row-by-row path, which reports the error). */
typedef int (*cml__batch_fn)(const struct cml__node *nd, const double *x, size_t n_rows,
                             size_t n_cols, double *scratch, const struct cml_batch_out *out);

struct cml__node {
    uint32_t    type_field; /* enum cml__mm_type */
    const char *info;       /* one-line summary for `inspect` */
    size_t      n_in, n_out;
    int32_t    *in;  /* [n_in] slot indexes */
    int32_t    *out; /* [n_out] slot indexes */
    size_t      n_scratch; /* doubles of ctx scratch `run` may use */
    cml__run_fn   run;
    cml__batch_fn run_batch; /* NULL: row by row */
    const void   *impl;
    /* Classifiers: labels, and which of out[] is the label / the
     * probabilities (-1 when the model does not output it). */
    const struct cml__labels *labels;
    int                       label_out, probs_out;
    int                       values_out; /* regressors: out[] index of the value, or -1 */
};

struct cml__slot {
    const char        *name;
    struct cml_feature desc; /* declared type */
    size_t             cap;  /* doubles of ctx storage (0 for model inputs) */
    bool               is_input;
};

struct cml_model {
    struct cml__arena    arena;
    struct cml__mm_model top;
    struct cml__slot    *slots; /* [n_slots], cai__realloc'd */
    size_t               n_slots, cap_slots;
    struct cml__node    *nodes; /* [n_nodes], cai__realloc'd */
    size_t               n_nodes, cap_nodes;
    int32_t             *in_slot;  /* [n_inputs] */
    int32_t             *out_slot; /* [n_outputs] */
    size_t               n_scratch;
    const struct cml__labels *labels; /* classifier labels of the top model, or NULL */
    int                  label_output, probs_output, values_output;
    size_t               n_values;
    int                  class_node; /* node whose class index is the model's, or -1 */
    bool                 simd; /* evaluate with the AVX-512 kernels of simd.h (set at open) */
};

/* Per-context execution state. */
struct cml__exec {
    const struct cml_model *m;
    struct cml_value       *vals;    /* [n_slots] */
    double                **buf;     /* [n_slots] storage, slots[i].cap doubles */
    double                 *scratch; /* [m->n_scratch] */
    int                     class_index;
    struct cai_error       *err;
};

/* The build state while a model loads. */
struct cml__build {
    struct cml_model *m;
    struct cai_error *err;
    int               depth;
};

/* ---- used by loaders ------------------------------------------------------ */

/* Appends a zeroed node for `mm` and returns it (NULL on OOM). The pointer is
 * valid until the next cml__node_add. */
struct cml__node *cml__node_add(struct cml__build *b, const struct cml__mm_model *mm);
/* Resolves every input of mm's description to the latest slot with that
 * name. Fails, naming the feature, when a name is unknown. */
int cml__bind_inputs(struct cml__build *b, struct cml__node *nd, const struct cml__mm_model *mm);
/* Creates a slot for every output; caps[i] doubles of storage for output i
 * (NULL: each gets `cap_all`). */
int cml__bind_outputs(struct cml__build *b, struct cml__node *nd, const struct cml__mm_model *mm,
                      const size_t *caps, size_t cap_all);
/* For classifiers: finds the label and probability outputs by the
 * description's predicted names (falling back to the first int64/string and
 * the first dictionary output), checks their types against the labels. */
int cml__bind_classifier(struct cml__build *b, struct cml__node *nd,
                         const struct cml__mm_model *mm, const struct cml__labels *labels);
/* For regressors: the output holding the value (predictedFeatureName, else
 * the first numeric output). */
int cml__bind_regressor(struct cml__build *b, struct cml__node *nd,
                        const struct cml__mm_model *mm);
/* For a regressor's batch kernel: true when the node's value output holds
 * exactly n doubles per row (a DOUBLE scalar for n == 1, or a MULTIARRAY of
 * n elements), so the kernel may write n values per row where the row-by-row
 * path would have copied them. */
bool cml__batch_values_ok(const struct cml__build *b, const struct cml__node *nd, size_t n);
/* Element count of input `i` as declared (scalar 1, array shape product,
 * 0 when unknown). */
size_t cml__input_elems(const struct cml__build *b, const struct cml__node *nd, size_t i);
/* Formats nd->info in the arena. */
void cml__node_info(struct cml__build *b, struct cml__node *nd, const char *fmt, ...)
    CAI__PRINTF(3, 4);
const char *cml__sv(const struct cml__slot *s); /* slot name for messages */

/* Loads any model message (recursing into pipelines). */
int cml__load_model(struct cml__build *b, const struct cml__mm_model *mm);

/* Type loaders. */
int cml__load_glm(struct cml__build *b, const struct cml__mm_model *mm);
int cml__load_tree(struct cml__build *b, const struct cml__mm_model *mm);
int cml__load_svm(struct cml__build *b, const struct cml__mm_model *mm);
int cml__load_fe(struct cml__build *b, const struct cml__mm_model *mm);
int cml__load_nn(struct cml__build *b, const struct cml__mm_model *mm);

/* ---- used at run time -------------------------------------------------------- */

/* Gathers the node's numeric inputs (scalars and arrays, in order) as n
 * contiguous doubles. Returns the data (the input's own memory when there is
 * one array input, else `scratch`), or NULL with an error when the count or a
 * type is wrong. */
const double *cml__gather(struct cml__exec *x, const struct cml__node *nd, size_t n,
                          double *scratch);
/* Publishes n doubles already written to x->buf[slot] as the slot's value,
 * shaped by its declared type (DOUBLE/INT64 scalar or MULTIARRAY). */
void cml__publish(struct cml__exec *x, int32_t slot, size_t n);
/* Classifier output: probs[n_classes] (may already be x->buf of the probs
 * slot) -> label (argmax, first wins) and probability dictionary. */
void cml__publish_class(struct cml__exec *x, const struct cml__node *nd, const double *probs);
/* Where a classifier should compute its probabilities: the probs slot's
 * buffer, or `fallback`. */
double *cml__probs_buf(struct cml__exec *x, const struct cml__node *nd, double *fallback);
int     cml__run_fail(struct cml__exec *x, int code, const char *fmt, ...) CAI__PRINTF(3, 4);

/* Resizes (bilinear) and converts an IMAGE value to planar floats in 0..255:
 * out[C][height][width], C = 3 for RGB/BGR (in that channel order), 1 for
 * grayscale. */
void cml__image_to_planar(const struct cml_value *img, int width, int height,
                          enum cml_color_space cs, float *out);

static inline double cml__sigmoid(double v)
{
    return 1.0 / (1.0 + exp(-v));
}
static inline double cml__probit(double v)
{
    return 0.5 * erfc(-v / sqrt(2.0));
}

#endif /* CML_ML_H */
