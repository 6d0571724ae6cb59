/* file.c: read-only file mappings and whole-file reads. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"

int cai__map_open(struct cai_map *m, const char *path, struct cai_error *err)
{
    struct stat st;
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cai__fail(err, CAI_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cai__fail(err, CAI_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cai__fail(err, CAI_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return cai__fail(err, CAI_EIO, "%s: file too large to map", path);
    }
    m->fd = fd;
    m->n_bytes = (size_t)st.st_size;
    if (m->n_bytes == 0)
        return 0;
    void *p = mmap(NULL, m->n_bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        m->fd = -1;
        return cai__fail(err, CAI_EIO, "%s: cannot map: %s", path, strerror(e));
    }
    m->data = p;
    m->mapped = true;
    return 0;
}

void cai__map_close(struct cai_map *m)
{
    if (!m)
        return;
    if (m->data && m->mapped)
        munmap((void *)m->data, m->n_bytes);
    else if (m->data)
        cai__free((void *)m->data);
    if (m->fd >= 0)
        close(m->fd);
    memset(m, 0, sizeof(*m));
    m->fd = -1;
}

int cai__read_file(const char *path, char **out, size_t *n_bytes, struct cai_error *err)
{
    *out = NULL;
    if (n_bytes)
        *n_bytes = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cai__fail(err, CAI_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = cai__malloc(cap);
    if (!buf) {
        close(fd);
        return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (cap - len < 2) {
            size_t ncap;
            if (!cai__mul_size(cap, 2, &ncap)) {
                cai__free(buf);
                close(fd);
                return cai__fail(err, CAI_ENOMEM, "%s: file too large", path);
            }
            char *nb = cai__realloc(buf, ncap);
            if (!nb) {
                cai__free(buf);
                close(fd);
                return cai__fail(err, CAI_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            cai__free(buf);
            close(fd);
            return cai__fail(err, CAI_EIO, "%s: read error: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    if (n_bytes)
        *n_bytes = len;
    return 0;
}
