/*
 * test_served.c - the record of what each user was last served: no list
 * until one is set, membership exact for the stored items, lists capped at
 * the width, clearing, and growth to far user indices.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "recstream/served.h"

static void test_membership_follows_the_last_list(void **state)
{
    struct rs_served *s = rs_served_create(3);
    const uint32_t first[] = {7, 8, 9, 10};
    const uint32_t second[] = {1};
    (void)state;

    assert_non_null(s);
    assert_int_equal(rs_served_contains(s, 0, 7), -1);
    assert_int_equal(rs_served_set(s, 0, first, 4), RS_OK);
    assert_int_equal(rs_served_contains(s, 0, 7), 1);
    assert_int_equal(rs_served_contains(s, 0, 9), 1);
    assert_int_equal(rs_served_contains(s, 0, 10), 0); /* beyond the width */
    assert_int_equal(rs_served_contains(s, 1, 7), -1); /* another user */
    assert_int_equal(rs_served_set(s, 0, second, 1), RS_OK);
    assert_int_equal(rs_served_contains(s, 0, 7), 0); /* replaced, not merged */
    assert_int_equal(rs_served_contains(s, 0, 1), 1);
    assert_int_equal(rs_served_set(s, 0, second, 0), RS_OK);
    assert_int_equal(rs_served_contains(s, 0, 1), 0); /* an empty list is a list */
    rs_served_clear(s, 0);
    assert_int_equal(rs_served_contains(s, 0, 1), -1);
    rs_served_clear(s, 123456); /* never seen: nothing to do */
    rs_served_destroy(s);
}

static void test_grows_to_far_users_and_keeps_rows(void **state)
{
    struct rs_served *s = rs_served_create(20);
    uint32_t items[20];
    (void)state;

    for (uint32_t u = 0; u < 5000; u += 7) {
        for (uint32_t j = 0; j < 20; j++) items[j] = u * 100 + j;
        assert_int_equal(rs_served_set(s, u, items, 20), RS_OK);
    }
    assert_int_equal(rs_served_set(s, 1000000, items, 1), RS_OK);
    for (uint32_t u = 0; u < 5000; u++) {
        int want = u % 7 == 0 ? 1 : -1;
        assert_int_equal(rs_served_contains(s, u, u * 100 + 19), want);
    }
    assert_true(rs_served_bytes(s) >= 1000001u * (20 * 4 + 2));
    rs_served_destroy(s);
}

static void test_rejects_a_zero_width(void **state)
{
    (void)state;
    assert_null(rs_served_create(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_membership_follows_the_last_list),
        cmocka_unit_test(test_grows_to_far_users_and_keeps_rows),
        cmocka_unit_test(test_rejects_a_zero_width),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
