/* mlmodel.h: the Core ML .mlmodel schema walker.
 *
 * Decodes the parts of the Model message every model type shares: the
 * specification version, the ModelDescription (inputs, outputs, their
 * FeatureTypes, the predicted-feature names, metadata) and which member of
 * the Model.Type oneof is present, with a cursor over its bytes. The engine
 * (src/ml/) decodes each type's own message with the helpers below. Field
 * numbers are those of Apple's public Core ML specification (see
 * docs/COREML.md); no .proto file is used.
 *
 * Memory: everything decoded is allocated from a `struct cml__arena`, which
 * the model owns and frees in one go. Strings are copied and NUL-terminated;
 * numeric arrays are copied and aligned (the file's bytes are not). */
#ifndef CML_MLMODEL_H
#define CML_MLMODEL_H

#include "../base/base.h"
#include "coreml.h"
#include "protobuf.h"

/* ---- arena -------------------------------------------------------------- */

struct cml__arena_chunk;
struct cml__arena {
    struct cml__arena_chunk *head;
    size_t                   n_bytes; /* total handed out, for `inspect` */
};

/* Zeroed, 16-byte aligned memory that lives until cml__arena_free(). NULL on
 * OOM or size overflow. */
void *cml__arena_alloc(struct cml__arena *a, size_t n_bytes);
void *cml__arena_array(struct cml__arena *a, size_t n, size_t size);
char *cml__arena_strndup(struct cml__arena *a, const char *s, size_t n);
void  cml__arena_free(struct cml__arena *a);

/* ---- Model.Type oneof field numbers --------------------------------------- */

enum cml__mm_type {
    CML__MM_PIPELINE_CLASSIFIER = 200,
    CML__MM_PIPELINE_REGRESSOR = 201,
    CML__MM_PIPELINE = 202,
    CML__MM_GLM_REGRESSOR = 300,
    CML__MM_SVR = 301,
    CML__MM_TREE_REGRESSOR = 302,
    CML__MM_NN_REGRESSOR = 303,
    CML__MM_BAYESIAN_PROBIT = 304,
    CML__MM_GLM_CLASSIFIER = 400,
    CML__MM_SVC = 401,
    CML__MM_TREE_CLASSIFIER = 402,
    CML__MM_NN_CLASSIFIER = 403,
    CML__MM_KNN_CLASSIFIER = 404,
    CML__MM_NN = 500,
    CML__MM_ITEM_SIMILARITY = 501,
    CML__MM_ML_PROGRAM = 502,
    CML__MM_CUSTOM = 555,
    CML__MM_LINKED = 556,
    CML__MM_CLASS_CONFIDENCE = 560,
    CML__MM_ONE_HOT = 600,
    CML__MM_IMPUTER = 601,
    CML__MM_FEATURE_VECTORIZER = 602,
    CML__MM_DICT_VECTORIZER = 603,
    CML__MM_SCALER = 604,
    CML__MM_CATEGORICAL_MAPPING = 606,
    CML__MM_NORMALIZER = 607,
    CML__MM_ARRAY_FEATURE_EXTRACTOR = 609,
    CML__MM_NMS = 610,
    CML__MM_IDENTITY = 900,
};

/* Name of a Model.Type field ("treeEnsembleClassifier"), or "unknown". */
const char *cml__mm_type_name(uint32_t type_field);

/* ---- Model ----------------------------------------------------------------- */

struct cml__mm_desc {
    struct cml_feature *inputs; /* [n_inputs] */
    size_t              n_inputs;
    struct cml_feature *outputs; /* [n_outputs] */
    size_t              n_outputs;
    const char         *predicted_feature; /* "" when absent */
    const char         *predicted_probs;   /* "" when absent */
    const char         *short_description; /* Metadata, "" when absent */
    const char         *author;
    const char         *license;
    const char         *version;
};

struct cml__mm_model {
    int32_t             spec_version;
    bool                is_updatable;
    struct cml__mm_desc desc;
    uint32_t            type_field; /* enum cml__mm_type, 0 when none */
    struct cml__pb      type_msg;   /* bytes of that member's message */
    size_t              type_off;   /* its offset in the file */
};

/* Decodes one Model message (`msg`). `depth` is its nesting depth; fails past
 * CML__PB_MAX_DEPTH. Unknown fields are skipped. */
int cml__mm_model_decode(struct cml__mm_model *m, struct cml__arena *a, const struct cml__pb *msg,
                         int depth, struct cai_error *err);

/* ---- helpers for type decoders ------------------------------------------------ */

/* Finds the last record with field number `num` in `msg` (proto3: the last
 * one wins). Returns 1 and fills *f when found, 0 when absent, < 0 on a
 * malformed message. */
int cml__mm_find(const struct cml__pb *msg, uint32_t num, struct cml__pb_field *f,
                 struct cai_error *err);
/* Number of records with field number `num` (for repeated messages). */
int cml__mm_count(const struct cml__pb *msg, uint32_t num, size_t *n, struct cai_error *err);

/* All elements of repeated field `num` of `msg` (packed or not), in order,
 * copied into the arena. *out is NULL and *n 0 when absent. */
int cml__mm_doubles(struct cml__arena *a, const struct cml__pb *msg, uint32_t num,
                    const char *what, double **out, size_t *n, struct cai_error *err);
int cml__mm_floats(struct cml__arena *a, const struct cml__pb *msg, uint32_t num,
                   const char *what, float **out, size_t *n, struct cai_error *err);
int cml__mm_varints(struct cml__arena *a, const struct cml__pb *msg, uint32_t num,
                    const char *what, uint64_t **out, size_t *n, struct cai_error *err);
int cml__mm_strings(struct cml__arena *a, const struct cml__pb *msg, uint32_t num,
                    const char *what, char ***out, size_t *n, struct cai_error *err);
/* A LEN record as a NUL-terminated string in the arena. */
int cml__mm_string(struct cml__arena *a, const struct cml__pb_field *f, const char *what,
                   char **out, struct cai_error *err);

/* Class labels: the ClassLabels oneof (StringVector at `str_field`, Int64Vector
 * at `int_field`) shared by every classifier message. */
struct cml__labels {
    bool     is_str;
    size_t   n;
    char   **str; /* [n] when is_str */
    int64_t *i64; /* [n] otherwise */
};
/* Decodes the ClassLabels oneof of `msg`; n is 0 when neither is present. */
int cml__mm_labels(struct cml__arena *a, const struct cml__pb *msg, uint32_t str_field,
                   uint32_t int_field, const char *what, struct cml__labels *out,
                   struct cai_error *err);

#endif /* CML_MLMODEL_H */
