/*
 * test_dirty.c - unit tests for the dirty-user set: idempotent marking,
 * oldest-first takes bounded by max, re-marking after a take, and random
 * operation sequences checked against a plain queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "recstream/dirty.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void test_mark_is_idempotent_while_dirty(void **state)
{
    (void)state;
    struct rs_dirty *d = rs_dirty_create();
    assert_non_null(d);
    assert_int_equal(rs_dirty_count(d), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rs_dirty_mark(d, 5), RS_OK);
    assert_int_equal(rs_dirty_count(d), 1);
    uint32_t out[4];
    assert_int_equal(rs_dirty_take(d, out, 4), 1);
    assert_int_equal(out[0], 5);
    assert_int_equal(rs_dirty_count(d), 0);
    rs_dirty_destroy(d);
    rs_dirty_destroy(NULL);
}

static void test_take_is_oldest_first_and_bounded(void **state)
{
    (void)state;
    struct rs_dirty *d = rs_dirty_create();
    assert_non_null(d);
    const uint32_t order[] = {30, 1, 200, 2, 1, 30, 7};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        assert_int_equal(rs_dirty_mark(d, order[i]), RS_OK);
    assert_int_equal(rs_dirty_count(d), 5);
    uint32_t out[8];
    assert_int_equal(rs_dirty_take(d, out, 0), 0);
    assert_int_equal(rs_dirty_take(d, out, 2), 2);
    assert_int_equal(out[0], 30);
    assert_int_equal(out[1], 1);
    assert_int_equal(rs_dirty_count(d), 3);
    assert_int_equal(rs_dirty_take(d, out, 8), 3);
    assert_int_equal(out[0], 200);
    assert_int_equal(out[1], 2);
    assert_int_equal(out[2], 7);
    assert_int_equal(rs_dirty_take(d, out, 8), 0);
    rs_dirty_destroy(d);
}

static void test_user_marked_after_take_appears_again(void **state)
{
    (void)state;
    struct rs_dirty *d = rs_dirty_create();
    assert_non_null(d);
    uint32_t out[4];
    assert_int_equal(rs_dirty_mark(d, 9), RS_OK);
    assert_int_equal(rs_dirty_mark(d, 4), RS_OK);
    assert_int_equal(rs_dirty_take(d, out, 1), 1);
    assert_int_equal(out[0], 9);
    /* 9 was taken, so it queues again behind 4; 4 is still dirty, so it does not move. */
    assert_int_equal(rs_dirty_mark(d, 9), RS_OK);
    assert_int_equal(rs_dirty_mark(d, 4), RS_OK);
    assert_int_equal(rs_dirty_count(d), 2);
    assert_int_equal(rs_dirty_take(d, out, 4), 2);
    assert_int_equal(out[0], 4);
    assert_int_equal(out[1], 9);
    rs_dirty_destroy(d);
}

static void test_user_far_beyond_bitmap(void **state)
{
    (void)state;
    struct rs_dirty *d = rs_dirty_create();
    assert_non_null(d);
    assert_int_equal(rs_dirty_mark(d, 3), RS_OK);
    assert_int_equal(rs_dirty_mark(d, 50000000), RS_OK);
    assert_int_equal(rs_dirty_mark(d, 50000000), RS_OK);
    assert_int_equal(rs_dirty_count(d), 2);
    uint32_t out[4];
    assert_int_equal(rs_dirty_take(d, out, 4), 2);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 50000000);
    rs_dirty_destroy(d);
}

static void test_order_survives_growth_while_wrapped(void **state)
{
    (void)state;
    struct rs_dirty *d = rs_dirty_create();
    assert_non_null(d);
    static uint32_t out[2000];
    /* Advance the oldest entry, then queue enough to wrap around and grow several times. */
    for (uint32_t u = 0; u < 50; u++)
        assert_int_equal(rs_dirty_mark(d, u), RS_OK);
    assert_int_equal(rs_dirty_take(d, out, 40), 40);
    for (uint32_t u = 50; u < 1500; u++)
        assert_int_equal(rs_dirty_mark(d, u), RS_OK);
    assert_int_equal(rs_dirty_count(d), 1460);
    assert_int_equal(rs_dirty_take(d, out, 2000), 1460);
    for (uint32_t i = 0; i < 1460; i++)
        assert_int_equal(out[i], 40 + i);
    rs_dirty_destroy(d);
}

#define REF_USERS 500

static void test_random_operations_match_reference_queue(void **state)
{
    (void)state;
    struct rs_dirty *d = rs_dirty_create();
    assert_non_null(d);
    static uint32_t ref_queue[REF_USERS];
    static unsigned char ref_dirty[REF_USERS];
    size_t ref_head = 0;
    size_t ref_len = 0; /* ref_queue[ref_head .. ref_head + ref_len), no wrap: compacted on take */
    memset(ref_dirty, 0, sizeof(ref_dirty));
    uint32_t out[REF_USERS];
    for (int op = 0; op < 200000; op++) {
        if (rnd(100) < 70) {
            uint32_t user = rnd(REF_USERS);
            assert_int_equal(rs_dirty_mark(d, user), RS_OK);
            if (!ref_dirty[user]) {
                ref_dirty[user] = 1;
                ref_queue[ref_head + ref_len++] = user;
            }
        } else {
            size_t max = rnd(40);
            size_t want = max < ref_len ? max : ref_len;
            assert_int_equal(rs_dirty_take(d, out, max), want);
            for (size_t i = 0; i < want; i++) {
                assert_int_equal(out[i], ref_queue[ref_head + i]);
                ref_dirty[out[i]] = 0;
            }
            ref_head += want;
            ref_len -= want;
            memmove(ref_queue, ref_queue + ref_head, ref_len * sizeof(ref_queue[0]));
            ref_head = 0;
        }
        assert_int_equal(rs_dirty_count(d), ref_len);
    }
    rs_dirty_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mark_is_idempotent_while_dirty),
        cmocka_unit_test(test_take_is_oldest_first_and_bounded),
        cmocka_unit_test(test_user_marked_after_take_appears_again),
        cmocka_unit_test(test_user_far_beyond_bitmap),
        cmocka_unit_test(test_order_survives_growth_while_wrapped),
        cmocka_unit_test(test_random_operations_match_reference_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
