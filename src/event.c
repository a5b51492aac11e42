/*
 * event.c - the only place where untrusted bytes become a struct rs_event.
 * It owns the two decoders (JSON through jansson, msgpack through msgpack-c),
 * the checks every event passes whatever its source (rs_event_validate), the
 * msgpack encoder used by `produce`, and the stable reason names that metrics
 * and dead letters carry.
 *
 * Decisions taken here, so that both encodings refuse the same inputs:
 * - Size first: an empty payload is "empty", one over max_bytes "too_large",
 *   before any parsing. max_bytes 0 (or NULL limits) means the default.
 * - One payload is exactly one object: msgpack bytes after the first object
 *   are "malformed" (jansson refuses trailing JSON text the same way).
 * - Checks run in a fixed order, and the first failure is the reason: duplicate
 *   key, type, user, item, value, ts. `forget` ignores item and value entirely.
 * - Ids are strings (msgpack str, not bin) or integers, written in decimal.
 *   Floats, bools, nil, arrays, maps, bin, empty strings and strings holding a
 *   NUL byte are "bad_id"; over RS_ID_MAX bytes is "id_too_long".
 * - Unknown keys are ignored, and so are msgpack map keys that are not
 *   strings (an integer key cannot be one of ours). JSON refuses any
 *   duplicate key (jansson's JSON_REJECT_DUPLICATES); msgpack refuses a
 *   duplicate of one of our five keys (comparing every unknown key with every
 *   other would cost O(n^2) per event).
 * - A JSON number jansson cannot hold (1e999, an integer beyond 64 bits) fails
 *   the whole parse; it is reported as "bad_value" wherever it sits.
 * - value must be finite and fit a float; play weights must be > 0 after
 *   conversion, ratings within [rating_min, rating_max] compared as floats.
 *   ts must be an integer >= 0 (a float ts, even 1e12, is "bad_ts").
 *
 * No allocation per event: each thread gets one scratch block on first use
 * (freed when the thread exits) holding a msgpack_zone that is cleared after
 * each decode and a bump arena that jansson allocates from while a JSON
 * payload is decoded (installed with json_set_alloc_funcs; outside a decode,
 * or when the arena is full, the functions fall back to malloc/free, so other
 * jansson users in the process see no difference). msgpack-c reserves a
 * container's storage before reading its entries, so every payload is first
 * measured by rs_event_msgpack_size, which refuses counts the bytes cannot
 * hold: a 6-byte payload cannot ask for gigabytes.
 */
#include "recstream/event.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#define ARENA_SIZE 16384
#define ZONE_CHUNK_SIZE 8192

/* Per-thread decode state; see the file comment. */
struct scratch {
    msgpack_zone zone;
    size_t used; /* arena bytes handed out during the current JSON decode */
    int active;  /* jansson allocations go to the arena */
    alignas(max_align_t) unsigned char arena[ARENA_SIZE];
};

static _Thread_local struct scratch *tl_scratch;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static pthread_key_t scratch_key;
static int scratch_key_ok;

static int in_arena(const struct scratch *s, const void *p)
{
    uintptr_t a = (uintptr_t)s->arena;
    uintptr_t x = (uintptr_t)p;
    return x >= a && x < a + ARENA_SIZE;
}

static void *arena_malloc(size_t n)
{
    struct scratch *s = tl_scratch;
    if (s != NULL && s->active) {
        size_t align = alignof(max_align_t);
        size_t need = (n + align - 1) & ~(align - 1);
        if (need >= n && ARENA_SIZE - s->used >= need) {
            void *p = s->arena + s->used;
            s->used += need;
            return p;
        }
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    struct scratch *s = tl_scratch;
    if (s != NULL && in_arena(s, p)) return; /* reclaimed when the decode ends */
    free(p);
}

static void scratch_destroy(void *p)
{
    struct scratch *s = p;
    if (s == NULL) return;
    if (tl_scratch == s) tl_scratch = NULL;
    msgpack_zone_destroy(&s->zone);
    free(s);
}

static void scratch_setup(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
    json_set_alloc_funcs(arena_malloc, arena_free);
}

/* The calling thread's scratch block, created on first use; NULL if out of memory. */
static struct scratch *scratch_get(void)
{
    struct scratch *s = tl_scratch;
    if (s != NULL) return s;
    pthread_once(&scratch_once, scratch_setup);
    s = malloc(sizeof(*s));
    if (s == NULL) return NULL;
    if (!msgpack_zone_init(&s->zone, ZONE_CHUNK_SIZE)) {
        free(s);
        return NULL;
    }
    s->used = 0;
    s->active = 0;
    if (scratch_key_ok) pthread_setspecific(scratch_key, s);
    tl_scratch = s;
    return s;
}

const char *rs_event_reason_str(enum rs_event_reason reason)
{
    switch (reason) {
    case RS_REASON_OK: return "ok";
    case RS_REASON_EMPTY: return "empty";
    case RS_REASON_TOO_LARGE: return "too_large";
    case RS_REASON_MALFORMED: return "malformed";
    case RS_REASON_NOT_OBJECT: return "not_object";
    case RS_REASON_DUPLICATE_KEY: return "duplicate_key";
    case RS_REASON_MISSING_USER: return "missing_user";
    case RS_REASON_MISSING_ITEM: return "missing_item";
    case RS_REASON_MISSING_TYPE: return "missing_type";
    case RS_REASON_BAD_ID: return "bad_id";
    case RS_REASON_ID_TOO_LONG: return "id_too_long";
    case RS_REASON_BAD_TYPE: return "bad_type";
    case RS_REASON_BAD_VALUE: return "bad_value";
    case RS_REASON_OFF_SCALE: return "off_scale";
    case RS_REASON_MISSING_VALUE: return "missing_value";
    case RS_REASON_BAD_TS: return "bad_ts";
    case RS_REASON_COUNT: break;
    }
    return "unknown";
}

const char *rs_event_type_str(enum rs_event_type type)
{
    switch (type) {
    case RS_EVENT_PLAY: return "play";
    case RS_EVENT_RATE: return "rate";
    case RS_EVENT_FORGET: return "forget";
    }
    return "unknown";
}

/* ---- checks shared by the decoders and rs_event_validate ---- */

static size_t max_bytes(const struct rs_event_limits *lim)
{
    if (lim == NULL || lim->max_bytes == 0) return RS_EVENT_MAX_BYTES_DEFAULT;
    return lim->max_bytes;
}

static float clamp_to_float(double d)
{
    if (d > FLT_MAX) return FLT_MAX;
    if (d < -FLT_MAX) return -FLT_MAX;
    return (float)d;
}

/* Checks a value for an event of type, and stores it as a float in *out. */
static enum rs_event_reason check_value(enum rs_event_type type, double v,
                                        const struct rs_event_limits *lim, float *out)
{
    float fv;

    if (!isfinite(v) || fabs(v) > FLT_MAX) return RS_REASON_BAD_VALUE;
    fv = (float)v;
    if (type == RS_EVENT_RATE && lim != NULL) {
        if (fv < clamp_to_float(lim->rating_min) || fv > clamp_to_float(lim->rating_max))
            return RS_REASON_OFF_SCALE;
    }
    if (type == RS_EVENT_PLAY && !(fv > 0.0f)) return RS_REASON_OFF_SCALE;
    *out = fv;
    return RS_REASON_OK;
}

static enum rs_event_reason check_id(const char *id, size_t len,
                                     enum rs_event_reason missing)
{
    if (len == 0) return missing;
    if (len > RS_ID_MAX) return RS_REASON_ID_TOO_LONG;
    if (memchr(id, '\0', len) != NULL) return RS_REASON_BAD_ID;
    return RS_REASON_OK;
}

enum rs_event_reason rs_event_validate(const struct rs_event *ev,
                                       const struct rs_event_limits *lim)
{
    enum rs_event_reason r;
    float v;

    if (ev == NULL) return RS_REASON_EMPTY;
    if (ev->type != RS_EVENT_PLAY && ev->type != RS_EVENT_RATE &&
        ev->type != RS_EVENT_FORGET)
        return RS_REASON_BAD_TYPE;
    r = check_id(ev->user, ev->user_len, RS_REASON_MISSING_USER);
    if (r != RS_REASON_OK) return r;
    if (ev->type != RS_EVENT_FORGET) {
        r = check_id(ev->item, ev->item_len, RS_REASON_MISSING_ITEM);
        if (r != RS_REASON_OK) return r;
        r = check_value(ev->type, ev->value, lim, &v);
        if (r != RS_REASON_OK) return r;
    }
    if (ev->ts_ms < 0) return RS_REASON_BAD_TS;
    return RS_REASON_OK;
}

/* ---- fields, as both decoders see them ---- */

enum {
    KEY_USER = 1,
    KEY_ITEM = 2,
    KEY_TYPE = 4,
    KEY_VALUE = 8,
    KEY_TS = 16,
};

/* One value of the payload, with the encoding taken away. */
enum scalar_kind { SK_STR, SK_UINT, SK_INT, SK_REAL, SK_OTHER };

struct scalar {
    enum scalar_kind kind;
    const char *s; /* SK_STR, not NUL-terminated */
    size_t n;
    uint64_t u; /* SK_UINT */
    int64_t i;  /* SK_INT, always negative */
    double d;   /* SK_REAL */
};

/* What was found for each of our keys; reasons are applied in order by finish(). */
struct fields {
    unsigned seen;
    enum rs_event_reason user, item, type, value, ts;
    double value_num;
};

static int key_bit(const char *k, size_t n)
{
    switch (n) {
    case 2: return memcmp(k, "ts", 2) == 0 ? KEY_TS : 0;
    case 4:
        if (memcmp(k, "user", 4) == 0) return KEY_USER;
        if (memcmp(k, "item", 4) == 0) return KEY_ITEM;
        if (memcmp(k, "type", 4) == 0) return KEY_TYPE;
        return 0;
    case 5: return memcmp(k, "value", 5) == 0 ? KEY_VALUE : 0;
    default: return 0;
    }
}

/* Writes v in decimal with a NUL after it; returns the digit count. */
static size_t write_u64(uint64_t v, char *out)
{
    char tmp[20];
    size_t n = 0;
    size_t i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

static enum rs_event_reason take_id(const struct scalar *v, char *dst, uint16_t *len)
{
    size_t n;

    switch (v->kind) {
    case SK_STR:
        if (v->n == 0) return RS_REASON_BAD_ID;
        if (v->n > RS_ID_MAX) return RS_REASON_ID_TOO_LONG;
        if (memchr(v->s, '\0', v->n) != NULL) return RS_REASON_BAD_ID;
        memcpy(dst, v->s, v->n);
        dst[v->n] = '\0';
        *len = (uint16_t)v->n;
        return RS_REASON_OK;
    case SK_UINT: *len = (uint16_t)write_u64(v->u, dst); return RS_REASON_OK;
    case SK_INT:
        dst[0] = '-';
        n = write_u64((uint64_t)0 - (uint64_t)v->i, dst + 1);
        *len = (uint16_t)(n + 1);
        return RS_REASON_OK;
    default: return RS_REASON_BAD_ID;
    }
}

static enum rs_event_reason take_type(const struct scalar *v, enum rs_event_type *type)
{
    if (v->kind != SK_STR) return RS_REASON_BAD_TYPE;
    if (v->n == 4 && memcmp(v->s, "play", 4) == 0) {
        *type = RS_EVENT_PLAY;
    } else if (v->n == 4 && memcmp(v->s, "rate", 4) == 0) {
        *type = RS_EVENT_RATE;
    } else if (v->n == 6 && memcmp(v->s, "forget", 6) == 0) {
        *type = RS_EVENT_FORGET;
    } else {
        return RS_REASON_BAD_TYPE;
    }
    return RS_REASON_OK;
}

/* Records one of our keys; returns RS_REASON_DUPLICATE_KEY on a second sight. */
static enum rs_event_reason take_field(struct fields *f, struct rs_event *ev, int bit,
                                       const struct scalar *v)
{
    if (f->seen & (unsigned)bit) return RS_REASON_DUPLICATE_KEY;
    f->seen |= (unsigned)bit;
    switch (bit) {
    case KEY_USER: f->user = take_id(v, ev->user, &ev->user_len); break;
    case KEY_ITEM: f->item = take_id(v, ev->item, &ev->item_len); break;
    case KEY_TYPE: f->type = take_type(v, &ev->type); break;
    case KEY_VALUE:
        if (v->kind == SK_UINT)
            f->value_num = (double)v->u;
        else if (v->kind == SK_INT)
            f->value_num = (double)v->i;
        else if (v->kind == SK_REAL)
            f->value_num = v->d;
        else
            f->value = RS_REASON_BAD_VALUE;
        break;
    case KEY_TS:
        if (v->kind == SK_UINT && v->u <= (uint64_t)INT64_MAX)
            ev->ts_ms = (int64_t)v->u;
        else
            f->ts = RS_REASON_BAD_TS;
        break;
    default: break;
    }
    return RS_REASON_OK;
}

/* Applies the rules in their fixed order once every key has been seen. */
static enum rs_event_reason finish(const struct fields *f,
                                   const struct rs_event_limits *lim, struct rs_event *ev)
{
    enum rs_event_reason r;

    if (!(f->seen & KEY_TYPE)) return RS_REASON_MISSING_TYPE;
    if (f->type != RS_REASON_OK) return f->type;
    if (!(f->seen & KEY_USER)) return RS_REASON_MISSING_USER;
    if (f->user != RS_REASON_OK) return f->user;
    if (ev->type == RS_EVENT_FORGET) {
        ev->item_len = 0;
        ev->item[0] = '\0';
        ev->value = 0.0f;
    } else {
        if (!(f->seen & KEY_ITEM)) return RS_REASON_MISSING_ITEM;
        if (f->item != RS_REASON_OK) return f->item;
        if (f->seen & KEY_VALUE) {
            if (f->value != RS_REASON_OK) return f->value;
            r = check_value(ev->type, f->value_num, lim, &ev->value);
        } else if (ev->type == RS_EVENT_RATE) {
            r = RS_REASON_MISSING_VALUE;
        } else {
            r = check_value(ev->type, 1.0, lim, &ev->value);
        }
        if (r != RS_REASON_OK) return r;
    }
    if (!(f->seen & KEY_TS))
        ev->ts_ms = 0;
    else if (f->ts != RS_REASON_OK)
        return f->ts;
    return RS_REASON_OK;
}

static enum rs_event_reason check_size(const void *buf, size_t len,
                                       const struct rs_event_limits *lim)
{
    if (len == 0 || buf == NULL) return RS_REASON_EMPTY;
    if (len > max_bytes(lim)) return RS_REASON_TOO_LARGE;
    return RS_REASON_OK;
}

/* ---- JSON ---- */

static void scalar_from_json(const json_t *j, struct scalar *v)
{
    json_int_t i;

    memset(v, 0, sizeof(*v));
    v->kind = SK_OTHER;
    if (json_is_string(j)) {
        v->kind = SK_STR;
        v->s = json_string_value(j);
        v->n = json_string_length(j);
    } else if (json_is_integer(j)) {
        i = json_integer_value(j);
        if (i >= 0) {
            v->kind = SK_UINT;
            v->u = (uint64_t)i;
        } else {
            v->kind = SK_INT;
            v->i = (int64_t)i;
        }
    } else if (json_is_real(j)) {
        v->kind = SK_REAL;
        v->d = json_real_value(j);
    }
}

enum rs_event_reason rs_event_decode_json(const void *buf, size_t len,
                                          const struct rs_event_limits *lim,
                                          struct rs_event *ev)
{
    enum rs_event_reason r;
    struct scratch *s;
    struct fields f;
    struct scalar v;
    json_error_t err;
    json_t *root = NULL;
    json_t *val;
    const char *key;
    int bit;

    r = check_size(buf, len, lim);
    if (r != RS_REASON_OK) return r;
    memset(&f, 0, sizeof(f));
    s = scratch_get();
    if (s != NULL) {
        s->used = 0;
        s->active = 1;
    }
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (root == NULL) {
        if (json_error_code(&err) == json_error_duplicate_key)
            r = RS_REASON_DUPLICATE_KEY;
        else if (json_error_code(&err) == json_error_numeric_overflow)
            r = RS_REASON_BAD_VALUE;
        else
            r = RS_REASON_MALFORMED;
        goto out;
    }
    if (!json_is_object(root)) {
        r = RS_REASON_NOT_OBJECT;
        goto out;
    }
    json_object_foreach(root, key, val)
    {
        bit = key_bit(key, strlen(key));
        if (bit == 0) continue;
        scalar_from_json(val, &v);
        r = take_field(&f, ev, bit, &v);
        if (r != RS_REASON_OK) goto out;
    }
    r = finish(&f, lim, ev);
out:
    json_decref(root);
    if (s != NULL) {
        s->active = 0;
        s->used = 0;
    }
    return r;
}

/* ---- msgpack ---- */

static uint64_t read_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int rs_event_msgpack_size(const void *buf, size_t len, size_t *size)
{
    const unsigned char *p = buf;
    size_t pos = 0;
    uint64_t pending = 1; /* objects still to read */
    unsigned b;
    size_t width;   /* bytes of a length or count field */
    uint64_t skip;  /* payload bytes after the header */
    uint64_t count; /* objects a container adds */
    int container;

    if (p == NULL) return 0;
    while (pending > 0) {
        if (pos >= len) return 0;
        b = p[pos++];
        pending--;
        width = 0;
        skip = 0;
        count = 0;
        container = 0;
        if (b <= 0x7f || b >= 0xe0) continue; /* fixint */
        if (b <= 0x8f) {                      /* fixmap */
            count = 2u * (b & 0x0fu);
            container = 1;
        } else if (b <= 0x9f) { /* fixarray */
            count = b & 0x0fu;
            container = 1;
        } else if (b <= 0xbf) { /* fixstr */
            skip = b & 0x1fu;
        } else {
            switch (b) {
            case 0xc0:
            case 0xc2:
            case 0xc3: continue;         /* nil, false, true */
            case 0xc1: return -1;        /* never used */
            case 0xc4: width = 1; break; /* bin 8/16/32 */
            case 0xc5: width = 2; break;
            case 0xc6: width = 4; break;
            case 0xc7: /* ext 8/16/32: a length, the type byte, the data */
                width = 1;
                skip = 1;
                break;
            case 0xc8:
                width = 2;
                skip = 1;
                break;
            case 0xc9:
                width = 4;
                skip = 1;
                break;
            case 0xca: skip = 4; break; /* float 32/64 */
            case 0xcb: skip = 8; break;
            case 0xcc:
            case 0xd0: skip = 1; break; /* (u)int 8..64 */
            case 0xcd:
            case 0xd1: skip = 2; break;
            case 0xce:
            case 0xd2: skip = 4; break;
            case 0xcf:
            case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break; /* fixext 1..16 + type */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xd9: width = 1; break; /* str 8/16/32 */
            case 0xda: width = 2; break;
            case 0xdb: width = 4; break;
            case 0xdc: /* array 16/32 */
                width = 2;
                container = 1;
                break;
            case 0xdd:
                width = 4;
                container = 1;
                break;
            case 0xde: /* map 16/32: two objects per entry */
                width = 2;
                container = 2;
                break;
            case 0xdf:
                width = 4;
                container = 2;
                break;
            default: return -1;
            }
            if (width > 0) {
                if (len - pos < width) return 0;
                if (container == 0)
                    skip += read_be(p + pos, width);
                else
                    count = read_be(p + pos, width) * (uint64_t)container;
                pos += width;
            }
        }
        if (container) {
            /* every pending object needs at least one more byte */
            if (pending + count > len - pos) return 0;
            pending += count;
        } else {
            if (skip > len - pos) return 0;
            pos += (size_t)skip;
        }
    }
    *size = pos;
    return 1;
}

static void scalar_from_msgpack(const msgpack_object *o, struct scalar *v)
{
    memset(v, 0, sizeof(*v));
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        v->kind = SK_STR;
        v->s = o->via.str.ptr;
        v->n = o->via.str.size;
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        v->kind = SK_UINT;
        v->u = o->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        v->kind = SK_INT;
        v->i = o->via.i64;
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        v->kind = SK_REAL;
        v->d = o->via.f64;
        break;
    default: v->kind = SK_OTHER; break;
    }
}

static enum rs_event_reason from_msgpack_map(const msgpack_object *root,
                                             const struct rs_event_limits *lim,
                                             struct rs_event *ev)
{
    enum rs_event_reason r;
    struct fields f;
    struct scalar v;
    const msgpack_object_kv *kv;
    uint32_t i;
    int bit;

    if (root->type != MSGPACK_OBJECT_MAP) return RS_REASON_NOT_OBJECT;
    memset(&f, 0, sizeof(f));
    for (i = 0; i < root->via.map.size; i++) {
        kv = &root->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) continue;
        bit = key_bit(kv->key.via.str.ptr, kv->key.via.str.size);
        if (bit == 0) continue;
        scalar_from_msgpack(&kv->val, &v);
        r = take_field(&f, ev, bit, &v);
        if (r != RS_REASON_OK) return r;
    }
    return finish(&f, lim, ev);
}

enum rs_event_reason rs_event_decode_msgpack(const void *buf, size_t len,
                                             const struct rs_event_limits *lim,
                                             struct rs_event *ev)
{
    enum rs_event_reason r;
    struct scratch *s;
    msgpack_zone local;
    msgpack_zone *zone;
    msgpack_object root;
    size_t size = 0;
    size_t off = 0;

    r = check_size(buf, len, lim);
    if (r != RS_REASON_OK) return r;
    if (rs_event_msgpack_size(buf, len, &size) != 1 || size != len)
        return RS_REASON_MALFORMED;
    s = scratch_get();
    if (s != NULL) {
        zone = &s->zone;
    } else {
        /* out of memory for the scratch block: one zone just for this call */
        if (!msgpack_zone_init(&local, ZONE_CHUNK_SIZE)) return RS_REASON_MALFORMED;
        zone = &local;
    }
    if (msgpack_unpack(buf, len, &off, zone, &root) != MSGPACK_UNPACK_SUCCESS)
        r = RS_REASON_MALFORMED;
    else
        r = from_msgpack_map(&root, lim, ev);
    if (zone == &local)
        msgpack_zone_destroy(&local);
    else
        msgpack_zone_clear(zone);
    return r;
}

enum rs_event_reason rs_event_decode(const void *buf, size_t len,
                                     const struct rs_event_limits *lim,
                                     struct rs_event *ev)
{
    const unsigned char *p = buf;
    enum rs_event_reason r;
    size_t i;

    r = check_size(buf, len, lim);
    if (r != RS_REASON_OK) return r;
    for (i = 0; i < len; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') break;
    }
    if (i < len && p[i] == '{') return rs_event_decode_json(buf, len, lim, ev);
    return rs_event_decode_msgpack(buf, len, lim, ev);
}

/* ---- encoding ---- */

/* A msgpack write target of fixed size that notes when it runs out. */
struct fixed_out {
    char *buf;
    size_t size;
    size_t len;
};

static int fixed_write(void *data, const char *bytes, size_t n)
{
    struct fixed_out *o = data;

    if (n > o->size - o->len) return -1;
    memcpy(o->buf + o->len, bytes, n);
    o->len += n;
    return 0;
}

static int pack_key(msgpack_packer *pk, const char *k)
{
    size_t n = strlen(k);
    if (msgpack_pack_str(pk, n) != 0) return -1;
    return msgpack_pack_str_body(pk, k, n);
}

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    if (msgpack_pack_str(pk, n) != 0) return -1;
    return msgpack_pack_str_body(pk, s, n);
}

size_t rs_event_encode_msgpack(const struct rs_event *ev, void *buf, size_t size)
{
    struct fixed_out out;
    msgpack_packer pk;
    const char *type;
    int has_item;
    int has_ts;

    if (ev == NULL || buf == NULL) return 0;
    if (ev->user_len > RS_ID_MAX || ev->item_len > RS_ID_MAX) return 0;
    out.buf = buf;
    out.size = size;
    out.len = 0;
    msgpack_packer_init(&pk, &out, fixed_write);
    has_item = ev->type != RS_EVENT_FORGET;
    has_ts = ev->ts_ms != 0;
    type = rs_event_type_str(ev->type);
    if (msgpack_pack_map(&pk, (size_t)(3 + has_item + has_ts)) != 0) return 0;
    if (pack_key(&pk, "user") != 0 || pack_str(&pk, ev->user, ev->user_len) != 0)
        return 0;
    if (has_item) {
        if (pack_key(&pk, "item") != 0 || pack_str(&pk, ev->item, ev->item_len) != 0)
            return 0;
    }
    if (pack_key(&pk, "type") != 0 || pack_str(&pk, type, strlen(type)) != 0) return 0;
    if (pack_key(&pk, "value") != 0 || msgpack_pack_float(&pk, ev->value) != 0) return 0;
    if (has_ts) {
        if (pack_key(&pk, "ts") != 0 || msgpack_pack_int64(&pk, ev->ts_ms) != 0) return 0;
    }
    return out.len;
}
