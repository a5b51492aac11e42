/*
 * eval.c - the evaluation harness: loading a file of events into dense arrays,
 * k-fold cross-validation of rating prediction, and the prequential
 * (test-then-train) replay that measures rating error and top-N hit rates of
 * the recstream model against two baselines. It owns the in-memory event
 * array, the fold split, the ISGD baseline's factor arrays, and the scoring
 * buffer used to find where the next item ranks. Ranking is done without
 * sorting: the rank of the item consumed next is the number of eligible items
 * scored above it, one pass over the catalogue.
 */
#include "recstream/eval.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "recstream/cli.h"
#include "recstream/event.h"
#include "recstream/filesrc.h"
#include "recstream/history.h"
#include "recstream/pipeline.h"
#include "recstream/popularity.h"

/* ---- loading ---- */

rs_err_t rs_eval_load(const char *path, double implicit_threshold, double rating_min,
                      double rating_max, struct rs_eval_data *d, char *errstr,
                      size_t errstr_size)
{
    struct rs_event_limits lim = {rating_min, rating_max, RS_EVENT_MAX_BYTES_DEFAULT};
    struct rs_filesrc *fs = NULL;
    struct rs_event ev;
    struct rs_progress pg;
    enum rs_event_reason reason;
    uint64_t record;
    size_t cap = 0;
    rs_err_t err = RS_OK;

    memset(d, 0, sizeof(*d));
    d->users = rs_idmap_create(0);
    d->items = rs_idmap_create(0);
    if (d->users == NULL || d->items == NULL) {
        err = RS_ENOMEM;
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    fs = rs_filesrc_open(path, RS_FILE_AUTO, &lim, errstr, errstr_size);
    if (fs == NULL) {
        err = RS_EIO;
        goto out;
    }
    rs_progress_start(&pg, "loading");
    for (;;) {
        err = rs_filesrc_next(fs, &ev, &reason, &record);
        if (err == RS_ENOENT) {
            err = RS_OK;
            break;
        }
        if (err == RS_EPARSE) {
            d->bad_records++;
            continue;
        }
        if (err != RS_OK) {
            snprintf(errstr, errstr_size, "%s: read error", path);
            goto out;
        }
        int play = ev.type == RS_EVENT_PLAY;
        float value = ev.value;
        if (ev.type == RS_EVENT_FORGET) {
            d->dropped++;
            continue;
        }
        if (implicit_threshold > 0 && !play) {
            if (ev.value < implicit_threshold) {
                d->dropped++;
                continue;
            }
            play = 1;
            value = 1.0f;
        }
        if (d->n == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            struct rs_eval_event *nev = realloc(d->ev, ncap * sizeof(*nev));
            if (nev == NULL) {
                err = RS_ENOMEM;
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
            }
            d->ev = nev;
            cap = ncap;
        }
        struct rs_eval_event *x = &d->ev[d->n];
        if ((err = rs_idmap_intern(d->users, ev.user, ev.user_len, &x->u, NULL)) ||
            (err = rs_idmap_intern(d->items, ev.item, ev.item_len, &x->i, NULL))) {
            snprintf(errstr, errstr_size, "%s: %s", path, rs_err_str(err));
            goto out;
        }
        x->value = value;
        x->play = (uint32_t)play;
        x->ts_ms = ev.ts_ms;
        d->n++;
        rs_progress_update(&pg, rs_filesrc_bytes_read(fs), rs_filesrc_bytes_total(fs),
                           d->n);
    }
    rs_progress_end(&pg);
out:
    rs_filesrc_close(fs);
    if (err != RS_OK) rs_eval_data_free(d);
    return err;
}

void rs_eval_data_free(struct rs_eval_data *d)
{
    if (d == NULL) return;
    free(d->ev);
    rs_idmap_destroy(d->users);
    rs_idmap_destroy(d->items);
    memset(d, 0, sizeof(*d));
}

/* Merge sort by ts_ms: stable, O(n log n), one scratch array. */
static void merge_sort(struct rs_eval_event *a, struct rs_eval_event *tmp, size_t n)
{
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(a, tmp, h);
    merge_sort(a + h, tmp, n - h);
    if (a[h - 1].ts_ms <= a[h].ts_ms) return;
    size_t i = 0, j = h, o = 0;
    while (i < h && j < n)
        tmp[o++] = a[j].ts_ms < a[i].ts_ms ? a[j++] : a[i++];
    while (i < h)
        tmp[o++] = a[i++];
    memcpy(a, tmp, o * sizeof(*a)); /* the tail from j on is already in place */
}

void rs_eval_sort_by_time(struct rs_eval_data *d)
{
    struct rs_eval_event *tmp = malloc((d->n + 1) * sizeof(*tmp));
    if (tmp == NULL) {
        /* Insertion sort: slow but stable and allocation-free. */
        for (size_t a = 1; a < d->n; a++) {
            struct rs_eval_event x = d->ev[a];
            size_t b = a;
            while (b > 0 && d->ev[b - 1].ts_ms > x.ts_ms) {
                d->ev[b] = d->ev[b - 1];
                b--;
            }
            d->ev[b] = x;
        }
        return;
    }
    merge_sort(d->ev, tmp, d->n);
    free(tmp);
}

/* ---- cross-validation ---- */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double secs_since(uint64_t t0)
{
    return (double)(rs_mono_ns() - t0) / 1e9;
}

/* Writes the events order[from..to) except order[skip_lo..skip_hi) to path. */
static rs_err_t write_fold(const struct rs_eval_data *d, const size_t *order, size_t from,
                           size_t to, size_t skip_lo, size_t skip_hi, const char *path,
                           char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return RS_EIO;
    }
    for (size_t a = from; a < to; a++) {
        if (a >= skip_lo && a < skip_hi) continue;
        const struct rs_eval_event *x = &d->ev[order[a]];
        size_t ul, il;
        const char *un = rs_idmap_name(d->users, x->u, &ul);
        const char *in = rs_idmap_name(d->items, x->i, &il);
        fprintf(f, "%.*s\t%.*s\t%.9g\t%lld\n", (int)ul, un, (int)il, in, (double)x->value,
                (long long)(x->ts_ms / 1000));
    }
    if (fclose(f) != 0) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return RS_EIO;
    }
    return RS_OK;
}

static rs_err_t export_fold(const struct rs_eval_data *d, const size_t *order, size_t n,
                            size_t lo, size_t hi, int f, const char *dir, char *errstr,
                            size_t errstr_size)
{
    char path[4096];
    rs_err_t err;
    snprintf(path, sizeof(path), "%s/fold%d.train", dir, f);
    if ((err = write_fold(d, order, 0, n, lo, hi, path, errstr, errstr_size))) return err;
    snprintf(path, sizeof(path), "%s/fold%d.test", dir, f);
    return write_fold(d, order, lo, hi, 0, 0, path, errstr, errstr_size);
}

rs_err_t rs_eval_cross_validate(const struct rs_eval_data *d,
                                const struct rs_model_params *params, int folds,
                                int epochs, uint64_t seed, const char *export_dir,
                                struct rs_eval_cv *out, char *errstr, size_t errstr_size)
{
    size_t *order = NULL, n = 0;
    uint32_t *tu = NULL, *ti = NULL;
    float *tr = NULL;
    struct rs_model *m = NULL;
    struct rs_model_params mp = *params;
    struct rs_progress pg;
    rs_err_t err = RS_OK;

    memset(out, 0, sizeof(*out));
    if (folds < 2 || folds > RS_EVAL_MAX_FOLDS || epochs < 1) {
        snprintf(errstr, errstr_size, "folds must be 2..%d and epochs at least 1",
                 RS_EVAL_MAX_FOLDS);
        return RS_EINVAL;
    }
    order = malloc((d->n + 1) * sizeof(*order));
    tu = malloc((d->n + 1) * sizeof(*tu));
    ti = malloc((d->n + 1) * sizeof(*ti));
    tr = malloc((d->n + 1) * sizeof(*tr));
    if (order == NULL || tu == NULL || ti == NULL || tr == NULL) {
        free(order);
        free(tu);
        free(ti);
        free(tr);
        snprintf(errstr, errstr_size, "out of memory");
        return RS_ENOMEM;
    }
    for (size_t a = 0; a < d->n; a++)
        if (!d->ev[a].play) order[n++] = a;
    if (n < (size_t)folds) {
        snprintf(errstr, errstr_size, "%zu ratings: too few for %d folds", n, folds);
        err = RS_EINVAL;
        goto out;
    }
    uint64_t s = seed;
    for (size_t a = n - 1; a > 0; a--) { /* Fisher-Yates */
        size_t b = (size_t)(splitmix(&s) % (a + 1));
        size_t t = order[a];
        order[a] = order[b];
        order[b] = t;
    }
    if (export_dir != NULL && mkdir(export_dir, 0777) != 0 && errno != EEXIST) {
        snprintf(errstr, errstr_size, "%s: %s", export_dir, strerror(errno));
        err = RS_EIO;
        goto out;
    }
    /* Epochs do what replay does in a stream. */
    mp.replay_ratio = 0.0f;
    mp.replay_size = 0;
    out->folds = folds;
    rs_progress_start(&pg, "cross-validating");
    for (int f = 0; f < folds; f++) {
        size_t lo = n * (size_t)f / (size_t)folds,
               hi = n * (size_t)(f + 1) / (size_t)folds;
        if (export_dir != NULL &&
            (err = export_fold(d, order, n, lo, hi, f, export_dir, errstr, errstr_size)))
            goto out;
        m = rs_model_create(&mp);
        if (m == NULL) {
            snprintf(errstr, errstr_size, "bad model parameters or out of memory");
            err = RS_EINVAL;
            goto out;
        }
        /*
         * The training fold as three flat arrays in shuffled order, and every row
         * allocated, before the clock starts (Surprise builds its trainset
         * before fit() too): the timed loop is SGD steps only.
         */
        size_t nt = 0;
        for (size_t a = 0; a < n; a++) {
            if (a == lo) a = hi;
            if (a >= n) break;
            const struct rs_eval_event *x = &d->ev[order[a]];
            tu[nt] = x->u;
            ti[nt] = x->i;
            tr[nt++] = x->value;
        }
        if ((err = rs_model_ensure(m, rs_idmap_span(d->users) - 1,
                                   rs_idmap_span(d->items) - 1))) {
            snprintf(errstr, errstr_size, "model: %s", rs_err_str(err));
            goto out;
        }
        uint64_t t0 = rs_mono_ns();
        for (int e = 0; e < epochs; e++) {
            for (size_t a = 0; a < nt; a++)
                rs_model_update_rate(m, tu[a], ti[a], tr[a]);
            rs_progress_update(&pg, (uint64_t)(f * epochs + e + 1),
                               (uint64_t)(folds * epochs),
                               (uint64_t)(f * epochs + e + 1) * n);
        }
        out->fit_s[f] = secs_since(t0);
        double se = 0.0, ae = 0.0;
        for (size_t a = lo; a < hi; a++) {
            const struct rs_eval_event *x = &d->ev[order[a]];
            double dlt = (double)rs_model_predict(m, x->u, x->i) - (double)x->value;
            se += dlt * dlt;
            ae += fabs(dlt);
        }
        out->test_n[f] = hi - lo;
        out->rmse[f] = sqrt(se / (double)(hi - lo));
        out->mae[f] = ae / (double)(hi - lo);
        out->rmse_mean += out->rmse[f] / folds;
        out->mae_mean += out->mae[f] / folds;
        out->fit_s_total += out->fit_s[f];
        rs_model_destroy(m);
        m = NULL;
    }
    rs_progress_end(&pg);
out:
    rs_model_destroy(m);
    free(order);
    free(tu);
    free(ti);
    free(tr);
    return err;
}

/* ---- prequential ---- */

/* Running sums of a replay: over everything, and over the current window. */
struct tally {
    double se, hits, gain;
    uint64_t rated, ranked;
};

struct preq_acc {
    struct tally all, win;
    uint64_t window, rank_every, eligible, last_end;
    struct rs_eval_window *series;
    size_t n_series, cap;
};

static void acc_init(struct preq_acc *a, const struct rs_eval_preq_opts *opts)
{
    memset(a, 0, sizeof(*a));
    a->window = opts != NULL ? opts->window : 0;
    a->rank_every = opts != NULL && opts->rank_every > 1 ? opts->rank_every : 1;
}

/* An eligible event: whether it is one of those ranked for. */
static int acc_take(struct preq_acc *a)
{
    return a->eligible++ % a->rank_every == 0;
}

static void acc_rated(struct preq_acc *a, double dlt)
{
    a->all.se += dlt * dlt;
    a->win.se += dlt * dlt;
    a->all.rated++;
    a->win.rated++;
}

/* A ranked event whose item came at 0-based position rank ((size_t)-1: absent). */
static void acc_ranked(struct preq_acc *a, size_t rank, int top_n)
{
    if (rank < (size_t)top_n) {
        double g = 1.0 / log2((double)rank + 2.0);
        a->all.hits += 1.0;
        a->win.hits += 1.0;
        a->all.gain += g;
        a->win.gain += g;
    }
    a->all.ranked++;
    a->win.ranked++;
}

static void tally_figures(const struct tally *t, double *rmse, double *recall,
                          double *ndcg)
{
    *rmse = t->rated ? sqrt(t->se / (double)t->rated) : NAN;
    *recall = t->ranked ? t->hits / (double)t->ranked : NAN;
    *ndcg = t->ranked ? t->gain / (double)t->ranked : NAN;
}

static rs_err_t acc_close_window(struct preq_acc *a, uint64_t end)
{
    if (a->n_series == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 64;
        struct rs_eval_window *ns = realloc(a->series, ncap * sizeof(*ns));
        if (ns == NULL) return RS_ENOMEM;
        a->series = ns;
        a->cap = ncap;
    }
    struct rs_eval_window *w = &a->series[a->n_series++];
    w->end = end;
    w->n_rated = a->win.rated;
    w->n_ranked = a->win.ranked;
    tally_figures(&a->win, &w->rmse, &w->recall, &w->ndcg);
    memset(&a->win, 0, sizeof(a->win));
    a->last_end = end;
    return RS_OK;
}

/* After the n-th event: closes the window that ends there. */
static rs_err_t acc_step(struct preq_acc *a, uint64_t n)
{
    return a->window > 0 && n % a->window == 0 ? acc_close_window(a, n) : RS_OK;
}

/* The totals into out, the last partial window closed; the series moves to out. */
static rs_err_t acc_finish(struct preq_acc *a, uint64_t n, struct rs_eval_preq *out)
{
    if (a->window > 0 && n > a->last_end && acc_close_window(a, n) != RS_OK)
        return RS_ENOMEM;
    out->n_rated = a->all.rated;
    out->n_ranked = a->all.ranked;
    out->n_eligible = a->eligible;
    tally_figures(&a->all, &out->rmse, &out->recall, &out->ndcg);
    out->series = a->series;
    out->n_series = a->n_series;
    a->series = NULL;
    return RS_OK;
}

void rs_eval_preq_free(struct rs_eval_preq *out)
{
    if (out == NULL) return;
    free(out->series);
    out->series = NULL;
    out->n_series = 0;
}

/* Plain positive-only incremental SGD (Vinagre et al. 2014): p.q -> 1 per event. */
struct isgd {
    int k;
    float lr, reg;
    float *P, *Q;
};

static void isgd_step(struct isgd *g, uint32_t u, uint32_t i)
{
    float *restrict p = g->P + (size_t)u * (size_t)g->k;
    float *restrict q = g->Q + (size_t)i * (size_t)g->k;
    float s = 0.0f;
    for (int f = 0; f < g->k; f++)
        s += p[f] * q[f];
    float e = 1.0f - s;
    for (int f = 0; f < g->k; f++) {
        float pu = p[f], qi = q[f];
        p[f] = pu + g->lr * (e * qi - g->reg * pu);
        q[f] = qi + g->lr * (e * pu - g->reg * qi);
    }
}

/*
 * Rank of item target among eligible items (eligible[i] == 0, others -inf),
 * with history items excluded: the number of eligible items scoring above it.
 */
static size_t rank_of(float *scores, const float *eligible, uint32_t n_items,
                      const uint32_t *hist, size_t hn, uint32_t target)
{
    for (uint32_t i = 0; i < n_items; i++)
        scores[i] += eligible[i];
    for (size_t h = 0; h < hn; h++)
        scores[hist[h]] = -INFINITY;
    float t = scores[target];
    size_t above = 0;
    for (uint32_t i = 0; i < n_items; i++)
        above += scores[i] > t;
    return above;
}

rs_err_t rs_eval_prequential(const struct rs_eval_data *d,
                             const struct rs_model_params *params,
                             enum rs_eval_model model, int top_n, double half_life_s,
                             const struct rs_eval_preq_opts *opts,
                             struct rs_eval_preq *out, char *errstr, size_t errstr_size)
{
    uint32_t n_users = rs_idmap_span(d->users), n_items = rs_idmap_span(d->items);
    struct rs_model *m = NULL;
    struct rs_popularity *pop = NULL;
    struct rs_history *hist = rs_history_create();
    struct isgd g = {params->factors, params->learning_rate, params->regularization, NULL,
                     NULL};
    float *scores = malloc(((size_t)n_items + 1) * sizeof(float));
    float *eligible = malloc(((size_t)n_items + 1) * sizeof(float));
    struct rs_progress pg;
    struct preq_acc acc;
    rs_err_t err = RS_OK;

    memset(out, 0, sizeof(*out));
    acc_init(&acc, opts);
    if (hist == NULL || scores == NULL || eligible == NULL) {
        err = RS_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < n_items; i++)
        eligible[i] = -INFINITY;
    if (model == RS_EVAL_DEFAULT) {
        if ((m = rs_model_create(params)) == NULL) {
            snprintf(errstr, errstr_size, "bad model parameters or out of memory");
            err = RS_EINVAL;
            goto out;
        }
    } else if (model == RS_EVAL_POPULARITY) {
        if ((pop = rs_popularity_create(half_life_s)) == NULL) {
            err = RS_ENOMEM;
            goto out;
        }
    } else {
        size_t k = (size_t)g.k;
        g.P = malloc(((size_t)n_users + 1) * k * sizeof(float));
        g.Q = malloc(((size_t)n_items + 1) * k * sizeof(float));
        if (g.P == NULL || g.Q == NULL) {
            err = RS_ENOMEM;
            goto out;
        }
        uint64_t s = params->seed;
        /* N(0, init_std) by Box-Muller, as the model draws its rows. */
        for (size_t a = 0; a < ((size_t)n_users + (size_t)n_items) * k; a++) {
            double u1 = ((double)(splitmix(&s) >> 11) + 1.0) / 9007199254740993.0;
            double u2 = (double)(splitmix(&s) >> 11) / 9007199254740992.0;
            float v = (float)(params->init_std * sqrt(-2.0 * log(u1)) *
                              cos(6.283185307179586 * u2));
            if (a < (size_t)n_users * k)
                g.P[a] = v;
            else
                g.Q[a - (size_t)n_users * k] = v;
        }
    }

    rs_progress_start(&pg, "prequential");
    uint64_t t0 = rs_mono_ns();
    for (size_t a = 0; a < d->n; a++) {
        const struct rs_eval_event *x = &d->ev[a];
        size_t hn = 0;
        const uint32_t *h = rs_history_items(hist, x->u, &hn);

        /* Test. */
        if (!x->play && m != NULL)
            acc_rated(&acc, (double)rs_model_predict(m, x->u, x->i) - (double)x->value);
        if (top_n > 0 && hn > 0 && !rs_history_contains(hist, x->u, x->i) &&
            acc_take(&acc)) {
            size_t rank = (size_t)-1;
            if (eligible[x->i] == 0.0f) {
                if (m != NULL) {
                    uint32_t rows = rs_model_items(m);
                    const float *p = rs_model_user_factors(m, x->u);
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, g.k, 1.0f,
                                rs_model_item_matrix(m), g.k, p, 1, 0.0f, scores, 1);
                    const float *bi = rs_model_item_biases(m);
                    for (uint32_t i = 0; i < rows; i++)
                        scores[i] += bi[i];
                    for (uint32_t i = rows; i < n_items; i++)
                        scores[i] = 0.0f;
                } else if (pop != NULL) {
                    rs_popularity_normalized(pop, x->ts_ms, scores, n_items);
                } else {
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n_items, g.k, 1.0f, g.Q,
                                g.k, g.P + (size_t)x->u * (size_t)g.k, 1, 0.0f, scores,
                                1);
                }
                rank = rank_of(scores, eligible, n_items, h, hn, x->i);
            }
            acc_ranked(&acc, rank, top_n);
        }

        /* Train. */
        if (m != NULL) {
            if ((err = rs_model_ensure(m, x->u, x->i))) {
                snprintf(errstr, errstr_size, "model: %s", rs_err_str(err));
                goto out;
            }
            rs_model_touch_user(m, x->u, x->ts_ms);
            if (x->play)
                rs_model_update_play(m, x->u, x->i, x->value);
            else
                rs_model_update_rate(m, x->u, x->i, x->value);
        } else if (pop != NULL) {
            if (rs_popularity_add(pop, x->i, 1.0f, x->ts_ms) != RS_OK) {
                err = RS_ENOMEM;
                goto out;
            }
        } else {
            isgd_step(&g, x->u, x->i);
        }
        if (top_n > 0 && rs_history_add(hist, x->u, x->i) < 0) {
            err = RS_ENOMEM;
            goto out;
        }
        eligible[x->i] = 0.0f;
        out->n++;
        if ((err = acc_step(&acc, out->n))) goto out;
        if ((a & 1023) == 0) rs_progress_update(&pg, a, d->n, a);
    }
    out->seconds = secs_since(t0);
    rs_progress_end(&pg);
    out->events_per_second = out->seconds > 0 ? (double)out->n / out->seconds : 0.0;
    err = acc_finish(&acc, out->n, out);
out:
    if (err == RS_ENOMEM) snprintf(errstr, errstr_size, "out of memory");
    free(acc.series);
    rs_model_destroy(m);
    rs_popularity_destroy(pop);
    rs_history_destroy(hist);
    free(g.P);
    free(g.Q);
    free(scores);
    free(eligible);
    return err;
}

rs_err_t rs_eval_prequential_pipeline(const struct rs_eval_data *d,
                                      const struct rs_config *conf,
                                      const struct rs_rank_weights *w,
                                      const struct rs_eval_preq_opts *opts,
                                      struct rs_eval_preq *out, char *errstr,
                                      size_t errstr_size)
{
    /* The replay runs faster than real time and must be repeatable: cached
     * neighbour lists are bounded in events only (exact by default), never by
     * the wall clock. */
    struct rs_config c = *conf;
    c.neighbor_list_max_age_ms = 0;
    struct rs_pipeline *p = rs_pipeline_create(&c, NULL, errstr, errstr_size);
    struct rs_history *hist = rs_history_create();
    struct rs_rec *recs = calloc((size_t)conf->top_n, sizeof(*recs));
    struct rs_progress pg;
    struct rs_event ev;
    struct preq_acc acc;
    rs_err_t err = RS_OK;
    uint64_t t0;

    memset(out, 0, sizeof(*out));
    acc_init(&acc, opts);
    if (p == NULL || hist == NULL || recs == NULL) {
        if (p != NULL) snprintf(errstr, errstr_size, "out of memory");
        err = RS_ENOMEM;
        goto out;
    }
    memset(&ev, 0, sizeof(ev));
    rs_progress_start(&pg, "prequential");
    t0 = rs_mono_ns();
    for (size_t a = 0; a < d->n; a++) {
        const struct rs_eval_event *x = &d->ev[a];
        const struct rs_model *m = rs_pipeline_model(p);
        size_t ulen, ilen, hn = 0;
        const char *uname = rs_idmap_name(d->users, x->u, &ulen);
        const char *iname = rs_idmap_name(d->items, x->i, &ilen);
        uint32_t pu = rs_model_users(m), pi = rs_model_items(m); /* unknown by default */

        rs_idmap_find(rs_pipeline_users(p), uname, ulen, &pu);
        rs_idmap_find(rs_pipeline_items(p), iname, ilen, &pi);
        /* Test. */
        if (!x->play)
            acc_rated(&acc, (double)rs_model_predict(m, pu, pi) - (double)x->value);
        rs_history_items(hist, x->u, &hn);
        if (conf->top_n > 0 && hn > 0 && !rs_history_contains(hist, x->u, x->i) &&
            acc_take(&acc)) {
            size_t n = 0, rank = (size_t)-1;
            if ((err = rs_pipeline_recommend_with(p, uname, ulen, w, recs, &n))) {
                snprintf(errstr, errstr_size, "ranking: %s", rs_err_str(err));
                goto out;
            }
            for (size_t j = 0; j < n && rank == (size_t)-1; j++)
                if (recs[j].item == pi) rank = j;
            acc_ranked(&acc, rank, conf->top_n);
        }
        /* Train, exactly as the daemon applies an event. */
        ev.type = x->play ? RS_EVENT_PLAY : RS_EVENT_RATE;
        ev.user_len = (uint16_t)ulen;
        memcpy(ev.user, uname, ulen);
        ev.user[ulen] = '\0';
        ev.item_len = (uint16_t)ilen;
        memcpy(ev.item, iname, ilen);
        ev.item[ilen] = '\0';
        ev.value = x->value;
        ev.ts_ms = x->ts_ms;
        err = rs_pipeline_apply(p, &ev);
        if (err != RS_OK && err != RS_EFULL) {
            snprintf(errstr, errstr_size, "applying: %s", rs_err_str(err));
            goto out;
        }
        err = RS_OK;
        if (rs_history_add(hist, x->u, x->i) < 0) {
            err = RS_ENOMEM;
            goto out;
        }
        /* Nothing is published: drain what waits so it stays bounded. */
        if (rs_pipeline_pending(p) > 100000) rs_pipeline_publish(p);
        out->n++;
        if ((err = acc_step(&acc, out->n))) {
            snprintf(errstr, errstr_size, "out of memory");
            goto out;
        }
        rs_progress_update(&pg, a + 1, d->n, a + 1);
    }
    rs_progress_end(&pg);
    out->seconds = (double)(rs_mono_ns() - t0) / 1e9;
    out->events_per_second = out->seconds > 0 ? (double)out->n / out->seconds : 0.0;
    if ((err = acc_finish(&acc, out->n, out)))
        snprintf(errstr, errstr_size, "out of memory");

out:
    free(acc.series);
    free(recs);
    rs_history_destroy(hist);
    rs_pipeline_destroy(p);
    return err;
}
