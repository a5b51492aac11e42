/*
 * listfmt.c - turns a ranked list into the bytes a frontend reads from Redis:
 * a JSON array of {"item","score","why"} objects or the same array in msgpack.
 * It owns rs_buf (the growable buffer the Redis sink sends from) and the
 * score formatter, which writes 4 fixed decimals by integer arithmetic
 * because printf("%.9g") was measured as the cost of a whole list
 * (DESIGN.md, "Redis keys").
 *
 * Decisions:
 * - rs_buf keeps one spare byte so data is always NUL-terminated after an
 *   append (handy for logging); len never counts it.
 * - Scores: NaN is written as 0, values beyond +-1e9 (and infinities) are
 *   clamped to +-1e9, ties round to even (as printf does, so the text equals
 *   printf("%.4f") except that a negative value rounding to zero is written
 *   "0.0000", never "-0.0000").
 * - Ids are written as JSON strings with '"', '\\' and control bytes escaped
 *   (\n, \t, ... or \u00XX). Valid UTF-8 passes through untouched; a byte that
 *   is not part of a valid UTF-8 sequence is written as \u00XX, its Latin-1
 *   reading, so the output is always valid JSON (a strict parser would refuse
 *   raw bytes) and UTF-8 ids come back exactly.
 * - A rec whose item is not in the id map is left out; a why that is not in
 *   the map is omitted, as RS_NONE is. On RS_ENOMEM the buffer is put back
 *   to the length it had.
 */
#include "recstream/listfmt.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

void rs_buf_init(struct rs_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void rs_buf_free(struct rs_buf *b)
{
    if (b == NULL) return;
    free(b->data);
    rs_buf_init(b);
}

void rs_buf_reset(struct rs_buf *b)
{
    b->len = 0;
    if (b->data != NULL) b->data[0] = '\0';
}

/* Makes room for extra more bytes plus the terminating NUL. */
static rs_err_t reserve(struct rs_buf *b, size_t extra)
{
    size_t need;
    size_t cap;
    char *data;

    if (extra > SIZE_MAX - b->len - 1) return RS_ENOMEM;
    need = b->len + extra + 1;
    if (need <= b->cap) return RS_OK;
    cap = b->cap > 0 ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    data = realloc(b->data, cap);
    if (data == NULL) return RS_ENOMEM;
    b->data = data;
    b->cap = cap;
    return RS_OK;
}

rs_err_t rs_buf_append(struct rs_buf *b, const void *data, size_t len)
{
    if (reserve(b, len) != RS_OK) return RS_ENOMEM;
    if (len > 0) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return RS_OK;
}

/* ---- scores ---- */

size_t rs_listfmt_score(float score, char *out)
{
    double s = score;
    uint64_t q;
    uint64_t ip;
    unsigned fp;
    char digits[20];
    size_t nd = 0;
    char *p = out;

    if (isnan(s)) s = 0.0;
    if (s > 1e9) s = 1e9;
    if (s < -1e9) s = -1e9;
    /* a float times 10^4 is exact in a double; rint rounds ties to even */
    q = (uint64_t)rint(fabs(s) * 10000.0);
    if (s < 0 && q != 0) *p++ = '-';
    ip = q / 10000;
    fp = (unsigned)(q % 10000);
    do {
        digits[nd++] = (char)('0' + ip % 10);
        ip /= 10;
    } while (ip != 0);
    while (nd > 0)
        *p++ = digits[--nd];
    *p++ = '.';
    p[0] = (char)('0' + fp / 1000);
    p[1] = (char)('0' + fp / 100 % 10);
    p[2] = (char)('0' + fp / 10 % 10);
    p[3] = (char)('0' + fp % 10);
    p += 4;
    *p = '\0';
    return (size_t)(p - out);
}

/* ---- JSON ---- */

/* Length of the valid UTF-8 sequence starting at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    size_t i;

    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (n < len) return 0;
    if (c == 0xe0)
        lo = 0xa0; /* no overlong forms */
    else if (c == 0xed)
        hi = 0x9f; /* no surrogates */
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f; /* nothing past U+10FFFF */
    if (s[1] < lo || s[1] > hi) return 0;
    for (i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    }
    return len;
}

/* 1 for the bytes written as they are inside a JSON string: printable ASCII
 * but '"' and '\\'. */
static const unsigned char plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0), /* control bytes */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20..0x2f: '"' is 0x22 */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50..0x5f: '\\' is 0x5c */
    R16(1), R16(1),
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* 0x80..0xff */
#undef R16
};

/* Writes s as the inside of a JSON string; needs 6 * n bytes at most. */
static char *escape(char *p, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    size_t k;
    unsigned char c;

    /* The usual id is all plain bytes: one copy. */
    while (i < n && plain[s[i]]) i++;
    memcpy(p, s, i);
    p += i;
    while (i < n) {
        c = s[i];
        if (plain[c]) {
            *p++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            k = utf8_len(s + i, n - i);
            if (k > 0) {
                memcpy(p, s + i, k);
                p += k;
                i += k;
                continue;
            }
        }
        *p++ = '\\';
        switch (c) {
        case '"': *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\n': *p++ = 'n'; break;
        case '\r': *p++ = 'r'; break;
        case '\t': *p++ = 't'; break;
        case '\b': *p++ = 'b'; break;
        case '\f': *p++ = 'f'; break;
        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
            break;
        }
        i++;
    }
    return p;
}

static char *put(char *p, const char *lit)
{
    size_t n = strlen(lit);
    memcpy(p, lit, n);
    return p + n;
}

rs_err_t rs_listfmt_json(struct rs_buf *b, const struct rs_rec *recs, size_t n,
                         const struct rs_idmap *items)
{
    size_t start = b->len;
    const char *item;
    const char *why;
    size_t item_len;
    size_t why_len;
    size_t i;
    int first = 1;
    char *p;

    if (reserve(b, 2) != RS_OK) goto nomem;
    b->data[b->len++] = '[';
    for (i = 0; i < n; i++) {
        item = items != NULL ? rs_idmap_name(items, recs[i].item, &item_len) : NULL;
        if (item == NULL) continue;
        why = NULL;
        why_len = 0;
        if (recs[i].why != RS_NONE) why = rs_idmap_name(items, recs[i].why, &why_len);
        if (why == NULL) why_len = 0;
        /* punctuation, the score (24) and both ids escaped at worst */
        if (why_len > (SIZE_MAX - 64) / 6 - item_len ||
            reserve(b, 64 + 6 * (item_len + why_len)) != RS_OK)
            goto nomem;
        p = b->data + b->len;
        if (!first) *p++ = ',';
        first = 0;
        p = put(p, "{\"item\":\"");
        p = escape(p, item, item_len);
        p = put(p, "\",\"score\":");
        p += rs_listfmt_score(recs[i].score, p);
        if (why != NULL) {
            p = put(p, ",\"why\":\"");
            p = escape(p, why, why_len);
            *p++ = '"';
        }
        *p++ = '}';
        b->len = (size_t)(p - b->data);
    }
    if (reserve(b, 1) != RS_OK) goto nomem;
    b->data[b->len++] = ']';
    b->data[b->len] = '\0';
    return RS_OK;

nomem:
    b->len = start;
    if (b->data != NULL) b->data[b->len] = '\0';
    return RS_ENOMEM;
}

/* ---- msgpack ---- */

static int buf_write(void *data, const char *bytes, size_t len)
{
    return rs_buf_append(data, bytes, len) == RS_OK ? 0 : -1;
}

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    if (msgpack_pack_str(pk, n) != 0) return -1;
    return msgpack_pack_str_body(pk, s, n);
}

rs_err_t rs_listfmt_msgpack(struct rs_buf *b, const struct rs_rec *recs, size_t n,
                            const struct rs_idmap *items)
{
    size_t start = b->len;
    msgpack_packer pk;
    const char *item;
    const char *why;
    size_t item_len;
    size_t why_len;
    size_t count = 0;
    size_t i;

    if (items != NULL) {
        for (i = 0; i < n; i++)
            count += rs_idmap_name(items, recs[i].item, &item_len) != NULL;
    }
    msgpack_packer_init(&pk, b, buf_write);
    if (msgpack_pack_array(&pk, count) != 0) goto nomem;
    for (i = 0; i < n && count > 0; i++) {
        item = rs_idmap_name(items, recs[i].item, &item_len);
        if (item == NULL) continue;
        why = recs[i].why != RS_NONE ? rs_idmap_name(items, recs[i].why, &why_len) : NULL;
        if (msgpack_pack_map(&pk, why != NULL ? 3 : 2) != 0) goto nomem;
        if (pack_str(&pk, "item", 4) != 0 || pack_str(&pk, item, item_len) != 0)
            goto nomem;
        if (pack_str(&pk, "score", 5) != 0 || msgpack_pack_float(&pk, recs[i].score) != 0)
            goto nomem;
        if (why != NULL &&
            (pack_str(&pk, "why", 3) != 0 || pack_str(&pk, why, why_len) != 0))
            goto nomem;
    }
    return RS_OK;

nomem:
    b->len = start;
    if (b->data != NULL) b->data[b->len] = '\0';
    return RS_ENOMEM;
}
