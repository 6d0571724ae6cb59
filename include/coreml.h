/* coreml.h: the public C API of the coreai classic engine ("Core ML on Linux").
 *
 * Opens Apple Core ML models (.mlmodel files, or an .mlpackage folder whose
 * model is one of the supported types), describes their inputs and outputs,
 * and predicts one example or a batch:
 *
 *     struct cml_model *m;  struct cai_error err;
 *     if (cml_model_open(&m, "iris.mlmodel", &err) < 0) { puts(err.msg); ... }
 *     struct cml_ctx *ctx;  cml_ctx_new(&ctx, m, &err);
 *     double x[4] = {5.1, 3.5, 1.4, 0.2};
 *     struct cml_value in = cml_value_array(x, 4);
 *     if (cml_predict(ctx, &in, 1) == 0) {
 *         const struct cml_value *label = cml_ctx_output(ctx, 0);  ...
 *     }
 *
 * Supported model types: GLMRegressor/Classifier, TreeEnsembleRegressor/
 * Classifier, SupportVectorRegressor/Classifier, Pipeline, PipelineClassifier,
 * PipelineRegressor, Scaler, Normalizer, OneHotEncoder, Imputer,
 * ArrayFeatureExtractor, FeatureVectorizer, DictVectorizer, Identity, and
 * NeuralNetwork/Classifier/Regressor (the layer subset in docs/COREML.md).
 *
 * Errors. Functions return 0 (or a count) on success and a negative CAI_E*
 * code from coreai.h on failure; the codes and `struct cai_error` are shared
 * with the generative API. Where no object exists yet, an optional
 * `struct cai_error *` receives a one-line reason naming the field at fault
 * ("TreeEnsembleParameters.nodes[12] (tree 3 node 5): trueChildNodeId 99 is
 * not a node of tree 3"). A context keeps the message of its last failed
 * prediction (cml_ctx_errmsg). The library never prints, exits or aborts.
 *
 * Threads and memory. A `struct cml_model` is immutable once opened: share it
 * read-only across any number of threads. Predictions run on a
 * `struct cml_ctx`, which owns all scratch and output memory, is sized once
 * at cml_ctx_new() and is used by one thread at a time; cml_predict() and
 * cml_predict_batch() allocate nothing. Create one context per thread. */
#ifndef COREML_H
#define COREML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coreai.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CML_MAX_DIMS 8

/* Feature types; the values are the FeatureType oneof field numbers. */
enum cml_type {
    CML_TYPE_INVALID = 0,
    CML_TYPE_INT64 = 1,
    CML_TYPE_DOUBLE = 2,
    CML_TYPE_STRING = 3,
    CML_TYPE_IMAGE = 4,
    CML_TYPE_MULTIARRAY = 5,
    CML_TYPE_DICT = 6,
    CML_TYPE_SEQUENCE = 7,
    CML_TYPE_STATE = 8,
};

/* MultiArray element types as the model declares them (ArrayDataType).
 * Values cross the API as doubles whatever the declared type. */
enum cml_array_type {
    CML_ARRAY_INVALID = 0,
    CML_ARRAY_FLOAT32 = 65568,
    CML_ARRAY_DOUBLE = 65600,
    CML_ARRAY_INT32 = 131104,
    CML_ARRAY_INT8 = 131080,
    CML_ARRAY_FLOAT16 = 65552,
};

enum cml_color_space {
    CML_COLOR_INVALID = 0,
    CML_COLOR_GRAYSCALE = 10,
    CML_COLOR_RGB = 20,
    CML_COLOR_BGR = 30,
    CML_COLOR_GRAYSCALE_F16 = 40,
};

/* One input or output feature as the model describes it. */
struct cml_feature {
    const char   *name;
    const char   *description; /* "" when none */
    enum cml_type type;
    bool          optional;
    /* MULTIARRAY */
    enum cml_array_type array_type;
    int                 n_dims;               /* 0: shape not given */
    int64_t             shape[CML_MAX_DIMS];  /* [n_dims] */
    bool                flexible;             /* enumerated shapes or ranges declared */
    /* IMAGE */
    int64_t              width, height;
    enum cml_color_space color_space;
    /* DICT: key type; SEQUENCE: element type (CML_TYPE_INT64 or _STRING) */
    enum cml_type key_type;
};

/* A feature value, given as input or read as output.
 *
 * INT64: i64. DOUBLE: f64. STRING: str (NUL-terminated).
 * MULTIARRAY: data[n_elem] doubles, row-major, with n_dims/shape (n_dims may
 *   be 0 on input: the model's declared shape is used).
 * DICT: n_elem entries; keys in keys_i64 or keys_str (by the model's key
 *   type), values in data.
 * IMAGE: 8-bit pixels, `channels` 1 (gray), 3 (RGB) or 4 (RGBA), rows
 *   `stride` bytes apart; resized and converted to the model's color space.
 * Output values point into memory owned by the context, valid until its next
 * prediction; input values are borrowed for the call. */
struct cml_value {
    enum cml_type type;
    int64_t       i64;
    double        f64;
    const char   *str;
    const double *data;
    size_t        n_elem;
    int           n_dims;
    int64_t       shape[CML_MAX_DIMS];
    const int64_t      *keys_i64;
    const char *const  *keys_str;
    const uint8_t *pixels;
    int            width, height, channels;
    size_t         stride;
};

static inline struct cml_value cml_value_double(double v)
{
    struct cml_value x = {0};
    x.type = CML_TYPE_DOUBLE;
    x.f64 = v;
    return x;
}
static inline struct cml_value cml_value_int64(int64_t v)
{
    struct cml_value x = {0};
    x.type = CML_TYPE_INT64;
    x.i64 = v;
    return x;
}
static inline struct cml_value cml_value_string(const char *s)
{
    struct cml_value x = {0};
    x.type = CML_TYPE_STRING;
    x.str = s;
    return x;
}
static inline struct cml_value cml_value_array(const double *data, size_t n_elem)
{
    struct cml_value x = {0};
    x.type = CML_TYPE_MULTIARRAY;
    x.data = data;
    x.n_elem = n_elem;
    x.n_dims = 1;
    x.shape[0] = (int64_t)n_elem;
    return x;
}

/* ---- models ------------------------------------------------------------- */

struct cml_model;

/* Opens the .mlmodel file (or .mlpackage folder) at `path`. The whole model
 * is decoded and validated here (every length, index, tree structure and
 * shape), so prediction runs without checks on the model. On failure returns
 * a negative CAI_E* code, sets *out to NULL and fills `err` (may be NULL). */
CAI_API int cml_model_open(struct cml_model **out, const char *path, struct cai_error *err);
/* The same from a serialized Model message in memory; the bytes are read
 * during the call only (the model keeps no pointer into them). */
CAI_API int cml_model_open_buffer(struct cml_model **out, const void *data, size_t n_bytes,
                                  struct cai_error *err);
/* NULL is a no-op. No context of the model may be in use. */
CAI_API void cml_model_close(struct cml_model *m);

CAI_API int         cml_model_spec_version(const struct cml_model *m);
/* Model.Type name of the top model ("pipelineClassifier", "glmRegressor"). */
CAI_API const char *cml_model_type_name(const struct cml_model *m);
/* Metadata.shortDescription / author / license / versionString, "" if none. */
CAI_API const char *cml_model_metadata(const struct cml_model *m, const char *key);

CAI_API size_t                    cml_model_n_inputs(const struct cml_model *m);
CAI_API const struct cml_feature *cml_model_input(const struct cml_model *m, size_t i);
CAI_API size_t                    cml_model_n_outputs(const struct cml_model *m);
CAI_API const struct cml_feature *cml_model_output(const struct cml_model *m, size_t i);
/* Index of the input/output named `name`, or -1. */
CAI_API int cml_model_find_input(const struct cml_model *m, const char *name);
CAI_API int cml_model_find_output(const struct cml_model *m, const char *name);
/* ModelDescription.predictedFeatureName / predictedProbabilitiesName as
 * output indexes, or -1 when the model has none. */
CAI_API int cml_model_label_output(const struct cml_model *m);
CAI_API int cml_model_probs_output(const struct cml_model *m);

/* Classifiers: number of classes (0 for other models) and their labels, in
 * the order of the probability outputs. A label is an int64 or a string. */
CAI_API size_t      cml_model_n_classes(const struct cml_model *m);
CAI_API bool        cml_model_labels_are_strings(const struct cml_model *m);
CAI_API const char *cml_model_class_str(const struct cml_model *m, size_t i);
CAI_API int64_t     cml_model_class_i64(const struct cml_model *m, size_t i);

/* Number of leaf models (pipeline members count individually) and the
 * type name of the i-th, for `coreml inspect`. */
CAI_API size_t      cml_model_n_parts(const struct cml_model *m);
CAI_API const char *cml_model_part_name(const struct cml_model *m, size_t i);
/* A one-line summary of the i-th part ("100 trees, 1492 nodes, depth 6"). */
CAI_API const char *cml_model_part_info(const struct cml_model *m, size_t i);

/* ---- prediction ---------------------------------------------------------- */

struct cml_ctx;

/* A context for predicting with `m` on one thread at a time. The model must
 * outlive it. All memory a prediction needs is allocated here. */
CAI_API int  cml_ctx_new(struct cml_ctx **out, const struct cml_model *m, struct cai_error *err);
CAI_API void cml_ctx_free(struct cml_ctx *c);

/* Predicts one example. `inputs` holds one value per model input, in
 * cml_model_input() order. Returns 0 or a negative CAI_E* code (a wrong
 * type or feature count is CAI_EINVAL; the reason is in cml_ctx_errmsg()). */
CAI_API int cml_predict(struct cml_ctx *c, const struct cml_value *inputs, size_t n_inputs);
/* The i-th model output of the last successful prediction. */
CAI_API const struct cml_value *cml_ctx_output(const struct cml_ctx *c, size_t i);
/* Classifiers: index into the class labels of the last prediction, or -1. */
CAI_API int cml_ctx_class_index(const struct cml_ctx *c);
/* Reason for the last failure, "" after a success. Owned by the context. */
CAI_API const char *cml_ctx_errmsg(const struct cml_ctx *c);

/* Where cml_predict_batch() writes. Any pointer may be NULL to skip it.
 * class_index: [n_rows] (classifiers); probs: [n_rows][n_classes];
 * values: [n_rows][n_values] where n_values = cml_model_n_values(). */
struct cml_batch_out {
    int32_t *class_index;
    double  *probs;
    double  *values;
};
/* Numeric outputs per row for regressors (the predicted feature's element
 * count), 0 for other models. */
CAI_API size_t cml_model_n_values(const struct cml_model *m);

/* Predicts n_rows examples given as a dense row-major matrix
 * x[n_rows][n_cols]. The model's inputs must be numeric: either one
 * MultiArray of n_cols elements, or n_cols scalar (double/int64) inputs.
 * Returns the number of rows predicted, or a negative code (the first failing
 * row is named in cml_ctx_errmsg()). Allocates nothing.
 *
 * A model that is one GLM, tree ensemble, SVM or NeuralNetwork predicts the
 * rows in blocks (AVX-512 kernels where the CPU has them); others go row by
 * row. Either way each row's results are bit-identical to cml_predict()'s on
 * the same input, whatever n_rows and the row's place in the batch. */
CAI_API long cml_predict_batch(struct cml_ctx *c, const double *x, size_t n_rows, size_t n_cols,
                               const struct cml_batch_out *out);

/* ---- images ---------------------------------------------------------------- */

/* Decodes a PNG or JPEG file (libpng / libjpeg) into an IMAGE value with 8-bit
 * pixels, 1 (gray), 3 (RGB) or 4 (RGBA) channels. The pixels are allocated;
 * release them with cml_image_free(). CAI_EUNSUPPORTED when the build has no
 * decoder for the format. A model resizes the image to its declared size
 * (bilinear) and converts it to its color space at prediction time. */
CAI_API int  cml_image_load(struct cml_value *out, const char *path, struct cai_error *err);
CAI_API void cml_image_free(struct cml_value *v);

#ifdef __cplusplus
}
#endif
#endif /* COREML_H */
