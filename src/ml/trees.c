/* trees.c: TreeEnsembleRegressor (Model field 302) and Classifier (402).
 *
 * The file stores every node of every tree in one flat list keyed by
 * (treeId, nodeId), with child links by node id. At load the list is
 * validated and compiled: each tree must have exactly one root, every child id
 * must name a node of the same tree, no node may have two parents, every node
 * must be reachable from the root (which rules out cycles), branch feature
 * indexes must be below the input size and leaf evaluation indexes below
 * numPredictionDimensions. Nodes are then renumbered in depth-first preorder
 * into one array of 24-byte records, so evaluation is a bounds-check-free
 * walk: `i = go ? yes : no` until a leaf.
 *
 * Branch modes: x <= v (0), x < v (1), x >= v (2), x > v (3), x == v (4),
 * x != v (5). A missing value (NaN) goes to the true child when
 * missingValueTracksTrueChild is set, else to the false child. The leaves a
 * row reaches add their (index, value) pairs into out[numPredictionDimensions]
 * initialized with basePredictionValue; then the post-evaluation transform:
 * NoTransform (0), Classification_SoftMax (1), Regression_Logistic (2),
 * Classification_SoftMaxWithZeroClassReference (3, softmax with a class-0
 * score of 0 when there is one dimension fewer than classes). A binary
 * classifier with one dimension reads it as P(class 1). A classifier with
 * NoTransform and non-negative scores reports them divided by their sum
 * (coremltools stores multiclass random-forest leaves as per-tree class
 * distributions, unscaled, so the raw sum is the number of trees). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml.h"
#include "simd.h"

enum { OP_LE, OP_LT, OP_GE, OP_GT, OP_EQ, OP_NE, OP_LEAF };
enum { TR_NONE, TR_SOFTMAX, TR_LOGISTIC, TR_SOFTMAX_ZERO };

/* One compiled node. Branch: feat >= 0, yes/no are node indexes. Leaf:
 * feat == -1, yes = first entry in eval_idx/eval_val, no = entry count. */
struct tnode {
    double  thr;
    int32_t feat;
    int32_t yes, no;
    uint8_t op, miss_yes;
};

struct trees {
    struct tnode *nodes;    /* [n_nodes] */
    int32_t      *roots;    /* [n_trees] */
    uint32_t     *eval_idx; /* [n_eval] */
    double       *eval_val; /* [n_eval] */
    double       *base;     /* [n_dims] */
    size_t        n_nodes, n_trees, n_eval, n_dims, n_feat, n_classes;
    int           transform;
    int           uniform_op; /* every branch uses this op, or -1 */
    size_t       *depth;      /* [n_trees] */
    bool          any_missing_yes;
    /* Batches of an ensemble whose branches all use <= (or all <): */
    struct wnode *wnodes;     /* [n_nodes] the lockstep walk's nodes */
    struct cml__x512_forest *forest; /* AVX-512 compare-all layout (depth <= 4), or NULL */
};

/* A node of the lockstep walk: the true child of node i is i + 1 (depth
 * first preorder), the false child `no`; leaves are absorbing (threshold
 * NaN, which no test passes, and `no` the leaf itself). The top bit of
 * `feat` is missingValueTracksTrueChild. */
struct wnode {
    double  thr;
    int32_t feat;
    int32_t no;
};

/* ---- evaluation ---------------------------------------------------------------- */

static inline bool branch(int op, double x, double t)
{
    switch (op) {
    case OP_LE: return x <= t;
    case OP_LT: return x < t;
    case OP_GE: return x >= t;
    case OP_GT: return x > t;
    case OP_EQ: return x == t;
    default: return x != t && x == x;
    }
}

static void leaf_add(const struct trees *T, const struct tnode *n, double *out)
{
    for (int32_t k = 0; k < n->no; k++)
        out[T->eval_idx[n->yes + k]] += T->eval_val[n->yes + k];
}

/* Specialized walk for the common case of one comparison everywhere. */
#define WALK_UNIFORM(CMP)                                                                          \
    for (size_t t = 0; t < T->n_trees; t++) {                                                      \
        const struct tnode *n = &T->nodes[T->roots[t]];                                            \
        while (n->feat >= 0) {                                                                     \
            double v = x[n->feat];                                                                 \
            int go = (CMP) | ((v != v) & n->miss_yes);                                             \
            n = &T->nodes[go ? n->yes : n->no];                                                    \
        }                                                                                          \
        leaf_add(T, n, out);                                                                       \
    }

static void evaluate(const struct trees *T, const double *x, double *out)
{
    memcpy(out, T->base, T->n_dims * sizeof(double));
    switch (T->uniform_op) {
    case OP_LE: WALK_UNIFORM(v <= n->thr); break;
    case OP_LT: WALK_UNIFORM(v < n->thr); break;
    default:
        for (size_t t = 0; t < T->n_trees; t++) {
            const struct tnode *n = &T->nodes[T->roots[t]];
            while (n->feat >= 0) {
                double v = x[n->feat];
                bool go = v != v ? n->miss_yes : branch(n->op, v, n->thr);
                n = &T->nodes[go ? n->yes : n->no];
            }
            leaf_add(T, n, out);
        }
        break;
    }
}

/* Scratch doubles before the forest kernel's in a single prediction. */
#define ROW_SCRATCH(T) ((T)->n_feat + 2 * (T)->n_dims + (T)->n_classes + 2)

/* One row: the compare-all kernel when the ensemble has one (the same
 * sums, and no branches to mispredict), else the walk. fs: its scratch. */
static void eval_row(const struct trees *T, const double *x, double *out, double *fs)
{
    if (T->forest)
        cml__x512_forest_eval(T->forest, x, T->n_feat, 1, T->base, out, fs);
    else
        evaluate(T, x, out);
}

static void softmax(double *p, size_t n)
{
    double mx = p[0], sum = 0.0;
    for (size_t k = 1; k < n; k++)
        mx = p[k] > mx ? p[k] : mx;
    for (size_t k = 0; k < n; k++) {
        p[k] = exp(p[k] - mx);
        sum += p[k];
    }
    for (size_t k = 0; k < n; k++)
        p[k] /= sum;
}

static int run_regressor(const struct cml__node *nd, struct cml__exec *x)
{
    const struct trees *T = nd->impl;
    const double *in = cml__gather(x, nd, T->n_feat, x->scratch);
    if (!in)
        return x->err->code;
    int32_t s = nd->out[nd->values_out];
    double *y = x->buf[s];
    eval_row(T, in, y, x->scratch + ROW_SCRATCH(T));
    if (T->transform == TR_LOGISTIC)
        for (size_t k = 0; k < T->n_dims; k++)
            y[k] = cml__sigmoid(y[k]);
    else if (T->transform == TR_SOFTMAX || T->transform == TR_SOFTMAX_ZERO)
        softmax(y, T->n_dims);
    cml__publish(x, s, T->n_dims);
    return 0;
}

/* Class probabilities p[n_classes] from the raw sums raw[n_dims]. */
static void to_probs(const struct trees *T, const double *raw, double *p)
{
    size_t K = T->n_classes;
    if (T->n_dims == 1 && K == 2) {
        double p1 = T->transform == TR_LOGISTIC ? cml__sigmoid(raw[0]) : raw[0];
        p[0] = 1.0 - p1;
        p[1] = p1;
    } else if (T->n_dims + 1 == K) { /* SoftMaxWithZeroClassReference */
        p[0] = 0.0;
        memcpy(p + 1, raw, T->n_dims * sizeof(double));
        softmax(p, K);
    } else {
        memcpy(p, raw, K * sizeof(double));
        if (T->transform == TR_SOFTMAX || T->transform == TR_SOFTMAX_ZERO) {
            softmax(p, K);
        } else if (T->transform == TR_LOGISTIC) {
            for (size_t k = 0; k < K; k++)
                p[k] = cml__sigmoid(p[k]);
        } else {
            /* Scores are reported as probabilities: coremltools writes each
             * random-forest tree's class distribution unscaled, so the sum
             * is n_trees; dividing by the sum gives the forest's mean. */
            double sum = 0.0;
            bool neg = false;
            for (size_t k = 0; k < K; k++) {
                sum += p[k];
                neg |= p[k] < 0.0;
            }
            if (!neg && sum > 0.0 && sum != 1.0)
                for (size_t k = 0; k < K; k++)
                    p[k] /= sum;
        }
    }
}

static int run_classifier(const struct cml__node *nd, struct cml__exec *x)
{
    const struct trees *T = nd->impl;
    const double *in = cml__gather(x, nd, T->n_feat, x->scratch);
    if (!in)
        return x->err->code;
    double *raw = x->scratch + T->n_feat;
    double *p = cml__probs_buf(x, nd, raw + T->n_dims + 1);
    eval_row(T, in, raw, x->scratch + ROW_SCRATCH(T));
    to_probs(T, raw, p);
    cml__publish_class(x, nd, p);
    return 0;
}

/* ---- batches ------------------------------------------------------------------ */

#define BLOCK 16

/* Rows are walked BLOCK at a time through each tree in lockstep, for the
 * tree's depth, without branches: the walks of different rows overlap in
 * the CPU, and the leaves' absorption spares a leaf test. The same tests
 * and the same leaves, in the same order, as a single row's walk. */
static inline __attribute__((always_inline)) void
walk_block_t(const struct trees *T, const double *X, size_t n_cols, size_t nb, double *raw,
             const bool lt, const bool miss)
{
    size_t D = T->n_dims;
    int32_t idx[BLOCK];
    for (size_t r = 0; r < nb; r++)
        memcpy(raw + r * D, T->base, D * sizeof(double));
    for (size_t t = 0; t < T->n_trees; t++) {
        for (size_t r = 0; r < nb; r++)
            idx[r] = T->roots[t];
        for (size_t d = 0; d < T->depth[t]; d++) {
            for (size_t r = 0; r < nb; r++) {
                const struct wnode *n = &T->wnodes[idx[r]];
                uint32_t f = (uint32_t)n->feat;
                double v = X[r * n_cols + (miss ? f & 0x7fffffffu : f)];
                int go = lt ? v < n->thr : v <= n->thr;
                if (miss)
                    go |= (v != v) & (int)(f >> 31);
                /* go ? idx + 1 : no, without a branch to mispredict */
                idx[r] = n->no + ((idx[r] + 1 - n->no) & -go);
            }
        }
        for (size_t r = 0; r < nb; r++)
            leaf_add(T, &T->nodes[idx[r]], raw + r * D);
    }
}

static void walk_block(const struct trees *T, const double *X, size_t n_cols, size_t nb,
                       double *raw)
{
    bool lt = T->uniform_op == OP_LT;
    if (T->any_missing_yes) {
        if (lt)
            walk_block_t(T, X, n_cols, nb, raw, true, true);
        else
            walk_block_t(T, X, n_cols, nb, raw, false, true);
    } else if (lt) {
        walk_block_t(T, X, n_cols, nb, raw, true, false);
    } else {
        walk_block_t(T, X, n_cols, nb, raw, false, false);
    }
}

/* Probabilities and label, or transformed values, of row r from its raw
 * scores y[n_dims] (the single-row path's to_probs / transforms). */
static void emit(const struct trees *T, double *y, double *p, size_t r,
                 const struct cml_batch_out *out)
{
    size_t D = T->n_dims, K = T->n_classes;
    if (K) {
        to_probs(T, y, p);
        size_t best = 0;
        for (size_t k = 1; k < K; k++)
            if (p[k] > p[best])
                best = k;
        if (out->class_index)
            out->class_index[r] = (int32_t)best;
        if (out->probs)
            memcpy(out->probs + r * K, p, K * sizeof(double));
        return;
    }
    if (T->transform == TR_LOGISTIC)
        for (size_t k = 0; k < D; k++)
            y[k] = cml__sigmoid(y[k]);
    else if (T->transform == TR_SOFTMAX || T->transform == TR_SOFTMAX_ZERO)
        softmax(y, D);
    if (out->values)
        memcpy(out->values + r * D, y, D * sizeof(double));
}

/* scratch: raw[BLOCK][n_dims] | p[n_classes + 2] | the forest kernel's */
static int run_batch(const struct cml__node *nd, const double *X, size_t n_rows, size_t n_cols,
                     double *scratch, const struct cml_batch_out *out)
{
    const struct trees *T = nd->impl;
    size_t D = T->n_dims, K = T->n_classes;
    double *raw = scratch, *p = scratch + BLOCK * D, *fs = p + K + 2;
    if (n_cols != T->n_feat)
        return CAI_EINVAL;
    size_t step = T->forest ? 8 : BLOCK;
    for (size_t r0 = 0; r0 < n_rows; r0 += step) {
        size_t nb = CAI_MIN(step, n_rows - r0);
        const double *xb = X + r0 * n_cols;
        if (T->forest)
            cml__x512_forest_eval(T->forest, xb, n_cols, nb, T->base, raw, fs);
        else
            walk_block(T, xb, n_cols, nb, raw);
        for (size_t r = 0; r < nb; r++)
            emit(T, raw + r * D, p, r0 + r, out);
    }
    return 0;
}

/* ---- batch layouts -------------------------------------------------------------- */

/* Fills tree position `pos` (level order, true child 2 pos + 1) of depth-D
 * complete tree `t` from compiled node `i`; a leaf above the last level
 * becomes a node whose both children are that leaf. Returns false when a
 * leaf does not add exactly one value (or none) to the tree's one
 * dimension. */
static bool fill(const struct trees *T, struct cml__x512_forest *F, size_t t, int32_t i,
                 size_t pos, size_t level, int64_t *dim)
{
    const struct tnode *n = &T->nodes[i];
    size_t nn = F->n_nodes;
    int32_t *feat = (int32_t *)F->feat + t * nn;
    double *thr = (double *)F->thr + t * nn;
    uint8_t *miss = (uint8_t *)F->miss + t * nn;
    if (level == F->depth) {
        double *leaf = (double *)F->leaf + 16 * t;
        if (n->feat >= 0 || n->no > 1)
            return false;
        leaf[pos - nn] = -0.0;
        if (n->no == 1) {
            int64_t d = T->eval_idx[n->yes];
            if (*dim >= 0 && *dim != d)
                return false;
            *dim = d;
            leaf[pos - nn] = T->eval_val[n->yes];
        }
        return true;
    }
    if (n->feat < 0) {
        feat[pos] = 0;
        thr[pos] = 0.0;
        miss[pos] = 0;
        return fill(T, F, t, i, 2 * pos + 1, level + 1, dim) &&
               fill(T, F, t, i, 2 * pos + 2, level + 1, dim);
    }
    feat[pos] = n->feat;
    thr[pos] = n->thr;
    miss[pos] = n->miss_yes;
    return fill(T, F, t, n->yes, 2 * pos + 1, level + 1, dim) &&
           fill(T, F, t, n->no, 2 * pos + 2, level + 1, dim);
}

/* The compare-all layout, when every tree is at most 4 deep and adds one
 * value to one dimension. Leaves *out NULL when the ensemble does not fit. */
static int build_forest(struct cml__build *b, struct trees *T, size_t depth,
                        struct cml__x512_forest **out)
{
    *out = NULL;
    if (depth > 4 || !b->m->simd || (T->uniform_op != OP_LE && T->uniform_op != OP_LT))
        return 0;
    size_t D = depth ? depth : 1, nn = ((size_t)1 << D) - 1, nt = T->n_trees;
    struct cml__arena *a = &b->m->arena;
    struct cml__x512_forest *F = cml__arena_alloc(a, sizeof(*F));
    int32_t *feat = cml__arena_array(a, nt * nn, sizeof(int32_t));
    double *thr = cml__arena_array(a, nt * nn, sizeof(double));
    uint8_t *miss = cml__arena_array(a, nt * nn, 1);
    uint64_t *keep = cml__arena_array(a, nn, sizeof(uint64_t));
    double *leaf = cml__arena_array(a, nt, 16 * sizeof(double));
    uint32_t *dim = cml__arena_array(a, nt, sizeof(uint32_t));
    if (!F || !feat || !thr || !miss || !keep || !leaf || !dim)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    *F = (struct cml__x512_forest){.n_trees = nt, .depth = D, .n_dims = T->n_dims,
                                   .n_feat = T->n_feat, .n_nodes = nn,
                                   .lt = T->uniform_op == OP_LT, .feat = feat, .thr = thr,
                                   .miss = miss, .keep = keep, .leaf = leaf, .dim = dim};
    for (size_t t = 0; t < nt; t++) {
        int64_t d = -1;
        if (!fill(T, F, t, T->roots[t], 0, 0, &d))
            return 0;
        dim[t] = d < 0 ? 0 : (uint32_t)d;
    }
    /* Node p at level l, i-th of its level: its subtree covers leaves
     * [i 2^(D-l), (i+1) 2^(D-l)); a failed test removes the first half. */
    uint64_t all = ((uint64_t)1 << (nn + 1)) - 1;
    for (size_t p = 0; p < nn; p++) {
        size_t l = 0;
        while (((size_t)2 << l) - 1 <= p)
            l++;
        size_t i = p - (((size_t)1 << l) - 1), span = (size_t)1 << (D - l);
        uint64_t half = (((uint64_t)1 << (span / 2)) - 1) << (i * span);
        keep[p] = all & ~half;
    }
    *out = F;
    return 0;
}

/* The lockstep walk's nodes; NULL when some true child is not its parent's
 * next node (the compile step guarantees it, this only keeps it checked). */
static int build_walk(struct cml__build *b, struct trees *T)
{
    struct wnode *w = cml__arena_array(&b->m->arena, T->n_nodes, sizeof(*w));
    if (!w)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    for (size_t i = 0; i < T->n_nodes; i++) {
        const struct tnode *n = &T->nodes[i];
        if (n->feat < 0) {
            w[i] = (struct wnode){.thr = (double)NAN, .feat = 0, .no = (int32_t)i};
            continue;
        }
        if ((size_t)n->yes != i + 1)
            return 0;
        w[i] = (struct wnode){.thr = n->thr,
                              .feat = (int32_t)((uint32_t)n->feat | (n->miss_yes ? 1u << 31 : 0)),
                              .no = n->no};
    }
    T->wnodes = w;
    return 0;
}

/* ---- loading --------------------------------------------------------------------- */

/* A node as read from the file, before validation. */
struct rawnode {
    uint64_t tree, id, feat, yes, no;
    double   thr;
    int32_t  op;
    bool     miss_yes;
    size_t   eval_start, n_eval;
    size_t   file_idx;
    int32_t  parent_count;
    int32_t  new_idx;
};

static int cmp_raw(const void *a, const void *b)
{
    const struct rawnode *x = a, *y = b;
    if (x->tree != y->tree)
        return x->tree < y->tree ? -1 : 1;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return 0;
}

/* Position of node `id` in the sorted tree range [lo, hi), or -1. */
static long find_node(const struct rawnode *r, size_t lo, size_t hi, uint64_t id)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].id == id)
            return (long)mid;
        if (r[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

struct loadstate {
    struct cml__build *b;
    struct rawnode    *raw;
    size_t             n_raw;
    uint32_t          *eidx;
    double            *eval;
    size_t             n_eval, cap_eval;
};

static int node_fail(struct loadstate *L, const struct rawnode *r, int code, const char *fmt, ...)
    CAI__PRINTF(4, 5);
static int node_fail(struct loadstate *L, const struct rawnode *r, int code, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cai__fail(L->b->err, code, "TreeEnsembleParameters.nodes[%zu] (tree %llu node %llu): %s",
                     r->file_idx, (unsigned long long)r->tree, (unsigned long long)r->id, msg);
}

static int decode_node(struct loadstate *L, const struct cml__pb *msg, struct rawnode *rn)
{
    struct cml__pb r = *msg, sub;
    struct cml__pb_field f;
    struct cai_error *err = L->b->err;
    int rc;
    rn->eval_start = L->n_eval;
    while ((rc = cml__pb_next(&r, &f, err)) > 0) {
        switch (f.num) {
        case 1: rc = cml__pb_u64(&f, "TreeNode.treeId", &rn->tree, err); break;
        case 2: rc = cml__pb_u64(&f, "TreeNode.nodeId", &rn->id, err); break;
        case 3: rc = cml__pb_i32(&f, "TreeNode.nodeBehavior", &rn->op, err); break;
        case 10: rc = cml__pb_u64(&f, "TreeNode.branchFeatureIndex", &rn->feat, err); break;
        case 11: rc = cml__pb_double(&f, "TreeNode.branchFeatureValue", &rn->thr, err); break;
        case 12: rc = cml__pb_u64(&f, "TreeNode.trueChildNodeId", &rn->yes, err); break;
        case 13: rc = cml__pb_u64(&f, "TreeNode.falseChildNodeId", &rn->no, err); break;
        case 14:
            rc = cml__pb_bool(&f, "TreeNode.missingValueTracksTrueChild", &rn->miss_yes, err);
            break;
        case 20: {
            if ((rc = cml__pb_len(&f, "TreeNode.evaluationInfo", err)) != 0)
                break;
            cml__pb_sub(&sub, &r, &f);
            uint64_t idx = 0;
            double val = 0.0;
            struct cml__pb_field g;
            while ((rc = cml__pb_next(&sub, &g, err)) > 0) {
                if (g.num == 1)
                    rc = cml__pb_u64(&g, "EvaluationInfo.evaluationIndex", &idx, err);
                else if (g.num == 2)
                    rc = cml__pb_double(&g, "EvaluationInfo.evaluationValue", &val, err);
                if (rc < 0)
                    break;
            }
            if (rc < 0)
                break;
            if (idx > UINT32_MAX)
                return cai__fail(err, CAI_EFORMAT, "EvaluationInfo.evaluationIndex %llu too large",
                                 (unsigned long long)idx);
            if (L->n_eval == L->cap_eval) {
                size_t ncap = L->cap_eval ? 2 * L->cap_eval : 256;
                void *a = cai__realloc(L->eidx, ncap * sizeof(*L->eidx));
                if (!a)
                    return cai__fail(err, CAI_ENOMEM, "out of memory");
                L->eidx = a;
                void *v = cai__realloc(L->eval, ncap * sizeof(*L->eval));
                if (!v)
                    return cai__fail(err, CAI_ENOMEM, "out of memory");
                L->eval = v;
                L->cap_eval = ncap;
            }
            L->eidx[L->n_eval] = (uint32_t)idx;
            L->eval[L->n_eval] = val;
            L->n_eval++;
            rc = 0;
            break;
        }
        default:
            break;
        }
        if (rc < 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    rn->n_eval = L->n_eval - rn->eval_start;
    return 0;
}

static int load_params(struct loadstate *L, const struct cml__pb *msg, struct trees *T)
{
    struct cml__build *b = L->b;
    struct cml__pb r = *msg, sub;
    struct cml__pb_field f;
    size_t n_nodes;
    int rc = cml__mm_count(msg, 1, &n_nodes, b->err);
    if (rc)
        return rc;
    if (n_nodes == 0)
        return cai__fail(b->err, CAI_EFORMAT, "TreeEnsembleParameters: no nodes");
    if (n_nodes > INT32_MAX / 2)
        return cai__fail(b->err, CAI_EFORMAT, "TreeEnsembleParameters: too many nodes");
    L->raw = cai__calloc(n_nodes, sizeof(*L->raw));
    if (!L->raw)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory for %zu tree nodes", n_nodes);
    uint64_t n_dims = 0;
    while ((rc = cml__pb_next(&r, &f, b->err)) > 0) {
        if (f.num == 1) {
            if ((rc = cml__pb_len(&f, "TreeEnsembleParameters.nodes", b->err)) != 0)
                return rc;
            cml__pb_sub(&sub, &r, &f);
            struct rawnode *rn = &L->raw[L->n_raw];
            rn->file_idx = L->n_raw;
            if ((rc = decode_node(L, &sub, rn)) != 0) {
                char pre[48];
                snprintf(pre, sizeof(pre), "TreeEnsembleParameters.nodes[%zu]", L->n_raw);
                cai__error_prefix(b->err, pre);
                return rc;
            }
            L->n_raw++;
        } else if (f.num == 2) {
            if ((rc = cml__pb_u64(&f, "TreeEnsembleParameters.numPredictionDimensions", &n_dims,
                                  b->err)) != 0)
                return rc;
        }
    }
    if (rc < 0)
        return rc;
    if (n_dims == 0 || n_dims > (1u << 20))
        return cai__fail(b->err, CAI_EFORMAT,
                         "TreeEnsembleParameters.numPredictionDimensions: bad value %llu",
                         (unsigned long long)n_dims);
    T->n_dims = (size_t)n_dims;
    double *base;
    size_t n_base;
    if ((rc = cml__mm_doubles(&b->m->arena, msg, 3, "TreeEnsembleParameters.basePredictionValue",
                              &base, &n_base, b->err)))
        return rc;
    if (n_base != 0 && n_base != T->n_dims)
        return cai__fail(b->err, CAI_EFORMAT,
                         "TreeEnsembleParameters.basePredictionValue: %zu values for %zu "
                         "dimensions", n_base, T->n_dims);
    T->base = n_base ? base : cml__arena_array(&b->m->arena, T->n_dims, sizeof(double));
    if (!T->base)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    return 0;
}

/* Validates the structure and compiles it into T. n_feat_decl: declared input
 * size, 0 when unknown. */
static int compile(struct loadstate *L, struct trees *T, size_t n_feat_decl)
{
    struct cml__build *b = L->b;
    struct rawnode *raw = L->raw;
    size_t n = L->n_raw;
    int32_t *stack = NULL;
    int rc = 0;
    qsort(raw, n, sizeof(*raw), cmp_raw);
    /* Trees and duplicates. */
    size_t n_trees = 0;
    uint64_t max_feat = 0;
    bool any_branch = false;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && raw[i].tree == raw[i - 1].tree && raw[i].id == raw[i - 1].id)
            return node_fail(L, &raw[i], CAI_EFORMAT, "duplicate node id");
        if (i == 0 || raw[i].tree != raw[i - 1].tree)
            n_trees++;
        struct rawnode *r = &raw[i];
        if (r->op < OP_LE || r->op > OP_LEAF)
            return node_fail(L, r, CAI_EFORMAT, "unknown nodeBehavior %d", r->op);
        if (r->op == OP_LEAF) {
            for (size_t k = 0; k < r->n_eval; k++)
                if (L->eidx[r->eval_start + k] >= T->n_dims)
                    return node_fail(L, r, CAI_EFORMAT,
                                     "evaluationIndex %u >= numPredictionDimensions %zu",
                                     L->eidx[r->eval_start + k], T->n_dims);
        } else {
            if (n_feat_decl && r->feat >= n_feat_decl)
                return node_fail(L, r, CAI_EFORMAT,
                                 "branchFeatureIndex %llu out of range (%zu input features)",
                                 (unsigned long long)r->feat, n_feat_decl);
            if (r->feat > (1u << 24))
                return node_fail(L, r, CAI_EFORMAT, "branchFeatureIndex %llu too large",
                                 (unsigned long long)r->feat);
            max_feat = r->feat > max_feat ? r->feat : max_feat;
            any_branch = true;
        }
    }
    T->n_feat = n_feat_decl ? n_feat_decl : (any_branch ? (size_t)max_feat + 1 : 1);
    T->n_trees = n_trees;
    T->n_nodes = n;
    T->nodes = cml__arena_array(&b->m->arena, n, sizeof(*T->nodes));
    T->roots = cml__arena_array(&b->m->arena, n_trees, sizeof(*T->roots));
    T->eval_idx = cml__arena_array(&b->m->arena, L->n_eval ? L->n_eval : 1, sizeof(uint32_t));
    T->eval_val = cml__arena_array(&b->m->arena, L->n_eval ? L->n_eval : 1, sizeof(double));
    stack = cai__malloc_array(n, sizeof(*stack));
    if (!T->nodes || !T->roots || !T->eval_idx || !T->eval_val || !stack) {
        cai__free(stack);
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    }
    T->uniform_op = -1;
    int32_t next = 0;
    size_t n_eval_out = 0, t = 0;
    for (size_t lo = 0; lo < n; t++) {
        size_t hi = lo;
        while (hi < n && raw[hi].tree == raw[lo].tree)
            hi++;
        /* Parents: each child must exist in this tree and have one parent. */
        for (size_t i = lo; i < hi; i++) {
            raw[i].new_idx = -1;
            raw[i].parent_count = 0;
        }
        for (size_t i = lo; i < hi; i++) {
            if (raw[i].op == OP_LEAF)
                continue;
            uint64_t kids[2] = {raw[i].yes, raw[i].no};
            for (int k = 0; k < 2; k++) {
                long c = find_node(raw, lo, hi, kids[k]);
                if (c < 0) {
                    rc = node_fail(L, &raw[i], CAI_EFORMAT, "%s %llu is not a node of tree %llu",
                                   k ? "falseChildNodeId" : "trueChildNodeId",
                                   (unsigned long long)kids[k], (unsigned long long)raw[i].tree);
                    goto out;
                }
                if ((size_t)c == i || ++raw[c].parent_count > 1 + (kids[0] == kids[1] && k)) {
                    rc = node_fail(L, &raw[c], CAI_EFORMAT,
                                   "node has more than one parent (a cycle or a shared subtree)");
                    goto out;
                }
                if (k == 1 && kids[0] == kids[1])
                    raw[c].parent_count = 1;
            }
        }
        long root = -1;
        for (size_t i = lo; i < hi; i++) {
            if (raw[i].parent_count == 0) {
                if (root >= 0) {
                    rc = node_fail(L, &raw[i], CAI_EFORMAT,
                                   "tree has a second root (node %llu has no parent either)",
                                   (unsigned long long)raw[root].id);
                    goto out;
                }
                root = (long)i;
            }
        }
        if (root < 0) {
            rc = node_fail(L, &raw[lo], CAI_EFORMAT, "tree has no root (every node has a parent: "
                                                     "a cycle)");
            goto out;
        }
        /* Depth-first preorder renumbering from the root; stack holds raw
         * positions. Each node is pushed at most once (one parent each). */
        size_t sp = 0, visited = 0;
        stack[sp++] = (int32_t)root;
        T->roots[t] = next;
        while (sp > 0) {
            struct rawnode *r = &raw[stack[--sp]];
            r->new_idx = next++;
            visited++;
            if (r->op != OP_LEAF) {
                long c1 = find_node(raw, lo, hi, r->yes), c0 = find_node(raw, lo, hi, r->no);
                if (raw[c0].new_idx < 0 && c0 != c1)
                    stack[sp++] = (int32_t)c0;
                if (raw[c1].new_idx < 0)
                    stack[sp++] = (int32_t)c1;
            }
        }
        if (visited != hi - lo) {
            for (size_t i = lo; i < hi; i++)
                if (raw[i].new_idx < 0) {
                    rc = node_fail(L, &raw[i], CAI_EFORMAT,
                                   "node is not reachable from the root (a cycle)");
                    goto out;
                }
        }
        /* Emit. */
        for (size_t i = lo; i < hi; i++) {
            struct rawnode *r = &raw[i];
            struct tnode *o = &T->nodes[r->new_idx];
            if (r->op == OP_LEAF) {
                o->feat = -1;
                o->op = OP_LEAF;
                o->yes = (int32_t)n_eval_out;
                o->no = (int32_t)r->n_eval;
                for (size_t k = 0; k < r->n_eval; k++) {
                    T->eval_idx[n_eval_out] = L->eidx[r->eval_start + k];
                    T->eval_val[n_eval_out++] = L->eval[r->eval_start + k];
                }
            } else {
                o->feat = (int32_t)r->feat;
                o->thr = r->thr;
                o->op = (uint8_t)r->op;
                o->miss_yes = r->miss_yes;
                o->yes = raw[find_node(raw, lo, hi, r->yes)].new_idx;
                o->no = raw[find_node(raw, lo, hi, r->no)].new_idx;
                if (T->uniform_op == -1)
                    T->uniform_op = r->op;
                else if (T->uniform_op != r->op)
                    T->uniform_op = -2;
                T->any_missing_yes |= r->miss_yes;
            }
        }
        lo = hi;
    }
    T->n_eval = n_eval_out;
    if (T->uniform_op != OP_LE && T->uniform_op != OP_LT)
        T->uniform_op = -1;
out:
    cai__free(stack);
    return rc;
}

static size_t max_depth(const struct trees *T, size_t t, int32_t *stack, int32_t *depth)
{
    size_t sp = 0, best = 0;
    stack[sp] = T->roots[t];
    depth[sp++] = 0;
    while (sp > 0) {
        sp--;
        const struct tnode *n = &T->nodes[stack[sp]];
        int32_t d = depth[sp];
        best = (size_t)d > best ? (size_t)d : best;
        if (n->feat >= 0) {
            stack[sp] = n->yes;
            depth[sp++] = d + 1;
            if (n->no != n->yes) {
                stack[sp] = n->no;
                depth[sp++] = d + 1;
            }
        }
    }
    return best;
}

int cml__load_tree(struct cml__build *b, const struct cml__mm_model *mm)
{
    bool cls = mm->type_field == CML__MM_TREE_CLASSIFIER;
    const char *tn = cls ? "TreeEnsembleClassifier" : "TreeEnsembleRegressor";
    struct trees *T = cml__arena_alloc(&b->m->arena, sizeof(*T));
    struct cml__labels *labels = cml__arena_alloc(&b->m->arena, sizeof(*labels));
    struct loadstate L = {.b = b};
    struct cml__pb_field f;
    struct cml__pb params;
    int rc;
    if (!T || !labels)
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    /* { TreeEnsembleParameters treeEnsemble = 1; transform = 2; labels 100/101 } */
    if ((rc = cml__mm_find(&mm->type_msg, 1, &f, b->err)) < 0)
        return rc;
    if (rc == 0)
        return cai__fail(b->err, CAI_EFORMAT, "%s.treeEnsemble: missing", tn);
    if ((rc = cml__pb_len(&f, "treeEnsemble", b->err)) != 0)
        return rc;
    cml__pb_sub(&params, &mm->type_msg, &f);
    int32_t tr = 0;
    if ((rc = cml__mm_find(&mm->type_msg, 2, &f, b->err)) < 0)
        return rc;
    if (rc && (rc = cml__pb_i32(&f, "postEvaluationTransform", &tr, b->err)) != 0)
        return rc;
    if (tr < 0 || tr > 3)
        return cai__fail(b->err, CAI_EFORMAT, "%s.postEvaluationTransform: unknown value %d", tn,
                         tr);
    T->transform = tr;
    if (cls && (rc = cml__mm_labels(&b->m->arena, &mm->type_msg, 100, 101,
                                    "TreeEnsembleClassifier.ClassLabels", labels, b->err)))
        return rc;

    struct cml__node *nd = cml__node_add(b, mm);
    if (!nd)
        return b->err ? b->err->code : CAI_ENOMEM;
    if ((rc = cml__bind_inputs(b, nd, mm)) != 0)
        return rc;
    size_t n_feat = 0;
    for (size_t i = 0; i < nd->n_in; i++) {
        size_t e = cml__input_elems(b, nd, i);
        if (e == 0) {
            n_feat = 0;
            break;
        }
        n_feat += e;
    }
    rc = load_params(&L, &params, T);
    if (!rc)
        rc = compile(&L, T, n_feat);
    cai__free(L.raw);
    cai__free(L.eidx);
    cai__free(L.eval);
    if (rc) {
        cai__error_prefix(b->err, tn);
        return rc;
    }
    if (cls) {
        T->n_classes = labels->n;
        if (labels->n < 2)
            return cai__fail(b->err, CAI_EFORMAT, "%s: needs at least 2 class labels, has %zu",
                             tn, labels->n);
        if (!(T->n_dims == labels->n || T->n_dims + 1 == labels->n ||
              (T->n_dims == 1 && labels->n == 2)))
            return cai__fail(b->err, CAI_EFORMAT,
                             "%s: numPredictionDimensions %zu does not fit %zu classes", tn,
                             T->n_dims, labels->n);
        if (T->n_dims + 1 == labels->n && labels->n > 2 && T->transform != TR_SOFTMAX_ZERO)
            return cai__fail(b->err, CAI_EFORMAT,
                             "%s: %zu dimensions for %zu classes needs "
                             "Classification_SoftMaxWithZeroClassReference", tn, T->n_dims,
                             labels->n);
    }
    nd->impl = T;
    nd->n_scratch = CAI_MAX(ROW_SCRATCH(T),
                            BLOCK * T->n_dims + T->n_classes + 2);
    if ((rc = cml__bind_outputs(b, nd, mm, NULL, T->n_dims)) != 0)
        return rc;
    if (cls) {
        nd->run = run_classifier;
        rc = cml__bind_classifier(b, nd, mm, labels);
    } else {
        nd->run = run_regressor;
        rc = cml__bind_regressor(b, nd, mm);
    }
    if (rc)
        return rc;
    int32_t *stk = cai__malloc_array(T->n_nodes + 1, 2 * sizeof(int32_t));
    T->depth = cml__arena_array(&b->m->arena, T->n_trees, sizeof(size_t));
    if (!stk || !T->depth) {
        cai__free(stk);
        return cai__fail(b->err, CAI_ENOMEM, "out of memory");
    }
    size_t depth = 0;
    for (size_t t = 0; t < T->n_trees; t++) {
        T->depth[t] = max_depth(T, t, stk, stk + T->n_nodes + 1);
        depth = T->depth[t] > depth ? T->depth[t] : depth;
    }
    cai__free(stk);
    if (T->uniform_op == OP_LE || T->uniform_op == OP_LT) {
        if ((rc = build_walk(b, T)) || (rc = build_forest(b, T, depth, &T->forest)))
            return rc;
        if (T->wnodes && (cls || cml__batch_values_ok(b, nd, T->n_dims)))
            nd->run_batch = run_batch;
        if (T->forest) {
            size_t fs = cml__x512_forest_scratch(T->n_feat, T->n_dims);
            nd->n_scratch = CAI_MAX(nd->n_scratch, BLOCK * T->n_dims + T->n_classes + 2 + fs);
            nd->n_scratch = CAI_MAX(nd->n_scratch, ROW_SCRATCH(T) + fs);
        }
    }
    static const char *const trn[] = {"none", "softmax", "logistic", "softmax-zero"};
    cml__node_info(b, nd, "%zu trees, %zu nodes, depth %zu, %zu features, %zu outputs, %s%s%s",
                   T->n_trees, T->n_nodes, depth, T->n_feat, T->n_dims, trn[T->transform],
                   T->uniform_op == OP_LE ? ", all <=" : T->uniform_op == OP_LT ? ", all <" : "",
                   T->forest ? ", compare-all (avx512)" : T->wnodes ? ", lockstep batches" : "");
    return 0;
}
