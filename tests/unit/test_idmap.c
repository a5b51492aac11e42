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

#include <stdlib.h>

#include "memio.h"
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

static void test_removed_index_is_reused_and_others_stay_found(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(1000);
    assert_non_null(map);
    char buf[32];
    for (uint32_t i = 0; i < 1000; i++) {
        int n = snprintf(buf, sizeof(buf), "u%u", i);
        uint32_t idx;
        assert_int_equal(rs_idmap_intern(map, buf, (size_t)n, &idx, NULL), RS_OK);
    }
    assert_int_equal(rs_idmap_intern(map, "new", 3, &(uint32_t){0}, NULL), RS_EFULL);
    /* Remove every third id: the rest must still be found (backward shift kept runs whole). */
    for (uint32_t i = 0; i < 1000; i += 3)
        assert_int_equal(rs_idmap_remove(map, i), RS_OK);
    assert_int_equal(rs_idmap_remove(map, 0), RS_ENOENT);
    assert_int_equal(rs_idmap_remove(map, 5000), RS_ENOENT);
    assert_int_equal(rs_idmap_count(map), 1000 - 334);
    assert_int_equal(rs_idmap_span(map), 1000);
    for (uint32_t i = 0; i < 1000; i++) {
        int n = snprintf(buf, sizeof(buf), "u%u", i);
        uint32_t idx = RS_NONE;
        if (i % 3 == 0) {
            assert_int_equal(rs_idmap_find(map, buf, (size_t)n, &idx), RS_ENOENT);
            assert_null(rs_idmap_name(map, i, NULL));
        } else {
            assert_int_equal(rs_idmap_find(map, buf, (size_t)n, &idx), RS_OK);
            assert_int_equal(idx, i);
        }
    }
    /* New ids take the freed indices, most recently freed first; the span does not grow. */
    uint32_t idx;
    int created = 0;
    assert_int_equal(rs_idmap_intern(map, "fresh-a", 7, &idx, &created), RS_OK);
    assert_int_equal(created, 1);
    assert_int_equal(idx, 999);
    assert_int_equal(rs_idmap_intern(map, "fresh-b", 7, &idx, NULL), RS_OK);
    assert_int_equal(idx, 996);
    assert_name(map, 999, "fresh-a", 7);
    assert_int_equal(rs_idmap_span(map), 1000);
    rs_idmap_destroy(map);
}

/* A long stream of distinct ids through a small map: memory stays flat. */
static void test_churn_keeps_memory_bounded(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(512);
    assert_non_null(map);
    char buf[64];
    size_t peak_after_fill = 0;
    for (uint32_t i = 0; i < 300000; i++) {
        int n = snprintf(buf, sizeof(buf), "a-rather-long-user-name-%u", i);
        uint32_t idx;
        rs_err_t err = rs_idmap_intern(map, buf, (size_t)n, &idx, NULL);
        if (err == RS_EFULL) {
            /* evict the id interned 512 ids ago */
            int m = snprintf(buf, sizeof(buf), "a-rather-long-user-name-%u", i - 512);
            uint32_t old;
            assert_int_equal(rs_idmap_find(map, buf, (size_t)m, &old), RS_OK);
            assert_int_equal(rs_idmap_remove(map, old), RS_OK);
            n = snprintf(buf, sizeof(buf), "a-rather-long-user-name-%u", i);
            err = rs_idmap_intern(map, buf, (size_t)n, &idx, NULL);
        }
        assert_int_equal(err, RS_OK);
        assert_true(idx < 512);
        if (i == 2000)
            peak_after_fill = rs_idmap_bytes(map);
        if (i > 2000)
            assert_true(rs_idmap_bytes(map) <= 2 * peak_after_fill);
    }
    /* The last 512 are all there. */
    for (uint32_t i = 300000 - 512; i < 300000; i++) {
        int n = snprintf(buf, sizeof(buf), "a-rather-long-user-name-%u", i);
        assert_int_equal(rs_idmap_find(map, buf, (size_t)n, NULL), RS_OK);
    }
    rs_idmap_destroy(map);
}

static void test_save_load_round_trip_keeps_indices_and_free_list(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(0);
    assert_non_null(map);
    char buf[32];
    uint32_t idx;
    for (uint32_t i = 0; i < 5000; i++) {
        int n = snprintf(buf, sizeof(buf), "id-%u", i);
        assert_int_equal(rs_idmap_intern(map, buf, (size_t)n, &idx, NULL), RS_OK);
    }
    for (uint32_t i = 7; i < 5000; i += 11)
        assert_int_equal(rs_idmap_remove(map, i), RS_OK);
    struct mem m = {0};
    struct rs_writer w = {mem_write, &m};
    struct rs_reader r = {mem_read, mem_remaining, &m};
    assert_int_equal(rs_idmap_save(map, &w), RS_OK);
    rs_err_t err = RS_EIO;
    struct rs_idmap *back = rs_idmap_load(&r, &err);
    assert_int_equal(err, RS_OK);
    assert_non_null(back);
    assert_int_equal(mem_remaining(&m), 0);
    assert_int_equal(rs_idmap_count(back), rs_idmap_count(map));
    assert_int_equal(rs_idmap_span(back), rs_idmap_span(map));
    for (uint32_t i = 0; i < 5000; i++) {
        int n = snprintf(buf, sizeof(buf), "id-%u", i);
        uint32_t a = RS_NONE, b = RS_NONE;
        assert_int_equal(rs_idmap_find(map, buf, (size_t)n, &a),
                         rs_idmap_find(back, buf, (size_t)n, &b));
        assert_int_equal(a, b);
    }
    /* New ids land on the same indices in both. */
    for (uint32_t i = 0; i < 600; i++) {
        int n = snprintf(buf, sizeof(buf), "later-%u", i);
        uint32_t a, b;
        assert_int_equal(rs_idmap_intern(map, buf, (size_t)n, &a, NULL), RS_OK);
        assert_int_equal(rs_idmap_intern(back, buf, (size_t)n, &b, NULL), RS_OK);
        assert_int_equal(a, b);
    }
    rs_idmap_destroy(back);
    rs_idmap_destroy(map);
    free(m.buf);
}

/* Every truncation and many single-byte corruptions: load fails cleanly or loads a valid map. */
static void test_load_rejects_truncated_and_corrupt_input(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(0);
    assert_non_null(map);
    char buf[32];
    uint32_t idx;
    for (uint32_t i = 0; i < 40; i++) {
        int n = snprintf(buf, sizeof(buf), "x%u", i);
        assert_int_equal(rs_idmap_intern(map, buf, (size_t)n, &idx, NULL), RS_OK);
    }
    assert_int_equal(rs_idmap_remove(map, 3), RS_OK);
    assert_int_equal(rs_idmap_remove(map, 17), RS_OK);
    struct mem m = {0};
    struct rs_writer w = {mem_write, &m};
    assert_int_equal(rs_idmap_save(map, &w), RS_OK);
    size_t full = m.len;
    for (size_t cut = 0; cut < full; cut++) {
        struct mem t = {m.buf, cut, cut, 0};
        struct rs_reader r = {mem_read, mem_remaining, &t};
        rs_err_t err = RS_OK;
        assert_null(rs_idmap_load(&r, &err));
        assert_int_not_equal(err, RS_OK);
    }
    char *copy = malloc(full);
    assert_non_null(copy);
    for (size_t at = 0; at < full; at++)
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(copy, m.buf, full);
            copy[at] ^= (char)(1 << bit);
            struct mem t = {copy, full, full, 0};
            struct rs_reader r = {mem_read, mem_remaining, &t};
            rs_err_t err = RS_OK;
            struct rs_idmap *got = rs_idmap_load(&r, &err);
            assert_true((got == NULL) == (err != RS_OK));
            if (got != NULL) /* a name byte changed: still a usable map */
                assert_int_equal(rs_idmap_intern(got, "probe", 5, &idx, NULL), RS_OK);
            rs_idmap_destroy(got);
        }
    /* Duplicate names are corrupt. */
    struct rs_idmap *dup = rs_idmap_create(0);
    assert_int_equal(rs_idmap_intern(dup, "aa", 2, &idx, NULL), RS_OK);
    assert_int_equal(rs_idmap_intern(dup, "ab", 2, &idx, NULL), RS_OK);
    struct mem d = {0};
    struct rs_writer dw = {mem_write, &d};
    assert_int_equal(rs_idmap_save(dup, &dw), RS_OK);
    d.buf[d.len - 1] = 'a';
    struct rs_reader dr = {mem_read, mem_remaining, &d};
    rs_err_t err = RS_OK;
    assert_null(rs_idmap_load(&dr, &err));
    assert_int_equal(err, RS_ECORRUPT);
    rs_idmap_destroy(dup);
    free(d.buf);
    free(copy);
    free(m.buf);
    rs_idmap_destroy(map);
}

/* Prefetch hints change nothing; their guess is the index in the id's home
 * slot: right for nearly every id of a table at most half full, RS_NONE for an
 * id whose home slot is empty. */
static void test_prefetch_guesses_the_home_slot_and_changes_nothing(void **state)
{
    (void)state;
    struct rs_idmap *map = rs_idmap_create(0);
    char buf[32];
    uint32_t right = 0, none = 0, absent = 0;
    assert_non_null(map);
    assert_int_equal(rs_idmap_prefetch(map, "x", 1, 1), RS_NONE); /* empty table */
    for (uint32_t i = 0; i < 1000; i++) {
        int n = snprintf(buf, sizeof(buf), "user-%u", i);
        uint32_t idx;
        assert_int_equal(rs_idmap_intern(map, buf, (size_t)n, &idx, NULL), RS_OK);
    }
    for (uint32_t i = 0; i < 1000; i++) {
        int n = snprintf(buf, sizeof(buf), "user-%u", i);
        assert_int_equal(rs_idmap_prefetch(map, buf, (size_t)n, 0), RS_NONE);
        uint32_t g = rs_idmap_prefetch(map, buf, (size_t)n, 1);
        assert_int_equal(rs_idmap_prefetch(map, buf, (size_t)n, 2), g);
        assert_true(g == RS_NONE || g < 1000);
        right += g == i;
    }
    for (uint32_t i = 1000; i < 3000; i++) {
        int n = snprintf(buf, sizeof(buf), "user-%u", i);
        uint32_t g = rs_idmap_prefetch(map, buf, (size_t)n, 1);
        none += g == RS_NONE;
        absent += rs_idmap_find(map, buf, (size_t)n, NULL) == RS_ENOENT;
    }
    assert_true(right >= 700); /* linear probing: most ids sit in their home slot */
    assert_true(none > 0);
    assert_int_equal(absent, 2000); /* hints never insert */
    assert_int_equal(rs_idmap_count(map), 1000);
    rs_idmap_destroy(map);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefetch_guesses_the_home_slot_and_changes_nothing),
        cmocka_unit_test(test_round_trip_100k_ids),
        cmocka_unit_test(test_int_looking_ids_are_distinct_strings),
        cmocka_unit_test(test_arbitrary_byte_ids_of_max_length),
        cmocka_unit_test(test_embedded_nul_ids_differ_from_their_prefix),
        cmocka_unit_test(test_duplicate_returns_same_index_and_created_zero),
        cmocka_unit_test(test_full_at_cap_but_existing_ids_still_found),
        cmocka_unit_test(test_rejects_empty_and_overlong_ids),
        cmocka_unit_test(test_growth_keeps_indices_stable),
        cmocka_unit_test(test_name_out_of_range_is_null),
        cmocka_unit_test(test_removed_index_is_reused_and_others_stay_found),
        cmocka_unit_test(test_churn_keeps_memory_bounded),
        cmocka_unit_test(test_save_load_round_trip_keeps_indices_and_free_list),
        cmocka_unit_test(test_load_rejects_truncated_and_corrupt_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
