/*
 * test_eval.c - the evaluation harness on small generated files whose answers
 * are known: loading and the implicit threshold, the stable time sort,
 * cross-validation that is reproducible for a seed, learns a planted signal
 * and exports exactly its folds, and prequential hit counting that every
 * model agrees on when only one item can be the answer.
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
#include <unistd.h>

#include "recstream/eval.h"

static struct rs_model_params params(void)
{
    struct rs_model_params p = {
        .factors = 8,
        .learning_rate = 0.01f,
        .regularization = 0.05f,
        .init_std = 0.1f,
        .rating_min = 1.0f,
        .rating_max = 5.0f,
        .negatives = 4,
        .seed = 42,
        .max_users = 100000,
        .max_items = 100000,
        .replay_ratio = 1.0f,
        .replay_size = 1000,
    };
    return p;
}

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/rs-test-eval-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* u.data layout: user TAB item TAB rating TAB seconds. */
static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_load_and_implicit_threshold(void **state)
{
    (void)state;
    const char *path = write_file("u.data", "1\t10\t5\t100\n"
                                            "1\t11\t3\t101\n"
                                            "2\t10\t4\t102\n"
                                            "2\t12\t5\t103\n");
    struct rs_eval_data d;
    char err[256];
    assert_int_equal(rs_eval_load(path, 0, 1, 5, &d, err, sizeof(err)), RS_OK);
    assert_int_equal(d.n, 4);
    assert_int_equal(rs_idmap_count(d.users), 2);
    assert_int_equal(rs_idmap_count(d.items), 3);
    assert_int_equal(d.ev[1].play, 0);
    assert_true(d.ev[1].value == 3.0f);
    assert_true(d.ev[3].ts_ms == 103000);
    rs_eval_data_free(&d);
    /* Threshold 4.5: two 5-star ratings become plays of weight 1, the rest are dropped.
     */
    assert_int_equal(rs_eval_load(path, 4.5, 1, 5, &d, err, sizeof(err)), RS_OK);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.dropped, 2);
    assert_int_equal(d.ev[0].play, 1);
    assert_true(d.ev[1].value == 1.0f);
    rs_eval_data_free(&d);
    assert_int_not_equal(
        rs_eval_load("/nonexistent/u.data", 0, 1, 5, &d, err, sizeof(err)), RS_OK);
}

static void test_time_sort_is_stable(void **state)
{
    (void)state;
    const char *path = write_file("u.data", "1\t1\t1\t30\n"
                                            "1\t2\t2\t10\n"
                                            "1\t3\t3\t20\n"
                                            "1\t4\t4\t10\n"
                                            "1\t5\t5\t20\n");
    struct rs_eval_data d;
    char err[256];
    assert_int_equal(rs_eval_load(path, 0, 1, 5, &d, err, sizeof(err)), RS_OK);
    rs_eval_sort_by_time(&d);
    const float want[] = {2, 4, 3, 5, 1};
    for (int j = 0; j < 5; j++)
        assert_true(d.ev[j].value == want[j]);
    rs_eval_data_free(&d);
}

/* Ratings that are the item's constant plus a planted user offset: CV must learn them. */
static const char *planted_file(void)
{
    static char *text;
    size_t cap = 1 << 20, len = 0;
    text = malloc(cap);
    assert_non_null(text);
    for (int u = 0; u < 100; u++)
        for (int i = 0; i < 60; i++) {
            if ((u * 7 + i * 13) % 3 == 0) continue; /* 2/3 of the matrix */
            double r = 1.5 + (i % 4) + ((u % 2) ? 0.4 : -0.4);
            r = r < 1 ? 1 : r > 5 ? 5 : r;
            len += (size_t)snprintf(text + len, cap - len, "u%d\ti%d\trate\t%.1f\t%d\n",
                                    u, i, r, u * 100 + i);
        }
    const char *path = write_file("planted.tsv", "");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("user\titem\ttype\tvalue\tts\n", f);
    fwrite(text, 1, len, f);
    fclose(f);
    free(text);
    return path;
}

static void test_cross_validation_learns_and_repeats_for_a_seed(void **state)
{
    (void)state;
    const char *path = planted_file();
    struct rs_eval_data d;
    char err[256];
    assert_int_equal(rs_eval_load(path, 0, 1, 5, &d, err, sizeof(err)), RS_OK);
    assert_int_equal(d.n, 4000);
    struct rs_model_params p = params();
    p.learning_rate = 0.02f;
    static struct rs_eval_cv a, b, one;
    assert_int_equal(rs_eval_cross_validate(&d, &p, 5, 30, 7, NULL, &a, err, sizeof(err)),
                     RS_OK);
    assert_int_equal(rs_eval_cross_validate(&d, &p, 5, 30, 7, NULL, &b, err, sizeof(err)),
                     RS_OK);
    assert_int_equal(
        rs_eval_cross_validate(&d, &p, 5, 1, 7, NULL, &one, err, sizeof(err)), RS_OK);
    print_message("planted CV RMSE %.4f (1 epoch: %.4f), MAE %.4f\n", a.rmse_mean,
                  one.rmse_mean, a.mae_mean);
    assert_int_equal(a.folds, 5);
    for (int f = 0; f < 5; f++) {
        assert_int_equal(a.test_n[f], 800);
        assert_memory_equal(&a.rmse[f], &b.rmse[f], sizeof(double));
    }
    /* The spread of the ratings is about 1.2; the planted structure is learnt. */
    assert_true(a.rmse_mean < 0.25);
    assert_true(a.mae_mean <= a.rmse_mean);
    assert_true(one.rmse_mean > a.rmse_mean);
    assert_int_equal(rs_eval_cross_validate(&d, &p, 1, 30, 7, NULL, &a, err, sizeof(err)),
                     RS_EINVAL);
    rs_eval_data_free(&d);
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void test_exported_folds_partition_the_ratings(void **state)
{
    (void)state;
    const char *path = planted_file();
    struct rs_eval_data d;
    char err[256], out[128], fp[192];
    assert_int_equal(rs_eval_load(path, 0, 1, 5, &d, err, sizeof(err)), RS_OK);
    snprintf(out, sizeof(out), "%s/folds", dir);
    struct rs_model_params p = params();
    static struct rs_eval_cv cv;
    assert_int_equal(rs_eval_cross_validate(&d, &p, 4, 1, 3, out, &cv, err, sizeof(err)),
                     RS_OK);
    size_t tests = 0;
    for (int f = 0; f < 4; f++) {
        snprintf(fp, sizeof(fp), "%s/fold%d.test", out, f);
        size_t nt = count_lines(fp);
        snprintf(fp, sizeof(fp), "%s/fold%d.train", out, f);
        size_t nr = count_lines(fp);
        assert_int_equal(nt, 1000);
        assert_int_equal(nt + nr, 4000);
        assert_int_equal(cv.test_n[f], nt);
        tests += nt;
    }
    assert_int_equal(tests, d.n);
    /* A fold's test file holds the original ids. */
    snprintf(fp, sizeof(fp), "%s/fold0.test", out);
    FILE *f = fopen(fp, "r");
    assert_non_null(f);
    char line[128];
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_true(line[0] == 'u' && strstr(line, "\ti") != NULL);
    rs_eval_data_free(&d);
}

/*
 * Three users consume a then b. The first b is an unseen item (a miss for any
 * model); for the other two, b is the only eligible item not yet had, so every
 * model ranks it first: recall = NDCG = 2/3 over 3 ranked events.
 */
static void test_prequential_counts_hits_every_model_agrees_on(void **state)
{
    (void)state;
    const char *path = write_file("u.data", "u1\ta\t5\t1\n"
                                            "u1\tb\t5\t2\n"
                                            "u2\ta\t5\t3\n"
                                            "u2\tb\t5\t4\n"
                                            "u3\ta\t5\t5\n"
                                            "u3\tb\t5\t6\n");
    struct rs_eval_data d;
    char err[256];
    assert_int_equal(rs_eval_load(path, 5, 1, 5, &d, err, sizeof(err)), RS_OK);
    rs_eval_sort_by_time(&d);
    struct rs_model_params p = params();
    const enum rs_eval_model models[] = {RS_EVAL_DEFAULT, RS_EVAL_ISGD,
                                         RS_EVAL_POPULARITY};
    for (int m = 0; m < 3; m++) {
        struct rs_eval_preq r;
        assert_int_equal(
            rs_eval_prequential(&d, &p, models[m], 1, 3600, NULL, &r, err, sizeof(err)),
            RS_OK);
        assert_int_equal(r.n, 6);
        assert_int_equal(r.n_ranked, 3);
        assert_true(fabs(r.recall - 2.0 / 3.0) < 1e-12);
        assert_true(fabs(r.ndcg - 2.0 / 3.0) < 1e-12);
        assert_true(isnan(r.rmse)); /* plays only */
    }
    rs_eval_data_free(&d);
}

/*
 * Windows of 4 events over the three users of the test above, u3 moved to the end:
 * windows close after events 4 and 6 (the last one partial); each window's figures
 * add up to the totals. With rank_every 2 only the 1st and 3rd eligible events are
 * ranked for, whatever the model.
 */
static void test_prequential_series_by_window_and_rank_every(void **state)
{
    (void)state;
    const char *path = write_file("u.data", "u1\ta\t5\t1\n"
                                            "u1\tb\t5\t2\n"
                                            "u2\ta\t5\t3\n"
                                            "u2\tb\t5\t4\n"
                                            "u3\ta\t5\t5\n"
                                            "u3\tb\t5\t6\n");
    struct rs_eval_data d;
    char err[256];
    assert_int_equal(rs_eval_load(path, 5, 1, 5, &d, err, sizeof(err)), RS_OK);
    rs_eval_sort_by_time(&d);
    struct rs_model_params p = params();
    const enum rs_eval_model models[] = {RS_EVAL_DEFAULT, RS_EVAL_ISGD,
                                         RS_EVAL_POPULARITY};
    for (int m = 0; m < 3; m++) {
        struct rs_eval_preq r;
        struct rs_eval_preq_opts o = {4, 1};
        assert_int_equal(
            rs_eval_prequential(&d, &p, models[m], 1, 3600, &o, &r, err, sizeof(err)),
            RS_OK);
        assert_int_equal(r.n_series, 2);
        assert_int_equal(r.series[0].end, 4);
        assert_int_equal(r.series[0].n_ranked, 2); /* u1's b (a miss), u2's b (a hit) */
        assert_true(fabs(r.series[0].recall - 0.5) < 1e-12);
        assert_int_equal(r.series[1].end, 6);
        assert_int_equal(r.series[1].n_ranked, 1); /* u3's b, a hit */
        assert_true(fabs(r.series[1].recall - 1.0) < 1e-12);
        assert_true(isnan(r.series[1].rmse));
        assert_int_equal(r.n_eligible, 3);
        rs_eval_preq_free(&r);
        assert_null(r.series);

        o = (struct rs_eval_preq_opts){0, 2};
        assert_int_equal(
            rs_eval_prequential(&d, &p, models[m], 1, 3600, &o, &r, err, sizeof(err)),
            RS_OK);
        assert_int_equal(r.n_series, 0);
        assert_int_equal(r.n_eligible, 3);
        assert_int_equal(r.n_ranked, 2); /* u1's b (a miss) and u3's b (a hit) */
        assert_true(fabs(r.recall - 0.5) < 1e-12);
        rs_eval_preq_free(&r);
    }
    rs_eval_data_free(&d);
}

/* Prequential RMSE of a constant rating goes to 0; the first prediction is the scale's
 * middle. */
static void test_prequential_rmse_of_a_constant_stream(void **state)
{
    (void)state;
    char text[64 * 400];
    size_t len = 0;
    for (int n = 0; n < 400; n++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "u%d\ti%d\t4\t%d\n",
                                n % 20, n % 30, n);
    const char *path = write_file("u.data", text);
    struct rs_eval_data d;
    char err[256];
    assert_int_equal(rs_eval_load(path, 0, 1, 5, &d, err, sizeof(err)), RS_OK);
    rs_eval_sort_by_time(&d);
    struct rs_model_params p = params();
    struct rs_eval_preq r;
    assert_int_equal(
        rs_eval_prequential(&d, &p, RS_EVAL_DEFAULT, 0, 3600, NULL, &r, err, sizeof(err)),
        RS_OK);
    assert_int_equal(r.n_rated, 400);
    assert_int_equal(r.n_ranked, 0);
    /* Only the first prediction (3 vs 4) is off: the running mean is 4 from then on. */
    assert_true(fabs(r.rmse - sqrt(1.0 / 400.0)) < 0.01);
    assert_true(r.events_per_second > 0);
    rs_eval_data_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_implicit_threshold),
        cmocka_unit_test(test_time_sort_is_stable),
        cmocka_unit_test(test_cross_validation_learns_and_repeats_for_a_seed),
        cmocka_unit_test(test_exported_folds_partition_the_ratings),
        cmocka_unit_test(test_prequential_counts_hits_every_model_agrees_on),
        cmocka_unit_test(test_prequential_rmse_of_a_constant_stream),
        cmocka_unit_test(test_prequential_series_by_window_and_rank_every),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
