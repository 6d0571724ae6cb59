/* nn.h: the NeuralNetwork engine's internal interface (nn.c loads, nn_ops.c
 * computes).
 *
 * A network is compiled at load into a list of layers over named blobs.
 * Every blob has a static shape, inferred from the declared input shapes
 * layer by layer, and a fixed offset in the context's scratch memory, so a
 * prediction is a straight walk over the layers with no allocation and no
 * shape checks. Tensors are float32, row-major; the last three axes of a
 * rank >= 3 blob are (channel, height, width), as in Core ML. */
#ifndef CML_NN_H
#define CML_NN_H

#include "../kernels/kernels.h"
#include "ml.h"

#define NN_MAX_RANK 5

struct nn_shape {
    int     rank;
    int64_t d[NN_MAX_RANK];
};

enum nn_kind {
    NN_INNER,
    NN_CONV,
    NN_POOL,
    NN_ACT,
    NN_BN,
    NN_SOFTMAX, /* along `axis` */
    NN_COPY,    /* reshape, flatten (channel-first), squeeze...: data unchanged */
    NN_TRANSPOSE,
    NN_CONCAT,
    NN_ADD,
    NN_MUL,
    NN_SUB,
    NN_MAX,
    NN_MIN,
    NN_AVERAGE,
    NN_PAD,
    NN_UPSAMPLE,
    NN_UNARY,
    NN_SCALE, /* per-channel scale (+ bias) */
    NN_BIAS,
};

enum nn_act {
    ACT_LINEAR = 5,
    ACT_RELU = 10,
    ACT_LEAKY = 15,
    ACT_THRESH = 20,
    ACT_PRELU = 25,
    ACT_TANH = 30,
    ACT_STANH = 31,
    ACT_SIGMOID = 40,
    ACT_HSIGMOID = 41,
    ACT_ELU = 50,
    ACT_SOFTSIGN = 60,
    ACT_SOFTPLUS = 70,
    ACT_PSOFTPLUS = 71,
};

struct nn_layer {
    enum nn_kind kind;
    const char  *name;
    int32_t     *in; /* [n_in] blob indexes */
    int          n_in;
    int32_t      out;
    /* weights */
    float  *w;  /* inner: [cout][cin]; conv: [cout][cin/groups][kh][kw] */
    float  *b;  /* [cout] or NULL */
    int64_t cin, cout;
    float  *wt;  /* inner, SIMD path: w transposed, [cin][ldw], zero padded */
    int64_t ldw; /* cout rounded up to 16 */
    /* SIMD path: an inner product computes the activation layer that
     * follows it (`fused`), which is then skipped. */
    const struct nn_layer *fused;
    bool                   skip;
    bool                   finite; /* inner: weights finite, zero inputs skippable */
    /* convolution / pooling geometry */
    int64_t groups, kh, kw, sh, sw, dh, dw;
    int64_t pad_t, pad_b, pad_l, pad_r;
    int     same_mode;   /* 0 valid, 1 same (BOTTOM_RIGHT_HEAVY), 2 same TOP_LEFT, 3 include-last */
    int     pool_type;   /* 0 max, 1 average, 2 L2 */
    bool    exclude_pad; /* average pooling */
    bool    global;
    /* activation */
    int     act;
    float   alpha, beta;
    float  *alpha_c, *beta_c; /* per channel (PReLU, parametric softplus), or NULL */
    int64_t n_alpha, n_beta;
    /* batch norm / scale / bias: per-channel y = x * mul + add */
    float  *mul, *add; /* [cout] */
    /* softmax / concat axis (non-negative), transpose perm */
    int     axis;
    int     perm[NN_MAX_RANK];
    bool    chan_last_flatten;
    /* unary */
    int     unary;
    float   eps, shift, scale;
    /* padding */
    int     pad_mode; /* 0 constant, 1 reflection, 2 replication */
    float   pad_value;
    /* upsample */
    int64_t up_h, up_w;
    int     up_mode; /* 0 nearest, 1 bilinear align corners, 2 bilinear half pixel */
    /* elementwise with one input */
    float   scalar;
};

struct nn_blob {
    const char     *name;
    struct nn_shape shape;
    size_t          n;   /* elements */
    size_t          off; /* float offset in the scratch */
};

struct nn_pre {
    int32_t blob;   /* input blob this preprocesses */
    float   scale;  /* channelScale (1 when absent) */
    float   bias[3]; /* per channel: gray, or R,G,B in RGB order */
};

struct nn_net {
    struct nn_layer *layers;
    size_t           n_layers;
    struct nn_blob  *blobs;
    size_t           n_blobs;
    size_t           n_floats; /* scratch floats for all blobs */
    int32_t         *in_blob;  /* [node inputs] */
    struct nn_pre   *pre;      /* [node inputs] */
    int32_t         *out_blob; /* [node outputs], -1 for the label output */
    int32_t          probs_blob; /* classifier: blob of class scores, else -1 */
    const struct cai_kernels *kern; /* SIMD dot products, or NULL: plain loops */
    size_t           n_classes;
    bool             simd;       /* simd.h kernels (GEMM, activations, softmax) */
    /* Batches: rows run together, each with its own copy of the blobs,
     * `stride` floats apart (0: the network has no batch path). */
    size_t           stride, batch_rows;
    bool             softmax_head; /* the last layer is the classifier's softmax */
};

/* Runs layer L. mem: the blob memory. */
void cml__nn_run_layer(const struct nn_net *net, const struct nn_layer *L, float *mem);
/* Runs layer L for n_rows rows whose blob memories are `stride` floats
 * apart: one GEMM for an inner product over vectors on the SIMD path, else
 * the layer row by row. Each row gets the bits cml__nn_run_layer gives it. */
void cml__nn_run_layer_rows(const struct nn_net *net, const struct nn_layer *L, float *mem,
                            size_t n_rows, size_t stride);

#endif /* CML_NN_H */
