/*
 * bench_ranking.c - measurements behind docs/BENCHMARKS.md, "Ranking and
 * neighbours". Built by CMake, never run by ctest; scripts/bench/ranking runs
 * it with the documented arguments. One thread (OpenBLAS is set to 1).
 *
 *   bench_ranking rank ITEMS [FACTORS] [USERS]
 *       users ranked per second by the blend and by model scores alone, and
 *       the bound they are compared with in the same run: a bare sgemm of the
 *       same users over the same item matrix (same batches of users; the
 *       faster of 4096 items per call and, up to 16384 items, one call over
 *       all, as the ranker's blend makes) and one sgemv per user; the ratios
 *       are ranker time / bound time. Each blend call
 *       follows an event, as a publish round does. The blend is timed twice:
 *       "rank_blend_exact" with the exact list rule (no neighbour list cached
 *       by the ranker is valid: every list is computed again, as in a round
 *       after the lists aged out) and "rank_blend" with the lists of the
 *       call before reused although one event behind (a round within
 *       [ranking] neighbor_list_max_age_ms of the last computation; bounded
 *       by events here so that the run does not depend on its own speed).
 *       BENCH_RANKER_ISA=avx512,
 *       avx512-floor, avx2 or base makes the ranker use that variant of its
 *       scoring pass instead of the widest the CPU runs. Items are drawn
 *       skewed (a few popular ones, with low indices, as ids interned in
 *       order of first appearance tend to be); BENCH_UNIFORM=1 draws them
 *       uniformly, as the freshness bench does.
 *   bench_ranking neighbors EVENTS [WINDOW] [ITEMS] [USERS]
 *       play events per second through the neighbour update alone.
 *   bench_ranking model EVENTS [WINDOW] [ITEMS] [USERS]
 *       play events per second through model + neighbours + popularity, and
 *       through the whole pipeline apply (id maps, history, dirty set too).
 *   bench_ranking recall FILE [N] [EVERY] [MF NB POP]
 *       a quick prequential check of the blend's default weights: for every
 *       EVERY-th event of a user seen before, is the item in the user's top N
 *       before the event is applied? For popularity, neighbours, model alone
 *       and the [ranking] defaults (or the weights given). (The full evaluation
 *       is the eval harness's prequential mode.)
 *
 * Each line printed is one JSON object.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/config.h"
#include "recstream/filesrc.h"
#include "recstream/history.h"
#include "recstream/log.h"
#include "recstream/model.h"
#include "recstream/neighbors.h"
#include "recstream/pipeline.h"
#include "recstream/popularity.h"
#include "recstream/ranker.h"

#define BATCH 256
#define BLOCK 4096u
/* The ranker scores blends over catalogues up to ONE_CALL items in one sgemm per
 * batch: the bound is the faster of that and calls of BLOCK items. */
#define ONE_CALL 16384u

static uint64_t rng_state = 12345;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A Zipf-like draw in [0, n), skewed like real catalogues (BENCH_UNIFORM=1: uniform). */
static uint32_t skewed(uint32_t n)
{
    static int uniform = -1;
    double u = (double)(rnd() >> 11) * 0x1p-53;
    if (uniform < 0)
        uniform = getenv("BENCH_UNIFORM") && atoi(getenv("BENCH_UNIFORM")) == 1;
    if (uniform) return (uint32_t)((double)n * u);
    return (uint32_t)((double)n * u * u * u);
}

static double secs_since(uint64_t t0)
{
    return (double)(rs_mono_ns() - t0) / 1e9;
}

static struct rs_model *make_model(uint32_t users, uint32_t items, int k)
{
    struct rs_model_params mp = {k, 0.01f, 0.02f, 0.1f, 1.0f, 5.0f, 4, 42, users, items, 0, 0, 0, 0};
    struct rs_model *m = rs_model_create(&mp);
    if (!m || rs_model_ensure(m, users - 1, items - 1) != RS_OK) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    return m;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- rank ---- */

/* A neighbours object as the daemon makes one: its order weights are the
 * [neighbors] defaults. */
static struct rs_neighbors *default_neighbors(int window)
{
    struct rs_config *conf = rs_config_create();
    struct rs_neighbors *nb = rs_neighbors_create(20, window, 604800);
    if (!conf || !nb) exit(1);
    rs_neighbors_set_order(nb, conf->neighbors_backward_weight, conf->neighbors_gap_decay);
    rs_config_destroy(conf);
    return nb;
}

/* The [ranking] defaults as blend weights. */
static struct rs_rank_weights default_weights(void)
{
    struct rs_config *conf = rs_config_create();
    if (!conf) exit(1);
    struct rs_rank_weights w = rs_pipeline_weights(conf);
    rs_config_destroy(conf);
    return w;
}

static int bench_rank(uint32_t items, int k, uint32_t users)
{
    enum { REPS = 5 };
    uint32_t n_users = 4 * users;
    struct rs_model *m = make_model(n_users, items, k);
    struct rs_history *h = rs_history_create();
    struct rs_neighbors *nb = default_neighbors(20);
    struct rs_popularity *pop = rs_popularity_create(604800);
    struct rs_ranker *rk = rs_ranker_create(20, BATCH);
    uint32_t *ulist = malloc(users * sizeof(*ulist));
    struct rs_rec *out = malloc((size_t)users * 20 * sizeof(*out));
    size_t *counts = malloc(users * sizeof(*counts));
    float *U = malloc((size_t)BATCH * (size_t)k * sizeof(float));
    float *S =
        malloc((size_t)BATCH * (items <= ONE_CALL ? items : BLOCK) * sizeof(float));
    float *y = malloc((size_t)items * sizeof(float));
    double t_gemm[REPS], t_gemm1[REPS], t_gemv[REPS], t_raw[REPS], t_blend[REPS],
        t_exact[REPS], t_bmf[REPS], t_bnb[REPS];
    struct rs_rank_weights w = default_weights();
    /* Each signal alone, the neighbour term as the blend's (its recency decay). */
    struct rs_rank_weights w_mf = {1.0f, 0, 0, 0}, w_nb = {0, 1.0f, 0, w.recency_decay};
    struct rs_rank_sources src = {m, h, nb, pop};
    const float *Q = rs_model_item_matrix(m);

    if (!h || !nb || !pop || !rk || !ulist || !out || !counts || !U || !S || !y) return 1;
    if (getenv("BENCH_RANKER_ISA") && rs_ranker_set_isa(rk, getenv("BENCH_RANKER_ISA"))) {
        fprintf(stderr, "bench: this CPU has no %s scoring pass\n",
                getenv("BENCH_RANKER_ISA"));
        return 1;
    }
    /* Each user has 50 items of history; 20 recent ones feed the neighbours. */
    for (uint32_t u = 0; u < n_users; u++)
        for (int e = 0; e < 50; e++) {
            uint32_t i = skewed(items);
            rs_history_add(h, u, i);
            rs_neighbors_add(nb, u, i, (int64_t)e * 1000);
            rs_popularity_add(pop, i, 1.0f, (int64_t)e * 1000);
        }
    for (uint32_t j = 0; j < users; j++)
        ulist[j] = j * 4 % n_users;
    for (uint32_t b = 0; b < BATCH; b++)
        memcpy(U + (size_t)b * (size_t)k, rs_model_user_factors(m, b),
               (size_t)k * sizeof(float));

    rs_ranker_blend(rk, &src, &w, ulist, users < BATCH ? users : BATCH, out,
                    counts); /* warm */
    for (int r = 0; r < REPS; r++) {
        uint64_t t0 = rs_mono_ns();
        for (uint32_t j = 0; j < users; j += BATCH) {
            uint32_t b = users - j < BATCH ? users - j : BATCH;
            for (uint32_t i0 = 0; i0 < items; i0 += BLOCK) {
                uint32_t nb_ = items - i0 < BLOCK ? items - i0 : BLOCK;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)nb_, k,
                            1.0f, U, k, Q + (size_t)i0 * (size_t)k, k, 0.0f, S, (int)nb_);
            }
        }
        t_gemm[r] = secs_since(t0);
        t0 = rs_mono_ns();
        for (uint32_t j = 0; items <= ONE_CALL && j < users; j += BATCH) {
            uint32_t b = users - j < BATCH ? users - j : BATCH;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)items, k,
                        1.0f, U, k, Q, k, 0.0f, S, (int)items);
        }
        t_gemm1[r] = items <= ONE_CALL ? secs_since(t0) : t_gemm[r];
        /* sgemv: one pass over Q per user (a fraction of the users: it is slow). */
        uint32_t gv = users / 8 ? users / 8 : 1;
        t0 = rs_mono_ns();
        for (uint32_t j = 0; j < gv; j++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)items, k, 1.0f, Q, k,
                        U + (size_t)(j % BATCH) * (size_t)k, 1, 0.0f, y, 1);
        t_gemv[r] = secs_since(t0) * ((double)users / gv);
        t0 = rs_mono_ns();
        rs_ranker_rank(rk, m, h, ulist, users, out, counts);
        t_raw[r] = secs_since(t0);
        /* A publish round follows events: one event first, so that the ranker's
         * cached neighbour lists are stale; the exact rule computes them again. */
        rs_ranker_set_list_staleness(rk, 0, 0);
        rs_neighbors_add(nb, n_users - 1, (uint32_t)r % items, 50000 + 2 * r);
        t0 = rs_mono_ns();
        rs_ranker_blend(rk, &src, &w, ulist, users, out, counts);
        t_exact[r] = secs_since(t0);
        /* The next round, one event later, within the staleness bound. */
        rs_ranker_set_list_staleness(rk, 0, 1);
        rs_neighbors_add(nb, n_users - 1, (uint32_t)(r + 7) % items, 50001 + 2 * r);
        t0 = rs_mono_ns();
        rs_ranker_blend(rk, &src, &w, ulist, users, out, counts);
        t_blend[r] = secs_since(t0);
        rs_ranker_set_list_staleness(rk, 0, 0);
        t0 = rs_mono_ns();
        rs_ranker_blend(rk, &src, &w_mf, ulist, users, out, counts);
        t_bmf[r] = secs_since(t0);
        rs_neighbors_add(nb, n_users - 1, (uint32_t)(r + 1) % items, 50001 + 2 * r);
        t0 = rs_mono_ns();
        rs_ranker_blend(rk, &src, &w_nb, ulist, users, out, counts);
        t_bnb[r] = secs_since(t0);
    }
    double gb = median(t_gemm, REPS), g1 = median(t_gemm1, REPS), g = g1 < gb ? g1 : gb;
    double v = median(t_gemv, REPS), raw = median(t_raw, REPS),
           bl = median(t_blend, REPS), ex = median(t_exact, REPS);
    printf("{\"bench\":\"rank\",\"items\":%u,\"factors\":%d,\"users\":%u,"
           "\"users_per_s\":{\"sgemm_bound\":%.0f,\"sgemv\":%.0f,\"rank_model\":%.0f,"
           "\"rank_blend\":%.0f,\"rank_blend_exact\":%.0f,\"blend_model_only\":%.0f,"
           "\"blend_neighbors_only\":%.0f},"
           "\"sgemm_blocked_s\":%.6f,\"sgemm_one_call_s\":%.6f,"
           "\"ratio_blend_vs_sgemm\":%.2f,\"ratio_blend_exact_vs_sgemm\":%.2f,"
           "\"ratio_model_vs_sgemm\":%.2f,\"Q_GB_per_s_sgemv\":%.2f}\n",
           items, k, users, users / g, users / v, users / raw, users / bl, users / ex,
           users / median(t_bmf, REPS), users / median(t_bnb, REPS), gb, g1, bl / g,
           ex / g, raw / g, (double)items * k * 4 * users / v / 1e9);
    free(ulist);
    free(out);
    free(counts);
    free(U);
    free(S);
    free(y);
    rs_ranker_destroy(rk);
    rs_popularity_destroy(pop);
    rs_neighbors_destroy(nb);
    rs_history_destroy(h);
    rs_model_destroy(m);
    return 0;
}

/* ---- event paths ---- */

struct ev {
    uint32_t user, item;
};

static struct ev *make_events(size_t n, uint32_t users, uint32_t items)
{
    struct ev *e = malloc(n * sizeof(*e));
    if (!e) exit(1);
    for (size_t x = 0; x < n; x++) {
        e[x].user = (uint32_t)(rnd() % users);
        e[x].item = skewed(items);
    }
    return e;
}

static int bench_neighbors(size_t events, int window, uint32_t items, uint32_t users)
{
    enum { REPS = 3 };
    struct ev *e = make_events(events, users, items);
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        struct rs_neighbors *nb = default_neighbors(window);
        /* Grow the arrays first: the steady state is what is measured. */
        rs_neighbors_add(nb, users - 1, items - 1, 0);
        uint64_t t0 = rs_mono_ns();
        for (size_t x = 0; x < events; x++)
            rs_neighbors_add(nb, e[x].user, e[x].item, (int64_t)(x / 1000));
        t[r] = secs_since(t0);
        rs_neighbors_destroy(nb);
    }
    printf("{\"bench\":\"neighbors\",\"events\":%zu,\"window\":%d,\"k\":20,\"items\":%u,"
           "\"users\":%u,\"events_per_s\":%.0f,\"ns_per_event\":%.1f}\n",
           events, window, items, users, events / median(t, REPS),
           median(t, REPS) * 1e9 / events);
    free(e);
    return 0;
}

/* Copies the ids into the event (as the decoder does). */
static void set_ids(struct rs_event *ev, const char *user, const char *item)
{
    ev->user_len = (uint16_t)strlen(user);
    memcpy(ev->user, user, ev->user_len);
    ev->item_len = (uint16_t)strlen(item);
    memcpy(ev->item, item, ev->item_len);
}

static int bench_model(size_t events, int window, uint32_t items, uint32_t users)
{
    enum { REPS = 3 };
    struct ev *e = make_events(events, users, items);
    double t_core[REPS], t_pipe[REPS], t_mf[REPS];
    char errstr[256], set[64], (*uid)[16] = malloc((size_t)users * 16),
                               (*iid)[16] = malloc((size_t)items * 16);

    if (!uid || !iid) return 1;
    for (uint32_t u = 0; u < users; u++)
        snprintf(uid[u], 16, "u%u", u);
    for (uint32_t i = 0; i < items; i++)
        snprintf(iid[i], 16, "i%u", i);
    for (int r = 0; r < REPS; r++) {
        struct rs_model *m = make_model(users, items, 64);
        struct rs_neighbors *nb = default_neighbors(window);
        struct rs_popularity *pop = rs_popularity_create(604800);
        rs_neighbors_add(nb, users - 1, items - 1, 0);
        uint64_t t0 = rs_mono_ns();
        for (size_t x = 0; x < events; x++) {
            int64_t ts = (int64_t)(x / 1000);
            rs_model_update_play(m, e[x].user, e[x].item, 1.0f);
            rs_neighbors_add(nb, e[x].user, e[x].item, ts);
            rs_popularity_add(pop, e[x].item, 1.0f, ts);
        }
        t_core[r] = secs_since(t0);
        t0 = rs_mono_ns();
        for (size_t x = 0; x < events; x++)
            rs_model_update_play(m, e[x].user, e[x].item, 1.0f);
        t_mf[r] = secs_since(t0);
        rs_model_destroy(m);
        rs_neighbors_destroy(nb);
        rs_popularity_destroy(pop);

        /* The same events through the pipeline (ids interned, history, dirty set). */
        struct rs_config *conf = rs_config_create();
        snprintf(set, sizeof(set), "neighbors.window=%d", window);
        rs_config_set(conf, set, errstr, sizeof(errstr));
        struct rs_pipeline *p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
        struct rs_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = RS_EVENT_PLAY;
        ev.value = 1.0f;
        /* Warm: every id once, so the arrays have grown. */
        for (uint32_t u = 0; u < users; u++) {
            set_ids(&ev, uid[u], iid[u % items]);
            rs_pipeline_apply(p, &ev);
        }
        for (uint32_t i = 0; i < items; i++) {
            set_ids(&ev, uid[0], iid[i]);
            rs_pipeline_apply(p, &ev);
        }
        rs_pipeline_publish(p);
        t0 = rs_mono_ns();
        for (size_t x = 0; x < events; x++) {
            set_ids(&ev, uid[e[x].user], iid[e[x].item]);
            ev.ts_ms = (int64_t)(x / 1000);
            rs_pipeline_apply(p, &ev);
        }
        t_pipe[r] = secs_since(t0);
        rs_pipeline_destroy(p);
        rs_config_destroy(conf);
    }
    printf("{\"bench\":\"model\",\"events\":%zu,\"window\":%d,\"factors\":64,"
           "\"negatives\":4,\"items\":%u,\"users\":%u,"
           "\"events_per_s\":{\"mf_neighbors_popularity\":%.0f,\"pipeline_apply\":%.0f,"
           "\"mf_alone\":%.0f}}\n",
           events, window, items, users, events / median(t_core, REPS),
           events / median(t_pipe, REPS), events / median(t_mf, REPS));
    free(e);
    free(uid);
    free(iid);
    return 0;
}

/* ---- a quick prequential check ---- */

static int bench_recall(const char *path, int top_n, int every, char **weights)
{
    struct rs_config *conf = rs_config_create();
    conf->neighbor_list_max_age_ms = 0; /* a replay: as recstream eval */
    if (weights) {
        conf->mf_weight = atof(weights[0]);
        conf->neighbor_weight = atof(weights[1]);
        conf->popularity_weight = atof(weights[2]);
    }
    struct rs_event_limits lim = {1, 5, RS_EVENT_MAX_BYTES_DEFAULT};
    char errstr[512];
    struct rs_filesrc *fs =
        rs_filesrc_open(path, RS_FILE_AUTO, &lim, errstr, sizeof(errstr));
    struct rs_pipeline *p;
    const float decay = (float)conf->recency_decay;
    const struct rs_rank_weights sets[] = {
        {0, 0, 1, 0},
        {0, 1, 0, decay},
        {1, 0, 0, 0},
        {(float)conf->mf_weight, (float)conf->neighbor_weight,
         (float)conf->popularity_weight, decay},
    };
    const char *names[] = {"popularity", "neighbors", "model", "blend"};
    enum { NSETS = 4 };
    uint64_t hits[NSETS] = {0}, tests = 0, seen = 0;
    struct rs_event ev;
    struct rs_rec *out = malloc((size_t)top_n * sizeof(*out));

    if (!fs) {
        fprintf(stderr, "bench: %s\n", errstr);
        return 1;
    }
    snprintf(errstr, sizeof(errstr), "ranking.top_n=%d", top_n);
    rs_config_set(conf, errstr, errstr, sizeof(errstr));
    p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    for (;;) {
        enum rs_event_reason reason;
        uint64_t rec;
        rs_err_t err = rs_filesrc_next(fs, &ev, &reason, &rec);
        uint32_t u;
        if (err == RS_ENOENT) break;
        if (err) continue;
        if (rs_idmap_find(rs_pipeline_users(p), ev.user, ev.user_len, &u) == RS_OK &&
            ++seen % (uint64_t)every == 0) {
            tests++;
            for (int s = 0; s < NSETS; s++) {
                size_t n = 0;
                rs_pipeline_recommend_with(p, ev.user, ev.user_len, &sets[s], out, &n);
                for (size_t j = 0; j < n; j++) {
                    size_t len;
                    const char *name =
                        rs_idmap_name(rs_pipeline_items(p), out[j].item, &len);
                    if (len == ev.item_len && memcmp(name, ev.item, len) == 0) {
                        hits[s]++;
                        break;
                    }
                }
            }
        }
        rs_pipeline_apply(p, &ev);
    }
    printf("{\"bench\":\"recall\",\"input\":\"%s\",\"n\":%d,\"tests\":%llu", path, top_n,
           (unsigned long long)tests);
    for (int s = 0; s < NSETS; s++)
        printf(",\"%s\":%.4f", names[s], tests ? (double)hits[s] / (double)tests : 0.0);
    printf(",\"blend_weights\":[%g,%g,%g]}\n", sets[3].mf, sets[3].neighbor,
           sets[3].popularity);
    free(out);
    rs_filesrc_close(fs);
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
    return 0;
}

int main(int argc, char **argv)
{
    openblas_set_num_threads(1);
    rs_log_set_level(RS_LOG_ERROR);
    if (argc >= 3 && strcmp(argv[1], "rank") == 0)
        return bench_rank((uint32_t)atol(argv[2]), argc > 3 ? atoi(argv[3]) : 64,
                          argc > 4 ? (uint32_t)atol(argv[4]) : 1024);
    if (argc >= 3 && strcmp(argv[1], "neighbors") == 0)
        return bench_neighbors((size_t)atol(argv[2]), argc > 3 ? atoi(argv[3]) : 20,
                               argc > 4 ? (uint32_t)atol(argv[4]) : 100000,
                               argc > 5 ? (uint32_t)atol(argv[5]) : 100000);
    if (argc >= 3 && strcmp(argv[1], "model") == 0)
        return bench_model((size_t)atol(argv[2]), argc > 3 ? atoi(argv[3]) : 20,
                           argc > 4 ? (uint32_t)atol(argv[4]) : 100000,
                           argc > 5 ? (uint32_t)atol(argv[5]) : 100000);
    if (argc >= 3 && strcmp(argv[1], "recall") == 0)
        return bench_recall(argv[2], argc > 3 ? atoi(argv[3]) : 20,
                            argc > 4 ? atoi(argv[4]) : 1, argc > 7 ? argv + 5 : NULL);
    fprintf(stderr, "usage: bench_ranking rank ITEMS [FACTORS] [USERS]\n"
                    "       bench_ranking neighbors EVENTS [WINDOW] [ITEMS] [USERS]\n"
                    "       bench_ranking model EVENTS [WINDOW] [ITEMS] [USERS]\n"
                    "       bench_ranking recall FILE [N] [EVERY] [MF NB POP]\n");
    return 2;
}
