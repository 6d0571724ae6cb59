/* coreml: the command-line front end of the classic engine.
 *
 *   coreml inspect MODEL
 *   coreml predict MODEL [--input FILE.csv|FILE.json|IMAGE] [--format json|csv]
 *   coreml bench   MODEL [--input FILE.csv] [--iters N]
 *
 * predict reads CSV (a header row naming the input features, or the columns
 * of a single array input, in order), JSON (one object per example keyed by
 * input name, an array of them, or one per line; arrays are multiarrays and
 * objects dictionaries) or an image (PNG/JPEG, for a model whose first input
 * is an image). Without --input it reads CSV from standard input. JSON output
 * prints one object per input row keyed by the model's output names, with
 * probabilities as an object keyed by class label. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coreml.h"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "coreml: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        die("out of memory");
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xcalloc(n + 1, 1);
    memcpy(p, s, n);
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *type_name(enum cml_type t)
{
    switch (t) {
    case CML_TYPE_INT64: return "int64";
    case CML_TYPE_DOUBLE: return "double";
    case CML_TYPE_STRING: return "string";
    case CML_TYPE_IMAGE: return "image";
    case CML_TYPE_MULTIARRAY: return "multiarray";
    case CML_TYPE_DICT: return "dictionary";
    case CML_TYPE_SEQUENCE: return "sequence";
    case CML_TYPE_STATE: return "state";
    default: return "invalid";
    }
}

static const char *array_type_name(enum cml_array_type t)
{
    switch (t) {
    case CML_ARRAY_FLOAT32: return "float32";
    case CML_ARRAY_DOUBLE: return "double";
    case CML_ARRAY_INT32: return "int32";
    case CML_ARRAY_INT8: return "int8";
    case CML_ARRAY_FLOAT16: return "float16";
    default: return "?";
    }
}

static void print_feature(const struct cml_feature *f)
{
    printf("    %-24s %s", f->name, type_name(f->type));
    if (f->type == CML_TYPE_MULTIARRAY) {
        printf(" %s [", array_type_name(f->array_type));
        for (int k = 0; k < f->n_dims; k++)
            printf("%s%lld", k ? ", " : "", (long long)f->shape[k]);
        printf("]%s", f->flexible ? " (flexible)" : "");
    } else if (f->type == CML_TYPE_IMAGE) {
        const char *cs = f->color_space == CML_COLOR_GRAYSCALE ? "grayscale" :
                         f->color_space == CML_COLOR_RGB       ? "RGB" :
                         f->color_space == CML_COLOR_BGR       ? "BGR" : "?";
        printf(" %lldx%lld %s", (long long)f->width, (long long)f->height, cs);
    } else if (f->type == CML_TYPE_DICT || f->type == CML_TYPE_SEQUENCE) {
        printf(" of %s", type_name(f->key_type));
    }
    if (f->optional)
        printf(" (optional)");
    if (f->description[0])
        printf("  -- %s", f->description);
    printf("\n");
}

static struct cml_model *open_model(const char *path)
{
    struct cml_model *m;
    struct cai_error err = {0};
    if (cml_model_open(&m, path, &err) < 0)
        die("%s", err.msg);
    return m;
}

static int cmd_inspect(const char *path)
{
    struct cml_model *m = open_model(path);
    printf("model:        %s\n", path);
    printf("type:         %s\n", cml_model_type_name(m));
    printf("spec version: %d\n", cml_model_spec_version(m));
    static const char *const keys[] = {"shortDescription", "author", "license", "versionString"};
    for (size_t i = 0; i < 4; i++)
        if (cml_model_metadata(m, keys[i])[0])
            printf("%-13s %s\n", keys[i], cml_model_metadata(m, keys[i]));
    printf("inputs:\n");
    for (size_t i = 0; i < cml_model_n_inputs(m); i++)
        print_feature(cml_model_input(m, i));
    printf("outputs:\n");
    for (size_t i = 0; i < cml_model_n_outputs(m); i++)
        print_feature(cml_model_output(m, i));
    size_t nc = cml_model_n_classes(m);
    if (nc) {
        printf("classes:      %zu:", nc);
        for (size_t i = 0; i < nc && i < 32; i++) {
            if (cml_model_labels_are_strings(m))
                printf(" %s", cml_model_class_str(m, i));
            else
                printf(" %lld", (long long)cml_model_class_i64(m, i));
        }
        printf(nc > 32 ? " ...\n" : "\n");
    }
    printf("parts:\n");
    for (size_t i = 0; i < cml_model_n_parts(m); i++)
        printf("    %2zu %-24s %s\n", i, cml_model_part_name(m, i), cml_model_part_info(m, i));
    cml_model_close(m);
    return 0;
}

/* ---- input rows --------------------------------------------------------------- */

/* One example: a value per model input plus the memory behind them. */
struct row {
    struct cml_value *v; /* [n_inputs] */
    void            **owned;
    size_t            n_owned, cap_owned;
};

static void row_own(struct row *r, void *p)
{
    if (r->n_owned == r->cap_owned) {
        r->cap_owned = r->cap_owned ? 2 * r->cap_owned : 8;
        r->owned = realloc(r->owned, r->cap_owned * sizeof(void *));
        if (!r->owned)
            die("out of memory");
    }
    r->owned[r->n_owned++] = p;
}

static void row_free(struct row *r)
{
    for (size_t i = 0; i < r->n_owned; i++)
        free(r->owned[i]);
    free(r->owned);
    free(r->v);
    memset(r, 0, sizeof(*r));
}

static double parse_num(const char *s, bool *ok)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s) {
        *ok = true;
        return (double)NAN;
    }
    errno = 0;
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    *ok = *end == '\0';
    return v;
}

/* Splits one CSV line (quotes allowed) into fields; returns the count. */
static size_t csv_split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            while (*p && !(*p == '"' && p[1] != '"')) {
                if (*p == '"')
                    p++;
                *out++ = *p++;
            }
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ',')
                *out++ = *p++;
        }
        char *next = *p == ',' ? p + 1 : NULL;
        *out = '\0';
        if (n < max)
            fields[n++] = start;
        if (!next)
            break;
        p = next;
    }
    return n;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

struct csv_map {
    bool    array_mode; /* all columns feed the single multiarray input */
    int    *col_input;  /* [n_cols] input index or -1 */
    size_t  n_cols;
};

static void csv_header(const struct cml_model *m, char *line, struct csv_map *map)
{
    char *f[4096];
    size_t n = csv_split(line, f, 4096), matched = 0;
    map->n_cols = n;
    map->col_input = xcalloc(n, sizeof(int));
    for (size_t i = 0; i < n; i++) {
        char *s = f[i];
        while (isspace((unsigned char)*s))
            s++;
        map->col_input[i] = cml_model_find_input(m, s);
        matched += map->col_input[i] >= 0;
    }
    size_t n_in = cml_model_n_inputs(m);
    if (matched == n_in && matched == n)
        return;
    const struct cml_feature *f0 = cml_model_input(m, 0);
    if (n_in == 1 && f0->type == CML_TYPE_MULTIARRAY) {
        map->array_mode = true;
        return;
    }
    for (size_t i = 0; i < n_in; i++) {
        bool found = false;
        for (size_t c = 0; c < n; c++)
            found |= map->col_input[c] == (int)i;
        if (!found)
            die("CSV header lacks input '%s'", cml_model_input(m, i)->name);
    }
}

static void csv_row(const struct cml_model *m, const struct csv_map *map, char *line,
                    struct row *r, size_t lineno)
{
    char *f[4096];
    size_t n = csv_split(line, f, 4096), n_in = cml_model_n_inputs(m);
    bool ok;
    r->v = xcalloc(n_in, sizeof(*r->v));
    if (n != map->n_cols)
        die("line %zu: %zu fields, header has %zu", lineno, n, map->n_cols);
    if (map->array_mode) {
        double *d = xcalloc(n, sizeof(double));
        row_own(r, d);
        for (size_t i = 0; i < n; i++) {
            d[i] = parse_num(f[i], &ok);
            if (!ok)
                die("line %zu, column %zu: not a number: '%s'", lineno, i + 1, f[i]);
        }
        r->v[0] = cml_value_array(d, n);
        r->v[0].n_dims = 0;
        return;
    }
    for (size_t c = 0; c < n; c++) {
        int i = map->col_input[c];
        if (i < 0)
            continue;
        const struct cml_feature *ft = cml_model_input(m, (size_t)i);
        if (ft->type == CML_TYPE_STRING) {
            char *s = xstrndup(f[c], strlen(f[c]));
            row_own(r, s);
            r->v[i] = cml_value_string(s);
            continue;
        }
        double v = parse_num(f[c], &ok);
        if (!ok)
            die("line %zu, column '%s': not a number: '%s'", lineno, ft->name, f[c]);
        if (ft->type == CML_TYPE_MULTIARRAY) {
            double *d = xcalloc(1, sizeof(double));
            row_own(r, d);
            d[0] = v;
            r->v[i] = cml_value_array(d, 1);
        } else {
            r->v[i] = cml_value_double(v);
        }
    }
}

/* ---- a small JSON reader (inputs only) ------------------------------------------ */

struct js {
    const char *p, *end;
    int         depth;
    size_t      line;
};

static void js_ws(struct js *j)
{
    while (j->p < j->end && isspace((unsigned char)*j->p)) {
        if (*j->p == '\n')
            j->line++;
        j->p++;
    }
}

static void js_die(struct js *j, const char *what)
{
    die("JSON line %zu: %s", j->line, what);
}

static char *js_string(struct js *j)
{
    if (j->p >= j->end || *j->p != '"')
        js_die(j, "expected a string");
    j->p++;
    size_t cap = 32, n = 0;
    char *s = xcalloc(cap, 1);
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\' && j->p < j->end) {
            c = *j->p++;
            if (c == 'n')
                c = '\n';
            else if (c == 't')
                c = '\t';
            else if (c == 'u') {
                /* \uXXXX: keep ASCII, replace the rest. */
                unsigned v = 0;
                for (int k = 0; k < 4 && j->p < j->end; k++)
                    v = v * 16 + (unsigned)(isdigit((unsigned char)*j->p) ? *j->p - '0' :
                                                                            (tolower(*j->p) - 'a' + 10)),
                    j->p++;
                c = v < 128 ? (char)v : '?';
            }
        }
        if (n + 2 > cap) {
            cap *= 2;
            s = realloc(s, cap);
            if (!s)
                die("out of memory");
        }
        s[n++] = c;
    }
    if (j->p >= j->end)
        js_die(j, "unterminated string");
    j->p++;
    s[n] = '\0';
    return s;
}

static double js_number(struct js *j)
{
    char *end;
    if (j->end - j->p >= 4 && (!strncmp(j->p, "null", 4) || !strncmp(j->p, "NaN", 3))) {
        j->p += *j->p == 'n' ? 4 : 3;
        return (double)NAN;
    }
    double v = strtod(j->p, &end);
    if (end == j->p || end > j->end)
        js_die(j, "expected a number");
    j->p = end;
    return v;
}

static bool js_eat(struct js *j, char c)
{
    js_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* Reads a flat or nested numeric array into a growing buffer. */
static void js_array(struct js *j, double **d, size_t *n, size_t *cap, int *dims, int64_t *shape,
                     int level)
{
    if (++j->depth > 16)
        js_die(j, "nesting too deep");
    size_t count = 0;
    if (!js_eat(j, '['))
        js_die(j, "expected '['");
    if (!js_eat(j, ']')) {
        do {
            js_ws(j);
            if (j->p < j->end && *j->p == '[') {
                js_array(j, d, n, cap, dims, shape, level + 1);
            } else {
                if (*n == *cap) {
                    *cap = *cap ? 2 * *cap : 64;
                    *d = realloc(*d, *cap * sizeof(double));
                    if (!*d)
                        die("out of memory");
                }
                (*d)[(*n)++] = js_number(j);
            }
            count++;
        } while (js_eat(j, ','));
        if (!js_eat(j, ']'))
            js_die(j, "expected ']'");
    }
    if (level < CML_MAX_DIMS) {
        shape[level] = (int64_t)count;
        if (level + 1 > *dims)
            *dims = level + 1;
    }
    j->depth--;
}

static void js_value(struct js *j, const struct cml_model *m, struct row *r, int input)
{
    const struct cml_feature *ft = input >= 0 ? cml_model_input(m, (size_t)input) : NULL;
    struct cml_value v = {0};
    js_ws(j);
    if (j->p >= j->end)
        js_die(j, "unexpected end");
    char c = *j->p;
    if (c == '"') {
        char *s = js_string(j);
        row_own(r, s);
        v = cml_value_string(s);
    } else if (c == '[') {
        double *d = NULL;
        size_t n = 0, cap = 0;
        int dims = 0;
        int64_t shape[CML_MAX_DIMS] = {0};
        js_array(j, &d, &n, &cap, &dims, shape, 0);
        row_own(r, d);
        v = cml_value_array(d, n);
        v.n_dims = dims;
        memcpy(v.shape, shape, sizeof(shape));
    } else if (c == '{') {
        size_t cap = 8, n = 0;
        bool str_keys = !ft || ft->key_type != CML_TYPE_INT64;
        char **ks = xcalloc(cap, sizeof(char *));
        int64_t *ki = xcalloc(cap, sizeof(int64_t));
        double *d = xcalloc(cap, sizeof(double));
        j->p++;
        if (!js_eat(j, '}')) {
            do {
                js_ws(j);
                char *k = js_string(j);
                if (!js_eat(j, ':'))
                    js_die(j, "expected ':'");
                js_ws(j);
                if (n == cap) {
                    cap *= 2;
                    ks = realloc(ks, cap * sizeof(char *));
                    ki = realloc(ki, cap * sizeof(int64_t));
                    d = realloc(d, cap * sizeof(double));
                    if (!ks || !ki || !d)
                        die("out of memory");
                }
                ks[n] = k;
                ki[n] = strtoll(k, NULL, 10);
                d[n++] = js_number(j);
                row_own(r, k);
            } while (js_eat(j, ','));
            if (!js_eat(j, '}'))
                js_die(j, "expected '}'");
        }
        row_own(r, ks);
        row_own(r, ki);
        row_own(r, d);
        v.type = CML_TYPE_DICT;
        v.n_elem = n;
        v.data = d;
        if (str_keys)
            v.keys_str = (const char *const *)ks;
        else
            v.keys_i64 = ki;
    } else {
        double x = js_number(j);
        if (ft && ft->type == CML_TYPE_MULTIARRAY) {
            double *d = xcalloc(1, sizeof(double));
            row_own(r, d);
            d[0] = x;
            v = cml_value_array(d, 1);
        } else if (ft && ft->type == CML_TYPE_INT64 && x == floor(x)) {
            v = cml_value_int64((int64_t)x);
        } else {
            v = cml_value_double(x);
        }
    }
    if (input >= 0)
        r->v[input] = v;
}

/* Reads the next example object; false at the end of input. */
static bool js_next_row(struct js *j, const struct cml_model *m, struct row *r)
{
    js_ws(j);
    while (j->p < j->end && (*j->p == ',' || *j->p == '[' || *j->p == ']')) {
        j->p++;
        js_ws(j);
    }
    if (j->p >= j->end)
        return false;
    if (*j->p != '{')
        js_die(j, "expected an object per example");
    j->p++;
    size_t n_in = cml_model_n_inputs(m);
    r->v = xcalloc(n_in, sizeof(*r->v));
    if (!js_eat(j, '}')) {
        do {
            js_ws(j);
            char *k = js_string(j);
            if (!js_eat(j, ':'))
                js_die(j, "expected ':'");
            int idx = cml_model_find_input(m, k);
            js_value(j, m, r, idx);
            free(k);
        } while (js_eat(j, ','));
        if (!js_eat(j, '}'))
            js_die(j, "expected '}'");
    }
    for (size_t i = 0; i < n_in; i++)
        if (r->v[i].type == CML_TYPE_INVALID)
            die("JSON example lacks input '%s'", cml_model_input(m, i)->name);
    return true;
}

/* ---- output ------------------------------------------------------------------------ */

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void json_num(double v)
{
    if (isfinite(v))
        printf("%.17g", v);
    else
        printf("null");
}

static void print_json(const struct cml_model *m, const struct cml_ctx *ctx)
{
    putchar('{');
    for (size_t i = 0; i < cml_model_n_outputs(m); i++) {
        const struct cml_value *v = cml_ctx_output(ctx, i);
        if (i)
            putchar(',');
        json_str(cml_model_output(m, i)->name);
        putchar(':');
        switch (v->type) {
        case CML_TYPE_INT64: printf("%lld", (long long)v->i64); break;
        case CML_TYPE_DOUBLE: json_num(v->f64); break;
        case CML_TYPE_STRING: json_str(v->str ? v->str : ""); break;
        case CML_TYPE_MULTIARRAY:
            putchar('[');
            for (size_t k = 0; k < v->n_elem; k++) {
                if (k)
                    putchar(',');
                json_num(v->data[k]);
            }
            putchar(']');
            break;
        case CML_TYPE_DICT:
            putchar('{');
            for (size_t k = 0; k < v->n_elem; k++) {
                if (k)
                    putchar(',');
                if (v->keys_str)
                    json_str(v->keys_str[k]);
                else
                    printf("\"%lld\"", (long long)v->keys_i64[k]);
                putchar(':');
                json_num(v->data[k]);
            }
            putchar('}');
            break;
        default: printf("null"); break;
        }
    }
    printf("}\n");
}

static void print_csv_header(const struct cml_model *m, const struct cml_ctx *ctx)
{
    bool first = true;
    for (size_t i = 0; i < cml_model_n_outputs(m); i++) {
        const struct cml_value *v = cml_ctx_output(ctx, i);
        const char *nm = cml_model_output(m, i)->name;
        if (v->type == CML_TYPE_DICT) {
            for (size_t k = 0; k < v->n_elem; k++) {
                printf("%s%s[", first ? "" : ",", nm);
                if (v->keys_str)
                    printf("%s]", v->keys_str[k]);
                else
                    printf("%lld]", (long long)v->keys_i64[k]);
                first = false;
            }
        } else if (v->type == CML_TYPE_MULTIARRAY && v->n_elem != 1) {
            for (size_t k = 0; k < v->n_elem; k++) {
                printf("%s%s[%zu]", first ? "" : ",", nm, k);
                first = false;
            }
        } else {
            printf("%s%s", first ? "" : ",", nm);
            first = false;
        }
    }
    printf("\n");
}

static void print_csv(const struct cml_model *m, const struct cml_ctx *ctx)
{
    bool first = true;
    for (size_t i = 0; i < cml_model_n_outputs(m); i++) {
        const struct cml_value *v = cml_ctx_output(ctx, i);
        switch (v->type) {
        case CML_TYPE_INT64: printf("%s%lld", first ? "" : ",", (long long)v->i64); break;
        case CML_TYPE_DOUBLE: printf("%s%.17g", first ? "" : ",", v->f64); break;
        case CML_TYPE_STRING: printf("%s%s", first ? "" : ",", v->str ? v->str : ""); break;
        case CML_TYPE_MULTIARRAY:
        case CML_TYPE_DICT:
            for (size_t k = 0; k < v->n_elem; k++)
                printf("%s%.17g", (first && k == 0) ? "" : ",", v->data[k]);
            break;
        default: break;
        }
        first = false;
    }
    printf("\n");
}

static bool has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n >= e && strcasecmp(path + n - e, ext) == 0;
}

static void predict_row(const struct cml_model *m, struct cml_ctx *ctx, struct row *r,
                        bool json, size_t *n_done)
{
    if (cml_predict(ctx, r->v, cml_model_n_inputs(m)) < 0)
        die("example %zu: %s", *n_done + 1, cml_ctx_errmsg(ctx));
    if (json) {
        print_json(m, ctx);
    } else {
        if (*n_done == 0)
            print_csv_header(m, ctx);
        print_csv(m, ctx);
    }
    (*n_done)++;
}

#ifdef CML_HAVE_IMAGES
#endif

static int cmd_predict(const char *path, const char *input, const char *format)
{
    struct cml_model *m = open_model(path);
    struct cml_ctx *ctx;
    struct cai_error err = {0};
    if (cml_ctx_new(&ctx, m, &err) < 0)
        die("%s", err.msg);
    bool json = !format || strcmp(format, "json") == 0;
    if (format && !json && strcmp(format, "csv") != 0)
        die("--format must be json or csv");
    size_t n_done = 0;
    if (input && (has_ext(input, ".png") || has_ext(input, ".jpg") || has_ext(input, ".jpeg"))) {
        struct row r = {0};
        r.v = xcalloc(cml_model_n_inputs(m), sizeof(*r.v));
        if (cml_image_load(&r.v[0], input, &err) < 0)
            die("%s", err.msg);
        predict_row(m, ctx, &r, json, &n_done);
        cml_image_free(&r.v[0]);
        row_free(&r);
    } else if (input && has_ext(input, ".json")) {
        FILE *f = fopen(input, "rb");
        if (!f)
            die("%s: %s", input, strerror(errno));
        long sz = -1;
        if (fseek(f, 0, SEEK_END) == 0)
            sz = ftell(f);
        if (sz < 0 || fseek(f, 0, SEEK_SET) != 0)
            die("%s: not a regular file (cannot get its size)", input);
        char *buf = xcalloc((size_t)sz + 1, 1);
        if (sz > 0 && fread(buf, 1, (size_t)sz, f) != (size_t)sz)
            die("%s: read error", input);
        fclose(f);
        struct js j = {buf, buf + sz, 0, 1};
        for (;;) {
            struct row r = {0};
            if (!js_next_row(&j, m, &r))
                break;
            predict_row(m, ctx, &r, json, &n_done);
            row_free(&r);
        }
        free(buf);
    } else {
        FILE *f = input ? fopen(input, "r") : stdin;
        if (!f)
            die("%s: %s", input, strerror(errno));
        char *line = NULL;
        size_t cap = 0, lineno = 0;
        struct csv_map map = {0};
        while (getline(&line, &cap, f) > 0) {
            lineno++;
            chomp(line);
            if (!line[0])
                continue;
            if (!map.col_input) {
                csv_header(m, line, &map);
                continue;
            }
            struct row r = {0};
            csv_row(m, &map, line, &r, lineno);
            predict_row(m, ctx, &r, json, &n_done);
            row_free(&r);
        }
        free(line);
        free(map.col_input);
        if (input)
            fclose(f);
    }
    cml_ctx_free(ctx);
    cml_model_close(m);
    return 0;
}

/* ---- bench ---------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_bench(const char *path, const char *input, long iters)
{
    struct cml_model *m = open_model(path);
    struct cml_ctx *ctx;
    struct cai_error err = {0};
    if (cml_ctx_new(&ctx, m, &err) < 0)
        die("%s", err.msg);
    /* Columns: one array input's size, or one per scalar input. */
    size_t n_cols = 0, n_in = cml_model_n_inputs(m);
    const struct cml_feature *f0 = cml_model_input(m, 0);
    if (n_in == 1 && f0->type == CML_TYPE_MULTIARRAY) {
        n_cols = 1;
        for (int k = 0; k < f0->n_dims; k++)
            n_cols *= (size_t)f0->shape[k];
    } else {
        n_cols = n_in;
    }
    size_t n_rows = 1000;
    double *x = xcalloc(n_rows * n_cols, sizeof(double));
    size_t n_src = 0;
    if (input) {
        FILE *f = fopen(input, "r");
        if (!f)
            die("%s: %s", input, strerror(errno));
        char *line = NULL, *fl[4096];
        size_t cap = 0;
        bool header = true;
        while (getline(&line, &cap, f) > 0 && n_src < n_rows) {
            chomp(line);
            if (header) {
                header = false;
                continue;
            }
            size_t n = csv_split(line, fl, 4096);
            if (n != n_cols)
                die("%s: %zu columns, the model takes %zu", input, n, n_cols);
            bool ok;
            for (size_t c = 0; c < n; c++)
                x[n_src * n_cols + c] = parse_num(fl[c], &ok);
            n_src++;
        }
        free(line);
        fclose(f);
    }
    if (n_src == 0) {
        unsigned s = 12345;
        for (size_t i = 0; i < n_rows * n_cols; i++) {
            s = s * 1103515245u + 12345u;
            x[i] = (double)((s >> 8) % 2001) / 1000.0 - 1.0;
        }
        n_src = n_rows;
    }
    for (size_t i = n_src; i < n_rows; i++)
        memcpy(x + i * n_cols, x + (i % n_src) * n_cols, n_cols * sizeof(double));
    size_t n_cls = cml_model_n_classes(m), n_val = cml_model_n_values(m);
    int32_t *ci = xcalloc(n_rows, sizeof(int32_t));
    double *pr = xcalloc(n_rows * (n_cls ? n_cls : 1), sizeof(double));
    double *va = xcalloc(n_rows * (n_val ? n_val : 1), sizeof(double));
    struct cml_batch_out out = {ci, n_cls ? pr : NULL, n_val ? va : NULL};
    if (cml_predict_batch(ctx, x, n_rows, n_cols, &out) < 0)
        die("%s", cml_ctx_errmsg(ctx));
    /* Batch 1: per-call latency. */
    if (iters <= 0)
        iters = 20000;
    double *lat = xcalloc((size_t)iters, sizeof(double));
    for (long it = 0; it < iters; it++) {
        double t0 = now_s();
        cml_predict_batch(ctx, x + (size_t)(it % (long)n_rows) * n_cols, 1, n_cols, &out);
        lat[it] = now_s() - t0;
    }
    qsort(lat, (size_t)iters, sizeof(double), cmp_double);
    double med = lat[iters / 2], p90 = lat[iters * 9 / 10];
    /* Batch 1000: throughput, best of several runs. */
    double best = 1e30;
    for (int rep = 0; rep < 30; rep++) {
        double t0 = now_s();
        cml_predict_batch(ctx, x, n_rows, n_cols, &out);
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
    }
    printf("model: %s (%s, %zu features)\n", path, cml_model_type_name(m), n_cols);
    printf("batch 1:    median %.3f us/row, p90 %.3f us/row (%ld calls)\n", med * 1e6,
           p90 * 1e6, iters);
    printf("batch 1000: %.3f us/row, %.0f rows/s (best of 30)\n", best * 1e6 / (double)n_rows,
           (double)n_rows / best);
    free(lat);
    free(x);
    free(ci);
    free(pr);
    free(va);
    cml_ctx_free(ctx);
    cml_model_close(m);
    return 0;
}

static const char usage_text[] =
    "usage: coreml inspect MODEL\n"
    "       coreml predict MODEL [--input FILE.csv|FILE.json|IMAGE] [--format json|csv]\n"
    "       coreml bench   MODEL [--input FILE.csv] [--iters N]\n"
    "\n"
    "The classic engine: single-pass prediction with Core ML .mlmodel files (linear\n"
    "models, tree ensembles, SVMs, neural networks, pipelines; docs/COREML.md).\n"
    "\n"
    "  inspect   the model's type, inputs, outputs and metadata\n"
    "  predict   predictions for each row of --input (CSV with a header row naming\n"
    "            the inputs, JSON objects or arrays, or a PNG/JPEG image for image\n"
    "            models; without --input, CSV from standard input)\n"
    "  bench     latency per row at batch 1 (median, p90 over --iters calls, default\n"
    "            20000) and throughput at batch 1000, on rows from --input or random ones\n"
    "\n"
    "  --input FILE     rows to predict\n"
    "  --format F       json (default) or csv output\n"
    "  --iters N        bench: batch-1 calls to time (1..100000000)\n"
    "  -h, --help       this text\n";

static void usage(void)
{
    fputs(usage_text, stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_text, stdout);
            return 0;
        }
    if (argc < 3)
        usage();
    const char *cmd = argv[1], *model = argv[2], *input = NULL, *format = NULL;
    long iters = 0;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--input") || !strcmp(a, "--format") || !strcmp(a, "--iters")) &&
            i + 1 >= argc)
            die("%s needs a value (see coreml --help)", a);
        if (!strcmp(a, "--input")) {
            input = argv[++i];
        } else if (!strcmp(a, "--format")) {
            format = argv[++i];
        } else if (!strcmp(a, "--iters")) {
            char *end;
            errno = 0;
            iters = strtol(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end || iters < 1 || iters > 100000000)
                die("--iters: \"%s\" is not a number in 1..100000000", argv[i]);
        } else {
            die("unknown option \"%s\" (see coreml --help)", a);
        }
    }
    if (!strcmp(cmd, "inspect"))
        return cmd_inspect(model);
    if (!strcmp(cmd, "predict"))
        return cmd_predict(model, input, format);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(model, input, iters);
    die("unknown command \"%s\" (inspect, predict or bench; see coreml --help)", cmd);
}
