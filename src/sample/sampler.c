/* sampler.c: the sampler chain that turns one row of logits into a token.
 *
 * Order (fixed): repetition/presence/frequency penalties over the last
 * penalty_last_n accepted tokens, then top-k, top-p, min-p, temperature and
 * a draw from a seeded xoshiro256** generator. temp <= 0 is greedy argmax
 * after the penalties, ties going to the lowest id.
 *
 * Determinism. The same seed, settings and logits give the same token on
 * every platform: candidate order is a total order (logit descending, then id
 * ascending), sums run in that order in double precision, and the softmax
 * uses a local exp built from plain IEEE arithmetic rather than libm, whose
 * results differ between C libraries. FP contraction is disabled so a
 * compiler cannot fuse the polynomial into FMAs on one target and not another.
 *
 * Memory. Everything is allocated in cai__sampler_new: a candidate array of
 * n_vocab entries, a per-token occurrence count and a ring of the last
 * penalty_last_n tokens. Sampling itself never allocates. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "sample.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* The largest history window we allocate for (4 MiB of token ids). */
#define CAI__SAMPLER_MAX_LAST_N (1 << 20)

struct cand {
    double  w;     /* unnormalised probability, exp(logit - max logit) */
    float   logit; /* after penalties; never NaN */
    int32_t id;
};

struct cai_sampler {
    struct cai_sampling p;
    uint32_t            n_vocab;
    uint64_t            rng[4]; /* xoshiro256** state */
    struct cand        *cand;   /* [n_vocab] scratch for one sample call */
    uint32_t           *count;  /* [n_vocab] occurrences inside the history window */
    int32_t            *hist;   /* [n_hist_cap] ring of accepted ids, oldest at hist_head */
    uint32_t            n_hist_cap, n_hist, hist_head;
};

/* ---- parameters -------------------------------------------------------- */

struct cai_sampling cai_sampling_default(void)
{
    struct cai_sampling p;
    memset(&p, 0, sizeof(p));
    p.temp = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.penalty_last_n = 64;
    p.seed = 0;
    return p;
}

int cai__sampling_validate(const struct cai_sampling *p, struct cai_error *err)
{
    if (!p)
        return cai__fail(err, CAI_EINVAL, "sampling: parameters are NULL");
    if (!isfinite(p->temp))
        return cai__fail(err, CAI_EINVAL, "sampling: temp must be a finite number (got %g)",
                         (double)p->temp);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return cai__fail(err, CAI_EINVAL, "sampling: top_p must be in (0, 1] (got %g)",
                         (double)p->top_p);
    if (isnan(p->min_p) || p->min_p > 1.0f)
        return cai__fail(err, CAI_EINVAL,
                         "sampling: min_p must be at most 1, or <= 0 to disable it (got %g)",
                         (double)p->min_p);
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0.0f)
        return cai__fail(err, CAI_EINVAL,
                         "sampling: repeat_penalty must be a finite number > 0 (got %g)",
                         (double)p->repeat_penalty);
    if (!isfinite(p->presence_penalty))
        return cai__fail(err, CAI_EINVAL,
                         "sampling: presence_penalty must be a finite number (got %g)",
                         (double)p->presence_penalty);
    if (!isfinite(p->frequency_penalty))
        return cai__fail(err, CAI_EINVAL,
                         "sampling: frequency_penalty must be a finite number (got %g)",
                         (double)p->frequency_penalty);
    if (p->penalty_last_n < 0 || p->penalty_last_n > CAI__SAMPLER_MAX_LAST_N)
        return cai__fail(err, CAI_EINVAL, "sampling: penalty_last_n must be in [0, %d] (got %d)",
                         CAI__SAMPLER_MAX_LAST_N, p->penalty_last_n);
    return 0;
}

/* ---- random numbers ---------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna). */
static uint64_t rng_next(uint64_t s[4])
{
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

static void rng_seed(uint64_t s[4], uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        s[i] = splitmix64(&x);
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4])
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* ---- portable exp ------------------------------------------------------ */

/* exp(x) for x <= 0 using only IEEE double arithmetic, so every platform
 * gets the same bits. Relative error is about 1e-16. Below -700 the result
 * (< 1e-304) is flushed to 0: it can never matter next to the weight 1 of
 * the most likely token. */
static double det_exp(double x)
{
    if (!(x > -700.0))
        return 0.0; /* also NaN */
    if (x >= 0.0)
        return 1.0;
    const double log2e = 1.44269504088896338700e+00;
    const double ln2_hi = 6.93147180369123816490e-01; /* low bits zero: k * ln2_hi is exact */
    const double ln2_lo = 1.90821492927058770002e-10;
    double k = floor(x * log2e + 0.5);
    double r = (x - k * ln2_hi) - k * ln2_lo; /* |r| <= 0.35 */
    /* Taylor series to r^12 (error below 2e-16 on this range). */
    double p = 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* 2^k, k in [-1011, 0]: a normal double built from its exponent bits. */
    uint64_t bits = (uint64_t)((int64_t)k + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

/* ---- lifetime ---------------------------------------------------------- */

int cai__sampler_new(struct cai_sampler **out, const struct cai_sampling *p, uint32_t n_vocab,
                     struct cai_error *err)
{
    if (!out)
        return cai__fail(err, CAI_EINVAL, "sampler: out is NULL");
    *out = NULL;
    int rc = cai__sampling_validate(p, err);
    if (rc < 0)
        return rc;
    if (n_vocab == 0 || n_vocab > (uint32_t)INT32_MAX)
        return cai__fail(err, CAI_EINVAL, "sampler: n_vocab must be in [1, %d] (got %u)",
                         INT32_MAX, n_vocab);

    struct cai_sampler *s = cai__calloc(1, sizeof(*s));
    if (!s)
        goto fail_nomem;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->n_hist_cap = (uint32_t)p->penalty_last_n;
    s->cand = cai__malloc_array(n_vocab, sizeof(*s->cand));
    s->count = cai__calloc(n_vocab, sizeof(*s->count));
    s->hist = cai__malloc_array(s->n_hist_cap ? s->n_hist_cap : 1, sizeof(*s->hist));
    if (!s->cand || !s->count || !s->hist)
        goto fail_nomem;
    rng_seed(s->rng, p->seed);
    *out = s;
    return 0;

fail_nomem:
    cai__sampler_free(s);
    return cai__fail(err, CAI_ENOMEM, "sampler: out of memory for a vocabulary of %u tokens",
                     n_vocab);
}

void cai__sampler_free(struct cai_sampler *s)
{
    if (!s)
        return;
    cai__free(s->cand);
    cai__free(s->count);
    cai__free(s->hist);
    cai__free(s);
}

void cai__sampler_reset(struct cai_sampler *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->n_hist; i++)
        s->count[s->hist[(s->hist_head + i) % s->n_hist_cap]] = 0;
    s->n_hist = 0;
    s->hist_head = 0;
    rng_seed(s->rng, s->p.seed);
}

void cai__sampler_accept(struct cai_sampler *s, int32_t id)
{
    /* Ids outside the vocabulary (a caller bug) are ignored rather than
     * indexing out of bounds. */
    if (!s || s->n_hist_cap == 0 || id < 0 || (uint32_t)id >= s->n_vocab)
        return;
    if (s->n_hist == s->n_hist_cap) {
        s->count[s->hist[s->hist_head]]--;
        s->hist[s->hist_head] = id;
        s->hist_head = (s->hist_head + 1) % s->n_hist_cap;
    } else {
        s->hist[(s->hist_head + s->n_hist) % s->n_hist_cap] = id;
        s->n_hist++;
    }
    s->count[id]++;
}

uint32_t cai__sampler_n_vocab(const struct cai_sampler *s)
{
    return s->n_vocab;
}

const struct cai_sampling *cai__sampler_params(const struct cai_sampler *s)
{
    return &s->p;
}

/* ---- the chain --------------------------------------------------------- */

/* llama.cpp semantics: the repeat penalty divides positive logits and
 * multiplies the others; the presence penalty is subtracted once per distinct
 * token in the window, the frequency penalty once per occurrence. */
static void apply_penalties(struct cai_sampler *s, float *logits)
{
    const struct cai_sampling *p = &s->p;
    if (s->n_hist == 0 ||
        (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f))
        return;
    /* Visit each distinct token once: zero its count when it is applied, then
     * rebuild the counts from the ring. */
    for (uint32_t i = 0; i < s->n_hist; i++) {
        int32_t  id = s->hist[(s->hist_head + i) % s->n_hist_cap];
        uint32_t c = s->count[id];
        if (c == 0)
            continue;
        s->count[id] = 0;
        float l = logits[id];
        if (p->repeat_penalty != 1.0f)
            l = l <= 0.0f ? l * p->repeat_penalty : l / p->repeat_penalty;
        l -= (float)c * p->frequency_penalty + p->presence_penalty;
        logits[id] = l;
    }
    for (uint32_t i = 0; i < s->n_hist; i++)
        s->count[s->hist[(s->hist_head + i) % s->n_hist_cap]]++;
}

/* Total order used everywhere: higher logit first, then lower id. */
static bool cand_before(const struct cand *a, const struct cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* Restores the heap property below h[j] in a heap of n whose root holds the
 * candidate that sorts last (a min-heap under cand_before). */
static void heap_sift_down(struct cand *h, uint32_t n, uint32_t j, struct cand c)
{
    for (;;) {
        uint32_t           l = 2 * j + 1, m = j;
        const struct cand *last = &c;
        if (l < n && cand_before(last, &h[l])) {
            m = l;
            last = &h[l];
        }
        if (l + 1 < n && cand_before(last, &h[l + 1]))
            m = l + 1;
        if (m == j)
            break;
        h[j] = h[m];
        j = m;
    }
    h[j] = c;
}

/* Sorts best-first in place. Heapsort: no recursion and, unlike qsort
 * (glibc's allocates), no memory. The order is total, so the result does not
 * depend on the algorithm. */
static void sort_cands(struct cand *c, uint32_t n)
{
    if (n < 2)
        return;
    for (uint32_t i = n / 2; i-- > 0;)
        heap_sift_down(c, n, i, c[i]);
    /* The root is the worst: move it to the end each round. */
    for (uint32_t end = n - 1; end > 0; end--) {
        struct cand t = c[end];
        c[end] = c[0];
        heap_sift_down(c, end, 0, t);
    }
}

/* Makes the row safe for the chain (NaN can never be chosen: -inf; +inf
 * becomes the largest finite logit so the softmax stays finite, all +inf
 * tokens then sharing the mass) and returns the index of the largest logit;
 * ties and an all -inf row go to the lowest id. The maximum is kept in 8
 * independent lanes (max over non-NaN floats does not depend on the order)
 * and then looked up: a running argmax is one dependent load-compare per
 * element, 3.3 ns each here (160 us per 49152-token row). */
static int32_t sanitize_argmax(float *logits, uint32_t n)
{
    float mx[8];
    for (int l = 0; l < 8; l++)
        mx[l] = -INFINITY;
    for (uint32_t i = 0; i < n; i++) {
        float v = logits[i];
        v = isnan(v) ? -INFINITY : v == INFINITY ? FLT_MAX : v;
        logits[i] = v;
        mx[i % 8] = v > mx[i % 8] ? v : mx[i % 8];
    }
    float best = mx[0];
    for (int l = 1; l < 8; l++)
        best = mx[l] > best ? mx[l] : best;
    for (uint32_t i = 0; i < n; i++)
        if (logits[i] == best)
            return (int32_t)i;
    return 0;
}

/* Keeps the k best logits in cand[0..k), sorted. A min-heap of the k best
 * so far (the worst of them at the root) makes this O(n log k). */
static uint32_t select_top_k(struct cai_sampler *s, const float *logits, uint32_t k)
{
    struct cand *h = s->cand;
    float        worst = -INFINITY; /* the root's logit once the heap is full */
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        /* Most logits lose to the root: ids only grow, so a tie loses too.
         * Whole blocks of 16 that cannot enter are skipped in one test. */
        if (i >= k && (i & 15) == 0 && i + 16 <= s->n_vocab) {
            int any = 0;
            for (int l = 0; l < 16; l++)
                any |= logits[i + l] > worst;
            if (!any) {
                i += 15;
                continue;
            }
        }
        if (i >= k && !(logits[i] > worst))
            continue;
        struct cand c = {.w = 0.0, .logit = logits[i], .id = (int32_t)i};
        uint32_t    j;
        if (i < k) {
            /* Sift up. */
            j = i;
            while (j > 0 && cand_before(&h[(j - 1) / 2], &c)) {
                h[j] = h[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            h[j] = c;
            if (i == k - 1)
                worst = h[0].logit;
            continue;
        }
        heap_sift_down(h, k, 0, c);
        worst = h[0].logit;
    }
    sort_cands(h, k);
    return k;
}

/* Smallest prefix (in sorted order) whose mass reaches top_p of the total.
 * When the candidates are not sorted yet, sorts only as much as needed:
 * candidates within 7, 14, 21 nats of the best are moved to the front and
 * sorted one band at a time, and the scan stops in the first band where the
 * mass is reached. Each band holds at most total * e^band candidates, so a
 * peaked distribution sorts a few hundred entries instead of the vocabulary. */
static uint32_t cut_top_p(struct cai_sampler *s, uint32_t n, bool sorted, float max_logit,
                          double total)
{
    static const double bands[] = {-7.0, -14.0, -21.0, -HUGE_VAL};
    struct cand        *c = s->cand;
    double              target = (double)s->p.top_p * total;
    double              cum = 0.0;
    uint32_t            done = 0;
    for (size_t b = 0; b < CAI_ARRAY_LEN(bands); b++) {
        uint32_t end = n;
        if (!sorted) {
            end = done;
            for (uint32_t i = done; i < n; i++) {
                if ((double)c[i].logit - (double)max_logit >= bands[b] ||
                    b + 1 == CAI_ARRAY_LEN(bands)) {
                    struct cand t = c[end];
                    c[end] = c[i];
                    c[i] = t;
                    end++;
                }
            }
            sort_cands(c + done, end - done);
        }
        for (uint32_t i = done; i < end; i++) {
            cum += c[i].w;
            if (cum >= target)
                return i + 1;
        }
        done = end;
        if (sorted || done == n)
            break;
    }
    return n; /* rounding kept the sum just short of the target: keep all */
}

/* Runs penalties through temperature. Leaves the surviving candidates in
 * cand[0..n) with their tempered weights and returns n, or returns 0 with
 * *greedy set to the token when the choice is already made (greedy decoding,
 * one-token vocabulary, no possible token). */
static uint32_t run_chain(struct cai_sampler *s, float *logits, int32_t *greedy)
{
    const uint32_t n_vocab = s->n_vocab;
    struct cand   *c = s->cand;

    apply_penalties(s, logits);
    *greedy = sanitize_argmax(logits, n_vocab);
    if (s->p.temp <= 0.0f || n_vocab == 1 || logits[*greedy] == -INFINITY)
        return 0;

    /* Top-k. */
    uint32_t n;
    bool     sorted;
    float    max_logit = logits[*greedy];
    if (s->p.top_k > 0 && (uint32_t)s->p.top_k < n_vocab) {
        n = select_top_k(s, logits, (uint32_t)s->p.top_k);
        sorted = true;
    } else {
        n = n_vocab;
        sorted = false;
        for (uint32_t i = 0; i < n; i++) {
            c[i].logit = logits[i];
            c[i].id = (int32_t)i;
        }
    }

    /* Probabilities at temperature 1 for top-p and min-p, relative to the
     * most likely token (whose weight is exactly 1). */
    double total = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        c[i].w = det_exp((double)c[i].logit - (double)max_logit);
        total += c[i].w;
    }

    /* Top-p: the best token always survives. */
    if (s->p.top_p < 1.0f)
        n = cut_top_p(s, n, sorted, max_logit, total);

    /* Min-p: keep tokens at least min_p times as likely as the best. */
    if (s->p.min_p > 0.0f) {
        uint32_t m = 0;
        for (uint32_t i = 0; i < n; i++)
            if (c[i].w >= (double)s->p.min_p)
                c[m++] = c[i];
        n = m;
    }

    /* Temperature. */
    if (s->p.temp != 1.0f)
        for (uint32_t i = 0; i < n; i++)
            c[i].w = det_exp(((double)c[i].logit - (double)max_logit) / (double)s->p.temp);
    return n;
}

int32_t cai__sampler_sample(struct cai_sampler *s, float *logits)
{
    int32_t  greedy;
    uint32_t n = run_chain(s, logits, &greedy);
    if (n == 0)
        return greedy;

    const struct cand *c = s->cand;
    double             total = 0.0;
    for (uint32_t i = 0; i < n; i++)
        total += c[i].w;
    double   target = rng_uniform(s->rng) * total;
    double   cum = 0.0;
    uint32_t last = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (c[i].w <= 0.0)
            continue;
        cum += c[i].w;
        last = i;
        if (target < cum)
            return c[i].id;
    }
    return c[last].id; /* rounding: u * total landed on the total */
}

uint32_t cai__sampler_probs(struct cai_sampler *s, float *logits, int32_t *ids, float *probs,
                            uint32_t cap)
{
    int32_t  greedy;
    uint32_t n = run_chain(s, logits, &greedy);
    if (n == 0) {
        if (cap > 0) {
            ids[0] = greedy;
            probs[0] = 1.0f;
        }
        return 1;
    }
    struct cand *c = s->cand;
    sort_cands(c, n);
    double total = 0.0;
    for (uint32_t i = 0; i < n; i++)
        total += c[i].w;
    for (uint32_t i = 0; i < n && i < cap; i++) {
        ids[i] = c[i].id;
        probs[i] = (float)(c[i].w / total);
    }
    return n;
}
