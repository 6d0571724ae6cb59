/* test_base.c: errors, checked arithmetic, file mapping, CPU detection. */
#include "base/base.h"
#include "test.h"

static void test_strerror(void)
{
    CHECK_STR(cai_strerror(CAI_ENOMEM), "out of memory");
    CHECK_STR(cai_err_name(CAI_EFORMAT), "CAI_EFORMAT");
    CHECK_STR(cai_strerror(12345), "unknown error");
}

static void test_fail_message(void)
{
    struct cai_error e = {0};
    int rc = cai__fail(&e, CAI_EFORMAT, "tensor %s: n_dims %u", "x", 5u);
    CHECK_EQ_INT(rc, CAI_EFORMAT);
    CHECK_EQ_INT(e.code, CAI_EFORMAT);
    CHECK_STR(e.msg, "tensor x: n_dims 5");
    cai__error_prefix(&e, "f.gguf");
    CHECK_STR(e.msg, "f.gguf: tensor x: n_dims 5");
    CHECK_EQ_INT(cai__fail(NULL, CAI_EIO, "ignored"), CAI_EIO);
}

static void test_checked_math(void)
{
    size_t r;
    CHECK(cai__mul_size(3, 4, &r) && r == 12);
    CHECK(!cai__mul_size(SIZE_MAX / 2 + 1, 2, &r));
    CHECK(!cai__add_size(SIZE_MAX, 1, &r));
    uint64_t u;
    CHECK(!cai__mul_u64(UINT64_MAX, 3, &u));
    CHECK(cai__malloc_array(SIZE_MAX / 4, 8) == NULL);
}

static void test_alloc_fail_injection(void)
{
    cai__alloc_fail_after(2);
    void *a = cai__malloc(8);
    void *b = cai__malloc(8);
    void *c = cai__malloc(8);
    CHECK(a != NULL);
    CHECK(b == NULL);
    CHECK(c != NULL);
    cai__free(a);
    cai__free(c);
    cai__alloc_fail_after(0);
}

static void test_map_missing(void)
{
    struct cai_map m;
    struct cai_error e = {0};
    int rc = cai__map_open(&m, "/nonexistent/file.gguf", &e);
    CHECK(rc == CAI_EIO);
    CHECK(strstr(e.msg, "/nonexistent/file.gguf") != NULL);
}

static void test_map_read(void)
{
    struct cai_map m;
    struct cai_error e = {0};
    CHECK_EQ_INT(cai__map_open(&m, "Makefile", &e), 0);
    CHECK(m.n_bytes > 10 && m.data && m.data[0] == '#');
    cai__map_close(&m);
    char *buf;
    size_t n;
    CHECK_EQ_INT(cai__read_file("Makefile", &buf, &n, &e), 0);
    CHECK(n > 10 && buf[n] == '\0');
    cai__free(buf);
}

static void test_cpu(void)
{
    const struct cai_cpu *c = cai__cpu();
    CHECK(c->n_cpus >= 1);
    CHECK(!c->avx512vnni || c->avx512f);
}

int main(void)
{
    RUN(test_strerror);
    RUN(test_fail_message);
    RUN(test_checked_math);
    RUN(test_alloc_fail_injection);
    RUN(test_map_missing);
    RUN(test_map_read);
    RUN(test_cpu);
    return test_done();
}
