/* sample.h: the sampler chain (penalties, top-k, top-p, min-p, temperature,
 * seeded draw). Depends only on base/. One sampler per sequence; not
 * thread-safe; no allocation after cai__sampler_new. */
#ifndef CAI_SAMPLE_H
#define CAI_SAMPLE_H

#include <stdint.h>

#include "../base/base.h"

struct cai_sampler;

/* Creates a sampler for a vocabulary of n_vocab tokens. Parameters are
 * validated (NaN, negative temperature is greedy, top_p in (0,1], ...);
 * invalid ones fail with CAI_EINVAL naming the field. */
int  cai__sampler_new(struct cai_sampler **out, const struct cai_sampling *p, uint32_t n_vocab,
                      struct cai_error *err);
void cai__sampler_free(struct cai_sampler *s);
/* Forgets the token history and reseeds the RNG from the params' seed. */
void cai__sampler_reset(struct cai_sampler *s);
/* Records a token (prompt or generated) in the history the penalties see. */
void cai__sampler_accept(struct cai_sampler *s, int32_t id);
/* Picks the next token from logits[n_vocab]. May modify logits. */
int32_t cai__sampler_sample(struct cai_sampler *s, float *logits);

/* Checks sampling parameters without creating a sampler (for servers that
 * answer a bad request before doing any work). 0 or CAI_EINVAL naming the
 * field. */
int cai__sampling_validate(const struct cai_sampling *p, struct cai_error *err);
/* Runs the chain like cai__sampler_sample but draws nothing and leaves the
 * RNG untouched: writes up to `cap` surviving candidates, most likely first,
 * with their final probabilities (after temperature, summing to 1 over all
 * survivors) to ids[] and probs[], and returns how many survived (which may
 * exceed cap). Greedy decoding yields the one argmax token with p = 1. For
 * logprobs and tests. May modify logits; does not allocate. */
uint32_t cai__sampler_probs(struct cai_sampler *s, float *logits, int32_t *ids, float *probs,
                            uint32_t cap);
/* The vocabulary size the sampler was created for. */
uint32_t cai__sampler_n_vocab(const struct cai_sampler *s);
/* The parameters the sampler was created with. */
const struct cai_sampling *cai__sampler_params(const struct cai_sampler *s);

#endif /* CAI_SAMPLE_H */
