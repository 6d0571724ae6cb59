/* detok.c: streaming detokenization that only ever emits whole characters.
 *
 * Pieces of byte-level tokens can end in the middle of a UTF-8 character;
 * the bytes of an unfinished character wait in d->pending until the next
 * piece completes them. Bytes that cannot start or continue a character are
 * replaced by U+FFFD, one per maximal invalid subpart (the Unicode and WHATWG
 * rule, which Python's errors="replace" also follows), so the output is
 * always valid UTF-8. */
#include <string.h>

#include "tok_int.h"

static const uint8_t fffd[3] = {0xEF, 0xBF, 0xBD};

/* How many bytes of a well-formed character start at s[0..n): the full
 * length when complete, 0 when s[0] starts no character or a later byte
 * breaks it (then *bad is the length of the maximal subpart to replace), and
 * -1 when the bytes so far are a valid but unfinished prefix. */
static int char_len(const uint8_t *s, size_t n, size_t *bad)
{
    uint8_t c = s[0];
    int     len;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    *bad = 1;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    for (int k = 1; k < len; k++) {
        if ((size_t)k >= n)
            return -1;
        uint8_t b = s[k];
        bool    ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        if (!ok) {
            *bad = (size_t)k;
            return 0;
        }
    }
    return len;
}

/* Converts in[0..n) to valid UTF-8 in out (NULL: only count). With `final`,
 * an unfinished character at the end is replaced; otherwise its bytes are
 * left out and their count stored in *n_held. Returns the output length. */
static size_t sanitize(const uint8_t *in, size_t n, bool final, uint8_t *out, size_t *n_held)
{
    size_t i = 0, o = 0;
    *n_held = 0;
    while (i < n) {
        size_t bad;
        int    len = char_len(in + i, n - i, &bad);
        if (len > 0) {
            if (out)
                memcpy(out + o, in + i, (size_t)len);
            o += (size_t)len;
            i += (size_t)len;
        } else if (len < 0 && !final) {
            *n_held = n - i;
            break;
        } else {
            if (out)
                memcpy(out + o, fffd, 3);
            o += 3;
            i += len < 0 ? n - i : bad;
        }
    }
    return o;
}

void cai__detok_init(struct cai_detok *d, const struct cai_tok *t, bool special)
{
    memset(d, 0, sizeof(*d));
    d->tok = t;
    d->special = special;
    d->strip_space = t && t->kind == CAI_TOK_SPM && t->add_space_prefix;
}

static int push_bytes(struct cai_detok *d, const uint8_t *piece, size_t n, bool final, char *out,
                      size_t cap)
{
    /* pending (< 4 bytes) + piece, converted in one go. */
    uint8_t  small[64];
    uint8_t *buf = small;
    size_t   nb = (size_t)d->n_pending + n, held;
    if (nb > sizeof(small)) {
        buf = cai__malloc(nb);
        if (!buf)
            return CAI_ENOMEM;
    }
    memcpy(buf, d->pending, (size_t)d->n_pending);
    if (n)
        memcpy(buf + d->n_pending, piece, n);
    size_t need = sanitize(buf, nb, final, NULL, &held);
    int    rc;
    if (need > cap || need > (size_t)INT32_MAX || (need && !out)) {
        rc = CAI_ERANGE; /* state untouched: the caller may retry with more room */
    } else {
        sanitize(buf, nb, final, (uint8_t *)out, &held);
        memmove(d->pending, buf + nb - held, held);
        d->n_pending = (int)held;
        rc = (int)need;
    }
    if (buf != small)
        cai__free(buf);
    return rc;
}

int cai__detok_push(struct cai_detok *d, int32_t id, char *out, size_t cap)
{
    if (!d || !d->tok || d->n_pending < 0 || d->n_pending > 3)
        return CAI_EINVAL;
    const struct cai_tok *t = d->tok;
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return CAI_ERANGE;
    size_t n = 0;
    int    len = cai__tok_piece(t, id, d->special, NULL, 0);
    if (len < 0)
        return len;
    n = (size_t)len;
    const uint8_t *p = (const uint8_t *)t->piece + t->piece_off[id];
    bool           strip = d->strip_space && !d->started && n > 0 && p[0] == ' ';
    int            rc = push_bytes(d, p + strip, n - strip, false, out, cap);
    if (rc >= 0)
        d->started = true;
    return rc;
}

int cai__detok_flush(struct cai_detok *d, char *out, size_t cap)
{
    if (!d || d->n_pending < 0 || d->n_pending > 3)
        return CAI_EINVAL;
    return push_bytes(d, NULL, 0, true, out, cap);
}

bool cai__utf8_is_valid(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t bad;
        int    len = char_len((const uint8_t *)s + i, n - i, &bad);
        if (len <= 0)
            return false;
        i += (size_t)len;
    }
    return true;
}

/* ---- whole-sequence detokenization ---------------------------------------- */

/* llama_detokenize's clean_spaces: three passes over the text, exactly as it
 * does them (" ?" " !" " ." " ," lose the space; a lone "'" between spaces
 * loses both; " 's" " 'm" " 're" " 've" lose the space). Returns the length. */
static size_t clean_spaces(char *text, size_t total)
{
    size_t n1 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < n1; i++) {
        char x = text[i];
        if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
            total--;
        text[total++] = x;
    }
    size_t n2 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < n2; i++) {
        char x = text[i];
        if (x == '\'' && i + 1 < n2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
            total--;
            text[++i] = '\0';
        }
        text[total++] = x;
    }
    size_t n3 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < n3; i++) {
        char x = text[i];
        if (text[i - 1] == ' ' && x == '\'' && i + 1 < n3) {
            char x1 = text[i + 1];
            if (x1 == 's' || x1 == 'm')
                total--;
            else if (i + 2 < n3 && ((x1 == 'r' && text[i + 2] == 'e') ||
                                    (x1 == 'v' && text[i + 2] == 'e')))
                total--;
        }
        text[total++] = x;
    }
    return total;
}

int cai__tok_detokenize(const struct cai_tok *t, const int32_t *ids, int n_ids, bool special,
                        char *out, size_t cap)
{
    if (!t || n_ids < 0 || (!ids && n_ids) || (!out && cap))
        return CAI_EINVAL;
    size_t total = 0;
    for (int i = 0; i < n_ids; i++) {
        int len = cai__tok_piece(t, ids[i], special, NULL, 0);
        if (len < 0)
            return len;
        total += (size_t)len;
    }
    if (total > (size_t)INT32_MAX)
        return CAI_ERANGE;
    char *buf = cai__malloc(total + 1);
    if (!buf)
        return CAI_ENOMEM;
    size_t n = 0;
    for (int i = 0; i < n_ids; i++) {
        int len = cai__tok_piece(t, ids[i], special, buf + n, total - n);
        /* SPM: the space the encoder prepended goes (one, from the first
         * token only, as llama_detokenize's remove_space). */
        if (i == 0 && t->add_space_prefix && len > 0 && buf[n] == ' ') {
            memmove(buf + n, buf + n + 1, (size_t)len - 1);
            len--;
        }
        n += (size_t)len;
    }
    if (t->clean_spaces)
        n = clean_spaces(buf, n);
    if (cap)
        memcpy(out, buf, CAI_MIN(n, cap));
    cai__free(buf);
    return (int)n;
}
