/*
 * test_gen.c - unit tests for the synthetic stream: same seed gives the same
 * stream, the stream ends after `events`, the planted cluster structure and
 * popularity skew show up in the counts, values follow the rules, and every
 * event is well formed (checked field by field, as rs_event_validate would).
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

#include "recstream/gen.h"

/* Parses "<prefix><decimal>" exactly; returns the number or -1. */
static long parse_id(const char *s, size_t len, char prefix)
{
    if (len < 2 || s[0] != prefix || s[len] != '\0')
        return -1;
    if (s[1] == '0' && len > 2)
        return -1;
    long v = 0;
    for (size_t i = 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static void assert_well_formed(const struct rs_event *ev, const struct rs_gen_params *p)
{
    assert_true(ev->type == RS_EVENT_PLAY || ev->type == RS_EVENT_RATE);
    assert_true(ev->user_len >= 1 && ev->user_len <= RS_ID_MAX);
    assert_true(ev->item_len >= 1 && ev->item_len <= RS_ID_MAX);
    assert_int_equal(strlen(ev->user), ev->user_len);
    assert_int_equal(strlen(ev->item), ev->item_len);
    assert_true(isfinite(ev->value));
    long u = parse_id(ev->user, ev->user_len, 'u');
    long i = parse_id(ev->item, ev->item_len, 'i');
    assert_true(u >= 0 && u < (long)p->users);
    assert_true(i >= 0 && i < (long)p->items);
    if (ev->type == RS_EVENT_RATE)
        assert_true(ev->value >= 1.0f && ev->value <= 5.0f);
    else
        assert_true(ev->value == 1.0f);
    assert_true(ev->ts_ms >= 0);
}

static void test_defaults_match_documentation(void **state)
{
    (void)state;
    struct rs_gen_params p;
    memset(&p, 0xff, sizeof(p));
    rs_gen_defaults(&p);
    assert_int_equal(p.users, 1000);
    assert_int_equal(p.items, 500);
    assert_int_equal(p.clusters, 10);
    assert_int_equal(p.events, 50000);
    assert_int_equal(p.seed, 1);
    assert_true(p.rate_share == 0.5);
    assert_true(p.noise == 0.1);
    assert_int_equal(p.start_ms, 1700000000000);
    assert_int_equal(p.step_ms, 10);
}

static void test_same_seed_gives_same_stream(void **state)
{
    (void)state;
    struct rs_gen_params p;
    rs_gen_defaults(&p);
    p.events = 20000;
    p.seed = 12345;
    struct rs_gen *a = rs_gen_create(&p);
    struct rs_gen *b = rs_gen_create(&p);
    assert_non_null(a);
    assert_non_null(b);
    struct rs_event ea, eb;
    for (uint64_t n = 0; n < p.events; n++) {
        assert_int_equal(rs_gen_next(a, &ea), RS_OK);
        assert_int_equal(rs_gen_next(b, &eb), RS_OK);
        assert_int_equal(ea.type, eb.type);
        assert_string_equal(ea.user, eb.user);
        assert_string_equal(ea.item, eb.item);
        assert_true(ea.value == eb.value);
        assert_int_equal(ea.ts_ms, eb.ts_ms);
    }
    rs_gen_destroy(a);
    rs_gen_destroy(b);
}

static void test_different_seeds_give_different_streams(void **state)
{
    (void)state;
    struct rs_gen_params p;
    rs_gen_defaults(&p);
    p.events = 1000;
    struct rs_gen *a = rs_gen_create(&p);
    p.seed = 2;
    struct rs_gen *b = rs_gen_create(&p);
    assert_non_null(a);
    assert_non_null(b);
    struct rs_event ea, eb;
    int differ = 0;
    for (uint64_t n = 0; n < p.events; n++) {
        assert_int_equal(rs_gen_next(a, &ea), RS_OK);
        assert_int_equal(rs_gen_next(b, &eb), RS_OK);
        differ += strcmp(ea.user, eb.user) != 0 || strcmp(ea.item, eb.item) != 0;
    }
    assert_true(differ > 900);
    rs_gen_destroy(a);
    rs_gen_destroy(b);
}

static void test_stream_ends_with_enoent_after_events(void **state)
{
    (void)state;
    struct rs_gen_params p;
    rs_gen_defaults(&p);
    p.events = 777;
    p.start_ms = 5000;
    p.step_ms = 3;
    struct rs_gen *g = rs_gen_create(&p);
    assert_non_null(g);
    struct rs_event ev;
    for (uint64_t n = 0; n < p.events; n++) {
        assert_int_equal(rs_gen_next(g, &ev), RS_OK);
        assert_int_equal(ev.ts_ms, 5000 + (int64_t)n * 3);
    }
    assert_int_equal(rs_gen_next(g, &ev), RS_ENOENT);
    assert_int_equal(rs_gen_next(g, &ev), RS_ENOENT);
    rs_gen_destroy(g);

    p.events = 0;
    g = rs_gen_create(&p);
    assert_non_null(g);
    assert_int_equal(rs_gen_next(g, &ev), RS_ENOENT);
    rs_gen_destroy(g);
    rs_gen_destroy(NULL);
}

static void test_own_cluster_share_is_one_minus_noise(void **state)
{
    (void)state;
    const double noises[] = {0.0, 0.1, 0.3};
    for (size_t t = 0; t < sizeof(noises) / sizeof(noises[0]); t++) {
        struct rs_gen_params p;
        rs_gen_defaults(&p);
        p.noise = noises[t];
        struct rs_gen *g = rs_gen_create(&p);
        assert_non_null(g);
        struct rs_event ev;
        uint64_t own = 0;
        while (rs_gen_next(g, &ev) == RS_OK) {
            long u = parse_id(ev.user, ev.user_len, 'u');
            long i = parse_id(ev.item, ev.item_len, 'i');
            assert_true(u >= 0 && i >= 0);
            own += rs_gen_user_cluster(g, (uint32_t)u) == rs_gen_item_cluster(g, (uint32_t)i);
        }
        double share = (double)own / (double)p.events;
        /* Binomial sd at n = 50000 is <= 0.0023; 0.01 is over four sd. */
        assert_true(fabs(share - (1.0 - p.noise)) < 0.01);
        if (p.noise == 0.0)
            assert_int_equal(own, p.events);
        rs_gen_destroy(g);
    }
}

static void test_rate_values_follow_cluster_and_scale(void **state)
{
    (void)state;
    struct rs_gen_params p;
    rs_gen_defaults(&p);
    p.noise = 0.3;
    struct rs_gen *g = rs_gen_create(&p);
    assert_non_null(g);
    struct rs_event ev;
    uint64_t rates = 0;
    uint64_t seen[6] = {0};
    while (rs_gen_next(g, &ev) == RS_OK) {
        assert_well_formed(&ev, &p);
        if (ev.type != RS_EVENT_RATE)
            continue;
        rates++;
        long u = parse_id(ev.user, ev.user_len, 'u');
        long i = parse_id(ev.item, ev.item_len, 'i');
        int own = rs_gen_user_cluster(g, (uint32_t)u) == rs_gen_item_cluster(g, (uint32_t)i);
        if (own)
            assert_true(ev.value == 4.0f || ev.value == 5.0f);
        else
            assert_true(ev.value == 1.0f || ev.value == 2.0f);
        seen[(int)ev.value]++;
    }
    double share = (double)rates / (double)p.events;
    assert_true(fabs(share - p.rate_share) < 0.01);
    /* Both values of each pair occur. */
    assert_true(seen[1] > 0 && seen[2] > 0 && seen[4] > 0 && seen[5] > 0);
    assert_int_equal(seen[3], 0);
    rs_gen_destroy(g);
}

static void test_every_event_is_well_formed(void **state)
{
    (void)state;
    struct rs_gen_params p;
    rs_gen_defaults(&p);
    p.users = 4000000000u; /* ids up to ten digits */
    p.items = 3;
    p.clusters = 2;
    p.rate_share = 1.0;
    p.events = 20000;
    struct rs_gen *g = rs_gen_create(&p);
    assert_non_null(g);
    struct rs_event ev;
    uint64_t n = 0;
    while (rs_gen_next(g, &ev) == RS_OK) {
        assert_well_formed(&ev, &p);
        assert_int_equal(ev.type, RS_EVENT_RATE);
        n++;
    }
    assert_int_equal(n, p.events);
    rs_gen_destroy(g);
}

static void test_popularity_is_skewed_within_a_cluster(void **state)
{
    (void)state;
    struct rs_gen_params p;
    rs_gen_defaults(&p);
    p.noise = 0.0;
    p.events = 100000;
    struct rs_gen *g = rs_gen_create(&p);
    assert_non_null(g);
    uint64_t *count = calloc(p.items, sizeof(*count));
    assert_non_null(count);
    struct rs_event ev;
    while (rs_gen_next(g, &ev) == RS_OK)
        count[parse_id(ev.item, ev.item_len, 'i')]++;
    /* Cluster 0 holds items 0, 10, ..., 490: the first tenth must outdraw the last tenth. */
    uint64_t head = 0, tail = 0;
    for (uint32_t r = 0; r < 5; r++) {
        head += count[r * p.clusters];
        tail += count[(49 - r) * p.clusters];
    }
    assert_true(head > 3 * tail);
    free(count);
    rs_gen_destroy(g);
}

static void test_single_cluster_puts_every_item_in_cluster(void **state)
{
    (void)state;
    struct rs_gen_params p;
    rs_gen_defaults(&p);
    p.clusters = 1;
    p.noise = 0.5;
    p.rate_share = 1.0;
    p.events = 2000;
    struct rs_gen *g = rs_gen_create(&p);
    assert_non_null(g);
    struct rs_event ev;
    while (rs_gen_next(g, &ev) == RS_OK)
        assert_true(ev.value >= 4.0f);
    rs_gen_destroy(g);
}

static void test_rejects_impossible_parameters(void **state)
{
    (void)state;
    struct rs_gen_params p;
    assert_null(rs_gen_create(NULL));
    rs_gen_defaults(&p);
    p.clusters = 0;
    assert_null(rs_gen_create(&p));
    rs_gen_defaults(&p);
    p.clusters = p.items + 1;
    assert_null(rs_gen_create(&p));
    rs_gen_defaults(&p);
    p.users = 0;
    assert_null(rs_gen_create(&p));
    rs_gen_defaults(&p);
    p.noise = 1.5;
    assert_null(rs_gen_create(&p));
    rs_gen_defaults(&p);
    p.rate_share = NAN;
    assert_null(rs_gen_create(&p));
    rs_gen_defaults(&p);
    p.step_ms = INT64_MAX / 2;
    assert_null(rs_gen_create(&p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_documentation),
        cmocka_unit_test(test_same_seed_gives_same_stream),
        cmocka_unit_test(test_different_seeds_give_different_streams),
        cmocka_unit_test(test_stream_ends_with_enoent_after_events),
        cmocka_unit_test(test_own_cluster_share_is_one_minus_noise),
        cmocka_unit_test(test_rate_values_follow_cluster_and_scale),
        cmocka_unit_test(test_every_event_is_well_formed),
        cmocka_unit_test(test_popularity_is_skewed_within_a_cluster),
        cmocka_unit_test(test_single_cluster_puts_every_item_in_cluster),
        cmocka_unit_test(test_rejects_impossible_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
