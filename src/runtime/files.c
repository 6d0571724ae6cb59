/* files.c: public entry points for whole-file operations (.coreaimodel
 * import and verification), over the format and convert layers. */
#include "../convert/convert.h"
#include "../format/coreaimodel.h"
#include "session.h"

int cai_convert_gguf(const char *in_path, const char *out_path, cai_progress_fn progress,
                     void *user, struct cai_error *err)
{
    return cai__convert_gguf(in_path, out_path, 0, progress, user, err);
}

int cai_verify(const char *path, uint64_t *n_tensors, uint64_t *n_bad, struct cai_error *err)
{
    struct cai_gguf *g;
    int rc = cai__cam_open(&g, path, err);
    if (rc < 0)
        return rc;
    struct cai_cam_verify_result r = {0};
    rc = cai__cam_verify(g, NULL, NULL, &r, err);
    cai__gguf_close(g);
    if (n_tensors)
        *n_tensors = r.n_tensors;
    if (n_bad)
        *n_bad = r.n_bad;
    return rc;
}
