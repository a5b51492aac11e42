/*
 * cmd_eval.c - `recstream eval`: measures the model on a file of events, by
 * k-fold cross-validation of ratings or by a prequential replay in time order
 * against the ISGD and popularity baselines (src/eval.c does the work). The
 * model's hyperparameters come from the configuration, so the numbers are
 * those of the daemon that reads the same file.
 */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/cli.h"
#include "recstream/eval.h"
#include "recstream/pipeline.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: recstream eval [-c FILE] --input PATH [--folds K] [--epochs E]\n"
        "                      [--seed S] [--export-folds DIR] [--json]\n"
        "       recstream eval [-c FILE] --prequential --input PATH [--top-n N]\n"
        "                      [--model M] [--window W] [--rank-every R] [--json]\n"
        "       (both: [--implicit-threshold V] [--set section.key=value]...)\n"
        "\n"
        "Cross-validation (the default): the ratings are shuffled with the seed and\n"
        "split into K folds; for each fold a fresh model trains E passes over the\n"
        "other folds and predicts this one. Prints RMSE and MAE per fold and their\n"
        "mean, and the time spent training.\n"
        "\n"
        "Prequential: the events are replayed in time order (ties in file order);\n"
        "each is first predicted (RMSE over ratings) and ranked for (is the item\n"
        "among the top N items the user has not had yet: recall@N and NDCG@N),\n"
        "then learnt. --model picks what is ranked:\n"
        "  default     what recstream serves: every event goes through the daemon's\n"
        "              pipeline and the list is the [ranking] blend of the model,\n"
        "              the item neighbours and popularity (with --top-n 0 only the\n"
        "              rating model is exercised, so the fast `mf` path is used)\n"
        "  mf          the factorisation model alone (its scores b_i + p_u.q_i)\n"
        "  neighbors   the pipeline ranking by item neighbours alone (the blend's\n"
        "              neighbour term, [ranking] recency_decay included)\n"
        "  isgd        plain positive-only SGD (same k, learning rate, regularisation)\n"
        "  popularity  time-decayed counts (popularity.half_life_s)\n"
        "\n"
        "  -c, --config FILE          configuration file (model hyperparameters)\n"
        "  -i, --input PATH           events (any layout `replay` reads)\n"
        "      --folds K              folds, 2..100 (default 5)\n"
        "      --epochs E             passes over each training fold (default 20)\n"
        "      --seed S               shuffle seed (default: model.seed)\n"
        "      --export-folds DIR     write DIR/fold<f>.train and .test (user, item,\n"
        "                             rating, seconds; tab-separated) to compare tools\n"
        "                             on the same splits\n"
        "      --prequential          test-then-train replay in time order\n"
        "      --top-n N              list length for recall/NDCG; 0: skip ranking\n"
        "                             (default 20)\n"
        "      --model M              default, mf, neighbors, isgd or popularity\n"
        "      --window W             also print the figures of every W events\n"
        "                             replayed (recall over the stream)\n"
        "      --rank-every R         rank for one eligible event in R (the same\n"
        "                             events for every model); all are learnt\n"
        "      --implicit-threshold V ratings >= V become plays, others are dropped\n"
        "      --set S.K=V            override one configuration key\n"
        "      --json                 print one JSON object\n"
        "  -h, --help                 this text\n"
        "\n"
        "examples:\n"
        "  recstream eval --input u.data --folds 5 --json\n"
        "  recstream eval --prequential --input ratings.dat --implicit-threshold 5 \\\n"
        "                 --model isgd\n");
}

static void json_num(const char *key, double v, int comma)
{
    if (isfinite(v))
        printf("\"%s\":%.6g%s", key, v, comma ? "," : "");
    else
        printf("\"%s\":null%s", key, comma ? "," : "");
}

static void print_cv(const struct rs_eval_cv *cv, const struct rs_eval_data *d,
                     int epochs, int json)
{
    if (json) {
        printf("{\"mode\":\"cv\",\"folds\":%d,\"epochs\":%d,\"events\":%zu,", cv->folds,
               epochs, d->n);
        json_num("rmse", cv->rmse_mean, 1);
        json_num("mae", cv->mae_mean, 1);
        json_num("fit_seconds", cv->fit_s_total, 1);
        printf("\"per_fold\":[");
        for (int f = 0; f < cv->folds; f++) {
            printf("{\"n\":%zu,", cv->test_n[f]);
            json_num("rmse", cv->rmse[f], 1);
            json_num("mae", cv->mae[f], 1);
            json_num("fit_seconds", cv->fit_s[f], 0);
            printf("}%s", f + 1 < cv->folds ? "," : "");
        }
        printf("]}\n");
        return;
    }
    printf("%d-fold cross-validation, %d epochs, %zu events\n", cv->folds, epochs, d->n);
    printf("%-6s %8s %8s %8s %10s\n", "fold", "test", "RMSE", "MAE", "fit (s)");
    for (int f = 0; f < cv->folds; f++)
        printf("%-6d %8zu %8.4f %8.4f %10.3f\n", f + 1, cv->test_n[f], cv->rmse[f],
               cv->mae[f], cv->fit_s[f]);
    printf("%-6s %8s %8.4f %8.4f %10.3f (total)\n", "mean", "", cv->rmse_mean,
           cv->mae_mean, cv->fit_s_total);
}

static void print_preq(const struct rs_eval_preq *r, const char *model, int top_n,
                       const struct rs_eval_preq_opts *opts, int json)
{
    if (json) {
        printf("{\"mode\":\"prequential\",\"model\":\"%s\",\"top_n\":%d,", model, top_n);
        json_num("rmse", r->rmse, 1);
        json_num("recall", r->recall, 1);
        json_num("ndcg", r->ndcg, 1);
        printf("\"n\":%llu,\"n_rated\":%llu,\"n_ranked\":%llu,\"n_eligible\":%llu,"
               "\"rank_every\":%u,",
               (unsigned long long)r->n, (unsigned long long)r->n_rated,
               (unsigned long long)r->n_ranked, (unsigned long long)r->n_eligible,
               opts->rank_every);
        json_num("seconds", r->seconds, 1);
        json_num("events_per_second", r->events_per_second, r->n_series > 0);
        if (r->n_series > 0) {
            printf("\"window\":%llu,\"series\":[", (unsigned long long)opts->window);
            for (size_t w = 0; w < r->n_series; w++) {
                const struct rs_eval_window *x = &r->series[w];
                printf("{\"end\":%llu,\"n_rated\":%llu,\"n_ranked\":%llu,",
                       (unsigned long long)x->end, (unsigned long long)x->n_rated,
                       (unsigned long long)x->n_ranked);
                json_num("rmse", x->rmse, 1);
                json_num("recall", x->recall, 1);
                json_num("ndcg", x->ndcg, 0);
                printf("}%s", w + 1 < r->n_series ? "," : "");
            }
            printf("]");
        }
        printf("}\n");
        return;
    }
    printf("prequential replay, model %s: %llu events in %.3f s (%.0f events/s)\n", model,
           (unsigned long long)r->n, r->seconds, r->events_per_second);
    if (r->n_rated)
        printf("  RMSE        %.4f over %llu ratings\n", r->rmse,
               (unsigned long long)r->n_rated);
    if (r->n_ranked) {
        printf("  recall@%-4d %.4f over %llu events\n", top_n, r->recall,
               (unsigned long long)r->n_ranked);
        printf("  NDCG@%-6d %.4f\n", top_n, r->ndcg);
    }
    if (r->n_series > 0) {
        printf("%12s %8s %8s %8s %10s %8s\n", "events", "rated", "RMSE", "ranked",
               "recall", "NDCG");
        for (size_t w = 0; w < r->n_series; w++) {
            const struct rs_eval_window *x = &r->series[w];
            printf("%12llu %8llu %8.4f %8llu %10.4f %8.4f\n", (unsigned long long)x->end,
                   (unsigned long long)x->n_rated, x->rmse,
                   (unsigned long long)x->n_ranked, x->recall, x->ndcg);
        }
    }
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static void bad_value(int opt, const char *arg)
{
    fprintf(stderr, "recstream eval: bad value for --%s: '%s'\n",
            opt == 'k'   ? "folds"
            : opt == 'e' ? "epochs"
            : opt == 'S' ? "seed"
            : opt == 'n' ? "top-n"
            : opt == 'm' ? "model"
            : opt == 'w' ? "window"
            : opt == 'r' ? "rank-every"
                         : "implicit-threshold",
            arg);
}

int rs_cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"input", required_argument, NULL, 'i'},
        {"folds", required_argument, NULL, 'k'},
        {"epochs", required_argument, NULL, 'e'},
        {"seed", required_argument, NULL, 'S'},
        {"export-folds", required_argument, NULL, 'x'},
        {"prequential", no_argument, NULL, 'p'},
        {"top-n", required_argument, NULL, 'n'},
        {"model", required_argument, NULL, 'm'},
        {"window", required_argument, NULL, 'w'},
        {"rank-every", required_argument, NULL, 'r'},
        {"implicit-threshold", required_argument, NULL, 't'},
        {"set", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct rs_cli_conf_opts copts = {0};
    const char *input = NULL, *export_dir = NULL, *model_name = "default";
    long folds = 5, epochs = 20, top_n = 20, window = 0, rank_every = 1;
    double threshold = 0.0;
    int json = 0, preq = 0, have_seed = 0, opt, rc = RS_EXIT_USAGE;
    unsigned long long seed = 0;
    enum rs_eval_model model = RS_EVAL_DEFAULT;
    struct rs_config *conf = NULL;
    struct rs_eval_data d = {0};
    struct rs_model_params mp;
    char errstr[512], *end;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:i:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': copts.path = optarg; break;
        case 'i': input = optarg; break;
        case 'k':
            if (parse_int(optarg, 2, RS_EVAL_MAX_FOLDS, &folds)) {
                bad_value(opt, optarg);
                goto out;
            }
            break;
        case 'e':
            if (parse_int(optarg, 1, 100000, &epochs)) {
                bad_value(opt, optarg);
                goto out;
            }
            break;
        case 'S':
            seed = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0') {
                bad_value(opt, optarg);
                goto out;
            }
            have_seed = 1;
            break;
        case 'x': export_dir = optarg; break;
        case 'p': preq = 1; break;
        case 'n':
            if (parse_int(optarg, 0, 100000, &top_n)) {
                bad_value(opt, optarg);
                goto out;
            }
            break;
        case 'w':
            if (parse_int(optarg, 1, 1000000000L, &window)) {
                bad_value(opt, optarg);
                goto out;
            }
            break;
        case 'r':
            if (parse_int(optarg, 1, 1000000, &rank_every)) {
                bad_value(opt, optarg);
                goto out;
            }
            break;
        case 'm':
            model_name = optarg;
            if (strcmp(optarg, "default") == 0 || strcmp(optarg, "neighbors") == 0 ||
                strcmp(optarg, "mf") == 0)
                model = RS_EVAL_DEFAULT;
            else if (strcmp(optarg, "isgd") == 0)
                model = RS_EVAL_ISGD;
            else if (strcmp(optarg, "popularity") == 0)
                model = RS_EVAL_POPULARITY;
            else {
                bad_value(opt, optarg);
                goto out;
            }
            break;
        case 't':
            threshold = strtod(optarg, &end);
            if (*optarg == '\0' || *end != '\0' || !(threshold > 0)) {
                bad_value(opt, optarg);
                goto out;
            }
            break;
        case 's':
            if (rs_cli_add_set(&copts, optarg)) goto out;
            break;
        case 'j': json = 1; break;
        case 'h':
            usage(stdout);
            rc = RS_EXIT_OK;
            goto out;
        default: usage(stderr); goto out;
        }
    }
    if (input == NULL || optind != argc) {
        fprintf(stderr, "recstream eval: --input is required\n");
        usage(stderr);
        goto out;
    }
    if (!preq && (window > 0 || rank_every != 1)) {
        fprintf(stderr, "recstream eval: --window and --rank-every need --prequential\n");
        goto out;
    }
    if ((conf = rs_cli_load_config(&copts)) == NULL) goto out;

    rs_pipeline_model_params(conf, &mp);

    /* The harness is single-threaded; so is the daemon's writer thread. */
    openblas_set_num_threads(1);
    rc = RS_EXIT_RUNTIME;
    if (rs_eval_load(input, threshold, conf->rating_min, conf->rating_max, &d, errstr,
                     sizeof(errstr)) != RS_OK) {
        fprintf(stderr, "recstream eval: %s\n", errstr);
        goto out;
    }
    if (d.bad_records)
        fprintf(stderr, "recstream eval: %llu bad records skipped\n",
                (unsigned long long)d.bad_records);
    if (preq) {
        struct rs_eval_preq r;
        struct rs_eval_preq_opts po = {(uint64_t)window, (uint32_t)rank_every};
        rs_err_t err;
        int via_pipeline = top_n > 0 && (strcmp(model_name, "default") == 0 ||
                                         strcmp(model_name, "neighbors") == 0);
        rs_eval_sort_by_time(&d);
        if (via_pipeline) {
            char set[64];
            struct rs_rank_weights w = rs_pipeline_weights(conf);
            if (strcmp(model_name, "neighbors") == 0) /* the same neighbour term alone */
                w = (struct rs_rank_weights){0, 1, 0, w.recency_decay};
            snprintf(set, sizeof(set), "ranking.top_n=%ld", top_n);
            rs_config_set(conf, set, errstr, sizeof(errstr));
            err = rs_eval_prequential_pipeline(&d, conf, &w, &po, &r, errstr,
                                               sizeof(errstr));
        } else {
            err = rs_eval_prequential(&d, &mp, model, (int)top_n,
                                      conf->popularity_half_life_s, &po, &r, errstr,
                                      sizeof(errstr));
        }
        if (err != RS_OK) {
            fprintf(stderr, "recstream eval: %s\n", errstr);
            goto out;
        }
        print_preq(&r, model_name, (int)top_n, &po, json);
        rs_eval_preq_free(&r);
    } else {
        struct rs_eval_cv *cv = malloc(sizeof(*cv));
        if (cv == NULL) {
            fprintf(stderr, "recstream eval: out of memory\n");
            goto out;
        }
        rs_err_t err = rs_eval_cross_validate(&d, &mp, (int)folds, (int)epochs,
                                              have_seed ? seed : conf->seed, export_dir,
                                              cv, errstr, sizeof(errstr));
        if (err != RS_OK) {
            fprintf(stderr, "recstream eval: %s\n", errstr);
            free(cv);
            rc = err == RS_EINVAL ? RS_EXIT_USAGE : RS_EXIT_RUNTIME;
            goto out;
        }
        print_cv(cv, &d, (int)epochs, json);
        free(cv);
    }
    rc = RS_EXIT_OK;
out:
    rs_eval_data_free(&d);
    rs_config_destroy(conf);
    return rc;
}
