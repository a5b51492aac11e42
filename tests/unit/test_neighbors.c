/*
 * test_neighbors.c - unit tests of the online item neighbours: similarities
 * equal a brute-force computation of the documented formula on small random
 * streams (with decay across many half-lives, with and without the support
 * shrinkage, with symmetric pairs and pairs weighed by order), the top-K list is that
 * brute-force order, memory per item stays fixed and the heavy partner is
 * kept under an adversarial stream of endless new partners, rings hold the
 * last `window` distinct items, and state survives save/load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/neighbors.h"

static uint64_t trng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- the brute-force reference: the definition in neighbors.h, in doubles ---- */

#define BF_ITEMS 24
#define BF_USERS 8
#define BF_WINDOW 5

struct brute {
    uint32_t ring[BF_USERS][BF_WINDOW];
    int ring_n[BF_USERS];
    double C[BF_ITEMS][BF_ITEMS];
    double N[BF_ITEMS];
};

/* back: the pair's weight in the later item's row; gap: decay per step apart. */
static void brute_add(struct brute *b, uint32_t u, uint32_t i, double t_s, double h_s,
                      double back, double gap)
{
    double d = exp2(t_s / h_s);
    int n = b->ring_n[u], pos;
    for (pos = 0; pos < n; pos++)
        if (b->ring[u][pos] == i) break;
    if (pos < n) {
        for (; pos + 1 < n; pos++)
            b->ring[u][pos] = b->ring[u][pos + 1];
        b->ring[u][n - 1] = i;
        return;
    }
    b->N[i] += d;
    for (int r = 0; r < n; r++) {
        double w = d * pow(1.0 - gap, n - 1 - r); /* ring[r] came n - 1 - r steps back */
        b->C[i][b->ring[u][r]] += back * w;
        b->C[b->ring[u][r]][i] += w;
    }
    if (n == BF_WINDOW) {
        for (int r = 0; r + 1 < n; r++)
            b->ring[u][r] = b->ring[u][r + 1];
        n--;
    }
    b->ring[u][n] = i;
    b->ring_n[u] = n + 1;
}

/* The cosine, shrunk by c / (c + shrink) with c = C_ij weighed at the clock. */
static double brute_sim(const struct brute *b, uint32_t i, uint32_t j, double shrink,
                        double clock_s, double h_s)
{
    double den = b->N[i] * b->N[j], c = b->C[i][j] * exp2(-clock_s / h_s);
    if (!(den > 0)) return 0;
    return b->C[i][j] / sqrt(den) * (shrink > 0 ? c / (c + shrink) : 1.0);
}

static int close_rel(double a, double b, double tol)
{
    return fabs(a - b) <= tol * fmax(1e-30, fmax(fabs(a), fabs(b)));
}

static void test_similarity_matches_brute_force_on_small_streams(void **state)
{
    (void)state;
    uint64_t s = 7;
    for (int trial = 0; trial < 30; trial++) {
        /* k = BF_ITEMS: 2k slots, more than the partners, so nothing is evicted. */
        double h = trial % 3 == 0 ? 1.0 : 3600.0;
        double shrink = trial % 4 == 0 ? 0.0 : trial % 4 == 1 ? 0.5 : 2.0, clock = 0;
        /* Symmetric (b = 1, no gap decay: a new object's state), then ordered. */
        double back = trial < 10 ? 1.0 : trial % 2 ? 0.25 : 0.0;
        double gap = trial < 10 ? 0.0 : trial % 3 == 1 ? 0.3 : 0.05;
        struct rs_neighbors *nb = rs_neighbors_create(BF_ITEMS, BF_WINDOW, h);
        struct brute *b = calloc(1, sizeof(*b));
        double t = 0;
        assert_non_null(nb);
        assert_int_equal(rs_neighbors_set_shrink(nb, shrink), RS_OK);
        if (trial >= 10) assert_int_equal(rs_neighbors_set_order(nb, back, gap), RS_OK);
        assert_non_null(b);
        for (int e = 0; e < 400; e++) {
            uint32_t u = (uint32_t)(trng(&s) % BF_USERS);
            /* Skewed items so that some pairs repeat. */
            uint32_t i =
                (uint32_t)((trng(&s) % BF_ITEMS) * (trng(&s) % BF_ITEMS) / BF_ITEMS);
            t += (double)(trng(&s) % 500) / 1000.0; /* up to ~100 half-lives when h = 1 */
            assert_int_equal(rs_neighbors_add(nb, u, i, (int64_t)(t * 1000.0)), RS_OK);
            brute_add(b, u, i, floor(t * 1000.0) / 1000.0, h, back, gap);
            clock = floor(t * 1000.0) / 1000.0;
        }
        assert_true(rs_neighbors_clock(nb) == (int64_t)(t * 1000.0));
        for (uint32_t i = 0; i < BF_ITEMS; i++) {
            for (uint32_t j = 0; j < BF_ITEMS; j++) {
                double want = i == j ? 0 : brute_sim(b, i, j, shrink, clock, h);
                double got = rs_neighbors_sim(nb, i, j);
                if (want < 1e-12) {
                    assert_true(got < 1e-6);
                    continue;
                }
                assert_true(close_rel(got, want, 1e-4));
            }
            /* The top-K list is the brute-force order (up to float ties). */
            struct rs_rec out[BF_ITEMS];
            size_t n = rs_neighbors_similar(nb, i, 6, out);
            double sorted[BF_ITEMS];
            size_t m = 0;
            for (uint32_t j = 0; j < BF_ITEMS; j++) {
                double v = i == j ? 0 : brute_sim(b, i, j, shrink, clock, h);
                if (v <= 0) continue;
                size_t at = m++;
                while (at > 0 && sorted[at - 1] < v) {
                    sorted[at] = sorted[at - 1];
                    at--;
                }
                sorted[at] = v;
            }
            assert_int_equal(n, m < 6 ? m : 6);
            for (size_t r = 0; r < n; r++) {
                assert_true(close_rel(out[r].score, sorted[r], 1e-4));
                assert_true(out[r].item != i);
                assert_true(out[r].why == RS_NONE);
                if (r > 0) assert_true(out[r - 1].score >= out[r].score);
            }
        }
        for (uint32_t u = 0; u < BF_USERS; u++) {
            size_t n;
            const uint32_t *recent = rs_neighbors_recent(nb, u, &n);
            assert_int_equal(n, (size_t)b->ring_n[u]);
            for (size_t r = 0; r < n; r++)
                assert_int_equal(recent[r], b->ring[u][r]);
        }
        free(b);
        rs_neighbors_destroy(nb);
    }
}

static void
test_ring_keeps_last_window_distinct_items_and_replays_add_nothing(void **state)
{
    (void)state;
    struct rs_neighbors *nb = rs_neighbors_create(4, 3, 60.0);
    size_t n;
    const uint32_t *recent;

    for (uint32_t i = 1; i <= 5; i++)
        assert_int_equal(rs_neighbors_add(nb, 0, i, 1000), RS_OK);
    recent = rs_neighbors_recent(nb, 0, &n);
    assert_int_equal(n, 3);
    assert_int_equal(recent[0], 3);
    assert_int_equal(recent[2], 5);
    float before = rs_neighbors_sim(nb, 3, 5);
    assert_true(before > 0);
    /* Replaying a recent item moves it to the newest place and adds nothing. */
    assert_int_equal(rs_neighbors_add(nb, 0, 3, 1000), RS_OK);
    recent = rs_neighbors_recent(nb, 0, &n);
    assert_int_equal(recent[2], 3);
    assert_int_equal(recent[0], 4);
    assert_true(rs_neighbors_sim(nb, 3, 5) == before);
    /* Items 1 and 5 never shared a ring. */
    assert_true(rs_neighbors_sim(nb, 1, 5) == 0.0f);
    rs_neighbors_forget(nb, 0);
    rs_neighbors_recent(nb, 0, &n);
    assert_int_equal(n, 0);
    rs_neighbors_destroy(nb);
}

/*
 * The adversarial stream: item 0 co-occurs with an endless supply of
 * partners it never sees twice, and with item 1 in a third of its pairs.
 * Memory must not move once every item exists, and the Space-Saving
 * guarantee (a partner with more than 1/S of the row's weight is held) must
 * keep item 1 as item 0's best neighbour. Both with symmetric pairs and with
 * pairs weighed by order (window 1: the backward weight applies to half of
 * item 0's pairs; the gap decay does not arise, the next test has it).
 */
static void adversarial_stream(double back, double gap)
{
    const int k = 4; /* S = 8 slots */
    const uint32_t items = 5000, users = 100;
    struct rs_neighbors *nb = rs_neighbors_create(k, 1, 3600.0);
    uint32_t next = 2;
    size_t bytes_warm = 0, heap_warm = 0;
    struct rs_rec out[8];

    assert_non_null(nb);
    assert_int_equal(rs_neighbors_set_order(nb, back, gap), RS_OK);
    /* Make every item and user exist, then measure. */
    assert_int_equal(rs_neighbors_add(nb, users - 1, items - 1, 0), RS_OK);
    for (uint64_t e = 0; e < 400000; e++) {
        uint32_t u = (uint32_t)(e % users);
        uint32_t partner;
        if (e % 3 == 0) {
            partner = 1;
        } else {
            partner = next;
            next = next + 1 < items - 1 ? next + 1 : 2;
        }
        /* Window 1: 0 then partner then 0 ... each step is one pair. */
        assert_int_equal(rs_neighbors_add(nb, u, 0, (int64_t)e), RS_OK);
        assert_int_equal(rs_neighbors_add(nb, u, partner, (int64_t)e), RS_OK);
        if (e == 1000) {
            bytes_warm = rs_neighbors_state_bytes(nb);
            heap_warm = mallinfo2().uordblks;
        }
    }
    assert_int_equal(rs_neighbors_items(nb), items);
    assert_int_equal(rs_neighbors_state_bytes(nb), bytes_warm);
    assert_int_equal(bytes_warm, (size_t)items * RS_NEIGHBORS_ITEM_BYTES(k) +
                                     (size_t)users * RS_NEIGHBORS_USER_BYTES(1));
    /* Nothing was allocated on the way (0 = 0 under sanitizers, which hide malloc). */
    assert_int_equal(mallinfo2().uordblks, heap_warm);
    size_t n = rs_neighbors_similar(nb, 0, 8, out);
    assert_true(n >= 1);
    assert_int_equal(out[0].item, 1);
    assert_true(out[0].score > 0.1f);
    /* One-off partners are scored by their lower bound: far below the heavy one. */
    for (size_t r = 1; r < n; r++)
        assert_true(out[r].score < out[0].score / 100);
    rs_neighbors_destroy(nb);
}

static void test_memory_per_item_is_fixed_under_an_adversarial_stream(void **state)
{
    (void)state;
    adversarial_stream(1.0, 0.0);
    adversarial_stream(0.25, 0.05);
}

/*
 * Admission into a full row when pairs are weighed by order: a new item X
 * following A then B is fresh where its pair counts in full (B's row: B came
 * just before it) and enters it at once; in A's row its pair counts half
 * (gap decay 0.5), so there it is only drawn with probability w / (m + w),
 * m ~ 40 events' weight. With no gap decay it enters both rows at once.
 */
static void fresh_item_after(double back, double gap, float *sim_a, float *sim_b)
{
    const uint32_t A = 0, B = 1, X = 4;
    struct rs_neighbors *nb = rs_neighbors_create(1, 3, 3600.0); /* 2 slots a row */
    int64_t t = 0;
    assert_non_null(nb);
    assert_int_equal(rs_neighbors_set_order(nb, back, gap), RS_OK);
    /* Rows A and B full with two strong partners each (items 2 and 3). */
    for (uint32_t u = 10; u < 90; u++) {
        assert_int_equal(rs_neighbors_add(nb, u, u % 2 ? A : B, t++), RS_OK);
        assert_int_equal(rs_neighbors_add(nb, u, 2 + (u / 2) % 2, t++), RS_OK);
    }
    assert_true(rs_neighbors_sim(nb, A, 2) > 0 && rs_neighbors_sim(nb, A, 3) > 0);
    assert_true(rs_neighbors_sim(nb, B, 2) > 0 && rs_neighbors_sim(nb, B, 3) > 0);
    assert_int_equal(rs_neighbors_add(nb, 999, A, t++), RS_OK);
    assert_int_equal(rs_neighbors_add(nb, 999, B, t++), RS_OK);
    assert_int_equal(rs_neighbors_add(nb, 999, X, t++), RS_OK);
    *sim_a = rs_neighbors_sim(nb, A, X);
    *sim_b = rs_neighbors_sim(nb, B, X);
    rs_neighbors_destroy(nb);
}

static void test_a_new_item_enters_the_full_row_of_the_item_just_before_it(void **state)
{
    float a, b;
    (void)state;
    fresh_item_after(0.25, 0.5, &a, &b);
    assert_true(b > 0);
    assert_true(a == 0);
    fresh_item_after(1.0, 0.0, &a, &b);
    assert_true(b > 0);
    assert_true(a > 0);
}

static void test_changed_items_are_queued_once_until_taken(void **state)
{
    (void)state;
    struct rs_neighbors *nb = rs_neighbors_create(4, 4, 60.0);
    uint32_t out[16];

    assert_int_equal(rs_neighbors_add(nb, 0, 7, 0), RS_OK);
    assert_int_equal(rs_neighbors_changed(nb), 0); /* alone: no pair yet */
    assert_int_equal(rs_neighbors_add(nb, 0, 9, 0), RS_OK);
    assert_int_equal(rs_neighbors_add(nb, 1, 7, 0), RS_OK);
    assert_int_equal(rs_neighbors_add(nb, 1, 9, 0), RS_OK);
    assert_int_equal(rs_neighbors_changed(nb), 2);
    assert_int_equal(rs_neighbors_take_changed(nb, out, 16), 2);
    assert_true((out[0] == 7 && out[1] == 9) || (out[0] == 9 && out[1] == 7));
    assert_int_equal(rs_neighbors_changed(nb), 0);
    /* Growing the item arrays keeps the queue. */
    assert_int_equal(rs_neighbors_add(nb, 0, 3, 0), RS_OK);
    assert_int_equal(rs_neighbors_add(nb, 0, 100000, 0), RS_OK);
    assert_int_equal(rs_neighbors_take_changed(nb, out, 16), 4);
    rs_neighbors_destroy(nb);
}

/* ---- save/load through an in-memory writer and reader ---- */

struct membuf {
    unsigned char *data;
    size_t len, cap, pos;
};

static rs_err_t mem_write(void *ctx, const void *buf, size_t len)
{
    struct membuf *m = ctx;
    if (m->len + len > m->cap) {
        size_t cap = (m->len + len) * 2;
        unsigned char *d = realloc(m->data, cap);
        if (!d) return RS_ENOMEM;
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->len, buf, len);
    m->len += len;
    return RS_OK;
}

static rs_err_t mem_read(void *ctx, void *buf, size_t len)
{
    struct membuf *m = ctx;
    if (m->len - m->pos < len) return RS_ECORRUPT;
    memcpy(buf, m->data + m->pos, len);
    m->pos += len;
    return RS_OK;
}

static uint64_t mem_remaining(void *ctx)
{
    struct membuf *m = ctx;
    return m->len - m->pos;
}

static void test_save_then_load_gives_the_same_state(void **state)
{
    (void)state;
    uint64_t s = 99;
    struct rs_neighbors *a = rs_neighbors_create(3, 4, 10.0), *b;
    struct membuf mb = {0};
    struct rs_writer w = {mem_write, &mb};
    struct rs_reader r = {mem_read, mem_remaining, &mb};
    rs_err_t err;

    for (int e = 0; e < 3000; e++)
        assert_int_equal(rs_neighbors_add(a, (uint32_t)(trng(&s) % 30),
                                          (uint32_t)(trng(&s) % 60), e * 50),
                         RS_OK);
    assert_int_equal(rs_neighbors_save(a, &w), RS_OK);
    b = rs_neighbors_load(&r, &err);
    assert_int_equal(err, RS_OK);
    assert_non_null(b);
    assert_int_equal(mb.pos, mb.len);
    /* Continue both with the same events: they stay identical. */
    for (int e = 3000; e < 3500; e++) {
        uint32_t u = (uint32_t)(trng(&s) % 30), i = (uint32_t)(trng(&s) % 60);
        assert_int_equal(rs_neighbors_add(a, u, i, e * 50), RS_OK);
        assert_int_equal(rs_neighbors_add(b, u, i, e * 50), RS_OK);
    }
    for (uint32_t i = 0; i < 60; i++)
        for (uint32_t j = 0; j < 60; j++)
            assert_true(rs_neighbors_sim(a, i, j) == rs_neighbors_sim(b, i, j));
    for (uint32_t u = 0; u < 30; u++) {
        size_t na, nb_;
        const uint32_t *ra = rs_neighbors_recent(a, u, &na),
                       *rb = rs_neighbors_recent(b, u, &nb_);
        assert_int_equal(na, nb_);
        if (na) assert_memory_equal(ra, rb, na * sizeof(*ra));
    }
    /* A truncated stream is refused. */
    mb.len -= 5;
    mb.pos = 0;
    assert_null(rs_neighbors_load(&r, &err));
    assert_int_equal(err, RS_ECORRUPT);
    free(mb.data);
    rs_neighbors_destroy(a);
    rs_neighbors_destroy(b);
}

static int rec_order(const void *a, const void *b)
{
    const struct rs_rec *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

/* Full rows (more partners than slots, ties included): the top-m list is the
 * first m of every held partner sorted, for every m. */
static void test_top_lists_are_the_best_of_all_held_partners(void **state)
{
    (void)state;
    uint64_t s = 5;
    struct rs_neighbors *nb = rs_neighbors_create(5, 6, 3600.0);
    struct rs_rec all[64], out[8], scratch[RS_NEIGHBORS_SLOTS(5)];
    for (int e = 0; e < 20000; e++)
        assert_int_equal(
            rs_neighbors_add(nb, (uint32_t)(trng(&s) % 50), (uint32_t)(trng(&s) % 40), 0),
            RS_OK);
    for (uint32_t i = 0; i < 40; i++) {
        size_t n = 0;
        for (uint32_t j = 0; j < 40; j++) {
            float v = rs_neighbors_sim(nb, i, j);
            if (v > 0) all[n++] = (struct rs_rec){j, v, RS_NONE};
        }
        assert_true(n <= RS_NEIGHBORS_SLOTS(5));
        qsort(all, n, sizeof(*all), rec_order);
        for (size_t m = 1; m <= 6; m++) {
            size_t got = rs_neighbors_similar(nb, i, m, out);
            size_t want = m < 5 ? m : 5;
            assert_int_equal(got, n < want ? n : want);
            for (size_t r = 0; r < got; r++) {
                assert_int_equal(out[r].item, all[r].item);
                assert_true(out[r].score == all[r].score);
            }
            /* The unsorted variant holds the same set. */
            got = rs_neighbors_top(nb, i, m, out, scratch);
            qsort(out, got, sizeof(*out), rec_order);
            for (size_t r = 0; r < got; r++)
                assert_int_equal(out[r].item, all[r].item);
        }
    }
    rs_neighbors_destroy(nb);
}

static void test_bad_arguments_are_refused(void **state)
{
    (void)state;
    assert_null(rs_neighbors_create(0, 20, 60));
    assert_null(rs_neighbors_create(20, 0, 60));
    assert_null(rs_neighbors_create(20, 20, 0));
    struct rs_neighbors *nb = rs_neighbors_create(2, 2, 60);
    assert_int_equal(rs_neighbors_set_shrink(nb, -1), RS_EINVAL);
    assert_int_equal(rs_neighbors_set_shrink(nb, NAN), RS_EINVAL);
    assert_int_equal(rs_neighbors_set_shrink(nb, 0), RS_OK);
    assert_int_equal(rs_neighbors_set_order(nb, -0.1, 0), RS_EINVAL);
    assert_int_equal(rs_neighbors_set_order(nb, 1.5, 0), RS_EINVAL);
    assert_int_equal(rs_neighbors_set_order(nb, NAN, 0), RS_EINVAL);
    assert_int_equal(rs_neighbors_set_order(nb, 0.5, 1.0), RS_EINVAL);
    assert_int_equal(rs_neighbors_set_order(nb, 0.5, -0.1), RS_EINVAL);
    assert_int_equal(rs_neighbors_set_order(NULL, 0.5, 0.1), RS_EINVAL);
    assert_int_equal(rs_neighbors_set_order(nb, 0, 0.99), RS_OK);
    rs_neighbors_destroy(nb);
    rs_neighbors_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_similarity_matches_brute_force_on_small_streams),
        cmocka_unit_test(
            test_ring_keeps_last_window_distinct_items_and_replays_add_nothing),
        cmocka_unit_test(test_memory_per_item_is_fixed_under_an_adversarial_stream),
        cmocka_unit_test(test_a_new_item_enters_the_full_row_of_the_item_just_before_it),
        cmocka_unit_test(test_changed_items_are_queued_once_until_taken),
        cmocka_unit_test(test_save_then_load_gives_the_same_state),
        cmocka_unit_test(test_top_lists_are_the_best_of_all_held_partners),
        cmocka_unit_test(test_bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
