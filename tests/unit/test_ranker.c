/*
 * test_ranker.c - unit tests of the batched sgemm ranker against the naive
 * dot-product-and-sort references: the same items in the same order on random
 * models and histories, whatever the batch size, with seen items excluded,
 * ties broken towards the lower item index and unknown users left empty; and
 * for the blend of model, neighbour and popularity scores: equal to the
 * naive full sort for random weights, seen items never listed, reasons that
 * point into the user's recent history, popular items for a cold-start
 * user, a brand-new item listed through its neighbours, and the newest
 * recent item's neighbours counting more under recency_decay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recstream/history.h"
#include "recstream/model.h"
#include "recstream/neighbors.h"
#include "recstream/popularity.h"
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
        /* Short lists are kept sorted, longer ones (above 64) in a heap: both. */
        int top_n = trial % 4 == 3 ? 50 + (int)tbelow(&s, 40) : 1 + (int)tbelow(&s, 40);
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

/* ---- the blend ---- */

/* A model, history, neighbours and popularity fed the same random stream. */
struct world {
    struct rs_model *m;
    struct rs_history *h;
    struct rs_neighbors *nb;
    struct rs_popularity *pop;
    struct rs_rank_sources src;
};

static void world_event(struct world *w, uint32_t u, uint32_t i, int64_t ts)
{
    assert_int_equal(rs_model_ensure(w->m, u, i), RS_OK);
    rs_model_update_play(w->m, u, i, 1.0f);
    assert_true(rs_history_add(w->h, u, i) >= 0);
    assert_int_equal(rs_neighbors_add(w->nb, u, i, ts), RS_OK);
    assert_int_equal(rs_popularity_add(w->pop, i, 1.0f, ts), RS_OK);
}

static void world_init(struct world *w, uint64_t *s, uint32_t nu, uint32_t ni, int k,
                       int nk, int window, uint32_t events)
{
    w->m = random_model(s, nu, ni, k);
    w->h = rs_history_create();
    w->nb = rs_neighbors_create(nk, window, 3600.0);
    w->pop = rs_popularity_create(3600.0);
    assert_non_null(w->h);
    assert_non_null(w->nb);
    assert_non_null(w->pop);
    /* Clustered users so that neighbours mean something. */
    for (uint32_t e = 0; e < events; e++) {
        uint32_t u = tbelow(s, nu);
        uint32_t span = ni / 8 + 1;
        uint32_t i = (u % 8) * span + tbelow(s, span);
        if (trng(s) % 4 == 0) i = tbelow(s, ni);
        world_event(w, u, i % ni, (int64_t)e * 1000);
    }
    w->src.model = w->m;
    w->src.history = w->h;
    w->src.neighbors = w->nb;
    w->src.popularity = w->pop;
}

static void world_free(struct world *w)
{
    rs_model_destroy(w->m);
    rs_history_destroy(w->h);
    rs_neighbors_destroy(w->nb);
    rs_popularity_destroy(w->pop);
}

static int in_recent(const struct rs_neighbors *nb, uint32_t u, uint32_t item)
{
    size_t n;
    const uint32_t *r = rs_neighbors_recent(nb, u, &n);
    for (size_t x = 0; x < n; x++)
        if (r[x] == item) return 1;
    return 0;
}

/* The checks every blended list must pass, whatever the weights. */
static void check_blend_list(const struct world *w, uint32_t u, const struct rs_rec *l,
                             size_t n)
{
    for (size_t j = 0; j < n; j++) {
        assert_false(rs_history_contains(w->h, u, l[j].item));
        assert_false(in_recent(w->nb, u, l[j].item));
        if (j > 0) assert_true(l[j - 1].score >= l[j].score);
        if (l[j].why != RS_NONE) {
            /* The reason is a recent item of this user that points to this one. */
            assert_true(in_recent(w->nb, u, l[j].why));
            assert_true(rs_history_contains(w->h, u, l[j].why));
            assert_true(rs_neighbors_sim(w->nb, l[j].why, l[j].item) > 0);
        }
    }
}

static void test_blend_matches_naive_full_sort_on_random_inputs(void **unused)
{
    (void)unused;
    uint64_t s = 4242;
    int compared = 0, swaps = 0, with_reasons = 0;
    for (int trial = 0; trial < 40; trial++) {
        struct world w;
        uint32_t nu = 2 + tbelow(&s, 50);
        /* trial 0: a few item blocks; trial 1: enough blocks to sort the candidates */
        uint32_t ni = trial == 0 ? 9000 : trial == 1 ? 40000 : 2 + tbelow(&s, 900);
        int k = 1 + (int)tbelow(&s, 32), nk = 1 + (int)tbelow(&s, 20),
            window = 1 + (int)tbelow(&s, 20);
        /* trial 4: window * k above RS_RANKER_MAX_CANDIDATES in a catalogue of one
         * block, where candidate lists are built (and no user can have more) */
        if (trial == 4) nk = 60, window = 40;
        world_init(&w, &s, nu, ni, k, nk, window, 20 * nu);
        /* Every weight combination shows up, zeros included. */
        struct rs_rank_weights wt = {
            .mf = (trial & 1) ? 0.0f : (float)tbelow(&s, 100) / 50.0f,
            .neighbor = (trial & 2) ? 0.0f : (float)tbelow(&s, 100) / 50.0f,
            .popularity = (trial & 4) ? 0.0f : (float)tbelow(&s, 100) / 50.0f,
            .recency_decay = (trial & 8) ? (float)tbelow(&s, 99) / 100.0f : 0.0f,
        };
        if (trial % 8 == 7) wt.mf = 1.0f;
        /* Short lists are kept sorted, longer ones (above 64) in a heap: both. */
        int top_n = trial % 4 == 3 ? 50 + (int)tbelow(&s, 40) : 1 + (int)tbelow(&s, 30);
        struct rs_ranker *rk = rs_ranker_create(top_n, 1 + (int)tbelow(&s, 40));
        assert_non_null(rk);
        /* Every user, some twice, and cold-start users the model never saw. */
        size_t n = nu + 6;
        uint32_t *users = malloc(n * sizeof(*users));
        struct rs_rec *out = malloc(n * (size_t)top_n * sizeof(*out));
        struct rs_rec *ref = malloc((size_t)top_n * sizeof(*ref));
        size_t *counts = malloc(n * sizeof(*counts));
        assert_true(users && out && ref && counts);
        for (size_t j = 0; j < n; j++)
            users[j] = j < nu ? (uint32_t)j : (j % 2 ? tbelow(&s, nu) : nu + (uint32_t)j);
        assert_int_equal(rs_ranker_blend(rk, &w.src, &wt, users, n, out, counts), RS_OK);
        for (size_t j = 0; j < n; j++) {
            const struct rs_rec *l = out + j * (size_t)top_n;
            size_t nn = rs_ranker_blend_naive(&w.src, &wt, users[j], top_n, ref);
            assert_int_equal(counts[j], nn);
            check_blend_list(&w, users[j], l, counts[j]);
            for (size_t x = 0; x < nn; x++) {
                if (l[x].item == ref[x].item) {
                    assert_true(close_rel(l[x].score, ref[x].score, 1e-4f));
                    assert_int_equal(l[x].why, ref[x].why);
                } else {
                    /* sgemm and a plain loop may round a near-tie either way. */
                    assert_true(close_rel(l[x].score, ref[x].score, 1e-4f));
                    swaps++;
                }
                with_reasons += l[x].why != RS_NONE;
            }
            compared++;
        }
        free(users);
        free(out);
        free(ref);
        free(counts);
        rs_ranker_destroy(rk);
        world_free(&w);
    }
    print_message("compared %d blended lists, %d near-tie swaps, %d reasons\n", compared,
                  swaps, with_reasons);
    assert_true(compared > 500);
    assert_true(with_reasons > 1000);
    assert_true(swaps <= compared / 50);
}

/*
 * The scoring pass exists per instruction set (AVX-512, AVX2, baseline);
 * every one the CPU runs must give the very same lists, bit for bit, as the
 * baseline: model-only and blended, catalogues smaller than one vector and
 * with a partial last vector, weight sets under which most scores tie
 * (popularity or neighbours alone: many items score exactly 0).
 */
static void rank_with_isa(const char *isa, struct world *w,
                          const struct rs_rank_weights *wt, int top_n, int batch,
                          const uint32_t *users, size_t n, struct rs_rec *out,
                          size_t *counts, struct rs_rec *raw, size_t *raw_counts)
{
    struct rs_ranker *rk = rs_ranker_create(top_n, batch);
    assert_non_null(rk);
    assert_int_equal(rs_ranker_set_isa(rk, isa), 0);
    memset(out, 0, n * (size_t)top_n * sizeof(*out));
    memset(raw, 0, n * (size_t)top_n * sizeof(*raw));
    assert_int_equal(rs_ranker_blend(rk, &w->src, wt, users, n, out, counts), RS_OK);
    assert_int_equal(rs_ranker_rank(rk, w->m, w->h, users, n, raw, raw_counts), RS_OK);
    rs_ranker_destroy(rk);
}

static void test_every_instruction_set_gives_the_same_lists(void **unused)
{
    (void)unused;
    static const char *const isas[] = {"avx512", "avx512-floor", "avx2"};
    uint64_t s = 777;
    int compared = 0, ran = 0, tied = 0;
    struct rs_ranker *probe = rs_ranker_create(1, 1);
    assert_non_null(probe);
    assert_int_equal(rs_ranker_set_isa(probe, "base"), 0);
    assert_int_equal(rs_ranker_set_isa(probe, "no-such-isa"), -1);
    assert_int_equal(rs_ranker_set_isa(NULL, "base"), -1);
    for (int trial = 0; trial < 48; trial++) {
        struct world w;
        uint32_t nu = 2 + tbelow(&s, 30);
        /* 1..40 items: below one vector, and partial last vectors; some larger. */
        uint32_t ni = trial < 32   ? 1 + tbelow(&s, 40)
                      : trial < 46 ? 41 + tbelow(&s, 600)
                                   : 9000 + tbelow(&s, 17);
        world_init(&w, &s, nu, ni, 1 + (int)tbelow(&s, 20), 1 + (int)tbelow(&s, 10),
                   1 + (int)tbelow(&s, 10), 10 * nu);
        struct rs_rank_weights wt = {
            .mf = (trial & 1) ? 0.0f : (float)tbelow(&s, 100) / 50.0f,
            .neighbor = (trial & 2) ? 0.0f : (float)tbelow(&s, 100) / 50.0f,
            .popularity = (trial & 4) ? 0.0f : (float)tbelow(&s, 100) / 50.0f,
            .recency_decay = (trial & 8) ? (float)tbelow(&s, 99) / 100.0f : 0.0f,
        };
        int top_n = trial % 4 == 3 ? 50 + (int)tbelow(&s, 40) : 1 + (int)tbelow(&s, 30);
        int batch = 1 + (int)tbelow(&s, 20);
        size_t n = nu + 3, cells = n * (size_t)top_n;
        uint32_t *users = malloc(n * sizeof(*users));
        struct rs_rec *base = malloc(cells * sizeof(*base)),
                      *got = malloc(cells * sizeof(*got));
        struct rs_rec *base_raw = malloc(cells * sizeof(*base_raw));
        struct rs_rec *got_raw = malloc(cells * sizeof(*got_raw));
        size_t *bc = malloc(n * sizeof(*bc)), *gc = malloc(n * sizeof(*gc));
        size_t *brc = malloc(n * sizeof(*brc)), *grc = malloc(n * sizeof(*grc));
        assert_true(users && base && got && base_raw && got_raw && bc && gc && brc &&
                    grc);
        for (size_t j = 0; j < n; j++)
            users[j] = j < nu ? (uint32_t)j : nu + (uint32_t)j; /* and cold-start users */
        rank_with_isa("base", &w, &wt, top_n, batch, users, n, base, bc, base_raw, brc);
        for (size_t j = 0; j < n; j++) {
            const struct rs_rec *l = base + j * (size_t)top_n;
            check_blend_list(&w, users[j], l, bc[j]);
            for (size_t x = 1; x < bc[j]; x++)
                if (l[x].score == l[x - 1].score) {
                    assert_true(l[x - 1].item < l[x].item); /* ties: lower index first */
                    tied++;
                }
        }
        for (size_t v = 0; v < sizeof(isas) / sizeof(isas[0]); v++) {
            if (rs_ranker_set_isa(probe, isas[v]) != 0) continue; /* not on this CPU */
            rank_with_isa(isas[v], &w, &wt, top_n, batch, users, n, got, gc, got_raw,
                          grc);
            for (size_t j = 0; j < n; j++) {
                assert_int_equal(gc[j], bc[j]);
                assert_int_equal(grc[j], brc[j]);
                assert_memory_equal(got + j * (size_t)top_n, base + j * (size_t)top_n,
                                    bc[j] * sizeof(*got));
                assert_memory_equal(got_raw + j * (size_t)top_n,
                                    base_raw + j * (size_t)top_n, brc[j] * sizeof(*got));
                compared++;
            }
            ran++;
        }
        free(users);
        free(base);
        free(got);
        free(base_raw);
        free(got_raw);
        free(bc);
        free(gc);
        free(brc);
        free(grc);
        world_free(&w);
    }
    rs_ranker_destroy(probe);
    print_message("%d runs on wider instruction sets, %d lists compared, %d ties\n", ran,
                  compared, tied);
    assert_true(tied > 100);
}

static void test_cold_start_user_gets_the_trending_list(void **unused)
{
    (void)unused;
    uint64_t s = 31;
    struct world w;
    world_init(&w, &s, 40, 300, 8, 10, 10, 2000);
    struct rs_rank_weights wt = {1.0f, 1.0f, 0.5f, 0.0f};
    struct rs_ranker *rk = rs_ranker_create(10, 8);
    uint32_t users[] = {1000000}; /* never seen */
    struct rs_rec out[10], top[10];
    size_t counts[1];
    assert_int_equal(rs_ranker_blend(rk, &w.src, &wt, users, 1, out, counts), RS_OK);
    size_t nt = rs_popularity_top(w.pop, rs_popularity_clock(w.pop), 10, top);
    assert_int_equal(counts[0], nt);
    assert_int_equal(nt, 10);
    for (size_t j = 0; j < nt; j++) {
        assert_int_equal(out[j].item, top[j].item);
        assert_int_equal(out[j].why, RS_NONE);
    }
    /* With no popularity weight a stranger has nothing to go on. */
    wt.popularity = 0.0f;
    assert_int_equal(rs_ranker_blend(rk, &w.src, &wt, users, 1, out, counts), RS_OK);
    assert_int_equal(counts[0], 0);
    rs_ranker_destroy(rk);
    world_free(&w);
}

static void test_new_item_enters_lists_through_its_neighbours(void **unused)
{
    (void)unused;
    uint64_t s = 32;
    struct world w;
    world_init(&w, &s, 40, 300, 8, 10, 10, 2000);
    uint32_t fresh = 300, a = 5, me = 7, other = 8;
    /* Another user plays a then the brand-new item; I have played a. */
    world_event(&w, other, a, 3000000);
    world_event(&w, other, fresh, 3000001);
    world_event(&w, me, a, 3000002);
    struct rs_rank_weights wt = {0.0f, 1.0f, 0.0f, 0.0f};
    struct rs_ranker *rk = rs_ranker_create(300, 4);
    struct rs_rec out[300];
    size_t counts[1];
    assert_int_equal(rs_ranker_blend(rk, &w.src, &wt, &me, 1, out, counts), RS_OK);
    int found = 0;
    for (size_t j = 0; j < counts[0]; j++) {
        if (out[j].item == fresh) {
            found = 1;
            assert_true(out[j].score > 0);
            assert_true(in_recent(w.nb, me, out[j].why));
        }
    }
    assert_true(found);
    check_blend_list(&w, me, out, counts[0]);
    rs_ranker_destroy(rk);
    world_free(&w);
}

/* Bitwise equality of two lists. */
static void assert_same_lists(const struct rs_rec *a, size_t na, const struct rs_rec *b,
                              size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t x = 0; x < na; x++) {
        assert_int_equal(a[x].item, b[x].item);
        assert_memory_equal(&a[x].score, &b[x].score, sizeof(float));
        assert_int_equal(a[x].why, b[x].why);
    }
}

/*
 * The ranker caches items' neighbour lists across calls. On random streams,
 * with events (new occurrences, repeats of a recent item, time jumps that
 * rebase the counts) between calls and two neighbour states used in turn with
 * one ranker, its lists must be exactly those of a fresh ranker, which has
 * nothing cached.
 */
static void test_neighbour_cache_never_changes_a_list(void **unused)
{
    (void)unused;
    uint64_t s = 777;
    int compared = 0, with_reasons = 0;
    for (int trial = 0; trial < 12; trial++) {
        struct world w[2];
        uint32_t nu = 5 + tbelow(&s, 40), ni = 20 + tbelow(&s, 400);
        int k = 1 + (int)tbelow(&s, 16), nk = 1 + (int)tbelow(&s, 12);
        int window = 1 + (int)tbelow(&s, 12), top_n = 1 + (int)tbelow(&s, 20);
        uint64_t s2 = s;
        world_init(&w[0], &s, nu, ni, k, nk, window, 10 * nu);
        world_init(&w[1], &s2, nu, ni, k, nk, window, 10 * nu); /* the same state */
        struct rs_rank_weights wt = {(float)tbelow(&s, 3) / 2.0f, 1.0f,
                                     (float)tbelow(&s, 3) / 4.0f, 0.0f};
        int batch = 1 + (int)tbelow(&s, 8);
        struct rs_ranker *kept = rs_ranker_create(top_n, batch);
        struct rs_rec *a = malloc((size_t)nu * (size_t)top_n * sizeof(*a));
        struct rs_rec *b = malloc((size_t)nu * (size_t)top_n * sizeof(*b));
        size_t *ca = malloc(nu * sizeof(*ca)), *cb = malloc(nu * sizeof(*cb));
        uint32_t *users = malloc(nu * sizeof(*users));
        int64_t ts = 100000000;
        assert_true(kept && a && b && ca && cb && users);
        for (int round = 0; round < 60; round++) {
            struct world *cur = &w[round % 3 == 2]; /* the other state now and then */
            size_t n = 1 + tbelow(&s, nu);
            for (size_t j = 0; j < n; j++)
                users[j] = tbelow(&s, nu);
            assert_int_equal(rs_ranker_blend(kept, &cur->src, &wt, users, n, a, ca),
                             RS_OK);
            /* Same batch size: sgemm may round differently for another one. */
            struct rs_ranker *fresh = rs_ranker_create(top_n, batch);
            assert_non_null(fresh);
            assert_int_equal(rs_ranker_blend(fresh, &cur->src, &wt, users, n, b, cb),
                             RS_OK);
            rs_ranker_destroy(fresh);
            for (size_t j = 0; j < n; j++) {
                assert_same_lists(a + j * (size_t)top_n, ca[j], b + j * (size_t)top_n,
                                  cb[j]);
                for (size_t x = 0; x < ca[j]; x++)
                    with_reasons += a[j * (size_t)top_n + x].why != RS_NONE;
                compared++;
            }
            /* A few events into one state: new pairs, a repeat, sometimes a jump. */
            uint32_t events = tbelow(&s, 4);
            for (uint32_t e = 0; e < events; e++) {
                uint32_t u = tbelow(&s, nu), i = tbelow(&s, ni);
                size_t rn;
                const uint32_t *ring = rs_neighbors_recent(cur->nb, u, &rn);
                if (rn > 0 && trng(&s) % 3 == 0) i = ring[tbelow(&s, (uint32_t)rn)];
                ts += trng(&s) % 50 == 0 ? 3600000LL * 40 : 1000; /* 40 half-lives */
                world_event(cur, u, i, ts);
            }
        }
        free(a);
        free(b);
        free(ca);
        free(cb);
        free(users);
        rs_ranker_destroy(kept);
        world_free(&w[0]);
        world_free(&w[1]);
    }
    print_message("compared %d lists, %d reasons\n", compared, with_reasons);
    assert_true(compared > 5000);
    assert_true(with_reasons > 5000);
}

/* Ranks users[0..n) with r into out/counts (top_n entries per user). */
static void blend_all(struct rs_ranker *r, const struct world *w,
                      const struct rs_rank_weights *wt, const uint32_t *users, size_t n,
                      struct rs_rec *out, size_t *counts)
{
    assert_int_equal(rs_ranker_blend(r, &w->src, wt, users, n, out, counts), RS_OK);
}

/* 1 if the lists of the n users are the same, entry for entry. */
static int same_lists(const struct rs_rec *a, const size_t *ca, const struct rs_rec *b,
                      const size_t *cb, size_t n, size_t top_n)
{
    for (size_t j = 0; j < n; j++) {
        if (ca[j] != cb[j]) return 0;
        if (ca[j] && memcmp(a + j * top_n, b + j * top_n, ca[j] * sizeof(*a)) != 0)
            return 0;
    }
    return 1;
}

/*
 * A staleness bound in events: while the neighbours are at most max_events
 * events past a cached list, the list is reused as it was (the observed
 * users' rings and histories do not change: the events come from other
 * users, so the lists may only differ through the similarities); one event
 * more and every list is computed again, exactly as a fresh ranker does.
 * The stale lists must differ from the exact ones in some trials, or the
 * test would show nothing.
 */
static void test_stale_lists_are_reused_within_the_event_bound(void **unused)
{
    (void)unused;
    uint64_t s = 4242;
    int stale_differs = 0, checked = 0;
    struct rs_rank_weights wt = {0.0f, 1.0f, 0.0f, 0.0f};
    for (int trial = 0; trial < 16; trial++) {
        struct world w;
        uint32_t nu = 20 + tbelow(&s, 40), ni = 30 + tbelow(&s, 300), half = nu / 2;
        int top_n = 1 + (int)tbelow(&s, 15), batch = 1 + (int)tbelow(&s, 8);
        uint64_t bound = 2 + tbelow(&s, 6);
        int64_t ts = 10000000;
        world_init(&w, &s, nu, ni, 4, 1 + (int)tbelow(&s, 10), 1 + (int)tbelow(&s, 10),
                   12 * nu);
        struct rs_ranker *kept = rs_ranker_create(top_n, batch);
        size_t cells = (size_t)half * (size_t)top_n;
        struct rs_rec *a0 = malloc(cells * sizeof(*a0)), *a1 = malloc(cells * sizeof(*a1)),
                      *f = malloc(cells * sizeof(*f));
        size_t *c0 = malloc(half * sizeof(*c0)), *c1 = malloc(half * sizeof(*c1)),
               *cf = malloc(half * sizeof(*cf));
        uint32_t *users = malloc(half * sizeof(*users));
        assert_true(kept && a0 && a1 && f && c0 && c1 && cf && users);
        for (uint32_t j = 0; j < half; j++)
            users[j] = j;
        rs_ranker_set_list_staleness(kept, 0, bound);
        blend_all(kept, &w, &wt, users, half, a0, c0);

        /* Up to the bound: the lists computed above, unchanged. */
        uint64_t first = 1 + tbelow(&s, (uint32_t)bound);
        for (uint64_t e = 0; e < first; e++)
            world_event(&w, half + tbelow(&s, nu - half), tbelow(&s, ni), ts += 1000);
        blend_all(kept, &w, &wt, users, half, a1, c1);
        assert_true(same_lists(a0, c0, a1, c1, half, (size_t)top_n));
        struct rs_ranker *fresh = rs_ranker_create(top_n, batch);
        assert_non_null(fresh);
        blend_all(fresh, &w, &wt, users, half, f, cf);
        rs_ranker_destroy(fresh);
        stale_differs += !same_lists(a1, c1, f, cf, half, (size_t)top_n);

        /* Past it: exactly the fresh lists. */
        for (uint64_t e = first; e <= bound; e++)
            world_event(&w, half + tbelow(&s, nu - half), tbelow(&s, ni), ts += 1000);
        blend_all(kept, &w, &wt, users, half, a1, c1);
        fresh = rs_ranker_create(top_n, batch);
        assert_non_null(fresh);
        blend_all(fresh, &w, &wt, users, half, f, cf);
        rs_ranker_destroy(fresh);
        assert_true(same_lists(a1, c1, f, cf, half, (size_t)top_n));
        checked++;

        free(a0);
        free(a1);
        free(f);
        free(c0);
        free(c1);
        free(cf);
        free(users);
        rs_ranker_destroy(kept);
        world_free(&w);
    }
    print_message("%d trials, stale lists differed from exact ones in %d\n", checked,
                  stale_differs);
    assert_true(stale_differs >= 4);
}

/*
 * A staleness bound in time: within it the cached lists are reused however
 * many events came; once they are older than the bound they are computed
 * again; back to the exact rule (0, 0) any change recomputes them.
 */
static void test_stale_lists_expire_with_age(void **unused)
{
    (void)unused;
    uint64_t s = 999;
    struct rs_rank_weights wt = {0.0f, 1.0f, 0.0f, 0.0f};
    struct world w;
    uint32_t nu = 40, ni = 120, half = nu / 2;
    int top_n = 10;
    int64_t ts = 10000000;
    world_init(&w, &s, nu, ni, 4, 8, 8, 12 * nu);
    struct rs_ranker *kept = rs_ranker_create(top_n, 4);
    struct rs_rec a0[20 * 10], a1[20 * 10], f[20 * 10];
    size_t c0[20], c1[20], cf[20];
    uint32_t users[20];
    assert_non_null(kept);
    for (uint32_t j = 0; j < half; j++)
        users[j] = j;

    rs_ranker_set_list_staleness(kept, 3600000, 0); /* an hour */
    blend_all(kept, &w, &wt, users, half, a0, c0);
    for (int e = 0; e < 200; e++)
        world_event(&w, half + tbelow(&s, nu - half), tbelow(&s, ni), ts += 1000);
    blend_all(kept, &w, &wt, users, half, a1, c1);
    assert_true(same_lists(a0, c0, a1, c1, half, (size_t)top_n));
    struct rs_ranker *fresh = rs_ranker_create(top_n, 4);
    assert_non_null(fresh);
    blend_all(fresh, &w, &wt, users, half, f, cf);
    assert_false(same_lists(a1, c1, f, cf, half, (size_t)top_n)); /* 200 events show */

    /* 1 ms, and the lists are older than that. */
    rs_ranker_set_list_staleness(kept, 1, 0);
    struct timespec pause = {0, 5000000};
    nanosleep(&pause, NULL);
    blend_all(kept, &w, &wt, users, half, a1, c1);
    assert_true(same_lists(a1, c1, f, cf, half, (size_t)top_n));

    /* The exact rule: after one event the lists are those computed afresh. */
    rs_ranker_set_list_staleness(kept, 0, 0);
    world_event(&w, half, 0, ts += 1000);
    blend_all(kept, &w, &wt, users, half, a1, c1);
    blend_all(fresh, &w, &wt, users, half, f, cf);
    assert_true(same_lists(a1, c1, f, cf, half, (size_t)top_n));

    rs_ranker_destroy(fresh);
    rs_ranker_destroy(kept);
    world_free(&w);
}

/*
 * recency_decay: the neighbours of the item a user took last count more than
 * those of an older recent item. Item a (older) has a well-supported
 * neighbour x, item b (newest) a weaker neighbour y: summed alike, x ranks
 * above y; with the older item's similarities scaled by 1 - d, y ranks above
 * x, each score is exactly (1 - d)^age * sim and each reason is its own
 * recent item. The naive reference agrees in both cases.
 */
static void test_recency_decay_favours_the_newest_items_neighbours(void **unused)
{
    (void)unused;
    uint64_t s = 34;
    struct world w;
    world_init(&w, &s, 20, 10, 4, 10, 10, 0);
    uint32_t a = 0, b = 1, x = 2, y = 3, me = 0;
    const float d = 0.9f;
    world_event(&w, 10, a, 1000);
    world_event(&w, 10, x, 2000);
    world_event(&w, 11, a, 3000);
    world_event(&w, 11, x, 4000);
    world_event(&w, 12, b, 5000);
    world_event(&w, 12, y, 6000);
    world_event(&w, me, a, 7000);
    world_event(&w, me, b, 8000); /* the newest recent item */
    float sim_ax = rs_neighbors_sim(w.nb, a, x), sim_by = rs_neighbors_sim(w.nb, b, y);
    assert_true(sim_ax > sim_by);              /* plain sums: x first */
    assert_true(sim_ax * (1.0f - d) < sim_by); /* decayed: y first */
    assert_true(rs_neighbors_sim(w.nb, a, y) == 0 && rs_neighbors_sim(w.nb, b, x) == 0);

    struct rs_ranker *rk = rs_ranker_create(10, 1);
    struct rs_rec out[10], ref[10];
    size_t counts[1], nref;
    for (int decayed = 0; decayed <= 1; decayed++) {
        struct rs_rank_weights wt = {0.0f, 1.0f, 0.0f, decayed ? d : 0.0f};
        assert_int_equal(rs_ranker_blend(rk, &w.src, &wt, &me, 1, out, counts), RS_OK);
        nref = rs_ranker_blend_naive(&w.src, &wt, me, 10, ref);
        assert_same_lists(out, counts[0], ref, nref);
        check_blend_list(&w, me, out, counts[0]);
        assert_true(counts[0] >= 2);
        const struct rs_rec *first = &out[0], *second = &out[1];
        assert_int_equal(first->item, decayed ? y : x);
        assert_int_equal(second->item, decayed ? x : y);
        const struct rs_rec *rx = decayed ? second : first,
                            *ry = decayed ? first : second;
        assert_float_equal(rx->score, sim_ax * (decayed ? 1.0f - d : 1.0f), 1e-6);
        assert_float_equal(ry->score, sim_by, 1e-6);
        assert_int_equal(rx->why, a);
        assert_int_equal(ry->why, b);
    }
    rs_ranker_destroy(rk);
    world_free(&w);
}

/*
 * A steep decay over a long window: the factor underflows to 0 far back.
 * The user's only recent item with a neighbour outside their history is 35
 * steps back (0.01^35 is 0 in float), so by neighbours alone nothing is
 * left to rank: the list is empty, as the naive reference's, rather than
 * zero-score items. With no decay the neighbour is listed.
 */
static void test_recency_decay_underflow_adds_nothing(void **unused)
{
    (void)unused;
    uint64_t s = 35;
    struct world w;
    world_init(&w, &s, 8, 100, 4, 10, 60, 0);
    uint32_t me = 0, a = 0, x = 1;
    for (uint32_t other = 1; other <= 4; other++) { /* a and x: well supported */
        world_event(&w, other, a, 1000 * other);
        world_event(&w, other, x, 1000 * other + 1);
    }
    world_event(&w, me, a, 9000);
    for (uint32_t i = 0; i < 35; i++) /* items nobody else took */
        world_event(&w, me, 10 + i, 10000 + (int64_t)i);
    struct rs_ranker *rk = rs_ranker_create(30, 1);
    struct rs_rec out[30], ref[30];
    size_t counts[1];
    for (int decayed = 0; decayed <= 1; decayed++) {
        struct rs_rank_weights wt = {0.0f, 1.0f, 0.0f, decayed ? 0.99f : 0.0f};
        assert_int_equal(rs_ranker_blend(rk, &w.src, &wt, &me, 1, out, counts), RS_OK);
        size_t nref = rs_ranker_blend_naive(&w.src, &wt, me, 30, ref);
        assert_same_lists(out, counts[0], ref, nref);
        if (decayed) {
            assert_int_equal(counts[0], 0);
        } else {
            assert_true(counts[0] > 0);
            assert_int_equal(out[0].item, x);
            assert_int_equal(out[0].why, a);
        }
    }
    rs_ranker_destroy(rk);
    world_free(&w);
}

static void test_blend_refuses_bad_weights(void **unused)
{
    (void)unused;
    uint64_t s = 33;
    struct world w;
    world_init(&w, &s, 4, 20, 4, 4, 4, 50);
    struct rs_ranker *rk = rs_ranker_create(5, 2);
    uint32_t u = 0;
    struct rs_rec out[5];
    size_t counts[1];
    struct rs_rank_weights bad = {-1.0f, 1.0f, 1.0f, 0}, nan_w = {NAN, 0, 0, 0};
    struct rs_rank_weights decay_one = {0, 1.0f, 0, 1.0f},
                           decay_neg = {0, 1.0f, 0, -0.1f}, decay_nan = {0, 1.0f, 0, NAN},
                           decay_ok = {0, 1.0f, 0, 0.99f};
    assert_int_equal(rs_ranker_blend(rk, &w.src, &bad, &u, 1, out, counts), RS_EINVAL);
    assert_int_equal(rs_ranker_blend(rk, &w.src, &nan_w, &u, 1, out, counts), RS_EINVAL);
    assert_int_equal(rs_ranker_blend(rk, &w.src, &decay_one, &u, 1, out, counts),
                     RS_EINVAL);
    assert_int_equal(rs_ranker_blend(rk, &w.src, &decay_neg, &u, 1, out, counts),
                     RS_EINVAL);
    assert_int_equal(rs_ranker_blend(rk, &w.src, &decay_nan, &u, 1, out, counts),
                     RS_EINVAL);
    assert_int_equal(rs_ranker_blend(rk, &w.src, &decay_ok, &u, 1, out, counts), RS_OK);
    rs_ranker_destroy(rk);
    world_free(&w);
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
        cmocka_unit_test(test_blend_matches_naive_full_sort_on_random_inputs),
        cmocka_unit_test(test_every_instruction_set_gives_the_same_lists),
        cmocka_unit_test(test_stale_lists_are_reused_within_the_event_bound),
        cmocka_unit_test(test_stale_lists_expire_with_age),
        cmocka_unit_test(test_cold_start_user_gets_the_trending_list),
        cmocka_unit_test(test_new_item_enters_lists_through_its_neighbours),
        cmocka_unit_test(test_neighbour_cache_never_changes_a_list),
        cmocka_unit_test(test_recency_decay_favours_the_newest_items_neighbours),
        cmocka_unit_test(test_recency_decay_underflow_adds_nothing),
        cmocka_unit_test(test_blend_refuses_bad_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
