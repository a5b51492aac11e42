/*
 * test_history.c - unit tests for user histories: random adds, lookups and
 * clears checked against a brute-force membership matrix, ordering of the
 * item arrays, and user indices far beyond what the store has seen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "recstream/history.h"

#define REF_USERS 40
#define REF_ITEMS 300

/* A small fixed PRNG so failures reproduce. */
static uint64_t rng_state = 88172645463325252ull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void assert_matches_reference(const struct rs_history *h,
                                     unsigned char ref[REF_USERS][REF_ITEMS], uint32_t user)
{
    size_t n = 0;
    const uint32_t *items = rs_history_items(h, user, &n);
    size_t k = 0;
    for (uint32_t item = 0; item < REF_ITEMS; item++) {
        if (!ref[user][item])
            continue;
        assert_true(k < n);
        assert_int_equal(items[k], item);
        k++;
    }
    assert_int_equal(k, n);
}

static void test_random_operations_match_brute_force(void **state)
{
    (void)state;
    static unsigned char ref[REF_USERS][REF_ITEMS];
    memset(ref, 0, sizeof(ref));
    struct rs_history *h = rs_history_create();
    assert_non_null(h);
    for (int op = 0; op < 200000; op++) {
        uint32_t user = rnd(REF_USERS);
        uint32_t item = rnd(REF_ITEMS);
        uint32_t kind = rnd(100);
        if (kind < 60) {
            int want = ref[user][item] ? 0 : 1;
            assert_int_equal(rs_history_add(h, user, item), want);
            ref[user][item] = 1;
        } else if (kind < 99) {
            assert_int_equal(rs_history_contains(h, user, item), ref[user][item]);
        } else {
            rs_history_clear(h, user);
            memset(ref[user], 0, REF_ITEMS);
        }
        if (op % 997 == 0)
            assert_matches_reference(h, ref, user);
    }
    for (uint32_t user = 0; user < REF_USERS; user++)
        assert_matches_reference(h, ref, user);
    rs_history_destroy(h);
}

static void test_items_come_back_ascending(void **state)
{
    (void)state;
    struct rs_history *h = rs_history_create();
    assert_non_null(h);
    const uint32_t order[] = {50, 3, UINT32_MAX, 0, 17, 3, 49, 51};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        assert_true(rs_history_add(h, 7, order[i]) >= 0);
    size_t n = 0;
    const uint32_t *items = rs_history_items(h, 7, &n);
    const uint32_t want[] = {0, 3, 17, 49, 50, 51, UINT32_MAX};
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    assert_memory_equal(items, want, sizeof(want));
    rs_history_destroy(h);
}

static void test_clear_forgets_only_that_user(void **state)
{
    (void)state;
    struct rs_history *h = rs_history_create();
    assert_non_null(h);
    for (uint32_t i = 0; i < 100; i++) {
        assert_int_equal(rs_history_add(h, 1, i), 1);
        assert_int_equal(rs_history_add(h, 2, i), 1);
    }
    rs_history_clear(h, 1);
    size_t n = 99;
    rs_history_items(h, 1, &n);
    assert_int_equal(n, 0);
    assert_int_equal(rs_history_contains(h, 1, 5), 0);
    assert_int_equal(rs_history_contains(h, 2, 5), 1);
    rs_history_items(h, 2, &n);
    assert_int_equal(n, 100);
    /* A cleared user starts again from nothing. */
    assert_int_equal(rs_history_add(h, 1, 5), 1);
    assert_int_equal(rs_history_add(h, 1, 5), 0);
    rs_history_items(h, 1, &n);
    assert_int_equal(n, 1);
    /* Clearing an unknown user is harmless. */
    rs_history_clear(h, 1000000);
    rs_history_destroy(h);
}

static void test_user_far_beyond_current_size(void **state)
{
    (void)state;
    struct rs_history *h = rs_history_create();
    assert_non_null(h);
    assert_int_equal(rs_history_add(h, 0, 1), 1);
    assert_int_equal(rs_history_add(h, 2000000, 9), 1);
    assert_int_equal(rs_history_contains(h, 2000000, 9), 1);
    assert_int_equal(rs_history_contains(h, 1999999, 9), 0);
    assert_int_equal(rs_history_contains(h, 0, 1), 1);
    size_t n = 99;
    rs_history_items(h, 1000000, &n);
    assert_int_equal(n, 0);
    rs_history_items(h, 2000000, &n);
    assert_int_equal(n, 1);
    rs_history_destroy(h);
}

static void test_unknown_user_has_nothing(void **state)
{
    (void)state;
    struct rs_history *h = rs_history_create();
    assert_non_null(h);
    size_t n = 99;
    rs_history_items(h, 3, &n);
    assert_int_equal(n, 0);
    assert_int_equal(rs_history_contains(h, 3, 0), 0);
    assert_int_equal(rs_history_contains(h, UINT32_MAX, 0), 0);
    rs_history_destroy(h);
    rs_history_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_operations_match_brute_force),
        cmocka_unit_test(test_items_come_back_ascending),
        cmocka_unit_test(test_clear_forgets_only_that_user),
        cmocka_unit_test(test_user_far_beyond_current_size),
        cmocka_unit_test(test_unknown_user_has_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
