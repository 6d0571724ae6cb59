/* pickle.c: the restricted pickle reader declared in pickle.h.
 *
 * Opcode semantics follow CPython's Lib/pickle.py (protocols 0-5); only the
 * subset a state_dict needs is accepted. Objects come from an arena freed in
 * one go, so deep or cyclic-looking inputs cost nothing to tear down. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"

#define ARENA_BLOCK 1024

struct arena_block {
    struct arena_block *next;
    uint32_t            used;
    struct cai_pk_obj   objs[ARENA_BLOCK];
};

struct cai_pickle {
    struct arena_block *blocks;
    uint64_t            n_objs;
};

struct pk {
    struct cai_pickle  *p;
    const uint8_t      *b;
    size_t              n, pos;
    const char         *name;
    struct cai_error   *err;
    struct cai_pk_obj **stack;
    uint32_t            sp, scap;
    uint32_t           *marks;
    uint32_t            n_marks;
    struct cai_pk_obj **memo;
    uint32_t            memo_cap, memo_count;
    uint64_t            max_objs;
};

static const struct {
    const char *module, *name;
    uint32_t    elem_size;
} storages[] = {
    {"torch", "FloatStorage", 4}, {"torch", "HalfStorage", 2},  {"torch", "BFloat16Storage", 2},
    {"torch", "DoubleStorage", 8}, {"torch", "LongStorage", 8}, {"torch", "IntStorage", 4},
    {"torch", "ShortStorage", 2}, {"torch", "CharStorage", 1},  {"torch", "ByteStorage", 1},
    {"torch", "BoolStorage", 1},
};

const char *cai__pk_storage_name(int t)
{
    int i = t - CAI_PKG_STORAGE_FIRST;
    return i >= 0 && i < (int)CAI_ARRAY_LEN(storages) ? storages[i].name : NULL;
}

uint32_t cai__pk_storage_elem_size(int t)
{
    int i = t - CAI_PKG_STORAGE_FIRST;
    return i >= 0 && i < (int)CAI_ARRAY_LEN(storages) ? storages[i].elem_size : 0;
}

static int pfail(struct pk *k, const char *fmt, ...) CAI__PRINTF(2, 3);

static int pfail(struct pk *k, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cai__fail(k->err, CAI_EFORMAT, "%s: pickle at byte %zu: %s", k->name, k->pos, msg);
}

static int oom(struct pk *k)
{
    return cai__fail(k->err, CAI_ENOMEM, "%s: pickle: out of memory", k->name);
}

/* ---- objects and the stack --------------------------------------------- */

static struct cai_pk_obj *new_obj(struct pk *k, uint8_t type)
{
    struct cai_pickle *p = k->p;
    if (p->n_objs >= k->max_objs)
        return NULL;
    if (!p->blocks || p->blocks->used == ARENA_BLOCK) {
        struct arena_block *b = cai__malloc(sizeof(*b));
        if (!b)
            return NULL;
        b->next = p->blocks;
        b->used = 0;
        p->blocks = b;
    }
    struct cai_pk_obj *o = &p->blocks->objs[p->blocks->used++];
    memset(o, 0, sizeof(*o));
    o->type = type;
    p->n_objs++;
    return o;
}

static int push(struct pk *k, struct cai_pk_obj *o)
{
    if (!o)
        return k->p->n_objs >= k->max_objs ? pfail(k, "too many objects") : oom(k);
    if (k->sp == k->scap) {
        if (k->scap >= CAI_PK_MAX_STACK)
            return pfail(k, "stack deeper than %u entries", CAI_PK_MAX_STACK);
        uint32_t cap = k->scap ? k->scap * 2 : 256;
        struct cai_pk_obj **s = cai__realloc(k->stack, (size_t)cap * sizeof(*s));
        if (!s)
            return oom(k);
        k->stack = s;
        k->scap = cap;
    }
    k->stack[k->sp++] = o;
    return 0;
}

/* The bottom of the current frame: the last mark, or 0. */
static uint32_t frame_base(const struct pk *k)
{
    return k->n_marks ? k->marks[k->n_marks - 1] : 0;
}

static int pop(struct pk *k, struct cai_pk_obj **o)
{
    if (k->sp <= frame_base(k))
        return pfail(k, "stack underflow");
    *o = k->stack[--k->sp];
    return 0;
}

static int top(struct pk *k, struct cai_pk_obj **o)
{
    if (k->sp <= frame_base(k))
        return pfail(k, "stack underflow");
    *o = k->stack[k->sp - 1];
    return 0;
}

/* Pops everything above the last mark (and the mark): items [*first, sp). */
static int pop_mark(struct pk *k, uint32_t *first)
{
    if (!k->n_marks)
        return pfail(k, "no MARK to pop to");
    *first = k->marks[--k->n_marks];
    return 0;
}

static int append_items(struct pk *k, struct cai_pk_obj *c, struct cai_pk_obj **items, uint32_t n)
{
    if (n == 0)
        return 0;
    if (n > UINT32_MAX - c->n)
        return pfail(k, "container too large");
    uint32_t need = c->n + n;
    if (need > c->cap) {
        uint32_t cap = c->cap ? c->cap : 4;
        while (cap < need)
            cap = cap > UINT32_MAX / 2 ? need : cap * 2;
        struct cai_pk_obj **it = cai__realloc(c->items, (size_t)cap * sizeof(*it));
        if (!it)
            return oom(k);
        c->items = it;
        c->cap = cap;
    }
    memcpy(c->items + c->n, items, (size_t)n * sizeof(*items));
    c->n = need;
    return 0;
}

static struct cai_pk_obj *make_seq(struct pk *k, uint8_t type, uint32_t first)
{
    struct cai_pk_obj *t = new_obj(k, type);
    if (t && append_items(k, t, k->stack + first, k->sp - first) < 0)
        return NULL;
    if (t)
        k->sp = first;
    return t;
}

/* ---- reading ------------------------------------------------------------ */

static int need(struct pk *k, size_t n, const uint8_t **out)
{
    if (n > k->n - k->pos)
        return pfail(k, "truncated: %zu bytes needed, %zu left", n, k->n - k->pos);
    *out = k->b + k->pos;
    k->pos += n;
    return 0;
}

static uint64_t le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static int push_str(struct pk *k, uint8_t type, uint64_t len)
{
    const uint8_t *s = NULL;
    if (len > k->n - k->pos)
        return pfail(k, "string of %" PRIu64 " bytes runs past the end", len);
    int rc = need(k, (size_t)len, &s);
    if (rc)
        return rc;
    struct cai_pk_obj *o = new_obj(k, type);
    if (o) {
        o->s = (const char *)s;
        o->len = (size_t)len;
    }
    return push(k, o);
}

static int push_int(struct pk *k, int64_t v)
{
    struct cai_pk_obj *o = new_obj(k, CAI_PK_INT);
    if (o)
        o->i = v;
    return push(k, o);
}

/* A little-endian two's complement integer of n bytes (LONG1/LONG4). */
static int push_long(struct pk *k, uint64_t n)
{
    const uint8_t *b = NULL;
    if (n > 8)
        return pfail(k, "integer of %" PRIu64 " bytes is too large", n);
    int rc = need(k, (size_t)n, &b);
    if (rc)
        return rc;
    uint64_t v = le(b, (int)n);
    if (n > 0 && n < 8 && (b[n - 1] & 0x80))
        v |= ~(uint64_t)0 << (8 * n);
    return push_int(k, (int64_t)v);
}

/* ---- globals ------------------------------------------------------------ */

static bool eq(const char *s, size_t n, const char *c)
{
    return strlen(c) == n && memcmp(s, c, n) == 0;
}

static int resolve_global(struct pk *k, const char *mod, size_t ml, const char *nm, size_t nl)
{
    int id = 0;
    if (eq(mod, ml, "collections") && eq(nm, nl, "OrderedDict"))
        id = CAI_PKG_ORDERED_DICT;
    else if (eq(mod, ml, "torch._utils") && eq(nm, nl, "_rebuild_tensor_v2"))
        id = CAI_PKG_REBUILD_TENSOR_V2;
    else if (eq(mod, ml, "torch._utils") && eq(nm, nl, "_rebuild_parameter"))
        id = CAI_PKG_REBUILD_PARAMETER;
    for (size_t i = 0; !id && i < CAI_ARRAY_LEN(storages); i++)
        if (eq(mod, ml, storages[i].module) && eq(nm, nl, storages[i].name))
            id = CAI_PKG_STORAGE_FIRST + (int)i;
    if (!id) {
        char m[72], n[72];
        size_t a = CAI_MIN(ml, (size_t)64), b = CAI_MIN(nl, (size_t)64);
        for (size_t i = 0; i < a; i++)
            m[i] = (mod[i] >= 0x20 && mod[i] < 0x7f) ? mod[i] : '?';
        for (size_t i = 0; i < b; i++)
            n[i] = (nm[i] >= 0x20 && nm[i] < 0x7f) ? nm[i] : '?';
        m[a] = n[b] = '\0';
        bool cls = b > 0 && n[0] >= 'A' && n[0] <= 'Z' && strncmp(m, "torch", 5) != 0 &&
                   strcmp(m, "builtins") != 0 && strcmp(m, "os") != 0 &&
                   strcmp(m, "posix") != 0 && strcmp(m, "subprocess") != 0;
        bool nn = strncmp(m, "torch.nn", 8) == 0;
        if (cls || nn)
            return pfail(k, "global %s.%s is not allowed (nothing was executed). A whole pickled "
                         "model? Save torch.save(model.state_dict(), PATH) and convert that", m, n);
        return pfail(k, "global %s.%s is not allowed: a state_dict needs only tensors, storages and "
                     "OrderedDict (nothing was executed)", m, n);
    }
    struct cai_pk_obj *o = new_obj(k, CAI_PK_GLOBAL);
    if (o)
        o->i = id;
    return push(k, o);
}

static int read_line(struct pk *k, const char **s, size_t *len)
{
    size_t start = k->pos;
    while (k->pos < k->n && k->pos - start <= 256 && k->b[k->pos] != '\n')
        k->pos++;
    if (k->pos >= k->n || k->b[k->pos] != '\n')
        return pfail(k, "GLOBAL line is unterminated or longer than 256 bytes");
    *s = (const char *)k->b + start;
    *len = k->pos - start;
    k->pos++;
    return 0;
}

/* ---- calls ------------------------------------------------------------------ */

static int int_tuple(struct pk *k, const struct cai_pk_obj *t, int64_t *out, uint32_t *n,
                     const char *what)
{
    if (!t || t->type != CAI_PK_TUPLE || t->n > CAI_PK_MAX_DIMS)
        return pfail(k, "tensor %s is not a tuple of at most %d integers", what, CAI_PK_MAX_DIMS);
    for (uint32_t i = 0; i < t->n; i++) {
        if (t->items[i]->type != CAI_PK_INT || t->items[i]->i < 0)
            return pfail(k, "tensor %s[%u] is not a non-negative integer", what, i);
        out[i] = t->items[i]->i;
    }
    *n = t->n;
    return 0;
}

static int do_reduce(struct pk *k)
{
    struct cai_pk_obj *args = NULL, *fn = NULL, *o;
    int rc;
    if ((rc = pop(k, &args)) < 0 || (rc = pop(k, &fn)) < 0)
        return rc;
    if (fn->type != CAI_PK_GLOBAL)
        return pfail(k, "REDUCE on something that is not an allowed callable");
    if (args->type != CAI_PK_TUPLE)
        return pfail(k, "REDUCE arguments are not a tuple");
    switch (fn->i) {
    case CAI_PKG_ORDERED_DICT:
        if (args->n != 0)
            return pfail(k, "OrderedDict called with arguments");
        return push(k, new_obj(k, CAI_PK_DICT));
    case CAI_PKG_REBUILD_PARAMETER:
        if (args->n < 1 || args->items[0]->type != CAI_PK_TENSOR)
            return pfail(k, "_rebuild_parameter without a tensor");
        return push(k, args->items[0]);
    case CAI_PKG_REBUILD_TENSOR_V2: {
        if (args->n < 4 || args->n > 7)
            return pfail(k, "_rebuild_tensor_v2 with %u arguments", args->n);
        struct cai_pk_obj *st = args->items[0], *off = args->items[1];
        if (st->type != CAI_PK_STORAGE)
            return pfail(k, "_rebuild_tensor_v2: the first argument is not a storage");
        if (off->type != CAI_PK_INT || off->i < 0)
            return pfail(k, "_rebuild_tensor_v2: bad storage offset");
        o = new_obj(k, CAI_PK_TENSOR);
        if (!o)
            return push(k, NULL);
        o->storage = st;
        o->offset = off->i;
        uint32_t ns, nt;
        if ((rc = int_tuple(k, args->items[2], o->shape, &ns, "size")) < 0 ||
            (rc = int_tuple(k, args->items[3], o->stride, &nt, "stride")) < 0)
            return rc;
        if (ns != nt)
            return pfail(k, "tensor size has %u dims but stride %u", ns, nt);
        o->n_dims = ns;
        return push(k, o);
    }
    default:
        return pfail(k, "a storage type is not callable");
    }
}

static int do_persid(struct pk *k)
{
    struct cai_pk_obj *pid = NULL;
    int rc = pop(k, &pid);
    if (rc)
        return rc;
    if (pid->type != CAI_PK_TUPLE || pid->n != 5 || pid->items[0]->type != CAI_PK_STR ||
        !eq(pid->items[0]->s, pid->items[0]->len, "storage"))
        return pfail(k, "persistent id is not ('storage', type, key, location, numel)");
    struct cai_pk_obj *ty = pid->items[1], *key = pid->items[2], *loc = pid->items[3],
                      *numel = pid->items[4];
    if (ty->type != CAI_PK_GLOBAL || ty->i < CAI_PKG_STORAGE_FIRST)
        return pfail(k, "persistent id names no storage type");
    if (key->type != CAI_PK_STR || key->len == 0 || key->len > 64 ||
        memchr(key->s, 0, key->len) || memchr(key->s, '/', key->len) ||
        eq(key->s, key->len, "..") || loc->type != CAI_PK_STR)
        return pfail(k, "persistent id has an invalid storage key or location");
    if (numel->type != CAI_PK_INT || numel->i < 0)
        return pfail(k, "persistent id has an invalid element count");
    struct cai_pk_obj *o = new_obj(k, CAI_PK_STORAGE);
    if (o) {
        o->storage_type = (int)ty->i;
        o->s = key->s;
        o->len = key->len;
        o->i = numel->i;
    }
    return push(k, o);
}

/* ---- the machine -------------------------------------------------------------- */

static int step(struct pk *k, uint8_t op, bool *stop)
{
    const uint8_t *b = NULL;
    struct cai_pk_obj *o = NULL, *v = NULL, *key = NULL, *c = NULL;
    uint32_t first = 0;
    int rc = 0;
    switch (op) {
    case 0x80: /* PROTO */
        if ((rc = need(k, 1, &b)) < 0)
            return rc;
        if (b[0] < 2 || b[0] > 5)
            return pfail(k, "unsupported pickle protocol %u", b[0]);
        return 0;
    case 0x95: /* FRAME: a length prefix; the opcodes inside follow as usual */
        if ((rc = need(k, 8, &b)) < 0)
            return rc;
        if (le(b, 8) > k->n - k->pos)
            return pfail(k, "frame runs past the end");
        return 0;
    case 'c': { /* GLOBAL */
        const char *m, *n;
        size_t ml, nl;
        if ((rc = read_line(k, &m, &ml)) < 0 || (rc = read_line(k, &n, &nl)) < 0)
            return rc;
        return resolve_global(k, m, ml, n, nl);
    }
    case 0x93: /* STACK_GLOBAL */
        if ((rc = pop(k, &v)) < 0 || (rc = pop(k, &o)) < 0)
            return rc;
        if (o->type != CAI_PK_STR || v->type != CAI_PK_STR)
            return pfail(k, "STACK_GLOBAL needs two strings");
        return resolve_global(k, o->s, o->len, v->s, v->len);
    case 'q': /* BINPUT */
    case 'r': /* LONG_BINPUT */
    case 0x94: { /* MEMOIZE */
        uint64_t idx;
        if (op == 'q') {
            if ((rc = need(k, 1, &b)) < 0)
                return rc;
            idx = b[0];
        } else if (op == 'r') {
            if ((rc = need(k, 4, &b)) < 0)
                return rc;
            idx = le(b, 4);
        } else {
            idx = k->memo_count;
        }
        if ((rc = top(k, &o)) < 0)
            return rc;
        if (idx >= CAI_PK_MAX_MEMO)
            return pfail(k, "memo index %" PRIu64 " exceeds the limit of %u", idx,
                         CAI_PK_MAX_MEMO);
        if (idx >= k->memo_cap) {
            uint32_t cap = k->memo_cap ? k->memo_cap : 64;
            while (cap <= idx)
                cap *= 2;
            struct cai_pk_obj **m = cai__realloc(k->memo, (size_t)cap * sizeof(*m));
            if (!m)
                return oom(k);
            memset(m + k->memo_cap, 0, (size_t)(cap - k->memo_cap) * sizeof(*m));
            k->memo = m;
            k->memo_cap = cap;
        }
        if (!k->memo[idx])
            k->memo_count++;
        k->memo[idx] = o;
        return 0;
    }
    case 'h': /* BINGET */
    case 'j': { /* LONG_BINGET */
        uint64_t idx;
        if ((rc = need(k, op == 'h' ? 1 : 4, &b)) < 0)
            return rc;
        idx = le(b, op == 'h' ? 1 : 4);
        if (idx >= k->memo_cap || !k->memo[idx])
            return pfail(k, "memo index %" PRIu64 " was never set", idx);
        return push(k, k->memo[idx]);
    }
    case '}': return push(k, new_obj(k, CAI_PK_DICT));
    case ']': return push(k, new_obj(k, CAI_PK_LIST));
    case ')': return push(k, new_obj(k, CAI_PK_TUPLE));
    case '(': /* MARK */
        if (k->n_marks >= CAI_PK_MAX_MARKS)
            return pfail(k, "MARKs nested deeper than %u", CAI_PK_MAX_MARKS);
        k->marks[k->n_marks++] = k->sp;
        return 0;
    case 't': /* TUPLE */
    case 'l': /* LIST */
        if ((rc = pop_mark(k, &first)) < 0)
            return rc;
        return push(k, make_seq(k, op == 't' ? CAI_PK_TUPLE : CAI_PK_LIST, first));
    case 'd': /* DICT */
        if ((rc = pop_mark(k, &first)) < 0)
            return rc;
        if ((k->sp - first) % 2)
            return pfail(k, "DICT with an odd number of items");
        return push(k, make_seq(k, CAI_PK_DICT, first));
    case 0x85: /* TUPLE1 */
    case 0x86: /* TUPLE2 */
    case 0x87: { /* TUPLE3 */
        uint32_t n = (uint32_t)(op - 0x84);
        if (k->sp - frame_base(k) < n)
            return pfail(k, "stack underflow");
        return push(k, make_seq(k, CAI_PK_TUPLE, k->sp - n));
    }
    case 'X': /* BINUNICODE */
        if ((rc = need(k, 4, &b)) < 0)
            return rc;
        return push_str(k, CAI_PK_STR, le(b, 4));
    case 0x8c: /* SHORT_BINUNICODE */
    case 'U': /* SHORT_BINSTRING */
        if ((rc = need(k, 1, &b)) < 0)
            return rc;
        return push_str(k, CAI_PK_STR, b[0]);
    case 0x8d: /* BINUNICODE8 */
        if ((rc = need(k, 8, &b)) < 0)
            return rc;
        return push_str(k, CAI_PK_STR, le(b, 8));
    case 'T': /* BINSTRING */
        if ((rc = need(k, 4, &b)) < 0)
            return rc;
        if (b[3] & 0x80)
            return pfail(k, "negative string length");
        return push_str(k, CAI_PK_STR, le(b, 4));
    case 'C': /* SHORT_BINBYTES */
        if ((rc = need(k, 1, &b)) < 0)
            return rc;
        return push_str(k, CAI_PK_BYTES, b[0]);
    case 'B': /* BINBYTES */
        if ((rc = need(k, 4, &b)) < 0)
            return rc;
        return push_str(k, CAI_PK_BYTES, le(b, 4));
    case 0x8e: /* BINBYTES8 */
        if ((rc = need(k, 8, &b)) < 0)
            return rc;
        return push_str(k, CAI_PK_BYTES, le(b, 8));
    case 'K': /* BININT1 */
        if ((rc = need(k, 1, &b)) < 0)
            return rc;
        return push_int(k, b[0]);
    case 'M': /* BININT2 */
        if ((rc = need(k, 2, &b)) < 0)
            return rc;
        return push_int(k, (int64_t)le(b, 2));
    case 'J': /* BININT */
        if ((rc = need(k, 4, &b)) < 0)
            return rc;
        return push_int(k, (int32_t)(uint32_t)le(b, 4));
    case 0x8a: /* LONG1 */
        if ((rc = need(k, 1, &b)) < 0)
            return rc;
        return push_long(k, b[0]);
    case 0x8b: /* LONG4 */
        if ((rc = need(k, 4, &b)) < 0)
            return rc;
        return push_long(k, le(b, 4));
    case 'G': { /* BINFLOAT: big-endian double */
        if ((rc = need(k, 8, &b)) < 0)
            return rc;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | b[i];
        o = new_obj(k, CAI_PK_FLOAT);
        if (o)
            memcpy(&o->f, &u, 8);
        return push(k, o);
    }
    case 'N': return push(k, new_obj(k, CAI_PK_NONE));
    case 0x88: /* NEWTRUE */
    case 0x89: /* NEWFALSE */
        o = new_obj(k, CAI_PK_BOOL);
        if (o)
            o->i = op == 0x88;
        return push(k, o);
    case 'R': return do_reduce(k);
    case 'Q': return do_persid(k);
    case 'b': /* BUILD: state for a dict (state_dict _metadata) or tensor is ignored */
        if ((rc = pop(k, &v)) < 0 || (rc = top(k, &o)) < 0)
            return rc;
        if (o->type != CAI_PK_DICT && o->type != CAI_PK_TENSOR)
            return pfail(k, "BUILD on something other than a dict or a tensor");
        return 0;
    case 's': /* SETITEM */
        if ((rc = pop(k, &v)) < 0 || (rc = pop(k, &key)) < 0 || (rc = top(k, &c)) < 0)
            return rc;
        if (c->type != CAI_PK_DICT)
            return pfail(k, "SETITEM on something other than a dict");
        {
            struct cai_pk_obj *kv[2] = {key, v};
            return append_items(k, c, kv, 2);
        }
    case 'u': /* SETITEMS */
    case 'e': /* APPENDS */
        if ((rc = pop_mark(k, &first)) < 0)
            return rc;
        if (first <= frame_base(k))
            return pfail(k, "no container below the MARK");
        c = k->stack[first - 1];
        if (op == 'u' && (c->type != CAI_PK_DICT || (k->sp - first) % 2))
            return pfail(k, "SETITEMS needs a dict and key/value pairs");
        if (op == 'e' && c->type != CAI_PK_LIST)
            return pfail(k, "APPENDS needs a list");
        rc = append_items(k, c, k->stack + first, k->sp - first);
        k->sp = first;
        return rc;
    case 'a': /* APPEND */
        if ((rc = pop(k, &v)) < 0 || (rc = top(k, &c)) < 0)
            return rc;
        if (c->type != CAI_PK_LIST)
            return pfail(k, "APPEND needs a list");
        return append_items(k, c, &v, 1);
    case '0': /* POP */
        return pop(k, &o);
    case '1': /* POP_MARK */
        if ((rc = pop_mark(k, &first)) < 0)
            return rc;
        k->sp = first;
        return 0;
    case '2': /* DUP */
        if ((rc = top(k, &o)) < 0)
            return rc;
        return push(k, o);
    case '.': /* STOP */
        *stop = true;
        return 0;
    default:
        return pfail(k, "opcode 0x%02x ('%c') is not allowed in a state_dict", op,
                     op >= 0x20 && op < 0x7f ? op : '?');
    }
}

int cai__pk_parse(struct cai_pickle **out, const struct cai_pk_obj **root, const void *data,
                  size_t n_bytes, const char *name, struct cai_error *err)
{
    *out = NULL;
    *root = NULL;
    struct cai_pickle *p = cai__calloc(1, sizeof(*p));
    struct pk k = {.p = p, .b = data, .n = n_bytes, .name = name ? name : "<pickle>", .err = err};
    k.marks = cai__malloc_array(CAI_PK_MAX_MARKS, sizeof(*k.marks));
    k.max_objs = (uint64_t)n_bytes + 16;
    int rc = 0;
    if (!p || !k.marks) {
        cai__free(p);
        cai__free(k.marks);
        return cai__fail(err, CAI_ENOMEM, "%s: pickle: out of memory", k.name);
    }
    bool stop = false;
    while (!stop) {
        if (k.pos >= k.n) {
            rc = pfail(&k, "ended without STOP");
            break;
        }
        uint8_t op = k.b[k.pos++];
        if ((rc = step(&k, op, &stop)) < 0)
            break;
    }
    if (rc == 0) {
        if (k.sp == 0 || k.n_marks)
            rc = pfail(&k, "STOP with %s", k.n_marks ? "an open MARK" : "an empty stack");
        else
            *root = k.stack[k.sp - 1];
    }
    cai__free(k.stack);
    cai__free(k.marks);
    cai__free(k.memo);
    if (rc) {
        cai__pk_free(p);
        *root = NULL;
        return rc;
    }
    *out = p;
    return 0;
}

void cai__pk_free(struct cai_pickle *p)
{
    if (!p)
        return;
    struct arena_block *b = p->blocks;
    while (b) {
        struct arena_block *next = b->next;
        for (uint32_t i = 0; i < b->used; i++)
            cai__free(b->objs[i].items);
        cai__free(b);
        b = next;
    }
    cai__free(p);
}
