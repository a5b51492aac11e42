/*
 * test_idmap.c - unit tests for the id map: round trips at scale, ids made of
 * arbitrary bytes, the created flag, the max_ids bound and bad lengths, and
 * that indices survive the table and arena growing under them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "recstream/idmap.h"

static void assert_name(const struct rs_idmap *map, uint32_t idx, const char *id, size_t len)
{
    size_t got_len = 0;
    const char *got = rs_idmap_name(map, idx, &got_len);
    assert_non_null(got);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, id, len);
}

static void test_round_trip_100k_ids(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(0);
    assert_non_null(map);
    char buf[32];
    for (uint32_t i = 0; i < 100000; i++) {
        int n = snprintf(buf, sizeof(buf), "user-%u", i);
        uint32_t idx = RS_NONE;
        int created = -1;
        assert_int_equal(rs_idmap_intern(map, buf, (size_t)n, &idx, &created), RS_OK);
        assert_int_equal(idx, i);
        assert_int_equal(created, 1);
    }
    assert_int_equal(rs_idmap_count(map), 100000);
    for (uint32_t i = 0; i < 100000; i++) {
        int n = snprintf(buf, sizeof(buf), "user-%u", i);
        uint32_t idx = RS_NONE;
        assert_int_equal(rs_idmap_find(map, buf, (size_t)n, &idx), RS_OK);
        assert_int_equal(idx, i);
        assert_name(map, i, buf, (size_t)n);
    }
    assert_int_equal(rs_idmap_find(map, "user-100000", 11, NULL), RS_ENOENT);
    rs_idmap_destroy(map);
}

static void test_int_looking_ids_are_distinct_strings(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(0);
    assert_non_null(map);
    const char *ids[] = {"0", "42", "042", "-42", "4294967296", "18446744073709551616", "1e3"};
    size_t n = sizeof(ids) / sizeof(ids[0]);
    for (size_t i = 0; i < n; i++) {
        uint32_t idx;
        assert_int_equal(rs_idmap_intern(map, ids[i], strlen(ids[i]), &idx, NULL), RS_OK);
        assert_int_equal(idx, (uint32_t)i);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t idx;
        assert_int_equal(rs_idmap_find(map, ids[i], strlen(ids[i]), &idx), RS_OK);
        assert_int_equal(idx, (uint32_t)i);
        assert_name(map, idx, ids[i], strlen(ids[i]));
    }
    rs_idmap_destroy(map);
}

static void test_arbitrary_byte_ids_of_max_length(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(0);
    assert_non_null(map);
    /* 256 ids of 256 bytes, each holding every byte value 0x00..0xff, rotated. */
    unsigned char buf[RS_ID_MAX];
    for (uint32_t shift = 0; shift < 256; shift++) {
        for (int k = 0; k < RS_ID_MAX; k++)
            buf[k] = (unsigned char)((k + (int)shift) & 0xff);
        uint32_t idx;
        int created = 0;
        assert_int_equal(rs_idmap_intern(map, (const char *)buf, RS_ID_MAX, &idx, &created), RS_OK);
        assert_int_equal(idx, shift);
        assert_int_equal(created, 1);
    }
    for (uint32_t shift = 0; shift < 256; shift++) {
        for (int k = 0; k < RS_ID_MAX; k++)
            buf[k] = (unsigned char)((k + (int)shift) & 0xff);
        uint32_t idx;
        assert_int_equal(rs_idmap_find(map, (const char *)buf, RS_ID_MAX, &idx), RS_OK);
        assert_int_equal(idx, shift);
        assert_name(map, idx, (const char *)buf, RS_ID_MAX);
    }
    rs_idmap_destroy(map);
}

static void test_embedded_nul_ids_differ_from_their_prefix(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(0);
    assert_non_null(map);
    uint32_t a, b, c;
    assert_int_equal(rs_idmap_intern(map, "a", 1, &a, NULL), RS_OK);
    assert_int_equal(rs_idmap_intern(map, "a\0b", 3, &b, NULL), RS_OK);
    assert_int_equal(rs_idmap_intern(map, "a\0", 2, &c, NULL), RS_OK);
    assert_int_not_equal(a, b);
    assert_int_not_equal(a, c);
    assert_int_not_equal(b, c);
    assert_int_equal(rs_idmap_count(map), 3);
    assert_name(map, b, "a\0b", 3);
    rs_idmap_destroy(map);
}

static void test_duplicate_returns_same_index_and_created_zero(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(0);
    assert_non_null(map);
    uint32_t first, again;
    int created = -1;
    assert_int_equal(rs_idmap_intern(map, "song-7", 6, &first, &created), RS_OK);
    assert_int_equal(created, 1);
    assert_int_equal(rs_idmap_intern(map, "other", 5, &again, &created), RS_OK);
    assert_int_equal(created, 1);
    assert_int_equal(rs_idmap_intern(map, "song-7", 6, &again, &created), RS_OK);
    assert_int_equal(created, 0);
    assert_int_equal(again, first);
    /* created may be NULL. */
    assert_int_equal(rs_idmap_intern(map, "song-7", 6, &again, NULL), RS_OK);
    assert_int_equal(again, first);
    assert_int_equal(rs_idmap_count(map), 2);
    rs_idmap_destroy(map);
}

static void test_full_at_cap_but_existing_ids_still_found(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(100);
    assert_non_null(map);
    char buf[16];
    for (uint32_t i = 0; i < 100; i++) {
        int n = snprintf(buf, sizeof(buf), "%u", i);
        uint32_t idx;
        assert_int_equal(rs_idmap_intern(map, buf, (size_t)n, &idx, NULL), RS_OK);
    }
    uint32_t idx = 12345;
    int created = -1;
    assert_int_equal(rs_idmap_intern(map, "100", 3, &idx, &created), RS_EFULL);
    assert_int_equal(rs_idmap_count(map), 100);
    assert_int_equal(rs_idmap_find(map, "100", 3, &idx), RS_ENOENT);
    /* Existing ids still intern and find. */
    assert_int_equal(rs_idmap_intern(map, "57", 2, &idx, &created), RS_OK);
    assert_int_equal(idx, 57);
    assert_int_equal(created, 0);
    assert_int_equal(rs_idmap_find(map, "99", 2, &idx), RS_OK);
    assert_int_equal(idx, 99);
    rs_idmap_destroy(map);
}

static void test_rejects_empty_and_overlong_ids(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(0);
    assert_non_null(map);
    char buf[RS_ID_MAX + 1];
    memset(buf, 'x', sizeof(buf));
    uint32_t idx;
    assert_int_equal(rs_idmap_intern(map, buf, 0, &idx, NULL), RS_EINVAL);
    assert_int_equal(rs_idmap_intern(map, buf, RS_ID_MAX + 1, &idx, NULL), RS_EINVAL);
    assert_int_equal(rs_idmap_count(map), 0);
    assert_int_equal(rs_idmap_find(map, buf, RS_ID_MAX + 1, &idx), RS_ENOENT);
    assert_int_equal(rs_idmap_find(map, buf, 0, &idx), RS_ENOENT);
    /* Exactly RS_ID_MAX bytes is fine. */
    assert_int_equal(rs_idmap_intern(map, buf, RS_ID_MAX, &idx, NULL), RS_OK);
    assert_int_equal(idx, 0);
    rs_idmap_destroy(map);
}

static void test_growth_keeps_indices_stable(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(0);
    assert_non_null(map);
    char buf[64];
    /* Long names push the arena to grow as well as the table. */
    for (uint32_t i = 0; i < 20000; i++) {
        int n = snprintf(buf, sizeof(buf), "item/%u/with-a-long-suffix-%u", i, i * 7u);
        uint32_t idx;
        assert_int_equal(rs_idmap_intern(map, buf, (size_t)n, &idx, NULL), RS_OK);
        assert_int_equal(idx, i);
        /* Every so often, check that the oldest ids kept their index through growth. */
        if ((i & (i - 1)) == 0) {
            for (uint32_t j = 0; j <= i; j += 1 + i / 16) {
                int m = snprintf(buf, sizeof(buf), "item/%u/with-a-long-suffix-%u", j, j * 7u);
                uint32_t got;
                assert_int_equal(rs_idmap_find(map, buf, (size_t)m, &got), RS_OK);
                assert_int_equal(got, j);
                assert_name(map, j, buf, (size_t)m);
            }
        }
    }
    rs_idmap_destroy(map);
}

static void test_name_out_of_range_is_null(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(0);
    assert_non_null(map);
    size_t len = 99;
    assert_null(rs_idmap_name(map, 0, &len));
    uint32_t idx;
    assert_int_equal(rs_idmap_intern(map, "a", 1, &idx, NULL), RS_OK);
    assert_non_null(rs_idmap_name(map, 0, &len));
    assert_int_equal(len, 1);
    assert_null(rs_idmap_name(map, 1, &len));
    assert_null(rs_idmap_name(map, RS_NONE, &len));
    rs_idmap_destroy(map);
    rs_idmap_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_100k_ids),
        cmocka_unit_test(test_int_looking_ids_are_distinct_strings),
        cmocka_unit_test(test_arbitrary_byte_ids_of_max_length),
        cmocka_unit_test(test_embedded_nul_ids_differ_from_their_prefix),
        cmocka_unit_test(test_duplicate_returns_same_index_and_created_zero),
        cmocka_unit_test(test_full_at_cap_but_existing_ids_still_found),
        cmocka_unit_test(test_rejects_empty_and_overlong_ids),
        cmocka_unit_test(test_growth_keeps_indices_stable),
        cmocka_unit_test(test_name_out_of_range_is_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
