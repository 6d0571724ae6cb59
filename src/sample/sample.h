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

#endif /* CAI_SAMPLE_H */
