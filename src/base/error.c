/* error.c: status codes and the one-line error messages that travel with them. */
#include <stdio.h>
#include <string.h>

#include "base.h"

const char *cai_strerror(int code)
{
    switch (code) {
    case 0: return "success";
#define CAI__ERR_STR(name, c, msg) case c: return msg;
        CAI_ERRORS(CAI__ERR_STR)
#undef CAI__ERR_STR
    default: return "unknown error";
    }
}

const char *cai_err_name(int code)
{
    switch (code) {
    case 0: return "CAI_OK";
#define CAI__ERR_NAME(name, c, msg) case c: return "CAI_E" #name;
        CAI_ERRORS(CAI__ERR_NAME)
#undef CAI__ERR_NAME
    default: return "CAI_E?";
    }
}

int cai__vfail(struct cai_error *err, int code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return code;
}

int cai__fail(struct cai_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cai__vfail(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void cai__error_prefix(struct cai_error *err, const char *prefix)
{
    char tmp[sizeof(err->msg)];
    if (!err || !prefix)
        return;
    size_t np = strlen(prefix), nm = strlen(err->msg);
    size_t cap = sizeof(tmp) - 1, len = 0;
    size_t take = CAI_MIN(np, cap);
    memcpy(tmp, prefix, take);
    len = take;
    if (len + 2 <= cap) {
        memcpy(tmp + len, ": ", 2);
        len += 2;
    }
    take = CAI_MIN(nm, cap - len);
    memcpy(tmp + len, err->msg, take);
    len += take;
    tmp[len] = '\0';
    memcpy(err->msg, tmp, len + 1);
}
