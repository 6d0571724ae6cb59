/* torch_source.c: PyTorch checkpoints as a tensor source (placeholder until
 * the zip and restricted pickle readers land). */
#include "convert_int.h"

int cai__src_add_torch(struct cai_src *src, const char *path, struct cai_error *err)
{
    (void)src;
    return cai__fail(err, CAI_EUNSUPPORTED, "%s: PyTorch checkpoints are not supported yet", path);
}
