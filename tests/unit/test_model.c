/*
 * test_model.c - unit tests of the online MF model: that SGD on ratings
 * recovers a planted low-rank matrix and item means, follows the Surprise
 * update order exactly, is bit-for-bit deterministic for a seed, rejects bad
 * ratings without touching its state, grows without losing rows, stops at
 * its bounds, and that plays pull the played item up; the adaptive rates of
 * the rating step (count-based bias rate, per-row AdaGrad) step as specified,
 * and their per-row state survives a snapshot (and a version-2 snapshot loads
 * with them off).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memio.h"
#include "recstream/model.h"

static struct rs_model_params default_params(void)
{
    struct rs_model_params p = {
        .factors = 8,
        .learning_rate = 0.01f,
        .regularization = 0.02f,
        .init_std = 0.1f,
        .rating_min = 1.0f,
        .rating_max = 5.0f,
        .negatives = 2,
        .seed = 42,
        .max_users = 100000,
        .max_items = 100000,
    };
    return p;
}

/* A small test-local PRNG (splitmix64) for data generation. */
static uint64_t trng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double tunit(uint64_t *s)
{
    return (double)(trng(s) >> 11) / 9007199254740992.0;
}

static double tnormal(uint64_t *s)
{
    double u1 = tunit(s) + 1e-12, u2 = tunit(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* A copy of every parameter of the model, for before/after comparisons. */
struct state {
    float *P, *Q, *bu, *bi;
    size_t nu, ni, k;
    float mu;
    uint64_t events;
};

static void state_take(const struct rs_model *m, struct state *st)
{
    st->k = (size_t)rs_model_factors(m);
    st->nu = rs_model_users(m);
    st->ni = rs_model_items(m);
    st->P = malloc(st->nu * st->k * sizeof(float) + 1);
    st->bu = malloc(st->nu * sizeof(float) + 1);
    st->Q = malloc(st->ni * st->k * sizeof(float) + 1);
    st->bi = malloc(st->ni * sizeof(float) + 1);
    assert_non_null(st->P);
    assert_non_null(st->bu);
    assert_non_null(st->Q);
    assert_non_null(st->bi);
    for (uint32_t u = 0; u < st->nu; u++) {
        memcpy(st->P + u * st->k, rs_model_user_factors(m, u), st->k * sizeof(float));
        st->bu[u] = rs_model_user_bias(m, u);
    }
    memcpy(st->Q, rs_model_item_matrix(m), st->ni * st->k * sizeof(float));
    memcpy(st->bi, rs_model_item_biases(m), st->ni * sizeof(float));
    st->mu = rs_model_global_mean(m);
    st->events = rs_model_events(m);
}

static void state_free(struct state *st)
{
    free(st->P);
    free(st->Q);
    free(st->bu);
    free(st->bi);
}

static void assert_state_equal(const struct state *a, const struct state *b)
{
    assert_int_equal(a->k, b->k);
    assert_int_equal(a->nu, b->nu);
    assert_int_equal(a->ni, b->ni);
    assert_memory_equal(a->P, b->P, a->nu * a->k * sizeof(float));
    assert_memory_equal(a->Q, b->Q, a->ni * a->k * sizeof(float));
    assert_memory_equal(a->bu, b->bu, a->nu * sizeof(float));
    assert_memory_equal(a->bi, b->bi, a->ni * sizeof(float));
    assert_memory_equal(&a->mu, &b->mu, sizeof(float));
    assert_true(a->events == b->events);
}

static void test_rejects_bad_params(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.factors = 0;
    assert_null(rs_model_create(&p));
    p = default_params();
    p.rating_min = 5.0f;
    p.rating_max = 1.0f;
    assert_null(rs_model_create(&p));
    p = default_params();
    p.learning_rate = NAN;
    assert_null(rs_model_create(&p));
    p = default_params();
    p.init_std = -1.0f;
    assert_null(rs_model_create(&p));
    p = default_params();
    p.negatives = -1;
    assert_null(rs_model_create(&p));
    p = default_params();
    p.bias_prior = -1.0f;
    assert_null(rs_model_create(&p));
    p.bias_prior = NAN;
    assert_null(rs_model_create(&p));
    p = default_params();
    p.adagrad_rate = 1.5f;
    assert_null(rs_model_create(&p));
    p.adagrad_rate = -0.1f;
    assert_null(rs_model_create(&p));
    assert_null(rs_model_create(NULL));
    rs_model_destroy(NULL);
}

/*
 * Planted rank-3 matrix plus biases, 200 x 100, 60% used for training in a
 * shuffled order each epoch; the held-out RMSE must be well under the RMSE of
 * predicting the mean.
 */
static void test_recovers_planted_low_rank_matrix(void **unused)
{
    (void)unused;
    enum { NU = 200, NI = 100, R = 3, EPOCHS = 60 };
    uint64_t s = 7;
    static float U[NU][R], V[NI][R], bu[NU], bi[NI], full[NU][NI];
    for (int u = 0; u < NU; u++) {
        bu[u] = (float)(0.3 * tnormal(&s));
        for (int r = 0; r < R; r++)
            U[u][r] = (float)(0.6 * tnormal(&s));
    }
    for (int i = 0; i < NI; i++) {
        bi[i] = (float)(0.4 * tnormal(&s));
        for (int r = 0; r < R; r++)
            V[i][r] = (float)(0.6 * tnormal(&s));
    }
    for (int u = 0; u < NU; u++)
        for (int i = 0; i < NI; i++) {
            float v = 3.0f + bu[u] + bi[i];
            for (int r = 0; r < R; r++)
                v += U[u][r] * V[i][r];
            full[u][i] = v < 1.0f ? 1.0f : v > 5.0f ? 5.0f : v;
        }

    /* Split 60/40. */
    uint32_t *train = malloc(sizeof(uint32_t) * NU * NI);
    uint32_t *test = malloc(sizeof(uint32_t) * NU * NI);
    assert_non_null(train);
    assert_non_null(test);
    size_t ntr = 0, nte = 0;
    double sum = 0.0;
    for (uint32_t c = 0; c < NU * NI; c++) {
        if (tunit(&s) < 0.6) {
            train[ntr++] = c;
            sum += full[c / NI][c % NI];
        } else {
            test[nte++] = c;
        }
    }
    double mean = sum / (double)ntr;

    struct rs_model_params p = default_params();
    p.factors = 5;
    p.learning_rate = 0.02f;
    p.regularization = 0.02f;
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_ensure(m, NU - 1, NI - 1), RS_OK);

    for (int e = 0; e < EPOCHS; e++) {
        for (size_t a = ntr - 1; a > 0; a--) { /* Fisher-Yates */
            size_t b = (size_t)(trng(&s) % (a + 1));
            uint32_t t = train[a];
            train[a] = train[b];
            train[b] = t;
        }
        for (size_t a = 0; a < ntr; a++) {
            uint32_t c = train[a];
            float err = rs_model_update_rate(m, c / NI, c % NI, full[c / NI][c % NI]);
            assert_false(isnan(err));
        }
    }

    double se = 0.0, se_base = 0.0;
    for (size_t a = 0; a < nte; a++) {
        uint32_t c = test[a];
        double y = full[c / NI][c % NI];
        double d = rs_model_predict(m, c / NI, c % NI) - y;
        se += d * d;
        se_base += (mean - y) * (mean - y);
    }
    double rmse = sqrt(se / (double)nte), base = sqrt(se_base / (double)nte);
    print_message("planted: held-out RMSE %.4f, mean baseline %.4f\n", rmse, base);
    assert_true(base > 0.5);
    assert_true(rmse < 0.5 * base);
    assert_true(fabs(rs_model_global_mean(m) - mean) < 1e-3);
    assert_true(rs_model_events(m) == (uint64_t)ntr * EPOCHS);

    free(train);
    free(test);
    rs_model_destroy(m);
}

/* No factors to speak of: the item biases alone must order items by mean. */
static void test_biases_learn_item_means(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.init_std = 0.0f;
    p.learning_rate = 0.02f;
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_ensure(m, 49, 2), RS_OK);
    for (int e = 0; e < 20; e++)
        for (uint32_t u = 0; u < 50; u++) {
            rs_model_update_rate(m, u, 0, 5.0f);
            rs_model_update_rate(m, u, 1, 1.0f);
            rs_model_update_rate(m, u, 2, 3.0f);
        }
    /* Factors started at 0 and stay there. */
    const float *Q = rs_model_item_matrix(m);
    for (int f = 0; f < 3 * p.factors; f++)
        assert_true(Q[f] == 0.0f);
    assert_true(fabsf(rs_model_global_mean(m) - 3.0f) < 1e-4f);
    assert_true(rs_model_predict(m, 0, 0) > 4.5f);
    assert_true(rs_model_predict(m, 0, 1) < 1.5f);
    assert_true(fabsf(rs_model_predict(m, 0, 2) - 3.0f) < 0.2f);
    /* A user the model does not know gets mu + b_i. */
    assert_true(rs_model_predict(m, 1000, 0) > rs_model_predict(m, 1000, 1));
    /* An item it does not know gets mu + b_u. */
    assert_true(fabsf(rs_model_predict(m, 0, 1000) - 3.0f) < 0.2f);
    rs_model_destroy(m);
}

/*
 * With k = 1, init_std 0, reg 0, lr 1 every step can be worked by hand:
 * (0,0,5): mu=5, e=0.  (0,1,1): mu=3, e=-2, bu=-2, bi1=-2.
 * (0,0,5): mu=11/3, pred=5/3, e=10/3, bu=4/3, bi0=10/3.
 */
static void test_rate_steps_by_hand_and_clamps(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.factors = 1;
    p.init_std = 0.0f;
    p.regularization = 0.0f;
    p.learning_rate = 1.0f;
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_true(rs_model_predict(m, 0, 0) == 3.0f); /* the middle of the scale */
    assert_int_equal(rs_model_ensure(m, 0, 1), RS_OK);
    assert_true(rs_model_update_rate(m, 0, 0, 5.0f) == 0.0f);
    assert_true(rs_model_update_rate(m, 0, 1, 1.0f) == -2.0f);
    assert_true(fabsf(rs_model_update_rate(m, 0, 0, 5.0f) - 10.0f / 3.0f) < 1e-5f);
    assert_true(fabsf(rs_model_global_mean(m) - 11.0f / 3.0f) < 1e-5f);
    assert_true(fabsf(rs_model_user_bias(m, 0) - 4.0f / 3.0f) < 1e-5f);
    assert_true(fabsf(rs_model_item_biases(m)[0] - 10.0f / 3.0f) < 1e-5f);
    assert_true(fabsf(rs_model_item_biases(m)[1] + 2.0f) < 1e-5f);
    /* raw(0,0) = 11/3 + 4/3 + 10/3 = 8.33: clamped. raw(0,1) = 3. */
    assert_true(rs_model_predict(m, 0, 0) == 5.0f);
    assert_true(fabsf(rs_model_predict(m, 0, 1) - 3.0f) < 1e-5f);
    /* Unknown user: mu + b_0 = 7, clamped; unknown both: mu. */
    assert_true(rs_model_predict(m, 9, 0) == 5.0f);
    assert_true(fabsf(rs_model_predict(m, 9, 9) - 11.0f / 3.0f) < 1e-5f);
    assert_true(rs_model_events(m) == 3);
    rs_model_destroy(m);
}

/* One step with random factors, recomputed here in the Surprise order. */
static void test_rate_step_follows_surprise_order(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.init_std = 0.5f;
    p.learning_rate = 0.05f;
    p.regularization = 0.1f;
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_ensure(m, 3, 5), RS_OK);
    rs_model_update_rate(m, 3, 1, 2.0f); /* gives user 3 and item 5 biases */
    rs_model_update_rate(m, 2, 5, 4.0f);
    assert_true(rs_model_user_bias(m, 3) != 0.0f);
    assert_true(rs_model_item_biases(m)[5] != 0.0f);

    int k = p.factors;
    float pu[64], qi[64];
    memcpy(pu, rs_model_user_factors(m, 3), (size_t)k * sizeof(float));
    memcpy(qi, rs_model_item_matrix(m) + 5 * k, (size_t)k * sizeof(float));
    float bu = rs_model_user_bias(m, 3), bi = rs_model_item_biases(m)[5];

    float e = rs_model_update_rate(m, 3, 5, 4.5f);
    float mu = rs_model_global_mean(m);
    assert_true(fabsf(mu - 3.5f) < 1e-6f);
    float d = 0.0f;
    for (int f = 0; f < k; f++)
        d += pu[f] * qi[f];
    float ee = 4.5f - (mu + bu + bi + d);
    assert_true(fabsf(e - ee) < 1e-5f);
    float lr = p.learning_rate, reg = p.regularization;
    assert_true(fabsf(rs_model_user_bias(m, 3) - (bu + lr * (ee - reg * bu))) < 1e-5f);
    assert_true(fabsf(rs_model_item_biases(m)[5] - (bi + lr * (ee - reg * bi))) < 1e-5f);
    for (int f = 0; f < k; f++) {
        float np = pu[f] + lr * (ee * qi[f] - reg * pu[f]);
        float nq = qi[f] + lr * (ee * pu[f] - reg * qi[f]);
        assert_true(fabsf(rs_model_user_factors(m, 3)[f] - np) < 1e-5f);
        assert_true(fabsf(rs_model_item_matrix(m)[5 * k + f] - nq) < 1e-5f);
    }
    rs_model_destroy(m);
}

/*
 * bias_prior 4, learning_rate 0.22, no factors, no regularisation. A row's bias
 * rate is max(0.22, 1/(n + 4)) after n ratings: 0.25 for its first, then 0.22.
 * (0,0,5): mu=5, e=0.  (1,0,1): mu=3, e=-2, b_u1 = -2*0.25, b_i0 = -2*0.22.
 * (2,0,3): mu=3, pred=2.56, e=0.44, b_u2 = 0.44*0.25, b_i0 = -0.44 + 0.22*0.44.
 * User 1 evicted and back: its next rating is its first again.
 */
static void test_bias_prior_rates_by_hand(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.factors = 1;
    p.init_std = 0.0f;
    p.regularization = 0.0f;
    p.learning_rate = 0.22f;
    p.bias_prior = 4.0f;
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_ensure(m, 2, 0), RS_OK);
    assert_true(rs_model_update_rate(m, 0, 0, 5.0f) == 0.0f);
    assert_true(rs_model_update_rate(m, 1, 0, 1.0f) == -2.0f);
    assert_true(fabsf(rs_model_user_bias(m, 1) + 0.5f) < 1e-6f);
    assert_true(fabsf(rs_model_item_biases(m)[0] + 0.44f) < 1e-6f);
    assert_true(fabsf(rs_model_update_rate(m, 2, 0, 3.0f) - 0.44f) < 1e-6f);
    assert_true(fabsf(rs_model_user_bias(m, 2) - 0.11f) < 1e-6f);
    assert_true(fabsf(rs_model_item_biases(m)[0] - (-0.44f + 0.22f * 0.44f)) < 1e-6f);

    rs_model_forget_user(m, 1);
    assert_int_equal(rs_model_ensure(m, 1, 0), RS_OK);
    float bi = rs_model_item_biases(m)[0];
    float e = rs_model_update_rate(m, 1, 0, 2.0f);
    assert_true(fabsf(e - (2.0f - (rs_model_global_mean(m) + bi))) < 1e-6f);
    assert_true(fabsf(rs_model_user_bias(m, 1) - 0.25f * e) < 1e-6f);

    /* bias_prior 0: learning_rate from the first rating on. */
    p.bias_prior = 0.0f;
    struct rs_model *c = rs_model_create(&p);
    assert_non_null(c);
    assert_int_equal(rs_model_ensure(c, 1, 0), RS_OK);
    rs_model_update_rate(c, 0, 0, 5.0f);
    rs_model_update_rate(c, 1, 0, 1.0f);
    assert_true(fabsf(rs_model_user_bias(c, 1) + 0.44f) < 1e-6f);
    rs_model_destroy(c);
    rs_model_destroy(m);
}

/*
 * AdaGrad, one accumulator per row: each step moves a row by
 * adagrad_rate * g / sqrt(G + 1e-4), g its gradient (e*q - reg*p for a user)
 * and G the sum of mean(g^2) over the row's steps so far, this one included.
 * Two steps on one pair, recomputed here. Plays keep learning_rate.
 */
static void test_adagrad_steps_by_hand(void **unused)
{
    (void)unused;
    enum { K = 8 };
    struct rs_model_params p = default_params();
    p.factors = K;
    p.init_std = 0.5f;
    p.regularization = 0.1f;
    p.adagrad_rate = 0.2f;
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_ensure(m, 0, 0), RS_OK);
    float reg = p.regularization, eta = p.adagrad_rate;
    double gp_sum = 0.0, gq_sum = 0.0;
    for (int step = 0; step < 2; step++) {
        float pu[K], qi[K];
        memcpy(pu, rs_model_user_factors(m, 0), sizeof(pu));
        memcpy(qi, rs_model_item_matrix(m), sizeof(qi));
        float e = rs_model_update_rate(m, 0, 0, step ? 1.0f : 4.5f);
        double mp = 0.0, mq = 0.0;
        for (int f = 0; f < K; f++) {
            double gp = e * qi[f] - reg * pu[f], gq = e * pu[f] - reg * qi[f];
            mp += gp * gp / K;
            mq += gq * gq / K;
        }
        gp_sum += mp;
        gq_sum += mq;
        double lp = eta / sqrt(gp_sum + 1e-4), lq = eta / sqrt(gq_sum + 1e-4);
        for (int f = 0; f < K; f++) {
            double np = pu[f] + lp * (e * qi[f] - reg * pu[f]);
            double nq = qi[f] + lq * (e * pu[f] - reg * qi[f]);
            assert_true(fabs(rs_model_user_factors(m, 0)[f] - np) < 1e-5);
            assert_true(fabs(rs_model_item_matrix(m)[f] - nq) < 1e-5);
        }
        /* the first step is a full-size one: about eta per factor in RMS */
        if (step == 0) {
            double d = 0.0;
            for (int f = 0; f < K; f++)
                d += (rs_model_user_factors(m, 0)[f] - pu[f]) *
                     (rs_model_user_factors(m, 0)[f] - pu[f]) / K;
            assert_true(sqrt(d) > 0.9 * eta && sqrt(d) <= eta * 1.0001);
        }
    }
    /* A play with no negatives steps at learning_rate (0.01), not AdaGrad's rate. */
    p.negatives = 0;
    struct rs_model *c = rs_model_create(&p);
    assert_non_null(c);
    assert_int_equal(rs_model_ensure(c, 0, 0), RS_OK);
    float pu[K], qi[K];
    memcpy(pu, rs_model_user_factors(c, 0), sizeof(pu));
    memcpy(qi, rs_model_item_matrix(c), sizeof(qi));
    float d = 0.0f;
    for (int f = 0; f < K; f++)
        d += pu[f] * qi[f];
    float e = 1.0f - d, lr = p.learning_rate;
    rs_model_update_play(c, 0, 0, 1.0f);
    for (int f = 0; f < K; f++)
        assert_true(fabsf(rs_model_user_factors(c, 0)[f] -
                          (pu[f] + lr * (e * qi[f] - reg * pu[f]))) < 1e-5f);
    rs_model_destroy(c);
    rs_model_destroy(m);
}

static void feed(struct rs_model *m, uint64_t seed)
{
    uint64_t s = seed;
    for (int n = 0; n < 3000; n++) {
        uint32_t u = (uint32_t)(trng(&s) % 60), i = (uint32_t)(trng(&s) % 90);
        assert_int_equal(rs_model_ensure(m, u, i), RS_OK);
        if (trng(&s) & 1)
            rs_model_update_rate(m, u, i, 1.0f + (float)(trng(&s) % 9) * 0.5f);
        else
            rs_model_update_play(m, u, i, 1.0f + (float)(trng(&s) % 100));
    }
}

static void same_seed_same_bits(struct rs_model_params p)
{
    struct rs_model *a = rs_model_create(&p), *b = rs_model_create(&p);
    assert_non_null(a);
    assert_non_null(b);
    feed(a, 99);
    feed(b, 99);
    struct state sa, sb;
    state_take(a, &sa);
    state_take(b, &sb);
    assert_true(sa.ni > 0 && sa.nu > 0);
    assert_state_equal(&sa, &sb);

    /* A different seed must actually change the factors. */
    p.seed = 43;
    struct rs_model *c = rs_model_create(&p);
    assert_non_null(c);
    feed(c, 99);
    assert_memory_not_equal(rs_model_item_matrix(a), rs_model_item_matrix(c),
                            sa.ni * sa.k * sizeof(float));
    state_free(&sa);
    state_free(&sb);
    rs_model_destroy(a);
    rs_model_destroy(b);
    rs_model_destroy(c);
}

static void test_same_seed_and_events_give_identical_bits(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    same_seed_same_bits(p);
    p.bias_prior = 5.0f;
    p.adagrad_rate = 0.12f;
    p.replay_ratio = 1.5f;
    p.replay_size = 500;
    same_seed_same_bits(p);
}

static void test_rejects_nan_and_off_scale_ratings(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    feed(m, 5);
    struct state before, after;
    state_take(m, &before);
    const float bad[] = {NAN, INFINITY, -INFINITY, 5.0001f, 0.999f, -3.0f, 100.0f};
    for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
        assert_true(isnan(rs_model_update_rate(m, 1, 1, bad[j])));
    /* Out-of-range indices are refused too, and so are bad play weights. */
    assert_true(isnan(rs_model_update_rate(m, 100000, 1, 3.0f)));
    assert_true(isnan(rs_model_update_rate(m, 1, 100000, 3.0f)));
    rs_model_update_play(m, 1, 1, NAN);
    rs_model_update_play(m, 1, 1, INFINITY);
    rs_model_update_play(m, 1, 1, 0.0f);
    rs_model_update_play(m, 1, 1, -2.0f);
    rs_model_update_play(m, 1, 100000, 1.0f);
    state_take(m, &after);
    assert_state_equal(&before, &after);
    /* The edges of the scale are valid. */
    assert_false(isnan(rs_model_update_rate(m, 1, 1, 1.0f)));
    assert_false(isnan(rs_model_update_rate(m, 1, 1, 5.0f)));
    assert_true(rs_model_events(m) == before.events + 2);
    state_free(&before);
    state_free(&after);
    rs_model_destroy(m);
}

static void test_ensure_grows_and_keeps_rows(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_users(m), 0);
    assert_int_equal(rs_model_items(m), 0);
    assert_null(rs_model_user_factors(m, 0));
    assert_int_equal(rs_model_ensure(m, 2, 3), RS_OK);
    assert_int_equal(rs_model_users(m), 3);
    assert_int_equal(rs_model_items(m), 4);
    rs_model_update_rate(m, 2, 3, 4.0f);
    struct state before;
    state_take(m, &before);

    assert_int_equal(rs_model_ensure(m, 5000, 7000), RS_OK);
    assert_int_equal(rs_model_users(m), 5001);
    assert_int_equal(rs_model_items(m), 7001);
    size_t k = before.k;
    for (uint32_t u = 0; u < 3; u++)
        assert_memory_equal(rs_model_user_factors(m, u), before.P + u * k,
                            k * sizeof(float));
    assert_memory_equal(rs_model_item_matrix(m), before.Q, 4 * k * sizeof(float));
    assert_memory_equal(rs_model_item_biases(m), before.bi, 4 * sizeof(float));
    assert_true(rs_model_user_bias(m, 2) == before.bu[2]);
    /* New rows are drawn with init_std 0.1: not all zero, not huge, biases 0. */
    const float *q = rs_model_item_matrix(m) + (size_t)7000 * k;
    double ss = 0.0;
    for (size_t f = 0; f < k; f++)
        ss += (double)q[f] * q[f];
    assert_true(ss > 0.0 && ss < 1.0);
    assert_true(rs_model_item_biases(m)[7000] == 0.0f);
    assert_true(rs_model_user_bias(m, 5000) == 0.0f);
    /* Shrinking is not a thing: smaller indices change nothing. */
    assert_int_equal(rs_model_ensure(m, 1, 1), RS_OK);
    assert_int_equal(rs_model_users(m), 5001);
    /* The sample std of all new item factors is close to init_std. */
    const float *Q = rs_model_item_matrix(m);
    double s2 = 0.0;
    size_t cnt = 0;
    for (size_t x = 4 * k; x < 7001 * k; x++, cnt++)
        s2 += (double)Q[x] * Q[x];
    assert_true(fabs(sqrt(s2 / (double)cnt) - 0.1) < 0.005);
    state_free(&before);
    rs_model_destroy(m);
}

static void test_ensure_stops_at_bounds(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.max_users = 10;
    p.max_items = 20;
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_ensure(m, 9, 19), RS_OK);
    assert_int_equal(rs_model_ensure(m, 10, 0), RS_EFULL);
    assert_int_equal(rs_model_ensure(m, 0, 20), RS_EFULL);
    assert_int_equal(rs_model_ensure(m, 10, 20), RS_EFULL);
    assert_int_equal(rs_model_users(m), 10);
    assert_int_equal(rs_model_items(m), 20);
    /* A refused ensure grows neither side. */
    struct rs_model *n = rs_model_create(&p);
    assert_non_null(n);
    assert_int_equal(rs_model_ensure(n, 3, 25), RS_EFULL);
    assert_int_equal(rs_model_users(n), 0);
    assert_int_equal(rs_model_items(n), 0);
    /* RS_NONE grows one side only. */
    assert_int_equal(rs_model_ensure(n, RS_NONE, 4), RS_OK);
    assert_int_equal(rs_model_users(n), 0);
    assert_int_equal(rs_model_items(n), 5);
    rs_model_destroy(m);
    rs_model_destroy(n);
}

static float raw_dot(const struct rs_model *m, uint32_t u, uint32_t i)
{
    int k = rs_model_factors(m);
    const float *p = rs_model_user_factors(m, u);
    const float *q = rs_model_item_matrix(m) + (size_t)i * (size_t)k;
    float d = 0.0f;
    for (int f = 0; f < k; f++)
        d += p[f] * q[f];
    return d;
}

static void test_plays_raise_played_items(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.learning_rate = 0.05f;
    p.negatives = 3;
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_ensure(m, 9, 49), RS_OK);
    float before = rs_model_score(m, 0, 7);
    for (int n = 0; n < 100; n++) {
        rs_model_update_play(m, 0, 7, 3.0f);
        rs_model_update_play(m, 0, 11, 1.0f);
    }
    assert_true(rs_model_score(m, 0, 7) > before + 0.5f);
    for (uint32_t i = 0; i < 50; i++) {
        if (i == 7 || i == 11) continue;
        assert_true(rs_model_score(m, 0, 7) > rs_model_score(m, 0, i));
        assert_true(rs_model_score(m, 0, 11) > rs_model_score(m, 0, i));
    }
    /* The played items' biases rise (a popularity prior); mu and b_u are rating-only. */
    assert_true(rs_model_item_biases(m)[7] > 0.0f);
    assert_true(rs_model_user_bias(m, 0) == 0.0f);
    assert_true(rs_model_global_mean(m) == 3.0f);
    assert_true(rs_model_events(m) == 200);
    rs_model_destroy(m);
}

/* Sampled negatives move unplayed items' rows, and pull their scores to 0. */
static void test_negatives_push_unplayed_items_toward_zero(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.init_std = 0.5f;
    p.learning_rate = 0.05f;
    p.negatives = 0;
    struct rs_model *a = rs_model_create(&p);
    p.negatives = 4;
    struct rs_model *b = rs_model_create(&p);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(rs_model_ensure(a, 0, 29), RS_OK);
    assert_int_equal(rs_model_ensure(b, 0, 29), RS_OK);
    struct state init;
    state_take(a, &init);
    for (int n = 0; n < 200; n++) {
        rs_model_update_play(a, 0, 0, 1.0f);
        rs_model_update_play(b, 0, 0, 1.0f);
    }
    size_t k = init.k;
    int moved_a = 0, moved_b = 0;
    double ss_a = 0.0, ss_b = 0.0;
    for (uint32_t i = 1; i < 30; i++) {
        moved_a += memcmp(rs_model_item_matrix(a) + i * k, init.Q + i * k,
                          k * sizeof(float)) != 0;
        moved_b += memcmp(rs_model_item_matrix(b) + i * k, init.Q + i * k,
                          k * sizeof(float)) != 0;
        ss_a += raw_dot(a, 0, i) * raw_dot(a, 0, i);
        ss_b += raw_dot(b, 0, i) * raw_dot(b, 0, i);
    }
    assert_int_equal(moved_a, 0);
    assert_true(moved_b > 20);
    assert_true(ss_b < 0.5 * ss_a);
    state_free(&init);
    rs_model_destroy(a);
    rs_model_destroy(b);
}

/* With one item every draw hits the played item: it must not get target 0. */
static void test_negative_never_hits_played_item(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.negatives = 0;
    struct rs_model *a = rs_model_create(&p);
    p.negatives = 5;
    struct rs_model *b = rs_model_create(&p);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(rs_model_ensure(a, 2, 0), RS_OK);
    assert_int_equal(rs_model_ensure(b, 2, 0), RS_OK);
    for (int n = 0; n < 50; n++) {
        rs_model_update_play(a, (uint32_t)n % 3, 0, 2.0f);
        rs_model_update_play(b, (uint32_t)n % 3, 0, 2.0f);
    }
    struct state sa, sb;
    state_take(a, &sa);
    state_take(b, &sb);
    assert_state_equal(&sa, &sb);
    state_free(&sa);
    state_free(&sb);
    rs_model_destroy(a);
    rs_model_destroy(b);
}

/* A long play (large w) steps harder than a short one, but boundedly. */
static void test_play_weight_scales_step(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.negatives = 0;
    struct rs_model *a = rs_model_create(&p), *b = rs_model_create(&p),
                    *c = rs_model_create(&p);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_int_equal(rs_model_ensure(a, 0, 0), RS_OK);
    assert_int_equal(rs_model_ensure(b, 0, 0), RS_OK);
    assert_int_equal(rs_model_ensure(c, 0, 0), RS_OK);
    float d0 = raw_dot(a, 0, 0);
    rs_model_update_play(a, 0, 0, 1.0f);
    rs_model_update_play(b, 0, 0, 20.0f);
    rs_model_update_play(c, 0, 0, 1e9f);
    float da = raw_dot(a, 0, 0) - d0, db = raw_dot(b, 0, 0) - d0,
          dc = raw_dot(c, 0, 0) - d0;
    assert_true(da > 0.0f);
    assert_true(db > 1.5f * da);
    assert_true(dc >= db);
    assert_true(dc < 10.0f * da);
    rs_model_destroy(a);
    rs_model_destroy(b);
    rs_model_destroy(c);
}

/* save -> load: same predictions now, and the same bits after more events of both kinds. */
static void round_trip(struct rs_model_params p)
{
    struct rs_model *a = rs_model_create(&p);
    assert_non_null(a);
    feed(a, 11);
    /* Evicted users and the recency order are part of the state. */
    rs_model_forget_user(a, 3);
    rs_model_forget_user(a, 17);
    rs_model_touch_user(a, 40, 1000);
    struct mem mm = {0};
    struct rs_writer w = {mem_write, &mm};
    struct rs_reader r = {mem_read, mem_remaining, &mm};
    assert_int_equal(rs_model_save(a, &w), RS_OK);
    rs_err_t err = RS_EIO;
    struct rs_model *b = rs_model_load(&r, &err);
    assert_int_equal(err, RS_OK);
    assert_non_null(b);
    assert_int_equal(mem_remaining(&mm), 0);
    for (uint32_t u = 0; u < 60; u++)
        for (uint32_t i = 0; i < 90; i++) {
            float x = rs_model_predict(a, u, i), y = rs_model_predict(b, u, i);
            assert_memory_equal(&x, &y, sizeof(float));
        }
    assert_int_equal(rs_model_lru_user(a, NULL), rs_model_lru_user(b, NULL));
    assert_int_equal(rs_model_live_users(a), rs_model_live_users(b));
    /* More events, including new users and items (drawn from the PRNG). */
    feed(a, 12);
    feed(b, 12);
    assert_int_equal(rs_model_ensure(a, 200, 300), RS_OK);
    assert_int_equal(rs_model_ensure(b, 200, 300), RS_OK);
    struct state sa, sb;
    state_take(a, &sa);
    state_take(b, &sb);
    assert_state_equal(&sa, &sb);
    const struct rs_model_params *pa = rs_model_get_params(a), *pb = rs_model_get_params(b);
    assert_int_equal(pa->factors, pb->factors);
    assert_true(pa->learning_rate == pb->learning_rate);
    assert_true(pa->regularization == pb->regularization);
    assert_true(pa->seed == pb->seed);
    assert_int_equal(pa->max_users, pb->max_users);
    assert_int_equal(pa->negatives, pb->negatives);
    assert_true(pa->bias_prior == pb->bias_prior);
    assert_true(pa->adagrad_rate == pb->adagrad_rate);
    state_free(&sa);
    state_free(&sb);
    rs_model_destroy(a);
    rs_model_destroy(b);
    free(mm.buf);
}

static void test_save_load_round_trip_continues_identically(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.replay_ratio = 1.5f;
    p.replay_size = 700; /* wraps during feed */
    round_trip(p);
    /* the per-row AdaGrad sums and rating counts are state too */
    p.bias_prior = 5.0f;
    p.adagrad_rate = 0.12f;
    round_trip(p);
}

/*
 * Version 2 (before bias_prior, adagrad_rate and the row stats) still loads,
 * with both off, and continues exactly as the model that wrote it. The
 * version-2 bytes are made from a version-3 save by cutting out what version
 * 3 added: the two parameters after replay_size and the two row-stat blocks.
 */
static void test_loads_format_2(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.replay_ratio = 1.5f;
    p.replay_size = 700;
    struct rs_model *a = rs_model_create(&p);
    assert_non_null(a);
    feed(a, 21);
    rs_model_forget_user(a, 5);
    struct mem v3 = {0}, v2 = {0};
    struct rs_writer w3 = {mem_write, &v3};
    assert_int_equal(rs_model_save(a, &w3), RS_OK);
    size_t nu = rs_model_users(a), ni = rs_model_items(a), k = (size_t)p.factors;
    size_t params_end = 56, fixed = 100; /* bytes: version + parameters, then counters */
    size_t users = nu * (k * 4 + 4 + 24), items = ni * (k * 4 + 4);
    uint32_t two = 2;
    size_t at = params_end + 8;
    assert_int_equal(mem_write(&v2, &two, 4), RS_OK);
    assert_int_equal(mem_write(&v2, v3.buf + 4, params_end - 4), RS_OK);
    assert_int_equal(mem_write(&v2, v3.buf + at, fixed + users), RS_OK);
    at += fixed + users + nu * 8;
    assert_int_equal(mem_write(&v2, v3.buf + at, items), RS_OK);
    at += items + ni * 8;
    assert_int_equal(mem_write(&v2, v3.buf + at, v3.len - at), RS_OK);
    assert_true(v2.len == v3.len - 8 - (nu + ni) * 8);

    struct rs_reader r = {mem_read, mem_remaining, &v2};
    rs_err_t err = RS_EIO;
    struct rs_model *b = rs_model_load(&r, &err);
    assert_int_equal(err, RS_OK);
    assert_non_null(b);
    assert_int_equal(mem_remaining(&v2), 0);
    assert_true(rs_model_get_params(b)->bias_prior == 0.0f);
    assert_true(rs_model_get_params(b)->adagrad_rate == 0.0f);
    feed(a, 22);
    feed(b, 22);
    struct state sa, sb;
    state_take(a, &sa);
    state_take(b, &sb);
    assert_state_equal(&sa, &sb);

    /* A version this build does not know is refused. */
    uint32_t four = 4;
    memcpy(v3.buf, &four, 4);
    struct mem t = {v3.buf, v3.len, v3.len, 0};
    struct rs_reader r4 = {mem_read, mem_remaining, &t};
    assert_null(rs_model_load(&r4, &err));
    assert_int_equal(err, RS_ECORRUPT);
    state_free(&sa);
    state_free(&sb);
    rs_model_destroy(a);
    rs_model_destroy(b);
    free(v3.buf);
    free(v2.buf);
}

/* Every truncation fails cleanly; bit flips either fail or give a usable model. */
static void test_load_rejects_truncated_and_corrupt_input(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.factors = 3;
    struct rs_model *a = rs_model_create(&p);
    assert_non_null(a);
    assert_int_equal(rs_model_ensure(a, 4, 5), RS_OK);
    rs_model_update_rate(a, 1, 2, 4.0f);
    rs_model_update_play(a, 3, 4, 2.0f);
    struct mem mm = {0};
    struct rs_writer w = {mem_write, &mm};
    assert_int_equal(rs_model_save(a, &w), RS_OK);
    for (size_t cut = 0; cut < mm.len; cut++) {
        struct mem t = {mm.buf, cut, cut, 0};
        struct rs_reader r = {mem_read, mem_remaining, &t};
        rs_err_t err = RS_OK;
        assert_null(rs_model_load(&r, &err));
        assert_int_not_equal(err, RS_OK);
    }
    char *copy = malloc(mm.len);
    assert_non_null(copy);
    for (size_t at = 0; at < mm.len; at++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, mm.buf, mm.len);
            copy[at] ^= (char)(1 << bit);
            struct mem t = {copy, mm.len, mm.len, 0};
            struct rs_reader r = {mem_read, mem_remaining, &t};
            rs_err_t err = RS_OK;
            struct rs_model *b = rs_model_load(&r, &err);
            assert_true((b == NULL) == (err != RS_OK));
            if (b != NULL) {
                /* usable: ensure and train without crashing */
                if (rs_model_ensure(b, 2, 2) == RS_OK) {
                    rs_model_update_rate(b, 2, 2, 3.0f);
                    rs_model_update_play(b, 2, 2, 1.0f);
                }
                (void)rs_model_predict(b, 1, 1);
            }
            rs_model_destroy(b);
        }
    free(copy);
    free(mm.buf);
    rs_model_destroy(a);
}

/* Recency order, eviction, and a fresh row for the index's next owner. */
static void test_eviction_follows_recency_and_redraws_rows(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.replay_ratio = 2.0f;
    p.replay_size = 64;
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_ensure(m, 3, 3), RS_OK); /* users 0..3, 0 least recent */
    assert_int_equal(rs_model_live_users(m), 4);
    rs_model_touch_user(m, 0, 1000);
    rs_model_touch_user(m, 2, 2000);
    int64_t last = -1;
    assert_int_equal(rs_model_lru_user(m, &last), 1);
    assert_true(last == 0);
    for (int n = 0; n < 50; n++)
        rs_model_update_rate(m, 1, 2, 5.0f);
    float old_row[8];
    memcpy(old_row, rs_model_user_factors(m, 1), sizeof(old_row));
    rs_model_forget_user(m, 1);
    assert_int_equal(rs_model_live_users(m), 3);
    assert_int_equal(rs_model_lru_user(m, &last), 3);
    rs_model_forget_user(m, 3);
    assert_int_equal(rs_model_lru_user(m, &last), 0);
    assert_true(last == 1000);
    /* A forgotten user takes no updates; its events are not replayed onto others. */
    assert_true(isnan(rs_model_update_rate(m, 1, 2, 5.0f)));
    assert_true(rs_model_user_bias(m, 1) == 0.0f);
    for (int n = 0; n < 200; n++)
        rs_model_update_rate(m, 0, 0, 3.0f); /* replays run; user 1's ring entries are skipped */
    assert_true(rs_model_user_bias(m, 1) == 0.0f);
    const float *z = rs_model_user_factors(m, 1);
    for (int f = 0; f < 8; f++)
        assert_true(z[f] == 0.0f);
    /* The index's next owner gets a newly drawn row and is the most recent user. */
    assert_int_equal(rs_model_ensure(m, 1, 0), RS_OK);
    assert_int_equal(rs_model_live_users(m), 3);
    assert_memory_not_equal(rs_model_user_factors(m, 1), old_row, sizeof(old_row));
    assert_true(rs_model_user_factors(m, 1)[0] != 0.0f);
    assert_false(isnan(rs_model_update_rate(m, 1, 2, 5.0f)));
    assert_int_equal(rs_model_lru_user(m, NULL), 0);
    rs_model_destroy(m);
}

/* Replay adds steps (changes the bits) but stays deterministic. */
static void test_replay_is_deterministic_and_bounded(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.replay_ratio = 1.5f;
    p.replay_size = 100;
    struct rs_model *a = rs_model_create(&p), *b = rs_model_create(&p);
    struct rs_model_params q = default_params();
    struct rs_model *c = rs_model_create(&q);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    feed(a, 3);
    feed(b, 3);
    feed(c, 3);
    struct state sa, sb, sc;
    state_take(a, &sa);
    state_take(b, &sb);
    state_take(c, &sc);
    assert_state_equal(&sa, &sb);
    assert_memory_not_equal(sa.Q, sc.Q, sa.ni * sa.k * sizeof(float));
    /* Only live events count; the ring is bounded by replay_size. */
    assert_true(rs_model_events(a) == rs_model_events(c));
    assert_true(rs_model_bytes(a) - rs_model_bytes(c) == 100 * 16);
    state_free(&sa);
    state_free(&sb);
    state_free(&sc);
    rs_model_destroy(a);
    rs_model_destroy(b);
    rs_model_destroy(c);
}

/* Planted rank-3 matrix, 300 x 200, 30000 ratings streamed once in random order. */
enum { PL_NU = 300, PL_NI = 200, PL_R = 3, PL_N = 30000 };
static float planted_U[PL_NU][PL_R], planted_V[PL_NI][PL_R];

static float planted(uint32_t u, uint32_t i)
{
    float v = 3.0f;
    for (int r = 0; r < PL_R; r++)
        v += planted_U[u][r] * planted_V[i][r];
    return v < 1.0f ? 1.0f : v > 5.0f ? 5.0f : v;
}

/* RMSE over the whole planted matrix after one pass with params p. */
static double single_pass_rmse(struct rs_model_params p)
{
    uint64_t s = 17;
    for (int u = 0; u < PL_NU; u++)
        for (int r = 0; r < PL_R; r++)
            planted_U[u][r] = (float)(0.7 * tnormal(&s));
    for (int i = 0; i < PL_NI; i++)
        for (int r = 0; r < PL_R; r++)
            planted_V[i][r] = (float)(0.7 * tnormal(&s));
    struct rs_model *m = rs_model_create(&p);
    assert_non_null(m);
    assert_int_equal(rs_model_ensure(m, PL_NU - 1, PL_NI - 1), RS_OK);
    uint64_t t = 99;
    for (int n = 0; n < PL_N; n++) {
        uint32_t u = (uint32_t)(trng(&t) % PL_NU), i = (uint32_t)(trng(&t) % PL_NI);
        rs_model_update_rate(m, u, i, planted(u, i));
    }
    double se = 0.0;
    for (uint32_t u = 0; u < PL_NU; u++)
        for (uint32_t i = 0; i < PL_NI; i++) {
            double d = rs_model_predict(m, u, i) - planted(u, i);
            se += d * d;
        }
    rs_model_destroy(m);
    return sqrt(se / (PL_NU * PL_NI));
}

/* Streaming with replay reaches a multi-epoch fit in one pass over a planted matrix. */
static void test_replay_improves_a_single_pass(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.learning_rate = 0.02f;
    double without = single_pass_rmse(p);
    p.replay_ratio = 3.0f;
    p.replay_size = 20000;
    double with = single_pass_rmse(p);
    print_message("single pass RMSE: %.4f without replay, %.4f with\n", without, with);
    assert_true(with < 0.9 * without);
}

/* The adaptive rates (bias_prior, adagrad_rate) learn more in one pass than constant ones. */
static void test_adaptive_rates_improve_a_single_pass(void **unused)
{
    (void)unused;
    struct rs_model_params p = default_params();
    p.learning_rate = 0.02f;
    double constant = single_pass_rmse(p);
    p.bias_prior = 5.0f;
    p.adagrad_rate = 0.12f;
    double adaptive = single_pass_rmse(p);
    print_message("single pass RMSE: %.4f constant, %.4f adaptive\n", constant, adaptive);
    assert_true(adaptive < 0.9 * constant);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects_bad_params),
        cmocka_unit_test(test_recovers_planted_low_rank_matrix),
        cmocka_unit_test(test_biases_learn_item_means),
        cmocka_unit_test(test_rate_steps_by_hand_and_clamps),
        cmocka_unit_test(test_rate_step_follows_surprise_order),
        cmocka_unit_test(test_same_seed_and_events_give_identical_bits),
        cmocka_unit_test(test_rejects_nan_and_off_scale_ratings),
        cmocka_unit_test(test_ensure_grows_and_keeps_rows),
        cmocka_unit_test(test_ensure_stops_at_bounds),
        cmocka_unit_test(test_plays_raise_played_items),
        cmocka_unit_test(test_negatives_push_unplayed_items_toward_zero),
        cmocka_unit_test(test_negative_never_hits_played_item),
        cmocka_unit_test(test_play_weight_scales_step),
        cmocka_unit_test(test_save_load_round_trip_continues_identically),
        cmocka_unit_test(test_loads_format_2),
        cmocka_unit_test(test_bias_prior_rates_by_hand),
        cmocka_unit_test(test_adagrad_steps_by_hand),
        cmocka_unit_test(test_eviction_follows_recency_and_redraws_rows),
        cmocka_unit_test(test_replay_is_deterministic_and_bounded),
        cmocka_unit_test(test_replay_improves_a_single_pass),
        cmocka_unit_test(test_adaptive_rates_improve_a_single_pass),
        cmocka_unit_test(test_load_rejects_truncated_and_corrupt_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
