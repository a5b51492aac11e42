/*
 * test_ranker.c - unit tests of the batched sgemm ranker against the naive
 * dot-product-and-sort reference: the same items in the same order on random
 * models and histories, whatever the batch size, with seen items excluded,
 * ties broken towards the lower item index and unknown users left empty.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/history.h"
#include "recstream/model.h"
#include "recstream/ranker.h"

static uint64_t trng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t tbelow(uint64_t *s, uint32_t n)
{
    return (uint32_t)(trng(s) % n);
}

static struct rs_model *random_model(uint64_t *s, uint32_t nu, uint32_t ni, int k)
{
    struct rs_model_params p = {
        .factors = k,
        .learning_rate = 0.05f,
        .regularization = 0.02f,
        .init_std = 0.3f,
        .rating_min = 1.0f,
        .rating_max = 5.0f,
        .negatives = 2,
        .seed = trng(s),
        .max_users = 1u << 20,
        .max_items = 1u << 20,
    };
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_ensure(m, nu - 1, ni - 1), RS_OK);
    /* Some training so that biases and factors are not just the prior. */
    for (uint32_t n = 0; n < 4 * (nu + ni); n++) {
        uint32_t u = tbelow(s, nu), i = tbelow(s, ni);
        if (trng(s) & 1)
            rs_model_update_rate(m, u, i, 1.0f + (float)tbelow(s, 5));
        else
            rs_model_update_play(m, u, i, 1.0f + (float)tbelow(s, 10));
    }
    return m;
}

static struct rs_history *random_history(uint64_t *s, uint32_t nu, uint32_t ni)
{
    struct rs_history *h = rs_history_create();
    assert_non_null(h);
    for (uint32_t u = 0; u < nu; u++) {
        uint32_t kind = tbelow(s, 6);
        uint32_t n = kind == 0 ? 0 : kind == 1 ? ni : tbelow(s, ni / 2 + 2);
        for (uint32_t c = 0; c < n; c++)
            assert_true(rs_history_add(h, u, kind == 1 ? c : tbelow(s, ni)) >= 0);
    }
    return h;
}

static int close_rel(float a, float b, float tol)
{
    float scale = fmaxf(1.0f, fmaxf(fabsf(a), fabsf(b)));
    return fabsf(a - b) <= tol * scale;
}

/*
 * Checks a fast list against the naive one: same length, same items in the
 * same order and scores within 1e-4 relative. Where the items differ the two
 * scores must be a float-rounding tie (sgemm and a plain loop may round
 * differently); such swaps are counted in *swaps.
 */
static void check_lists(const struct rs_history *h, uint32_t u, const struct rs_rec *fast,
                        size_t nf, const struct rs_rec *naive, size_t nn, int *swaps)
{
    assert_int_equal(nf, nn);
    for (size_t j = 0; j < nf; j++) {
        assert_false(rs_history_contains(h, u, fast[j].item));
        assert_true(fast[j].why == RS_NONE);
        if (j > 0) assert_true(fast[j - 1].score >= fast[j].score);
        for (size_t x = 0; x < j; x++)
            assert_int_not_equal(fast[x].item, fast[j].item);
        if (fast[j].item == naive[j].item) {
            assert_true(close_rel(fast[j].score, naive[j].score, 1e-4f));
        } else {
            assert_true(close_rel(fast[j].score, naive[j].score, 1e-6f));
            (*swaps)++;
        }
    }
}

static void test_rank_matches_naive_on_random_models(void **unused)
{
    (void)unused;
    uint64_t s = 2024;
    int swaps = 0, compared = 0;
    for (int trial = 0; trial < 40; trial++) {
        uint32_t nu = 1 + tbelow(&s, 60);
        uint32_t ni =
            trial == 0 ? 9000 : 1 + tbelow(&s, 700); /* trial 0: >1 item block */
        int k = 1 + (int)tbelow(&s, 48);
        int top_n = 1 + (int)tbelow(&s, 40);
        int batch = 1 + (int)tbelow(&s, 70);
        struct rs_model *m = random_model(&s, nu, ni, k);
        struct rs_history *h = random_history(&s, nu, ni);
        struct rs_ranker *rk = rs_ranker_create(top_n, batch);
        assert_non_null(rk);

        /* Every user, some twice, and a few the model does not know. */
        size_t n = nu + 10;
        uint32_t *users = malloc(n * sizeof(*users));
        assert_non_null(users);
        for (size_t j = 0; j < n; j++)
            users[j] =
                j < nu ? (uint32_t)j : (j % 3 == 0 ? tbelow(&s, nu) : nu + (uint32_t)j);
        struct rs_rec *out = malloc(n * (size_t)top_n * sizeof(*out));
        struct rs_rec *ref = malloc((size_t)top_n * sizeof(*ref));
        size_t *counts = malloc(n * sizeof(*counts));
        assert_non_null(out);
        assert_non_null(ref);
        assert_non_null(counts);

        assert_int_equal(rs_ranker_rank(rk, m, h, users, n, out, counts), RS_OK);
        for (size_t j = 0; j < n; j++) {
            size_t nn = rs_ranker_rank_naive(m, h, users[j], top_n, ref);
            if (users[j] >= nu) {
                assert_int_equal(counts[j], 0);
                assert_int_equal(nn, 0);
                continue;
            }
            check_lists(h, users[j], out + j * (size_t)top_n, counts[j], ref, nn, &swaps);
            compared++;
        }
        free(users);
        free(out);
        free(ref);
        free(counts);
        rs_ranker_destroy(rk);
        rs_history_destroy(h);
        rs_model_destroy(m);
    }
    print_message("compared %d lists, %d rounding-tie swaps\n", compared, swaps);
    assert_true(compared > 500);
    assert_true(swaps <= 2);
}

static void test_top_n_beyond_catalogue_returns_all_unseen(void **unused)
{
    (void)unused;
    uint64_t s = 11;
    struct rs_model *m = random_model(&s, 4, 20, 6);
    struct rs_history *h = rs_history_create();
    assert_non_null(h);
    const uint32_t seen[] = {0, 3, 7, 8, 19};
    for (size_t j = 0; j < 5; j++)
        assert_int_equal(rs_history_add(h, 2, seen[j]), 1);
    struct rs_ranker *rk = rs_ranker_create(50, 3);
    assert_non_null(rk);
    uint32_t users[] = {2, 1};
    struct rs_rec out[100];
    size_t counts[2];
    assert_int_equal(rs_ranker_rank(rk, m, h, users, 2, out, counts), RS_OK);
    assert_int_equal(counts[0], 15);
    assert_int_equal(counts[1], 20);
    int got[20] = {0};
    for (size_t j = 0; j < counts[0]; j++)
        got[out[j].item]++;
    for (uint32_t i = 0; i < 20; i++) {
        int is_seen = i == 0 || i == 3 || i == 7 || i == 8 || i == 19;
        assert_int_equal(got[i], is_seen ? 0 : 1);
    }
    rs_ranker_destroy(rk);
    rs_history_destroy(h);
    rs_model_destroy(m);
}

static void test_user_with_everything_seen_gets_empty_list(void **unused)
{
    (void)unused;
    uint64_t s = 12;
    struct rs_model *m = random_model(&s, 3, 30, 4);
    struct rs_history *h = rs_history_create();
    assert_non_null(h);
    for (uint32_t i = 0; i < 30; i++)
        assert_int_equal(rs_history_add(h, 1, 29 - i), 1);
    for (uint32_t i = 0; i < 30; i++)
        if (i != 4 && i != 17) assert_int_equal(rs_history_add(h, 0, i), 1);
    struct rs_ranker *rk = rs_ranker_create(10, 8);
    assert_non_null(rk);
    uint32_t users[] = {0, 1};
    struct rs_rec out[20];
    size_t counts[2];
    assert_int_equal(rs_ranker_rank(rk, m, h, users, 2, out, counts), RS_OK);
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[0], 2);
    assert_true((out[0].item == 4 && out[1].item == 17) ||
                (out[0].item == 17 && out[1].item == 4));
    rs_ranker_destroy(rk);
    rs_history_destroy(h);
    rs_model_destroy(m);
}

static void test_batch_sizes_give_same_lists(void **unused)
{
    (void)unused;
    uint64_t s = 77;
    enum { NU = 150, NI = 500, TOP = 25 };
    struct rs_model *m = random_model(&s, NU, NI, 16);
    struct rs_history *h = random_history(&s, NU, NI);
    uint32_t users[NU];
    for (uint32_t u = 0; u < NU; u++)
        users[u] = NU - 1 - u;
    const int batches[] = {1, 7, 64};
    static struct rs_rec out[3][NU * TOP];
    size_t counts[3][NU];
    for (int b = 0; b < 3; b++) {
        struct rs_ranker *rk = rs_ranker_create(TOP, batches[b]);
        assert_non_null(rk);
        assert_int_equal(rs_ranker_rank(rk, m, h, users, NU, out[b], counts[b]), RS_OK);
        /* A second call on the warmed ranker gives the same answer. */
        static struct rs_rec again[NU * TOP];
        size_t c2[NU];
        assert_int_equal(rs_ranker_rank(rk, m, h, users, NU, again, c2), RS_OK);
        assert_memory_equal(c2, counts[b], sizeof(c2));
        assert_memory_equal(again, out[b], sizeof(again));
        rs_ranker_destroy(rk);
    }
    for (int b = 1; b < 3; b++) {
        for (uint32_t j = 0; j < NU; j++) {
            assert_int_equal(counts[b][j], counts[0][j]);
            for (size_t x = 0; x < counts[0][j]; x++) {
                const struct rs_rec *a = &out[0][j * TOP + x], *c = &out[b][j * TOP + x];
                assert_int_equal(a->item, c->item);
                assert_true(close_rel(a->score, c->score, 1e-5f));
            }
        }
    }
    rs_history_destroy(h);
    rs_model_destroy(m);
}

/* A model with all-zero factors and no training scores every item the same. */
static void test_ties_go_to_lower_item_index(void **unused)
{
    (void)unused;
    struct rs_model_params p = {
        .factors = 5,
        .learning_rate = 0.01f,
        .regularization = 0.02f,
        .init_std = 0.0f,
        .rating_min = 1.0f,
        .rating_max = 5.0f,
        .negatives = 0,
        .seed = 1,
        .max_users = 100,
        .max_items = 100,
    };
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_ensure(m, 1, 39), RS_OK);
    struct rs_history *h = rs_history_create();
    assert_non_null(h);
    assert_int_equal(rs_history_add(h, 0, 2), 1);
    struct rs_ranker *rk = rs_ranker_create(5, 4);
    assert_non_null(rk);
    uint32_t users[] = {0, 1};
    struct rs_rec out[10], ref[5];
    size_t counts[2];
    assert_int_equal(rs_ranker_rank(rk, m, h, users, 2, out, counts), RS_OK);
    const uint32_t want0[] = {0, 1, 3, 4, 5}, want1[] = {0, 1, 2, 3, 4};
    assert_int_equal(counts[0], 5);
    assert_int_equal(counts[1], 5);
    assert_int_equal(rs_ranker_rank_naive(m, h, 0, 5, ref), 5);
    for (int j = 0; j < 5; j++) {
        assert_int_equal(out[j].item, want0[j]);
        assert_int_equal(out[5 + j].item, want1[j]);
        assert_int_equal(ref[j].item, want0[j]);
        assert_true(out[j].score == 3.0f);
    }
    rs_ranker_destroy(rk);
    rs_history_destroy(h);
    rs_model_destroy(m);
}

/* Inside the rating scale, a list's score is the model's predicted rating. */
static void test_scores_are_predicted_ratings(void **unused)
{
    (void)unused;
    uint64_t s = 5;
    struct rs_model *m = random_model(&s, 10, 60, 8);
    struct rs_ranker *rk = rs_ranker_create(60, 4);
    assert_non_null(rk);
    uint32_t users[] = {3};
    struct rs_rec out[60];
    size_t counts[1];
    assert_int_equal(rs_ranker_rank(rk, m, NULL, users, 1, out, counts), RS_OK);
    assert_int_equal(counts[0], 60);
    int inside = 0;
    for (int j = 0; j < 60; j++) {
        float pr = rs_model_predict(m, 3, out[j].item);
        if (out[j].score > 1.0f && out[j].score < 5.0f) {
            assert_true(close_rel(out[j].score, pr, 1e-5f));
            inside++;
        } else {
            assert_true(pr == 1.0f || pr == 5.0f);
        }
    }
    assert_true(inside > 0);
    rs_ranker_destroy(rk);
    rs_model_destroy(m);
}

static void test_unknown_users_and_empty_models(void **unused)
{
    (void)unused;
    struct rs_model_params p = {
        .factors = 3,
        .learning_rate = 0.01f,
        .regularization = 0.02f,
        .init_std = 0.1f,
        .rating_min = 1.0f,
        .rating_max = 5.0f,
        .negatives = 0,
        .seed = 1,
        .max_users = 100,
        .max_items = 100,
    };
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    struct rs_ranker *rk = rs_ranker_create(3, 2);
    assert_non_null(rk);
    uint32_t users[] = {0, 5, RS_NONE};
    struct rs_rec out[9], ref[3];
    size_t counts[3] = {7, 7, 7};
    assert_int_equal(rs_ranker_rank(rk, m, NULL, users, 3, out, counts), RS_OK);
    assert_int_equal(counts[0] + counts[1] + counts[2], 0);
    assert_int_equal(rs_ranker_rank_naive(m, NULL, 0, 3, ref), 0);
    /* Users but no items. */
    assert_int_equal(rs_model_ensure(m, 5, RS_NONE), RS_OK);
    assert_int_equal(rs_ranker_rank(rk, m, NULL, users, 3, out, counts), RS_OK);
    assert_int_equal(counts[0] + counts[1] + counts[2], 0);
    /* Items: known users get lists, RS_NONE still does not. */
    assert_int_equal(rs_model_ensure(m, 0, 9), RS_OK);
    assert_int_equal(rs_ranker_rank(rk, m, NULL, users, 3, out, counts), RS_OK);
    assert_int_equal(counts[0], 3);
    assert_int_equal(counts[1], 3);
    assert_int_equal(counts[2], 0);
    assert_int_equal(rs_ranker_rank(rk, m, NULL, users, 0, out, counts), RS_OK);
    rs_ranker_destroy(rk);
    rs_model_destroy(m);
}

static void test_rejects_bad_ranker_params(void **unused)
{
    (void)unused;
    assert_null(rs_ranker_create(0, 4));
    assert_null(rs_ranker_create(10, 0));
    assert_null(rs_ranker_create(-1, -1));
    rs_ranker_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_matches_naive_on_random_models),
        cmocka_unit_test(test_top_n_beyond_catalogue_returns_all_unseen),
        cmocka_unit_test(test_user_with_everything_seen_gets_empty_list),
        cmocka_unit_test(test_batch_sizes_give_same_lists),
        cmocka_unit_test(test_ties_go_to_lower_item_index),
        cmocka_unit_test(test_scores_are_predicted_ratings),
        cmocka_unit_test(test_unknown_users_and_empty_models),
        cmocka_unit_test(test_rejects_bad_ranker_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
