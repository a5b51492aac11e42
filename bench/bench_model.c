/*
 * bench_model.c - throughput of the model's update path, for
 * scripts/bench/model: decoded rate events held in memory go through the id
 * lookup (both id maps) and one SGD step of a k=64 model of MovieLens-1M size
 * (6040 users, 3706 items), and the same events, already as indices, through
 * a bare SGD loop over arrays of the same shape: the ceiling the update path
 * is compared against in the same run. The model steps as configured by
 * default (count-based bias rate, per-row AdaGrad factor rate); the bare loop
 * is plain SGD. Rates are events per second of the thread's CPU time (what
 * one core does, whatever else the shared machine runs); the wall-clock rates
 * are printed beside them. Prints one JSON object.
 *
 * usage: bench_model [events] [repeats] [replay_ratio] [adagrad_rate] [bias_prior]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recstream/common.h"
#include "recstream/idmap.h"
#include "recstream/model.h"

#define USERS 6040u
#define ITEMS 3706u
#define K 64

struct bev {
    char user[12];
    char item[12];
    uint16_t user_len, item_len;
    float value;
};

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Nanoseconds of CPU time this thread has used. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * The ceiling: dot product and the two row updates, nothing else, built the
 * way the model's loops are (eight-lane dot product, AVX2 clone when the CPU
 * has it).
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
static void
bare_sgd(float *restrict P, float *restrict Q, float *restrict bu, float *restrict bi,
         const uint32_t *us, const uint32_t *is, const float *rs, size_t n, float mu,
         float lr, float reg)
{
    for (size_t e = 0; e < n; e++) {
        float *restrict p = P + (size_t)us[e] * K;
        float *restrict q = Q + (size_t)is[e] * K;
        float acc[8] = {0};
        for (int f = 0; f < K; f += 8)
            for (int j = 0; j < 8; j++)
                acc[j] += p[f + j] * q[f + j];
        float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
                  ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        float err = rs[e] - (mu + bu[us[e]] + bi[is[e]] + s);
        bu[us[e]] += lr * (err - reg * bu[us[e]]);
        bi[is[e]] += lr * (err - reg * bi[is[e]]);
        for (int f = 0; f < K; f++) {
            float pu = p[f], qi = q[f];
            p[f] = pu + lr * (err * qi - reg * pu);
            q[f] = qi + lr * (err * pu - reg * qi);
        }
    }
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 2000000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    float replay = argc > 3 ? (float)atof(argv[3]) : 0.0f;
    /* config/recstream.conf's defaults */
    float adagrad_rate = argc > 4 ? (float)atof(argv[4]) : 0.12f;
    float bias_prior = argc > 5 ? (float)atof(argv[5]) : 5.0f;
    if (n == 0 || reps < 1 || reps > 99) return 2;

    struct bev *ev = malloc(n * sizeof(*ev));
    uint32_t *us = malloc(n * sizeof(*us)), *is = malloc(n * sizeof(*is));
    float *rs = malloc(n * sizeof(*rs));
    if (!ev || !us || !is || !rs) return 1;
    uint64_t s = 1;
    for (size_t e = 0; e < n; e++) {
        uint32_t u = (uint32_t)(rng(&s) % USERS);
        /* items skewed like ratings are: the square of a uniform picks low ids more */
        double x = (double)(rng(&s) >> 11) / 9007199254740992.0;
        uint32_t i = (uint32_t)(x * x * ITEMS);
        ev[e].user_len = (uint16_t)snprintf(ev[e].user, sizeof(ev[e].user), "%u", u + 1);
        ev[e].item_len = (uint16_t)snprintf(ev[e].item, sizeof(ev[e].item), "%u", i + 1);
        ev[e].value = (float)(1 + rng(&s) % 5);
        rs[e] = ev[e].value;
    }

    struct rs_model_params mp = {
        .factors = K,
        .learning_rate = 0.01f,
        .regularization = 0.08f,
        .init_std = 0.1f,
        .rating_min = 1.0f,
        .rating_max = 5.0f,
        .negatives = 4,
        .seed = 42,
        .max_users = 1u << 20,
        .max_items = 1u << 20,
        .replay_ratio = replay,
        .replay_size = replay > 0 ? 100000 : 0,
        .bias_prior = bias_prior,
        .adagrad_rate = adagrad_rate,
    };
    double path[100], bare[100], path_wall[100], bare_wall[100];
    float sink = 0.0f;
    for (int r = 0; r < reps; r++) {
        struct rs_idmap *users = rs_idmap_create(0), *items = rs_idmap_create(0);
        struct rs_model *m = rs_model_create(&mp);
        if (!users || !items || !m) return 1;
        /* Warm: every id known and every row allocated, as in a running daemon. */
        for (size_t e = 0; e < n; e++) {
            uint32_t u, i;
            rs_idmap_intern(users, ev[e].user, ev[e].user_len, &u, NULL);
            rs_idmap_intern(items, ev[e].item, ev[e].item_len, &i, NULL);
            rs_model_ensure(m, u, i);
            us[e] = u;
            is[e] = i;
        }
        uint64_t t0 = rs_mono_ns(), c0 = cpu_ns();
        for (size_t e = 0; e < n; e++) {
            uint32_t u, i;
            if (rs_idmap_intern(users, ev[e].user, ev[e].user_len, &u, NULL) ||
                rs_idmap_intern(items, ev[e].item, ev[e].item_len, &i, NULL) ||
                rs_model_ensure(m, u, i))
                return 1;
            rs_model_update_rate(m, u, i, ev[e].value);
        }
        path[r] = (double)n / ((double)(cpu_ns() - c0) / 1e9);
        path_wall[r] = (double)n / ((double)(rs_mono_ns() - t0) / 1e9);
        sink += rs_model_predict(m, 0, 0);

        /* Bare loop over arrays of the same shape, starting from the same rows. */
        uint32_t nu = rs_model_users(m), ni = rs_model_items(m);
        float *P = malloc((size_t)nu * K * sizeof(float));
        float *Q = malloc((size_t)ni * K * sizeof(float));
        float *bu = calloc(nu, sizeof(float)), *bi = calloc(ni, sizeof(float));
        if (!P || !Q || !bu || !bi) return 1;
        for (uint32_t u = 0; u < nu; u++)
            memcpy(P + (size_t)u * K, rs_model_user_factors(m, u), K * sizeof(float));
        memcpy(Q, rs_model_item_matrix(m), (size_t)ni * K * sizeof(float));
        t0 = rs_mono_ns();
        c0 = cpu_ns();
        bare_sgd(P, Q, bu, bi, us, is, rs, n, 3.0f, mp.learning_rate, mp.regularization);
        bare[r] = (double)n / ((double)(cpu_ns() - c0) / 1e9);
        bare_wall[r] = (double)n / ((double)(rs_mono_ns() - t0) / 1e9);
        sink += P[0] + Q[0];
        free(P);
        free(Q);
        free(bu);
        free(bi);
        rs_model_destroy(m);
        rs_idmap_destroy(users);
        rs_idmap_destroy(items);
    }
    qsort(path, (size_t)reps, sizeof(double), cmp_double);
    qsort(bare, (size_t)reps, sizeof(double), cmp_double);
    qsort(path_wall, (size_t)reps, sizeof(double), cmp_double);
    qsort(bare_wall, (size_t)reps, sizeof(double), cmp_double);
    double pm = path[reps / 2], bm = bare[reps / 2];
    printf("{\"events\":%zu,\"repeats\":%d,\"k\":%d,\"users\":%u,\"items\":%u,"
           "\"replay_ratio\":%g,\"adagrad_rate\":%g,\"bias_prior\":%g,"
           "\"update_path_eps\":%.0f,\"bare_sgd_eps\":%.0f,\"ratio\":%.3f,"
           "\"update_path_eps_wall\":%.0f,\"bare_sgd_eps_wall\":%.0f,\"checksum\":%g}\n",
           n, reps, K, USERS, ITEMS, (double)replay, (double)adagrad_rate,
           (double)bias_prior, pm, bm, pm / bm, path_wall[reps / 2], bare_wall[reps / 2],
           (double)sink);
    free(ev);
    free(us);
    free(is);
    free(rs);
    return 0;
}
