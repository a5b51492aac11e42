/*
 * test_event.c - the event decoders against every way a payload can be
 * wrong, in both encodings (one test per case), plus validation of events
 * built by hand, msgpack encoding round trips, the stream measurer, random
 * and mutated payloads, and decoding from several threads (the per-thread
 * scratch must be freed when a thread exits; ASan checks that).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "recstream/event.h"

static const struct rs_event_limits lim = {1.0, 5.0, 4096};

/* ---- helpers ---- */

/* Decodes a JSON text through both entry points, which must agree. */
static enum rs_event_reason dj(const char *json, struct rs_event *ev)
{
    struct rs_event other;
    size_t n = strlen(json);
    enum rs_event_reason r = rs_event_decode(json, n, &lim, ev);
    assert_int_equal(rs_event_decode_json(json, n, &lim, &other), r);
    return r;
}

/* A msgpack payload being built. */
struct mp {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void mp_init(struct mp *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_sn(struct mp *m, const char *s, size_t n)
{
    msgpack_pack_str(&m->pk, n);
    msgpack_pack_str_body(&m->pk, s, n);
}

static void mp_s(struct mp *m, const char *s)
{
    mp_sn(m, s, strlen(s));
}

enum { OU = 1, OI = 2, OT = 4, OV = 8, OS = 16 };

/*
 * Starts a map holding the base rate event {user:"u1", item:"i1",
 * type:"rate", value:4.0, ts:1000} minus the keys in omit, with room for
 * extra more pairs that the caller packs next.
 */
static void mp_base(struct mp *m, unsigned omit, size_t extra)
{
    size_t n = extra;
    unsigned b;

    for (b = 1; b <= OS; b <<= 1)
        n += (omit & b) ? 0 : 1;
    mp_init(m);
    msgpack_pack_map(&m->pk, n);
    if (!(omit & OU)) {
        mp_s(m, "user");
        mp_s(m, "u1");
    }
    if (!(omit & OI)) {
        mp_s(m, "item");
        mp_s(m, "i1");
    }
    if (!(omit & OT)) {
        mp_s(m, "type");
        mp_s(m, "rate");
    }
    if (!(omit & OV)) {
        mp_s(m, "value");
        msgpack_pack_double(&m->pk, 4.0);
    }
    if (!(omit & OS)) {
        mp_s(m, "ts");
        msgpack_pack_int64(&m->pk, 1000);
    }
}

/* Decodes the built payload through both entry points and frees it. */
static enum rs_event_reason mp_decode(struct mp *m, struct rs_event *ev)
{
    struct rs_event other;
    enum rs_event_reason r = rs_event_decode(m->sb.data, m->sb.size, &lim, ev);
    assert_int_equal(rs_event_decode_msgpack(m->sb.data, m->sb.size, &lim, &other), r);
    msgpack_sbuffer_destroy(&m->sb);
    return r;
}

/* Packs one key whose value the caller packs next; returns the packer. */
static msgpack_packer *mp_key(struct mp *m, const char *key)
{
    mp_s(m, key);
    return &m->pk;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- accepted inputs ---- */

static void test_json_decodes_play_event(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":\"alice\",\"item\":\"song-9\",\"type\":\"play\","
                        "\"value\":30,\"ts\":1700000000123}",
                        &ev),
                     RS_REASON_OK);
    assert_int_equal(ev.type, RS_EVENT_PLAY);
    assert_string_equal(ev.user, "alice");
    assert_int_equal(ev.user_len, 5);
    assert_string_equal(ev.item, "song-9");
    assert_int_equal(ev.item_len, 6);
    assert_true(ev.value == 30.0f);
    assert_true(ev.ts_ms == 1700000000123LL);
}

static void test_msgpack_decodes_rate_event(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, 0, 0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_int_equal(ev.type, RS_EVENT_RATE);
    assert_string_equal(ev.user, "u1");
    assert_string_equal(ev.item, "i1");
    assert_true(ev.value == 4.0f);
    assert_true(ev.ts_ms == 1000);
}

static void test_json_with_leading_whitespace_is_json(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(
        dj(" \r\n\t{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\"}\n", &ev),
        RS_REASON_OK);
    assert_string_equal(ev.user, "u");
}

static void test_integer_ids_are_decimal(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    assert_int_equal(dj("{\"user\":42,\"item\":-7,\"type\":\"play\"}", &ev),
                     RS_REASON_OK);
    assert_string_equal(ev.user, "42");
    assert_int_equal(ev.user_len, 2);
    assert_string_equal(ev.item, "-7");
    assert_int_equal(ev.item_len, 2);
    assert_int_equal(
        dj("{\"user\":0,\"item\":9223372036854775807,\"type\":\"play\"}", &ev),
        RS_REASON_OK);
    assert_string_equal(ev.user, "0");
    assert_string_equal(ev.item, "9223372036854775807");

    mp_base(&m, OU | OI, 2);
    msgpack_pack_uint64(mp_key(&m, "user"), UINT64_MAX);
    msgpack_pack_int64(mp_key(&m, "item"), INT64_MIN);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_string_equal(ev.user, "18446744073709551615");
    assert_int_equal(ev.user_len, 20);
    assert_string_equal(ev.item, "-9223372036854775808");

    mp_base(&m, OU | OI, 2);
    msgpack_pack_int8(mp_key(&m, "user"), 5); /* a signed type holding a positive value */
    msgpack_pack_uint16(mp_key(&m, "item"), 1234);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_string_equal(ev.user, "5");
    assert_string_equal(ev.item, "1234");
}

static void test_string_and_integer_ids_are_the_same_id(void **state)
{
    struct rs_event a, b;
    (void)state;
    assert_int_equal(dj("{\"user\":196,\"item\":242,\"type\":\"play\"}", &a),
                     RS_REASON_OK);
    assert_int_equal(dj("{\"user\":\"196\",\"item\":\"242\",\"type\":\"play\"}", &b),
                     RS_REASON_OK);
    assert_string_equal(a.user, b.user);
    assert_string_equal(a.item, b.item);
}

static void test_forget_needs_no_item(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    assert_int_equal(dj("{\"user\":\"u9\",\"type\":\"forget\"}", &ev), RS_REASON_OK);
    assert_int_equal(ev.type, RS_EVENT_FORGET);
    assert_int_equal(ev.item_len, 0);
    assert_string_equal(ev.item, "");
    /* item and value are ignored, even when they would be bad */
    assert_int_equal(
        dj("{\"user\":\"u9\",\"type\":\"forget\",\"item\":null,\"value\":\"x\"}", &ev),
        RS_REASON_OK);
    assert_int_equal(ev.item_len, 0);

    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    mp_s(&m, "user");
    mp_s(&m, "u9");
    mp_s(&m, "type");
    mp_s(&m, "forget");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_int_equal(ev.type, RS_EVENT_FORGET);
    assert_int_equal(ev.item_len, 0);
}

static void test_play_value_defaults_to_one(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\"}", &ev),
                     RS_REASON_OK);
    assert_true(ev.value == 1.0f);

    mp_base(&m, OT | OV, 1);
    mp_key(&m, "type");
    mp_s(&m, "play");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_true(ev.value == 1.0f);
}

static void test_ts_defaults_to_zero(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\",\"value\":3}", &ev),
        RS_REASON_OK);
    assert_true(ev.ts_ms == 0);
    mp_base(&m, OS, 0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_true(ev.ts_ms == 0);
}

static void test_unknown_keys_are_ignored(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    assert_int_equal(dj("{\"user\":\"u\",\"session\":{\"a\":[1,2,{}]},\"item\":\"i\","
                        "\"type\":\"play\",\"Value\":\"x\",\"tss\":-1}",
                        &ev),
                     RS_REASON_OK);
    assert_true(ev.value == 1.0f);
    assert_true(ev.ts_ms == 0);

    mp_base(&m, 0, 3);
    msgpack_pack_array(mp_key(&m, "extra"), 2);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_true(&m.pk);
    msgpack_pack_int(&m.pk, 7); /* a non-string key */
    mp_s(&m, "seven");
    msgpack_pack_bin(&m.pk, 4); /* a bin key, even one spelling "user" */
    msgpack_pack_bin_body(&m.pk, "user", 4);
    mp_s(&m, "not-the-user");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_string_equal(ev.user, "u1");
}

static void test_integer_value_is_accepted(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\",\"value\":5}", &ev),
        RS_REASON_OK);
    assert_true(ev.value == 5.0f);
    mp_base(&m, OV, 1);
    msgpack_pack_uint8(mp_key(&m, "value"), 2);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_true(ev.value == 2.0f);
}

static void test_float32_value_is_accepted(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OV, 1);
    msgpack_pack_float(mp_key(&m, "value"), 3.5f);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_true(ev.value == 3.5f);
}

static void test_rating_on_scale_bounds_is_accepted(void **state)
{
    struct rs_event ev;
    struct rs_event_limits half = {0.5, 5.0, 4096};
    const char *p = "{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\",\"value\":0.5}";
    (void)state;
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\",\"value\":1}", &ev),
        RS_REASON_OK);
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\",\"value\":5.0}", &ev),
        RS_REASON_OK);
    assert_int_equal(rs_event_decode(p, strlen(p), &half, &ev), RS_REASON_OK);
    assert_true(ev.value == 0.5f);
    assert_int_equal(rs_event_decode(p, strlen(p), &lim, &ev), RS_REASON_OFF_SCALE);
}

static void test_accepts_id_of_256_bytes(void **state)
{
    struct rs_event ev;
    struct mp m;
    char *id = repeat('x', 256);
    char json[700];
    (void)state;
    snprintf(json, sizeof(json), "{\"user\":\"%s\",\"item\":\"%s\",\"type\":\"play\"}",
             id, id);
    assert_int_equal(dj(json, &ev), RS_REASON_OK);
    assert_int_equal(ev.user_len, 256);
    assert_int_equal(ev.item_len, 256);
    assert_string_equal(ev.user, id);

    mp_base(&m, OU | OI, 2);
    mp_key(&m, "user");
    mp_s(&m, id);
    mp_key(&m, "item");
    mp_s(&m, id);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_int_equal(ev.user_len, 256);
    assert_int_equal(ev.item_len, 256);
    assert_memory_equal(ev.item, id, 257);
    free(id);
}

static void test_msgpack_ids_may_hold_any_non_nul_bytes(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OU, 1);
    mp_key(&m, "user");
    mp_sn(&m, "\xff\xfe\x01 \"q\"", 7);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_int_equal(ev.user_len, 7);
    assert_memory_equal(ev.user, "\xff\xfe\x01 \"q\"", 8);
}

static void test_accepts_payload_of_exactly_max_bytes(void **state)
{
    struct rs_event ev;
    struct rs_event_limits small = {1.0, 5.0, 0};
    const char *p = "{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\"}";
    (void)state;
    small.max_bytes = strlen(p);
    assert_int_equal(rs_event_decode(p, strlen(p), &small, &ev), RS_REASON_OK);
}

static void test_null_limits_skip_the_scale(void **state)
{
    struct rs_event ev;
    const char *p = "{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\",\"value\":-40}";
    (void)state;
    assert_int_equal(rs_event_decode(p, strlen(p), NULL, &ev), RS_REASON_OK);
    assert_true(ev.value == -40.0f);
}

/* ---- size and structure ---- */

static void test_rejects_empty_payload(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(rs_event_decode("", 0, &lim, &ev), RS_REASON_EMPTY);
    assert_int_equal(rs_event_decode(NULL, 0, &lim, &ev), RS_REASON_EMPTY);
    assert_int_equal(rs_event_decode_json("", 0, &lim, &ev), RS_REASON_EMPTY);
    assert_int_equal(rs_event_decode_msgpack("", 0, &lim, &ev), RS_REASON_EMPTY);
}

static void test_rejects_oversized_payload(void **state)
{
    struct rs_event ev;
    struct rs_event_limits small = {1.0, 5.0, 0};
    const char *p = "{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\"}";
    char *junk = repeat('\xc1', 5000); /* invalid, but the size is checked first */
    struct mp m;
    (void)state;
    small.max_bytes = strlen(p) - 1;
    assert_int_equal(rs_event_decode(p, strlen(p), &small, &ev), RS_REASON_TOO_LARGE);
    assert_int_equal(rs_event_decode(junk, 5000, &lim, &ev), RS_REASON_TOO_LARGE);
    assert_int_equal(rs_event_decode(junk, 4097, NULL, &ev), RS_REASON_TOO_LARGE);
    assert_int_equal(rs_event_decode_json(junk, 4097, &lim, &ev), RS_REASON_TOO_LARGE);
    mp_base(&m, 0, 0);
    small.max_bytes = m.sb.size - 1;
    assert_int_equal(rs_event_decode(m.sb.data, m.sb.size, &small, &ev),
                     RS_REASON_TOO_LARGE);
    msgpack_sbuffer_destroy(&m.sb);
    free(junk);
}

static void test_json_rejects_malformed_text(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":\"u\",}", &ev), RS_REASON_MALFORMED);
    assert_int_equal(dj("{user:\"u\"}", &ev), RS_REASON_MALFORMED);
    assert_int_equal(dj("{\"user\":'u'}", &ev), RS_REASON_MALFORMED);
    assert_int_equal(dj("{   ", &ev), RS_REASON_MALFORMED);
}

static void test_json_rejects_truncated_payload(void **state)
{
    const char *p =
        "{\"user\":\"u1\",\"item\":42,\"type\":\"rate\",\"value\":4.5,\"ts\":17}";
    struct rs_event ev;
    size_t n = strlen(p);
    size_t i;
    (void)state;
    assert_int_equal(rs_event_decode(p, n, &lim, &ev), RS_REASON_OK);
    for (i = 0; i < n; i++) {
        enum rs_event_reason r = rs_event_decode(p, i, &lim, &ev);
        assert_int_equal(r, i == 0 ? RS_REASON_EMPTY : RS_REASON_MALFORMED);
    }
}

static void test_msgpack_rejects_truncated_payload(void **state)
{
    struct rs_event ev;
    struct mp m;
    size_t i;
    char *copy;
    (void)state;
    mp_base(&m, 0, 1);
    msgpack_pack_array(mp_key(&m, "tags"), 2);
    msgpack_pack_double(&m.pk, 1.5);
    msgpack_pack_bin(&m.pk, 3);
    msgpack_pack_bin_body(&m.pk, "abc", 3);
    assert_int_equal(rs_event_decode(m.sb.data, m.sb.size, &lim, &ev), RS_REASON_OK);
    for (i = 0; i < m.sb.size; i++) {
        /* a heap copy of exactly i bytes, so ASan sees any read past the end */
        copy = malloc(i ? i : 1);
        assert_non_null(copy);
        memcpy(copy, m.sb.data, i);
        assert_int_equal(rs_event_decode(copy, i, &lim, &ev),
                         i == 0 ? RS_REASON_EMPTY : RS_REASON_MALFORMED);
        assert_int_equal(rs_event_decode_msgpack(copy, i, &lim, &ev),
                         i == 0 ? RS_REASON_EMPTY : RS_REASON_MALFORMED);
        free(copy);
    }
    msgpack_sbuffer_destroy(&m.sb);
}

static void test_json_rejects_trailing_garbage(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\"} x", &ev),
                     RS_REASON_MALFORMED);
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\"}{}", &ev),
                     RS_REASON_MALFORMED);
}

static void test_msgpack_rejects_trailing_bytes(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, 0, 0);
    msgpack_pack_nil(&m.pk);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_MALFORMED);
    mp_base(&m, 0, 0);
    mp_s(&m, "second object");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_MALFORMED);
}

static void test_msgpack_rejects_reserved_byte(void **state)
{
    struct rs_event ev;
    const char p[] = "\x81\xa4user\xc1";
    (void)state;
    assert_int_equal(rs_event_decode(p, sizeof(p) - 1, &lim, &ev), RS_REASON_MALFORMED);
    assert_int_equal(rs_event_decode("\xc1", 1, &lim, &ev), RS_REASON_MALFORMED);
}

static void test_msgpack_rejects_huge_container_count(void **state)
{
    struct rs_event ev;
    (void)state;
    /* each announces billions of entries in a few bytes: refused, nothing reserved */
    assert_int_equal(rs_event_decode("\xdd\x0f\xff\xff\xff\x01", 6, &lim, &ev),
                     RS_REASON_MALFORMED);
    assert_int_equal(rs_event_decode("\xdf\x7f\xff\xff\xff\x01\x02", 7, &lim, &ev),
                     RS_REASON_MALFORMED);
    assert_int_equal(rs_event_decode("\x81\xa1x\xdd\xff\xff\xff\xff", 8, &lim, &ev),
                     RS_REASON_MALFORMED);
    assert_int_equal(rs_event_decode("\xdb\xff\xff\xff\xff"
                                     "abc",
                                     8, &lim, &ev),
                     RS_REASON_MALFORMED);
}

static void test_msgpack_rejects_deep_nesting(void **state)
{
    struct rs_event ev;
    struct mp m;
    int i;
    (void)state;
    mp_base(&m, 0, 1);
    mp_key(&m, "deep");
    for (i = 0; i < 100; i++)
        msgpack_pack_array(&m.pk, 1);
    msgpack_pack_nil(&m.pk);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_MALFORMED);
}

static void test_json_rejects_non_object(void **state)
{
    struct rs_event ev;
    const char *p = "[{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\"}]";
    (void)state;
    assert_int_equal(rs_event_decode_json(p, strlen(p), &lim, &ev), RS_REASON_NOT_OBJECT);
    assert_int_equal(rs_event_decode_json("[]", 2, &lim, &ev), RS_REASON_NOT_OBJECT);
    /* a bare scalar is not a JSON text jansson accepts at the top */
    assert_int_equal(rs_event_decode_json("\"x\"", 3, &lim, &ev), RS_REASON_MALFORMED);
}

static void test_msgpack_rejects_non_map(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_init(&m);
    msgpack_pack_array(&m.pk, 2);
    mp_s(&m, "user");
    mp_s(&m, "u");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_NOT_OBJECT);
    mp_init(&m);
    mp_s(&m, "{\"user\":\"u\"}");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_NOT_OBJECT);
    mp_init(&m);
    msgpack_pack_int(&m.pk, 7);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_NOT_OBJECT);
    mp_init(&m);
    msgpack_pack_nil(&m.pk);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_NOT_OBJECT);
}

static void test_json_rejects_invalid_utf8(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":\"\xff\",\"item\":\"i\",\"type\":\"play\"}", &ev),
                     RS_REASON_MALFORMED);
}

static void test_json_rejects_duplicate_key(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(
        dj("{\"user\":\"a\",\"item\":\"i\",\"type\":\"play\",\"user\":\"b\"}", &ev),
        RS_REASON_DUPLICATE_KEY);
    assert_int_equal(
        dj("{\"user\":\"a\",\"item\":\"i\",\"type\":\"play\",\"x\":1,\"x\":2}", &ev),
        RS_REASON_DUPLICATE_KEY);
}

static void test_msgpack_rejects_duplicate_key(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, 0, 1);
    mp_key(&m, "type");
    mp_s(&m, "rate");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_DUPLICATE_KEY);
    mp_base(&m, 0, 1);
    msgpack_pack_int64(mp_key(&m, "ts"), 1000);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_DUPLICATE_KEY);
}

/* ---- missing keys ---- */

static void test_json_rejects_missing_user(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"item\":\"i\",\"type\":\"play\"}", &ev),
                     RS_REASON_MISSING_USER);
    assert_int_equal(dj("{\"type\":\"forget\"}", &ev), RS_REASON_MISSING_USER);
}

static void test_msgpack_rejects_missing_user(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OU, 0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_MISSING_USER);
}

static void test_json_rejects_missing_item(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":\"u\",\"type\":\"play\"}", &ev),
                     RS_REASON_MISSING_ITEM);
    assert_int_equal(dj("{\"user\":\"u\",\"type\":\"rate\",\"value\":3}", &ev),
                     RS_REASON_MISSING_ITEM);
}

static void test_msgpack_rejects_missing_item(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OI, 0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_MISSING_ITEM);
}

static void test_json_rejects_missing_type(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"value\":3}", &ev),
                     RS_REASON_MISSING_TYPE);
    assert_int_equal(dj("{}", &ev), RS_REASON_MISSING_TYPE);
}

static void test_msgpack_rejects_missing_type(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OT, 0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_MISSING_TYPE);
    mp_init(&m);
    msgpack_pack_map(&m.pk, 0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_MISSING_TYPE);
}

static void test_rate_without_value_is_missing_value(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\"}", &ev),
                     RS_REASON_MISSING_VALUE);
    mp_base(&m, OV, 0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_MISSING_VALUE);
}

static void test_reasons_follow_the_documented_order(void **state)
{
    struct rs_event ev;
    (void)state;
    /* type before user, user before item, item before value, value before ts */
    assert_int_equal(dj("{\"item\":\"i\"}", &ev), RS_REASON_MISSING_TYPE);
    assert_int_equal(dj("{\"type\":\"zap\",\"user\":1.5}", &ev), RS_REASON_BAD_TYPE);
    assert_int_equal(dj("{\"type\":\"rate\",\"user\":1.5}", &ev), RS_REASON_BAD_ID);
    assert_int_equal(dj("{\"type\":\"rate\",\"user\":\"u\",\"value\":\"v\"}", &ev),
                     RS_REASON_MISSING_ITEM);
    assert_int_equal(dj("{\"type\":\"rate\",\"user\":\"u\",\"item\":\"i\",\"value\":9,"
                        "\"ts\":-1}",
                        &ev),
                     RS_REASON_OFF_SCALE);
    assert_int_equal(dj("{\"type\":\"forget\",\"user\":\"u\",\"ts\":-1}", &ev),
                     RS_REASON_BAD_TS);
}

/* ---- ids ---- */

static void test_json_rejects_float_id(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":1.5,\"item\":\"i\",\"type\":\"play\"}", &ev),
                     RS_REASON_BAD_ID);
    assert_int_equal(dj("{\"user\":\"u\",\"item\":42.0,\"type\":\"play\"}", &ev),
                     RS_REASON_BAD_ID);
}

static void test_msgpack_rejects_float_id(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OU, 1);
    msgpack_pack_double(mp_key(&m, "user"), 42.0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_ID);
    mp_base(&m, OI, 1);
    msgpack_pack_float(mp_key(&m, "item"), 1.0f);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_ID);
}

static void test_json_rejects_bool_id(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":true,\"item\":\"i\",\"type\":\"play\"}", &ev),
                     RS_REASON_BAD_ID);
    assert_int_equal(dj("{\"user\":\"u\",\"item\":false,\"type\":\"play\"}", &ev),
                     RS_REASON_BAD_ID);
}

static void test_msgpack_rejects_bool_id(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OU, 1);
    msgpack_pack_true(mp_key(&m, "user"));
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_ID);
}

static void test_json_rejects_null_id(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":null,\"item\":\"i\",\"type\":\"play\"}", &ev),
                     RS_REASON_BAD_ID);
    assert_int_equal(dj("{\"user\":\"u\",\"item\":null,\"type\":\"play\"}", &ev),
                     RS_REASON_BAD_ID);
}

static void test_msgpack_rejects_nil_id(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OI, 1);
    msgpack_pack_nil(mp_key(&m, "item"));
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_ID);
}

static void test_json_rejects_array_or_object_id(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":[\"u\"],\"item\":\"i\",\"type\":\"play\"}", &ev),
                     RS_REASON_BAD_ID);
    assert_int_equal(dj("{\"user\":\"u\",\"item\":{\"id\":1},\"type\":\"play\"}", &ev),
                     RS_REASON_BAD_ID);
}

static void test_msgpack_rejects_array_or_map_id(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OU, 1);
    msgpack_pack_array(mp_key(&m, "user"), 1);
    mp_s(&m, "u");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_ID);
    mp_base(&m, OI, 1);
    msgpack_pack_map(mp_key(&m, "item"), 0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_ID);
}

static void test_msgpack_rejects_bin_id(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OU, 1);
    msgpack_pack_bin(mp_key(&m, "user"), 2);
    msgpack_pack_bin_body(&m.pk, "u1", 2);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_ID);
}

static void test_msgpack_rejects_ext_id(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OU, 1);
    msgpack_pack_ext(mp_key(&m, "user"), 2, 5);
    msgpack_pack_ext_body(&m.pk, "u1", 2);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_ID);
}

static void test_json_rejects_empty_string_id(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":\"\",\"item\":\"i\",\"type\":\"play\"}", &ev),
                     RS_REASON_BAD_ID);
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"\",\"type\":\"play\"}", &ev),
                     RS_REASON_BAD_ID);
}

static void test_msgpack_rejects_empty_string_id(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OU, 1);
    mp_key(&m, "user");
    mp_s(&m, "");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_ID);
}

static void test_json_rejects_id_with_nul_byte(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":\"a\\u0000b\",\"item\":\"i\",\"type\":\"play\"}", &ev),
                     RS_REASON_BAD_ID);
}

static void test_msgpack_rejects_id_with_nul_byte(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OI, 1);
    mp_key(&m, "item");
    mp_sn(&m, "i\0x", 3);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_ID);
}

static void test_rejects_id_of_257_bytes(void **state)
{
    struct rs_event ev;
    struct mp m;
    char *id = repeat('y', 257);
    char json[700];
    (void)state;
    snprintf(json, sizeof(json), "{\"user\":\"%s\",\"item\":\"i\",\"type\":\"play\"}",
             id);
    assert_int_equal(dj(json, &ev), RS_REASON_ID_TOO_LONG);
    snprintf(json, sizeof(json), "{\"user\":\"u\",\"item\":\"%s\",\"type\":\"play\"}",
             id);
    assert_int_equal(dj(json, &ev), RS_REASON_ID_TOO_LONG);

    mp_base(&m, OU, 1);
    mp_key(&m, "user");
    mp_s(&m, id);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_ID_TOO_LONG);
    mp_base(&m, OI, 1);
    mp_key(&m, "item");
    mp_s(&m, id);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_ID_TOO_LONG);
    free(id);
}

static void test_json_rejects_integer_id_beyond_64_bits(void **state)
{
    struct rs_event ev;
    (void)state;
    /* jansson cannot hold it: the documented "bad_value" for numeric overflow */
    assert_int_equal(
        dj("{\"user\":99999999999999999999,\"item\":\"i\",\"type\":\"play\"}", &ev),
        RS_REASON_BAD_VALUE);
}

/* ---- type ---- */

static void test_json_rejects_unknown_type(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\"}", &ev),
                     RS_REASON_BAD_TYPE);
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"Play\"}", &ev),
                     RS_REASON_BAD_TYPE);
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"\"}", &ev),
                     RS_REASON_BAD_TYPE);
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\\u0000\"}", &ev),
                     RS_REASON_BAD_TYPE);
}

static void test_msgpack_rejects_unknown_type(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OT, 1);
    mp_key(&m, "type");
    mp_s(&m, "rating");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_TYPE);
    mp_base(&m, OT, 1);
    mp_key(&m, "type");
    mp_s(&m, "forge");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_TYPE);
}

static void test_json_rejects_non_string_type(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"type\":2}", &ev),
                     RS_REASON_BAD_TYPE);
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"type\":null}", &ev),
                     RS_REASON_BAD_TYPE);
    assert_int_equal(dj("{\"user\":\"u\",\"item\":\"i\",\"type\":[\"play\"]}", &ev),
                     RS_REASON_BAD_TYPE);
}

static void test_msgpack_rejects_non_string_type(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OT, 1);
    msgpack_pack_int(mp_key(&m, "type"), RS_EVENT_RATE);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_TYPE);
    mp_base(&m, OT, 1);
    msgpack_pack_bin(mp_key(&m, "type"), 4);
    msgpack_pack_bin_body(&m.pk, "rate", 4);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_TYPE);
}

/* ---- value ---- */

static void test_json_rejects_non_number_value(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\",\"value\":\"4\"}", &ev),
        RS_REASON_BAD_VALUE);
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\",\"value\":true}", &ev),
        RS_REASON_BAD_VALUE);
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"value\":null}", &ev),
        RS_REASON_BAD_VALUE);
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"value\":[1]}", &ev),
        RS_REASON_BAD_VALUE);
}

static void test_msgpack_rejects_non_number_value(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OV, 1);
    mp_key(&m, "value");
    mp_s(&m, "4");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_VALUE);
    mp_base(&m, OV, 1);
    msgpack_pack_nil(mp_key(&m, "value"));
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_VALUE);
    mp_base(&m, OV, 1);
    msgpack_pack_false(mp_key(&m, "value"));
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_VALUE);
}

static void test_json_rejects_overflowing_number(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"value\":1e999}", &ev),
        RS_REASON_BAD_VALUE);
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"value\":-1e999}", &ev),
        RS_REASON_BAD_VALUE);
}

static void test_json_rejects_value_beyond_float_range(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"value\":1e300}", &ev),
        RS_REASON_BAD_VALUE);
}

static void test_msgpack_rejects_nan_value(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OV, 1);
    msgpack_pack_double(mp_key(&m, "value"), NAN);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_VALUE);
    mp_base(&m, OV, 1);
    msgpack_pack_float(mp_key(&m, "value"), NAN);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_VALUE);
}

static void test_msgpack_rejects_infinite_value(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OV | OT, 2);
    mp_key(&m, "type");
    mp_s(&m, "play");
    msgpack_pack_double(mp_key(&m, "value"), INFINITY);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_VALUE);
    mp_base(&m, OV, 1);
    msgpack_pack_float(mp_key(&m, "value"), -INFINITY);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_VALUE);
}

static void test_msgpack_rejects_value_beyond_float_range(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OV | OT, 2);
    mp_key(&m, "type");
    mp_s(&m, "play");
    msgpack_pack_double(mp_key(&m, "value"), 1e300);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_VALUE);
}

static void test_rate_off_scale(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\",\"value\":0.5}", &ev),
        RS_REASON_OFF_SCALE);
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\",\"value\":5.01}", &ev),
        RS_REASON_OFF_SCALE);
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"rate\",\"value\":-3}", &ev),
        RS_REASON_OFF_SCALE);
    mp_base(&m, OV, 1);
    msgpack_pack_double(mp_key(&m, "value"), 6.0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OFF_SCALE);
    mp_base(&m, OV, 1);
    msgpack_pack_int(mp_key(&m, "value"), 0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OFF_SCALE);
}

static void test_play_weight_must_be_positive(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"value\":0}", &ev),
        RS_REASON_OFF_SCALE);
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"value\":-2.5}", &ev),
        RS_REASON_OFF_SCALE);
    /* too small to be a positive float */
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"value\":1e-300}", &ev),
        RS_REASON_OFF_SCALE);
    /* plays are not held to the rating scale */
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"value\":600}", &ev),
        RS_REASON_OK);
    mp_base(&m, OV | OT, 2);
    mp_key(&m, "type");
    mp_s(&m, "play");
    msgpack_pack_int(mp_key(&m, "value"), -1);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OFF_SCALE);
}

/* ---- ts ---- */

static void test_json_rejects_negative_ts(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"ts\":-1}", &ev),
        RS_REASON_BAD_TS);
}

static void test_msgpack_rejects_negative_ts(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OS, 1);
    msgpack_pack_int64(mp_key(&m, "ts"), -5);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_TS);
}

static void test_json_rejects_non_integer_ts(void **state)
{
    struct rs_event ev;
    (void)state;
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"ts\":1.5}", &ev),
        RS_REASON_BAD_TS);
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"ts\":1e12}", &ev),
        RS_REASON_BAD_TS);
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"ts\":\"17\"}", &ev),
        RS_REASON_BAD_TS);
    assert_int_equal(
        dj("{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"ts\":null}", &ev),
        RS_REASON_BAD_TS);
}

static void test_msgpack_rejects_non_integer_ts(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OS, 1);
    msgpack_pack_double(mp_key(&m, "ts"), 1000.0);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_TS);
    mp_base(&m, OS, 1);
    mp_key(&m, "ts");
    mp_s(&m, "1000");
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_TS);
}

static void test_msgpack_rejects_ts_beyond_int64(void **state)
{
    struct rs_event ev;
    struct mp m;
    (void)state;
    mp_base(&m, OS, 1);
    msgpack_pack_uint64(mp_key(&m, "ts"), (uint64_t)INT64_MAX + 1);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_BAD_TS);
    mp_base(&m, OS, 1);
    msgpack_pack_uint64(mp_key(&m, "ts"), (uint64_t)INT64_MAX);
    assert_int_equal(mp_decode(&m, &ev), RS_REASON_OK);
    assert_true(ev.ts_ms == INT64_MAX);
}

/* ---- names ---- */

static void test_reason_names_are_stable(void **state)
{
    static const char *const names[RS_REASON_COUNT] = {
        "ok",           "empty",         "too_large",     "malformed",
        "not_object",   "duplicate_key", "missing_user",  "missing_item",
        "missing_type", "bad_id",        "id_too_long",   "bad_type",
        "bad_value",    "off_scale",     "missing_value", "bad_ts",
    };
    int i;
    (void)state;
    for (i = 0; i < RS_REASON_COUNT; i++)
        assert_string_equal(rs_event_reason_str((enum rs_event_reason)i), names[i]);
    assert_string_equal(rs_event_reason_str(RS_REASON_COUNT), "unknown");
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(rs_event_type_str(RS_EVENT_PLAY), "play");
    assert_string_equal(rs_event_type_str(RS_EVENT_RATE), "rate");
    assert_string_equal(rs_event_type_str(RS_EVENT_FORGET), "forget");
    assert_string_equal(rs_event_type_str((enum rs_event_type)0), "unknown");
}

/* ---- validate ---- */

static void make_event(struct rs_event *ev, enum rs_event_type type, const char *user,
                       const char *item, float value, int64_t ts)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    ev->user_len = (uint16_t)strlen(user);
    memcpy(ev->user, user, ev->user_len + 1u);
    ev->item_len = (uint16_t)strlen(item);
    memcpy(ev->item, item, ev->item_len + 1u);
    ev->value = value;
    ev->ts_ms = ts;
}

static void test_validate_accepts_good_events(void **state)
{
    struct rs_event ev;
    (void)state;
    make_event(&ev, RS_EVENT_RATE, "u", "i", 3.0f, 5);
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_OK);
    make_event(&ev, RS_EVENT_PLAY, "u", "i", 120.0f, 0);
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_OK);
    make_event(&ev, RS_EVENT_FORGET, "u", "", 0.0f, 0);
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_OK);
}

static void test_validate_rejects_bad_events(void **state)
{
    struct rs_event ev;
    (void)state;
    make_event(&ev, RS_EVENT_RATE, "u", "i", NAN, 0);
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_BAD_VALUE);
    make_event(&ev, RS_EVENT_PLAY, "u", "i", INFINITY, 0);
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_BAD_VALUE);
    make_event(&ev, RS_EVENT_RATE, "u", "i", 5.5f, 0);
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_OFF_SCALE);
    make_event(&ev, RS_EVENT_PLAY, "u", "i", 0.0f, 0);
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_OFF_SCALE);
    make_event(&ev, RS_EVENT_RATE, "", "i", 3.0f, 0);
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_MISSING_USER);
    make_event(&ev, RS_EVENT_RATE, "u", "", 3.0f, 0);
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_MISSING_ITEM);
    make_event(&ev, RS_EVENT_RATE, "u", "i", 3.0f, -1);
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_BAD_TS);
    make_event(&ev, (enum rs_event_type)9, "u", "i", 3.0f, 0);
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_BAD_TYPE);
    make_event(&ev, RS_EVENT_RATE, "ab", "i", 3.0f, 0);
    ev.user[0] = '\0';
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_BAD_ID);
    make_event(&ev, RS_EVENT_RATE, "u", "i", 3.0f, 0);
    ev.user_len = RS_ID_MAX + 1;
    assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_ID_TOO_LONG);
}

/* ---- encode ---- */

static void round_trip(const struct rs_event *in)
{
    char buf[1024];
    struct rs_event out;
    size_t n = rs_event_encode_msgpack(in, buf, sizeof(buf));

    assert_true(n > 0);
    assert_int_equal(rs_event_decode(buf, n, &lim, &out), RS_REASON_OK);
    assert_int_equal(out.type, in->type);
    assert_int_equal(out.user_len, in->user_len);
    assert_memory_equal(out.user, in->user, in->user_len + 1u);
    assert_int_equal(out.item_len, in->type == RS_EVENT_FORGET ? 0 : in->item_len);
    if (in->type != RS_EVENT_FORGET) {
        assert_memory_equal(out.item, in->item, in->item_len + 1u);
        assert_true(out.value == in->value);
    }
    assert_true(out.ts_ms == in->ts_ms);
}

static void test_encode_decode_round_trip(void **state)
{
    struct rs_event ev;
    char *longid = repeat('z', RS_ID_MAX);
    (void)state;
    make_event(&ev, RS_EVENT_RATE, "user-1", "item-2", 4.5f, 1700000000123LL);
    round_trip(&ev);
    make_event(&ev, RS_EVENT_PLAY, "42", "-7", 0.1f, 0);
    round_trip(&ev);
    make_event(&ev, RS_EVENT_FORGET, "gone", "", 0.0f, 99);
    round_trip(&ev);
    make_event(&ev, RS_EVENT_PLAY, longid, longid, 3e38f, INT64_MAX);
    round_trip(&ev);
    free(longid);
}

static void test_encode_omits_item_for_forget_and_zero_ts(void **state)
{
    struct rs_event ev;
    char buf[256];
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    size_t n;
    uint32_t i;
    (void)state;
    make_event(&ev, RS_EVENT_FORGET, "u", "ignored", 0.0f, 0);
    ev.item_len = 7;
    n = rs_event_encode_msgpack(&ev, buf, sizeof(buf));
    assert_true(n > 0);
    msgpack_zone_init(&zone, 1024);
    assert_int_equal(msgpack_unpack(buf, n, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(obj.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(obj.via.map.size, 3); /* user, type, value */
    for (i = 0; i < obj.via.map.size; i++) {
        const msgpack_object_str *k = &obj.via.map.ptr[i].key.via.str;
        assert_false(k->size == 4 && memcmp(k->ptr, "item", 4) == 0);
        assert_false(k->size == 2 && memcmp(k->ptr, "ts", 2) == 0);
    }
    msgpack_zone_destroy(&zone);
}

static void test_encode_reports_small_buffer(void **state)
{
    struct rs_event ev;
    char buf[512];
    char *tight;
    size_t need;
    size_t size;
    (void)state;
    make_event(&ev, RS_EVENT_RATE, "user-1", "item-2", 4.5f, 1700000000123LL);
    need = rs_event_encode_msgpack(&ev, buf, sizeof(buf));
    assert_true(need > 0);
    for (size = 0; size < need; size++) {
        tight = malloc(size ? size : 1);
        assert_non_null(tight);
        assert_int_equal(rs_event_encode_msgpack(&ev, tight, size), 0);
        free(tight);
    }
    tight = malloc(need);
    assert_non_null(tight);
    assert_int_equal(rs_event_encode_msgpack(&ev, tight, need), need);
    assert_memory_equal(tight, buf, need);
    free(tight);
}

/* ---- measuring ---- */

static void test_msgpack_size_cuts_a_stream(void **state)
{
    struct mp m;
    size_t first, size, i;
    (void)state;
    mp_base(&m, 0, 0);
    first = m.sb.size;
    msgpack_pack_map(&m.pk, 1);
    mp_s(&m, "k");
    msgpack_pack_uint32(&m.pk, 70000);
    assert_int_equal(rs_event_msgpack_size(m.sb.data, m.sb.size, &size), 1);
    assert_int_equal(size, first);
    assert_int_equal(rs_event_msgpack_size(m.sb.data + first, m.sb.size - first, &size),
                     1);
    assert_int_equal(size, m.sb.size - first);
    for (i = 0; i < first; i++)
        assert_int_equal(rs_event_msgpack_size(m.sb.data, i, &size), 0);
    assert_int_equal(rs_event_msgpack_size("\x92\x01\xc1", 3, &size), -1);
    msgpack_sbuffer_destroy(&m.sb);
}

/* ---- random input ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

static void check_any(const void *buf, size_t len)
{
    struct rs_event ev;
    enum rs_event_reason r = rs_event_decode(buf, len, &lim, &ev);
    assert_true(r >= RS_REASON_OK && r < RS_REASON_COUNT);
    if (r == RS_REASON_OK) assert_int_equal(rs_event_validate(&ev, &lim), RS_REASON_OK);
}

static void test_random_and_mutated_payloads_never_crash(void **state)
{
    const char *json =
        "{\"user\":\"u1\",\"item\":[1,{\"a\":2}],\"type\":\"play\",\"ts\":5}";
    unsigned char buf[128];
    struct mp m;
    size_t len, i;
    int round;
    (void)state;
    mp_base(&m, 0, 1);
    msgpack_pack_array(mp_key(&m, "x"), 3);
    msgpack_pack_map(&m.pk, 1);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_double(&m.pk, 2.0);
    mp_s(&m, "abc");
    msgpack_pack_bin(&m.pk, 2);
    msgpack_pack_bin_body(&m.pk, "zz", 2);
    assert_true(m.sb.size <= sizeof(buf));
    for (round = 0; round < 20000; round++) {
        if (round % 3 == 0) {
            len = rng() % sizeof(buf);
            for (i = 0; i < len; i++)
                buf[i] = (unsigned char)rng();
        } else {
            const char *src = round % 3 == 1 ? m.sb.data : json;
            len = round % 3 == 1 ? m.sb.size : strlen(json);
            memcpy(buf, src, len);
            for (i = 0; i < 1 + rng() % 4; i++)
                buf[rng() % len] ^= (unsigned char)(1u << (rng() % 8));
            if (rng() % 4 == 0) len = rng() % (len + 1);
        }
        check_any(buf, len);
    }
    msgpack_sbuffer_destroy(&m.sb);
}

/* ---- threads ---- */

static void *decode_many(void *arg)
{
    const char *json = "{\"user\":\"u\",\"item\":\"i\",\"type\":\"play\",\"value\":2}";
    char buf[256];
    struct rs_event ev;
    size_t n;
    int i;
    int *ok = arg;

    make_event(&ev, RS_EVENT_RATE, "u", "i", 3.0f, 7);
    n = rs_event_encode_msgpack(&ev, buf, sizeof(buf));
    *ok = n > 0;
    for (i = 0; i < 2000 && *ok; i++) {
        *ok = rs_event_decode(json, strlen(json), &lim, &ev) == RS_REASON_OK &&
              ev.value == 2.0f && rs_event_decode(buf, n, &lim, &ev) == RS_REASON_OK &&
              ev.ts_ms == 7;
    }
    return NULL;
}

static void test_decoding_works_from_many_threads(void **state)
{
    pthread_t th[4];
    int ok[4];
    int i;
    (void)state;
    for (i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, decode_many, &ok[i]), 0);
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(ok[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_decodes_play_event),
        cmocka_unit_test(test_msgpack_decodes_rate_event),
        cmocka_unit_test(test_json_with_leading_whitespace_is_json),
        cmocka_unit_test(test_integer_ids_are_decimal),
        cmocka_unit_test(test_string_and_integer_ids_are_the_same_id),
        cmocka_unit_test(test_forget_needs_no_item),
        cmocka_unit_test(test_play_value_defaults_to_one),
        cmocka_unit_test(test_ts_defaults_to_zero),
        cmocka_unit_test(test_unknown_keys_are_ignored),
        cmocka_unit_test(test_integer_value_is_accepted),
        cmocka_unit_test(test_float32_value_is_accepted),
        cmocka_unit_test(test_rating_on_scale_bounds_is_accepted),
        cmocka_unit_test(test_accepts_id_of_256_bytes),
        cmocka_unit_test(test_msgpack_ids_may_hold_any_non_nul_bytes),
        cmocka_unit_test(test_accepts_payload_of_exactly_max_bytes),
        cmocka_unit_test(test_null_limits_skip_the_scale),
        cmocka_unit_test(test_rejects_empty_payload),
        cmocka_unit_test(test_rejects_oversized_payload),
        cmocka_unit_test(test_json_rejects_malformed_text),
        cmocka_unit_test(test_json_rejects_truncated_payload),
        cmocka_unit_test(test_msgpack_rejects_truncated_payload),
        cmocka_unit_test(test_json_rejects_trailing_garbage),
        cmocka_unit_test(test_msgpack_rejects_trailing_bytes),
        cmocka_unit_test(test_msgpack_rejects_reserved_byte),
        cmocka_unit_test(test_msgpack_rejects_huge_container_count),
        cmocka_unit_test(test_msgpack_rejects_deep_nesting),
        cmocka_unit_test(test_json_rejects_non_object),
        cmocka_unit_test(test_msgpack_rejects_non_map),
        cmocka_unit_test(test_json_rejects_invalid_utf8),
        cmocka_unit_test(test_json_rejects_duplicate_key),
        cmocka_unit_test(test_msgpack_rejects_duplicate_key),
        cmocka_unit_test(test_json_rejects_missing_user),
        cmocka_unit_test(test_msgpack_rejects_missing_user),
        cmocka_unit_test(test_json_rejects_missing_item),
        cmocka_unit_test(test_msgpack_rejects_missing_item),
        cmocka_unit_test(test_json_rejects_missing_type),
        cmocka_unit_test(test_msgpack_rejects_missing_type),
        cmocka_unit_test(test_rate_without_value_is_missing_value),
        cmocka_unit_test(test_reasons_follow_the_documented_order),
        cmocka_unit_test(test_json_rejects_float_id),
        cmocka_unit_test(test_msgpack_rejects_float_id),
        cmocka_unit_test(test_json_rejects_bool_id),
        cmocka_unit_test(test_msgpack_rejects_bool_id),
        cmocka_unit_test(test_json_rejects_null_id),
        cmocka_unit_test(test_msgpack_rejects_nil_id),
        cmocka_unit_test(test_json_rejects_array_or_object_id),
        cmocka_unit_test(test_msgpack_rejects_array_or_map_id),
        cmocka_unit_test(test_msgpack_rejects_bin_id),
        cmocka_unit_test(test_msgpack_rejects_ext_id),
        cmocka_unit_test(test_json_rejects_empty_string_id),
        cmocka_unit_test(test_msgpack_rejects_empty_string_id),
        cmocka_unit_test(test_json_rejects_id_with_nul_byte),
        cmocka_unit_test(test_msgpack_rejects_id_with_nul_byte),
        cmocka_unit_test(test_rejects_id_of_257_bytes),
        cmocka_unit_test(test_json_rejects_integer_id_beyond_64_bits),
        cmocka_unit_test(test_json_rejects_unknown_type),
        cmocka_unit_test(test_msgpack_rejects_unknown_type),
        cmocka_unit_test(test_json_rejects_non_string_type),
        cmocka_unit_test(test_msgpack_rejects_non_string_type),
        cmocka_unit_test(test_json_rejects_non_number_value),
        cmocka_unit_test(test_msgpack_rejects_non_number_value),
        cmocka_unit_test(test_json_rejects_overflowing_number),
        cmocka_unit_test(test_json_rejects_value_beyond_float_range),
        cmocka_unit_test(test_msgpack_rejects_nan_value),
        cmocka_unit_test(test_msgpack_rejects_infinite_value),
        cmocka_unit_test(test_msgpack_rejects_value_beyond_float_range),
        cmocka_unit_test(test_rate_off_scale),
        cmocka_unit_test(test_play_weight_must_be_positive),
        cmocka_unit_test(test_json_rejects_negative_ts),
        cmocka_unit_test(test_msgpack_rejects_negative_ts),
        cmocka_unit_test(test_json_rejects_non_integer_ts),
        cmocka_unit_test(test_msgpack_rejects_non_integer_ts),
        cmocka_unit_test(test_msgpack_rejects_ts_beyond_int64),
        cmocka_unit_test(test_reason_names_are_stable),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_validate_accepts_good_events),
        cmocka_unit_test(test_validate_rejects_bad_events),
        cmocka_unit_test(test_encode_decode_round_trip),
        cmocka_unit_test(test_encode_omits_item_for_forget_and_zero_ts),
        cmocka_unit_test(test_encode_reports_small_buffer),
        cmocka_unit_test(test_msgpack_size_cuts_a_stream),
        cmocka_unit_test(test_random_and_mutated_payloads_never_crash),
        cmocka_unit_test(test_decoding_works_from_many_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
