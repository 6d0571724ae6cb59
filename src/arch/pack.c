/* pack.c: the model's packed weight copy (kernels.h, "Packed weights").
 *
 * The first session whose kernel table has packed kernels for the model's
 * weight types starts a background thread that makes one copy of those
 * matrices in the packed layout, in anonymous memory of the same size, and
 * releases the file pages it read from this process, so the resident set
 * stays one copy of the weights. Matrices are published one by one as they
 * are done; until then the forward pass uses the original rows (same bits),
 * so the first tokens do not wait for the packing (fresh anonymous memory
 * is slow to fault in on this machine: ~0.5 GB/s, 3 s for the 1.3 GB
 * Llama-1B-shape Q8_0 file).
 * Outputs do not change: mm_packed gives mm's bits. Models whose packed
 * part would take more than half the available memory are left as they are:
 * they keep running from the file mapping, demand-loaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../kernels/kernels.h"
#include "model.h"

#define PACK_ALIGN       64
#define GROUPS_PER_ITEM  64

/* MemAvailable from /proc/meminfo in bytes, or 0 when unknown. */
static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kib = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", (unsigned long long *)&kib) == 1)
            break;
    fclose(f);
    return kib > UINT64_MAX / 1024 ? 0 : kib * 1024;
}

/* The weights that get a packed copy, in a fixed order. */
static int packable(const struct cai_model *m, const struct cai_kernels *k,
                    struct cai__weight **out, int cap)
{
    int n = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        struct cai__layer *l = &m->layers[il];
        struct cai__weight *ws[] = {&l->wq, &l->wk, &l->wv, &l->wo,
                                    &l->w_gate, &l->w_up, &l->w_down};
        for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]) && n < cap; i++)
            out[n++] = ws[i];
    }
    if (n < cap)
        out[n++] = (struct cai__weight *)&m->output;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        const struct cai__weight *w = out[i];
        if (w->data && !w->f32_input && w->type < CAI_TYPE_COUNT && k->type[w->type].pack &&
            k->type[w->type].mm_packed && w->ne[0] % CAI_QK == 0 && w->ne[1] > 0)
            out[kept++] = out[i];
    }
    return kept;
}

struct pack_job {
    const struct cai_model   *m;
    const struct cai_kernels *k;
    const struct cai__weight *w;
    uint8_t                  *dst;
    int64_t                   n_groups;
};

/* Drops this process's mapping of the whole pages inside [p, p + n) of the
 * read-only file mapping (the page cache keeps them). */
static void release_file_pages(const struct cai_model *m, const void *p, size_t n)
{
    if (!m->gguf->map.mapped)
        return;
    uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + ps - 1) & ~(ps - 1), b = ((uintptr_t)p + n) & ~(ps - 1);
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
}

static void pack_worker(const struct pack_job *j, int64_t item)
{
    int64_t g0 = item * GROUPS_PER_ITEM;
    int64_t g1 = CAI_MIN(g0 + GROUPS_PER_ITEM, j->n_groups);
    const struct cai__weight *w = j->w;
    j->k->type[w->type].pack(w->ne[0], w->data, w->row_bytes, w->ne[1], g0, g1,
                             j->dst + (size_t)g0 * CAI__PACK_ROWS * w->row_bytes);
    /* The rows just read leave this process's resident set as it goes, so
     * the peak stays about one copy of the weights (a tied embedding too:
     * the token lookup faults back the few rows it reads). */
    int64_t r0 = g0 * CAI__PACK_ROWS, r1 = CAI_MIN(g1 * CAI__PACK_ROWS, w->ne[1]);
    release_file_pages(j->m, (const uint8_t *)w->data + (size_t)r0 * w->row_bytes,
                       (size_t)(r1 - r0) * w->row_bytes);
}

/* The background packer: packs the tensors in order, publishing each as
 * it is done, until all are or the model is closing. */
struct packer {
    struct cai_model         *m;
    const struct cai_kernels *k;
    struct cai__weight      **ws;
    int                       n;
};

static void *pack_main(void *arg)
{
    struct packer *p = arg;
    struct cai_model *m = p->m;
    pthread_mutex_lock(&m->pack_lock);
    while (!m->pack_go && !m->pack_cancel)
        pthread_cond_wait(&m->pack_cond, &m->pack_lock);
    pthread_mutex_unlock(&m->pack_lock);
    uint8_t *dst = m->pack_mem;
    for (int i = 0; i < p->n && !__atomic_load_n(&m->pack_cancel, __ATOMIC_ACQUIRE); i++) {
        struct cai__weight *w = p->ws[i];
        struct pack_job j = {.m = m, .k = p->k, .w = w, .dst = dst};
        j.n_groups = (w->ne[1] + CAI__PACK_ROWS - 1) / CAI__PACK_ROWS;
        int64_t it = 0;
        for (; it * GROUPS_PER_ITEM < j.n_groups; it++) {
            if (__atomic_load_n(&m->pack_cancel, __ATOMIC_ACQUIRE))
                break;
            pack_worker(&j, it);
        }
        if (it * GROUPS_PER_ITEM < j.n_groups)
            break; /* closing: this matrix stays unpublished */
        __atomic_store_n(&w->packed, (const void *)dst, __ATOMIC_RELEASE);
        size_t b = cai__packed_bytes(w->row_bytes, w->ne[1]);
        dst += (b + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN;
    }
    pthread_mutex_lock(&m->pack_lock);
    m->pack_done = true;
    pthread_cond_broadcast(&m->pack_cond);
    pthread_mutex_unlock(&m->pack_lock);
    cai__free(p->ws);
    cai__free(p);
    return NULL;
}

void cai__model_pack(struct cai_model *m, const struct cai_kernels *k)
{
    pthread_mutex_lock(&m->pack_lock);
    if (m->pack_tried) {
        pthread_mutex_unlock(&m->pack_lock);
        return;
    }
    m->pack_tried = true;
    const char *env = getenv("COREAI_PACK");
    int mode = env && strcmp(env, "0") == 0 ? 0 : env && strcmp(env, "1") == 0 ? 1 : -1;
    int cap = m->hp.n_layer * 7 + 1;
    struct cai__weight **ws = mode ? cai__malloc_array((size_t)cap, sizeof(*ws)) : NULL;
    int n = ws ? packable(m, k, ws, cap) : 0;
    size_t total = 0;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        size_t b = cai__packed_bytes(ws[i]->row_bytes, ws[i]->ne[1]);
        ok = cai__add_size(total, (b + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN, &total);
    }
    uint64_t avail = mode < 0 ? mem_available() : 0;
    struct packer *p = NULL;
    void *mem = MAP_FAILED;
    if (n > 0 && ok && total > 0 && (mode > 0 || (avail > 0 && total <= avail / 2)) &&
        (p = cai__calloc(1, sizeof(*p))) != NULL)
        mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* No MADV_HUGEPAGE: 2 MiB pages made decode ~4 % faster (fewer TLB
     * misses), but with this machine's THP defrag setting a fault could
     * stall on compaction: packing SmolLM2 took 35 ms or 200-250 ms at
     * random, against a steady 55-60 ms with 4 KiB pages. */
    if (mem != MAP_FAILED) {
        m->pack_mem = mem;
        m->pack_bytes = total;
        *p = (struct packer){.m = m, .k = k, .ws = ws, .n = n};
        if (pthread_create(&m->pack_thread, NULL, pack_main, p) == 0) {
            pthread_mutex_unlock(&m->pack_lock);
            return;
        }
        munmap(mem, total);
        m->pack_mem = NULL;
        m->pack_bytes = 0;
    }
    cai__free(p);
    cai__free(ws);
    pthread_mutex_unlock(&m->pack_lock);
}

void cai__model_pack_kick(struct cai_model *m)
{
    if (__atomic_load_n(&m->pack_go, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&m->pack_lock);
    __atomic_store_n(&m->pack_go, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&m->pack_cond);
    pthread_mutex_unlock(&m->pack_lock);
}

void cai_model_wait_packed(struct cai_model *m)
{
    cai__model_pack_kick(m);
    pthread_mutex_lock(&m->pack_lock);
    while (m->pack_mem && !m->pack_done) /* a packer runs while pack_mem is set */
        pthread_cond_wait(&m->pack_cond, &m->pack_lock);
    pthread_mutex_unlock(&m->pack_lock);
}

void cai__model_unpack(struct cai_model *m)
{
    if (m->pack_mem) { /* a packer was started: stop it */
        pthread_mutex_lock(&m->pack_lock);
        __atomic_store_n(&m->pack_cancel, 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&m->pack_cond);
        pthread_mutex_unlock(&m->pack_lock);
        pthread_join(m->pack_thread, NULL);
        munmap(m->pack_mem, m->pack_bytes);
    }
    m->pack_mem = NULL;
    m->pack_bytes = 0;
}
