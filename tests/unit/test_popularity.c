/*
 * test_popularity.c - decayed popularity: a score halves every half-life,
 * later events outweigh older ones, the top list matches a brute-force sort,
 * rescaling over thousands of half-lives keeps the ratios, and save/load
 * round-trips the state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "recstream/popularity.h"

#define HOUR_MS 3600000LL

static void test_score_halves_every_half_life(void **state)
{
    struct rs_popularity *pop = rs_popularity_create(3600);
    (void)state;
    assert_int_equal(rs_popularity_add(pop, 3, 8.0f, 0), RS_OK);
    assert_float_equal(rs_popularity_score(pop, 3, 0), 8.0, 1e-9);
    assert_float_equal(rs_popularity_score(pop, 3, HOUR_MS), 4.0, 1e-9);
    assert_float_equal(rs_popularity_score(pop, 3, 3 * HOUR_MS), 1.0, 1e-9);
    assert_float_equal(rs_popularity_score(pop, 7, 0), 0.0, 0);
    rs_popularity_destroy(pop);
}

static void test_recent_events_outweigh_old_ones(void **state)
{
    struct rs_popularity *pop = rs_popularity_create(3600);
    struct rs_rec top[2];
    (void)state;
    for (int i = 0; i < 3; i++) rs_popularity_add(pop, 0, 1.0f, 0);      /* 3 old */
    for (int i = 0; i < 2; i++) rs_popularity_add(pop, 1, 1.0f, 5 * HOUR_MS); /* 2 new */
    assert_int_equal(rs_popularity_top(pop, 5 * HOUR_MS, 2, top), 2);
    assert_int_equal(top[0].item, 1);
    assert_int_equal(top[1].item, 0);
    rs_popularity_destroy(pop);
}

static int by_score_desc(const void *a, const void *b)
{
    const struct rs_rec *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->item < y->item ? -1 : (x->item > y->item);
}

static void test_top_matches_brute_force(void **state)
{
    struct rs_popularity *pop = rs_popularity_create(600);
    struct rs_rec top[25], all[500];
    size_t n_all = 0;
    (void)state;
    srand(7);
    for (int e = 0; e < 20000; e++)
        rs_popularity_add(pop, (uint32_t)(rand() % 500), (float)(1 + rand() % 3),
                          (int64_t)e * 1000);
    for (uint32_t i = 0; i < 500; i++) {
        double s = rs_popularity_score(pop, i, 20000000);
        if (s > 0) all[n_all++] = (struct rs_rec){i, (float)s, RS_NONE};
    }
    qsort(all, n_all, sizeof(all[0]), by_score_desc);
    assert_int_equal(rs_popularity_top(pop, 20000000, 25, top), 25);
    for (int j = 0; j < 25; j++) {
        assert_int_equal(top[j].item, all[j].item);
        assert_float_equal(top[j].score, all[j].score, 1e-3 * all[j].score);
    }
    assert_int_equal(rs_popularity_top(pop, 20000000, 0, top), 0);
    rs_popularity_destroy(pop);
}

static void test_rescaling_over_long_spans_keeps_ratios(void **state)
{
    struct rs_popularity *pop = rs_popularity_create(1);
    float norm[2];
    int64_t t = 0;
    (void)state;
    /* 10^6 half-lives: 2^(10^6) would overflow without rescaling. */
    for (int e = 0; e < 1000; e++, t += 1000000) {
        rs_popularity_add(pop, 0, 2.0f, t);
        rs_popularity_add(pop, 1, 1.0f, t);
    }
    rs_popularity_normalized(pop, t, norm, 2);
    assert_float_equal(norm[0], 1.0f, 1e-6);
    assert_float_equal(norm[1], 0.5f, 1e-6);
    assert_true(rs_popularity_score(pop, 0, t - 1000000) > 0);
    rs_popularity_destroy(pop);
}

struct mem {
    char buf[1 << 16];
    size_t len, pos;
};

static rs_err_t mem_write(void *ctx, const void *buf, size_t len)
{
    struct mem *m = ctx;
    if (m->len + len > sizeof(m->buf)) return RS_EIO;
    memcpy(m->buf + m->len, buf, len);
    m->len += len;
    return RS_OK;
}

static rs_err_t mem_read(void *ctx, void *buf, size_t len)
{
    struct mem *m = ctx;
    if (m->pos + len > m->len) return RS_ECORRUPT;
    memcpy(buf, m->buf + m->pos, len);
    m->pos += len;
    return RS_OK;
}

static uint64_t mem_remaining(void *ctx)
{
    struct mem *m = ctx;
    return m->len - m->pos;
}

static void test_save_load_round_trip_and_truncation(void **state)
{
    static struct mem m;
    struct rs_writer w = {mem_write, &m};
    struct rs_reader r = {mem_read, mem_remaining, &m};
    struct rs_popularity *pop = rs_popularity_create(60), *back;
    rs_err_t err;
    (void)state;
    for (uint32_t i = 0; i < 100; i++) rs_popularity_add(pop, i, (float)i, i * 1000);
    assert_int_equal(rs_popularity_save(pop, &w), RS_OK);
    back = rs_popularity_load(&r, &err);
    assert_non_null(back);
    assert_int_equal(err, RS_OK);
    for (uint32_t i = 0; i < 100; i++)
        assert_true(rs_popularity_score(back, i, 200000) == rs_popularity_score(pop, i, 200000));
    assert_int_equal(rs_popularity_clock(back), rs_popularity_clock(pop));
    rs_popularity_destroy(back);

    m.len -= 9; /* truncated: refused, nothing leaks */
    m.pos = 0;
    assert_null(rs_popularity_load(&r, &err));
    assert_int_equal(err, RS_ECORRUPT);
    rs_popularity_destroy(pop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_halves_every_half_life),
        cmocka_unit_test(test_recent_events_outweigh_old_ones),
        cmocka_unit_test(test_top_matches_brute_force),
        cmocka_unit_test(test_rescaling_over_long_spans_keeps_ratios),
        cmocka_unit_test(test_save_load_round_trip_and_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
