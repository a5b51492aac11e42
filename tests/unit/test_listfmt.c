/*
 * test_listfmt.c - list rendering: the JSON text parsed back with jansson
 * (items, scores, optional why), escaping of ids made of odd bytes, the
 * msgpack array unpacked with msgpack-c, the fixed-precision score writer
 * against printf, and the growable buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "recstream/listfmt.h"

/* An item map holding ids[0..n) at indices 0..n-1. */
static struct rs_idmap *make_items(const char *const *ids, size_t n)
{
    struct rs_idmap *map = rs_idmap_create(0);
    uint32_t idx;
    size_t i;
    assert_non_null(map);
    for (i = 0; i < n; i++) {
        assert_int_equal(rs_idmap_intern(map, ids[i], strlen(ids[i]), &idx, NULL), RS_OK);
        assert_int_equal(idx, i);
    }
    return map;
}

static json_t *parse(const struct rs_buf *b)
{
    json_error_t err;
    json_t *root = json_loadb(b->data, b->len, 0, &err);
    if (root == NULL) fail_msg("bad JSON (%s): %.*s", err.text, (int)b->len, b->data);
    assert_true(json_is_array(root));
    return root;
}

/* ---- buffer ---- */

static void test_buf_appends_grow_and_keep_bytes(void **state)
{
    struct rs_buf b;
    char chunk[7];
    size_t i, cap;
    (void)state;
    rs_buf_init(&b);
    assert_int_equal(b.len, 0);
    for (i = 0; i < 1000; i++) {
        snprintf(chunk, sizeof(chunk), "%06zu", i);
        assert_int_equal(rs_buf_append(&b, chunk, 6), RS_OK);
    }
    assert_int_equal(b.len, 6000);
    assert_true(b.cap > b.len);
    assert_memory_equal(b.data + 6 * 537, "000537", 6);
    assert_int_equal(b.data[b.len], '\0');
    cap = b.cap;
    rs_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_int_equal(rs_buf_append(&b, "", 0), RS_OK);
    assert_int_equal(b.len, 0);
    rs_buf_free(&b);
    assert_null(b.data);
    rs_buf_free(&b);
    rs_buf_free(NULL);
}

/* ---- JSON ---- */

static void test_json_list_parses_back(void **state)
{
    static const char *const ids[] = {"42", "17", "song 3"};
    struct rs_idmap *items = make_items(ids, 3);
    struct rs_rec recs[3] = {{0, 0.9310f, 1}, {2, 0.5f, RS_NONE}, {1, -1.25f, 0}};
    struct rs_buf b;
    json_t *root, *e;
    (void)state;
    rs_buf_init(&b);
    assert_int_equal(rs_listfmt_json(&b, recs, 3, items), RS_OK);
    assert_string_equal(b.data, "[{\"item\":\"42\",\"score\":0.9310,\"why\":\"17\"},"
                                "{\"item\":\"song 3\",\"score\":0.5000},"
                                "{\"item\":\"17\",\"score\":-1.2500,\"why\":\"42\"}]");
    root = parse(&b);
    assert_int_equal(json_array_size(root), 3);
    e = json_array_get(root, 0);
    assert_string_equal(json_string_value(json_object_get(e, "item")), "42");
    assert_true(fabs(json_real_value(json_object_get(e, "score")) - 0.931) < 1e-9);
    assert_string_equal(json_string_value(json_object_get(e, "why")), "17");
    e = json_array_get(root, 1);
    assert_string_equal(json_string_value(json_object_get(e, "item")), "song 3");
    assert_null(json_object_get(e, "why"));
    e = json_array_get(root, 2);
    assert_true(json_real_value(json_object_get(e, "score")) == -1.25);
    json_decref(root);
    rs_buf_free(&b);
    rs_idmap_destroy(items);
}

static void test_json_empty_list_is_brackets(void **state)
{
    struct rs_buf b;
    (void)state;
    rs_buf_init(&b);
    assert_int_equal(rs_listfmt_json(&b, NULL, 0, NULL), RS_OK);
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "[]");
    rs_buf_free(&b);
}

static void test_json_leaves_out_items_missing_from_the_map(void **state)
{
    static const char *const ids[] = {"a"};
    struct rs_idmap *items = make_items(ids, 1);
    struct rs_rec recs[3] = {{7, 1.0f, 0}, {0, 2.0f, 99}, {8, 3.0f, RS_NONE}};
    struct rs_buf b;
    (void)state;
    rs_buf_init(&b);
    assert_int_equal(rs_listfmt_json(&b, recs, 3, items), RS_OK);
    assert_string_equal(b.data, "[{\"item\":\"a\",\"score\":2.0000}]");
    rs_buf_free(&b);
    rs_idmap_destroy(items);
}

static void test_json_appends_after_existing_bytes(void **state)
{
    static const char *const ids[] = {"a"};
    struct rs_idmap *items = make_items(ids, 1);
    struct rs_rec rec = {0, 1.0f, RS_NONE};
    struct rs_buf b;
    (void)state;
    rs_buf_init(&b);
    assert_int_equal(rs_buf_append(&b, "SET k ", 6), RS_OK);
    assert_int_equal(rs_listfmt_json(&b, &rec, 1, items), RS_OK);
    assert_string_equal(b.data, "SET k [{\"item\":\"a\",\"score\":1.0000}]");
    rs_buf_free(&b);
    rs_idmap_destroy(items);
}

static void test_json_escapes_odd_ids(void **state)
{
    static const char *const ids[] = {
        "say \"hi\"",         /* quotes */
        "back\\slash/",       /* backslash, slash kept */
        "line\nbreak\ttab\r", /* short escapes */
        "\x01\x1f\x7f",       /* other control bytes; DEL is legal JSON */
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5", /* valid UTF-8 passes through */
        "bad\xff",                                   /* not UTF-8: written as \u00ff */
        "cut\xe2\x82",                               /* a truncated sequence */
        "\xed\xa0\x80", /* an encoded surrogate is not valid UTF-8 */
    };
    static const char *const want[] = {
        "say \"hi\"",
        "back\\slash/",
        "line\nbreak\ttab\r",
        "\x01\x1f\x7f",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5",
        "bad\xc3\xbf",
        "cut\xc3\xa2\xc2\x82",
        "\xc3\xad\xc2\xa0\xc2\x80",
    };
    size_t n = sizeof(ids) / sizeof(ids[0]);
    struct rs_idmap *items = make_items(ids, n);
    struct rs_rec recs[8];
    struct rs_buf b;
    json_t *root, *e;
    size_t i;
    (void)state;
    for (i = 0; i < n; i++) {
        recs[i].item = (uint32_t)i;
        recs[i].score = (float)i;
        recs[i].why = (uint32_t)(n - 1 - i);
    }
    rs_buf_init(&b);
    assert_int_equal(rs_listfmt_json(&b, recs, n, items), RS_OK);
    assert_non_null(strstr(b.data, "\\u0001\\u001f\x7f"));
    assert_non_null(strstr(b.data, "line\\nbreak\\ttab\\r"));
    assert_non_null(strstr(b.data, "bad\\u00ff"));
    root = parse(&b);
    assert_int_equal(json_array_size(root), n);
    for (i = 0; i < n; i++) {
        e = json_array_get(root, i);
        assert_string_equal(json_string_value(json_object_get(e, "item")), want[i]);
        assert_string_equal(json_string_value(json_object_get(e, "why")),
                            want[n - 1 - i]);
    }
    json_decref(root);
    rs_buf_free(&b);
    rs_idmap_destroy(items);
}

static void test_json_handles_longest_ids_of_escaped_bytes(void **state)
{
    char id[RS_ID_MAX + 1];
    const char *ids[1];
    struct rs_idmap *items;
    struct rs_rec recs[20];
    struct rs_buf b;
    json_t *root;
    size_t i;
    (void)state;
    memset(id, '\x01', RS_ID_MAX); /* every byte becomes six */
    id[RS_ID_MAX] = '\0';
    ids[0] = id;
    items = make_items(ids, 1);
    for (i = 0; i < 20; i++) {
        recs[i].item = 0;
        recs[i].score = -1e30f;
        recs[i].why = 0;
    }
    rs_buf_init(&b);
    assert_int_equal(rs_listfmt_json(&b, recs, 20, items), RS_OK);
    root = parse(&b);
    assert_int_equal(json_array_size(root), 20);
    assert_int_equal(
        strlen(json_string_value(json_object_get(json_array_get(root, 19), "why"))),
        RS_ID_MAX);
    json_decref(root);
    rs_buf_free(&b);
    rs_idmap_destroy(items);
}

/* ---- msgpack ---- */

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    uint32_t i;
    for (i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static void assert_str(const msgpack_object *o, const char *s)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(s));
    assert_memory_equal(o->via.str.ptr, s, strlen(s));
}

static void test_msgpack_list_round_trips(void **state)
{
    static const char *const ids[] = {"42", "17", "x\xff\"y"};
    struct rs_idmap *items = make_items(ids, 3);
    struct rs_rec recs[4] = {
        {0, 0.931f, 1}, {2, -3.5f, RS_NONE}, {9, 1.0f, 0}, {1, 7.0f, 2}};
    struct rs_buf b;
    msgpack_unpacked up;
    const msgpack_object *arr, *e;
    size_t off = 0;
    (void)state;
    rs_buf_init(&b);
    assert_int_equal(rs_listfmt_msgpack(&b, recs, 4, items), RS_OK);
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, b.data, b.len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, b.len);
    arr = &up.data;
    assert_int_equal(arr->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(arr->via.array.size, 3); /* item 9 is not in the map */

    e = &arr->via.array.ptr[0];
    assert_int_equal(e->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(e->via.map.size, 3);
    assert_str(map_get(e, "item"), "42");
    assert_int_equal(map_get(e, "score")->type, MSGPACK_OBJECT_FLOAT32);
    assert_true((float)map_get(e, "score")->via.f64 == 0.931f);
    assert_str(map_get(e, "why"), "17");

    e = &arr->via.array.ptr[1];
    assert_int_equal(e->via.map.size, 2);
    assert_str(map_get(e, "item"), "x\xff\"y"); /* raw bytes: msgpack needs no escaping */
    assert_true(map_get(e, "score")->via.f64 == -3.5);
    assert_null(map_get(e, "why"));

    e = &arr->via.array.ptr[2];
    assert_str(map_get(e, "item"), "17");
    assert_str(map_get(e, "why"), "x\xff\"y");
    msgpack_unpacked_destroy(&up);

    rs_buf_reset(&b);
    assert_int_equal(rs_listfmt_msgpack(&b, recs, 0, items), RS_OK);
    assert_int_equal(b.len, 1);
    assert_int_equal((unsigned char)b.data[0], 0x90); /* empty array */
    rs_buf_free(&b);
    rs_idmap_destroy(items);
}

/* ---- scores ---- */

static void check_score(float v, const char *want)
{
    char out[24];
    size_t n = rs_listfmt_score(v, out);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_score_formatting_cases(void **state)
{
    (void)state;
    check_score(0.0f, "0.0000");
    check_score(1.0f, "1.0000");
    check_score(-0.5f, "-0.5000");
    check_score(0.00004f, "0.0000");
    check_score(0.00005f, "0.0000"); /* the float is a hair below 0.00005 */
    check_score(0.00006f, "0.0001");
    check_score(123.45678f, "123.4568");
    check_score(0.99995f, "0.9999"); /* the float is 0.99994999..., below the tie */
    check_score(0.99996f, "1.0000");
    check_score(0.03125f, "0.0312"); /* an exact tie rounds to even, as printf */
    check_score(0.09375f, "0.0938");
    check_score(-0.00004f, "0.0000"); /* never "-0.0000" */
    check_score(-0.0f, "0.0000");
    check_score(NAN, "0.0000");
    check_score(INFINITY, "1000000000.0000");
    check_score(-INFINITY, "-1000000000.0000");
    check_score(5e9f, "1000000000.0000");
    check_score(-3e38f, "-1000000000.0000");
    check_score(999999.9999f, "1000000.0000");
}

static void test_score_matches_printf(void **state)
{
    uint32_t x = 12345;
    char want[64], got[24];
    float v;
    int i;
    (void)state;
    for (i = 0; i < 200000; i++) {
        x = x * 1664525u + 1013904223u;
        switch (i % 3) {
        case 0: v = (float)((double)x / 4294967296.0 * 2.0 - 1.0); break;
        case 1: v = (float)((double)x / 4294967296.0 * 2e6 - 1e6); break;
        default:
            v = (float)(x % 400000) / 10000.0f - 20.0f;
            break; /* near 4-decimal ties */
        }
        snprintf(want, sizeof(want), "%.4f", (double)v);
        if (strcmp(want, "-0.0000") == 0) strcpy(want, "0.0000");
        rs_listfmt_score(v, got);
        if (strcmp(want, got) != 0)
            fail_msg("%.9g: want %s got %s", (double)v, want, got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_appends_grow_and_keep_bytes),
        cmocka_unit_test(test_json_list_parses_back),
        cmocka_unit_test(test_json_empty_list_is_brackets),
        cmocka_unit_test(test_json_leaves_out_items_missing_from_the_map),
        cmocka_unit_test(test_json_appends_after_existing_bytes),
        cmocka_unit_test(test_json_escapes_odd_ids),
        cmocka_unit_test(test_json_handles_longest_ids_of_escaped_bytes),
        cmocka_unit_test(test_msgpack_list_round_trips),
        cmocka_unit_test(test_score_formatting_cases),
        cmocka_unit_test(test_score_matches_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
