/*
 * model.c - the online model (Surprise's SVD family for ratings, ISGD/BPR
 * family for plays), trained by one SGD step per event. It owns the global
 * mean, the user and item biases, the user factor matrix P and the item factor
 * matrix Q, all contiguous float arrays grown geometrically by rs_model_ensure
 * up to max_users/max_items; the users' recency list (for idle-user eviction);
 * the replay ring of recent events; and the model's own PRNG (xoshiro256**,
 * seeded through splitmix64) that draws new factor rows, negatives and replayed
 * events, so that the same calls with the same seed give bit-identical arrays.
 *
 * How rate and play share the parameters: both train the same P and Q, so a
 * user's taste learnt from ratings ranks items for plays and the other way
 * round, and the ranker needs one score for both.
 * A rating trains the full prediction mu + b_u + b_i + p_u . q_i (mu is the
 * running mean of all accepted ratings, updated before the step, so the step
 * uses the mean including this rating; before the first rating mu is the middle
 * of the scale). A play trains b_i + p_u . q_i towards 1 for the played item and
 * towards 0 for `negatives` sampled items (squared loss, as ISGD, plus the item
 * bias): in a play stream b_i becomes a popularity prior and the factors learn
 * what is left. The bias steps at PLAY_BIAS_SCALE times the learning rate, so
 * the prior is a slow, long-run one and the factors carry what is recent and
 * personal (on MovieLens 1M as plays this raised prequential recall@20 by 9%
 * over an equal rate; a faster bias lowered it). Plays never touch mu or b_u, which stay rating-only (b_u is a
 * constant within one user's ranking anyway).
 * Negatives cost O(1) each, no scan of the catalogue: an item drawn
 * uniformly from the known items by one multiply-shift of a PRNG word.
 * (Drawing them in proportion to popularity, from the replay ring, was tried:
 * it cancels the popularity prior in b_i and cut prequential recall@20 on
 * MovieLens to less than half, see docs/BENCHMARKS.md.)
 * The confidence of a play scales its positive step by c(w): w itself for
 * 0 < w < 1, 1 + ln(w) for w >= 1 (counts or seconds grow the step slowly),
 * capped at PLAY_CONF_MAX so one long play cannot blow up the factors.
 * Negatives always take an unscaled step.
 *
 * Adaptive rates of the rating step (both optional, both on by default): in a
 * single pass a new user or item has few ratings, and a constant rate learns
 * from them slowly (the biases) or hardly at all (factors drawn small, whose
 * gradients e*q are small too). With bias_prior > 0 a row's bias steps at
 * max(learning_rate, 1/(n + bias_prior)) after n live ratings of that row:
 * its first ratings make it the mean of its residuals, shrunk towards 0 as if
 * it had bias_prior more ratings at residual 0, and from n = 1/learning_rate -
 * bias_prior on it steps as before. With adagrad_rate > 0 each user and item
 * row steps its factors at adagrad_rate / sqrt(G + 1e-4), G the sum over its
 * steps of the mean squared gradient of the row (AdaGrad with one accumulator
 * per row, not per factor): a young row's small gradients take full-size
 * steps, an old row's steps shrink. On MovieLens 100K in time order this took
 * the prequential RMSE of one pass from 0.956 to 0.941 (k = 10), better than
 * three replayed steps per event gave, at a fraction of their cost. The
 * per-row state (G, n) is reset when a user is evicted and saved in
 * snapshots. Plays keep the constant rate: their squared loss towards 0/1
 * with sampled negatives has other gradient scales, and the play path was
 * tuned for recall as it is.
 *
 * Replay: every accepted event is written into a ring of the last replay_size
 * events; after it, replay_ratio events drawn uniformly from the ring (the
 * fractional part carried to the next event) take the same step again. A
 * stream thus gets several passes over its recent past, like the epochs of
 * batch training, at a bounded cost per event. Replayed ratings do not move
 * mu. Each ring entry carries its user's generation, bumped when the user is
 * evicted, so an evicted user's events are never replayed onto the new
 * owner of its index.
 *
 * Eviction: users are kept in a doubly linked recency list (rs_model_touch_user
 * moves one to the front); rs_model_lru_user names the least recently seen,
 * rs_model_forget_user frees its row, which rs_model_ensure draws afresh when
 * the index is handed out again.
 */
#include "recstream/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/serial.h"

#define MIN_ROWS 16u
#define MAX_REPLAY_SIZE (1u << 26)
#define MAX_REPLAY_RATIO 100.0f
#define PLAY_CONF_MAX 4.0f
/* The item bias moves this much slower than the factors under plays. */
#define PLAY_BIAS_SCALE 0.1f
#define MAX_FACTORS 4096
#define MAX_NEGATIVES 1000
#define MAX_BIAS_PRIOR 1e6f
#define MAX_ADAGRAD_RATE 1.0f
/* Keeps the AdaGrad rate finite before a row's first gradient. */
#define ADAGRAD_EPS 1e-4f

/* Per-user bookkeeping beside the factor rows. */
struct user_meta {
    uint32_t prev, next; /* recency list: prev is more recent; RS_NONE at the ends */
    int64_t last_ms;     /* time of the user's latest touch */
    uint32_t gen;        /* bumped at each eviction of this index */
    uint32_t live;       /* 0 once forgotten, until ensure hands the row out again */
};

/* Per-row state of the rating step's adaptive rates. */
struct row_stat {
    float g2;   /* AdaGrad: sum of the row's mean squared factor gradients */
    uint32_t n; /* live ratings of this row (saturates) */
};

/* One event in the replay ring. */
struct replay_ev {
    uint32_t u, i;
    float value;
    uint32_t tag; /* user generation << 1 | 1 for a play */
};

struct rs_model {
    struct rs_model_params params;
    int k;
    float inv_k; /* 1/k */
    uint32_t n_users, n_items;
    uint32_t cap_users, cap_items;
    float *P;  /* cap_users x k */
    float *Q;  /* cap_items x k */
    float *bu; /* cap_users */
    float *bi; /* cap_items */
    struct user_meta *um; /* cap_users */
    struct row_stat *us;  /* cap_users */
    struct row_stat *is;  /* cap_items */
    uint32_t live_users;
    uint32_t mru, lru; /* ends of the recency list, RS_NONE when empty */
    int64_t clock_ms;  /* latest touch time */
    struct replay_ev *ring; /* replay_size entries */
    uint32_t ring_len, ring_pos;
    float replay_debt; /* fractional replays carried to the next event */
    double mu; /* running mean of accepted ratings */
    uint64_t n_ratings;
    uint64_t events;
    uint64_t rng[4];
    double spare_normal; /* second Box-Muller value */
    int has_spare;
};

/* ---- PRNG: splitmix64 for seeding, xoshiro256** for the stream ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t v, int s)
{
    return (v << s) | (v >> (64 - s));
}

static uint64_t rng_next(struct rs_model *m)
{
    uint64_t *s = m->rng;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in (0, 1]: never 0, so log() is safe. */
static double rng_unit(struct rs_model *m)
{
    return ((double)(rng_next(m) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

/* Uniform in [0, n) by multiply-shift (bias below 2^-32 * n, fine here). */
static uint32_t rng_below(struct rs_model *m, uint32_t n)
{
    return (uint32_t)(((rng_next(m) >> 32) * (uint64_t)n) >> 32);
}

/* Standard normal by Box-Muller, the second value kept for the next call. */
static double rng_normal(struct rs_model *m)
{
    if (m->has_spare) {
        m->has_spare = 0;
        return m->spare_normal;
    }
    double r = sqrt(-2.0 * log(rng_unit(m)));
    double a = 6.283185307179586 * rng_unit(m);
    m->spare_normal = r * sin(a);
    m->has_spare = 1;
    return r * cos(a);
}

/* ---- inner loops over k contiguous floats ---- */

/*
 * The training entry points are compiled twice, for AVX2 and for the baseline
 * ISA, and the loader picks one for the CPU (GCC target_clones). FMA is left
 * out and C11 mode keeps a*b+c uncontracted, so both clones round exactly
 * alike: a model trained on one CPU continues bit for bit on another.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define RS_CLONES __attribute__((target_clones("avx2", "default")))
#define RS_INLINE static inline __attribute__((always_inline))
#else
#define RS_CLONES
#define RS_INLINE static inline
#endif

/*
 * Eight independent partial sums: a float reduction in one accumulator may not
 * be reordered, so the compiler could not vectorise it; eight lanes it can
 * (two SSE or one AVX register). The order is fixed, so results stay
 * deterministic.
 */
RS_INLINE float dot(const float *restrict a, const float *restrict b, int k)
{
    float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int f = 0;
    for (; f + 8 <= k; f += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[f + j] * b[f + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; f < k; f++)
        s += a[f] * b[f];
    return s;
}

/*
 * dot(a, b) and the squared norms of a and b: three passes of dot(), the rows
 * are in L1 after the first (one fused loop with three sets of lanes measured
 * no faster).
 */
RS_INLINE float dot3(const float *restrict a, const float *restrict b, int k, float *aa,
                     float *bb)
{
    *aa = dot(a, a, k);
    *bb = dot(b, b, k);
    return dot(a, b, k);
}

/* p += lp*(e*q - reg*p); q += lq*(e*p_old - reg*q), element by element. */
RS_INLINE void sgd_pair(float *restrict p, float *restrict q, int k, float lp, float lq,
                        float e, float reg)
{
    for (int f = 0; f < k; f++) {
        float pu = p[f];
        float qi = q[f];
        p[f] = pu + lp * (e * qi - reg * pu);
        q[f] = qi + lq * (e * pu - reg * qi);
    }
}

/* ---- lifecycle ---- */

static int params_ok(const struct rs_model_params *pa)
{
    return pa->factors >= 1 && pa->factors <= MAX_FACTORS &&
           isfinite(pa->learning_rate) && pa->learning_rate > 0.0f &&
           isfinite(pa->regularization) && pa->regularization >= 0.0f &&
           isfinite(pa->init_std) && pa->init_std >= 0.0f && isfinite(pa->rating_min) &&
           isfinite(pa->rating_max) && pa->rating_min < pa->rating_max &&
           pa->negatives >= 0 && pa->negatives <= MAX_NEGATIVES && pa->max_users >= 1 && pa->max_users < RS_NONE &&
           pa->max_items >= 1 && pa->max_items < RS_NONE && isfinite(pa->replay_ratio) &&
           pa->replay_ratio >= 0.0f && pa->replay_ratio <= MAX_REPLAY_RATIO &&
           pa->replay_size <= MAX_REPLAY_SIZE && isfinite(pa->bias_prior) &&
           pa->bias_prior >= 0.0f && pa->bias_prior <= MAX_BIAS_PRIOR &&
           isfinite(pa->adagrad_rate) && pa->adagrad_rate >= 0.0f &&
           pa->adagrad_rate <= MAX_ADAGRAD_RATE;
}

struct rs_model *rs_model_create(const struct rs_model_params *params)
{
    if (params == NULL || !params_ok(params)) return NULL;
    struct rs_model *m = calloc(1, sizeof(*m));
    if (m == NULL) return NULL;
    m->params = *params;
    m->k = params->factors;
    m->inv_k = 1.0f / (float)params->factors;
    m->mru = m->lru = RS_NONE;
    if (params->replay_size > 0 && params->replay_ratio > 0.0f) {
        m->ring = malloc((size_t)params->replay_size * sizeof(*m->ring));
        if (m->ring == NULL) {
            free(m);
            return NULL;
        }
    }
    /* Before any rating the mean is the middle of the scale. */
    m->mu = 0.5 * ((double)params->rating_min + (double)params->rating_max);
    uint64_t x = params->seed;
    for (int j = 0; j < 4; j++)
        m->rng[j] = splitmix64(&x);
    return m;
}

void rs_model_destroy(struct rs_model *m)
{
    if (m == NULL) return;
    free(m->P);
    free(m->Q);
    free(m->bu);
    free(m->bi);
    free(m->um);
    free(m->us);
    free(m->is);
    free(m->ring);
    free(m);
}

/*
 * Grows one side (matrix, bias vector, row stats and for users the records) to
 * hold at least `need` rows. On failure the old arrays stay valid (realloc
 * keeps them).
 */
static rs_err_t grow(float **mat, float **bias, struct row_stat **stat,
                     struct user_meta **meta, uint32_t *cap, uint32_t need, uint32_t max,
                     int k)
{
    if (need <= *cap) return RS_OK;
    uint64_t ncap = *cap ? *cap : MIN_ROWS;
    while (ncap < need)
        ncap *= 2;
    if (ncap > max) ncap = max;
    if (ncap > SIZE_MAX / sizeof(float) / (size_t)k) return RS_ENOMEM;
    float *nm = realloc(*mat, (size_t)ncap * (size_t)k * sizeof(float));
    if (nm == NULL) return RS_ENOMEM;
    *mat = nm;
    float *nb = realloc(*bias, (size_t)ncap * sizeof(float));
    if (nb == NULL) return RS_ENOMEM;
    *bias = nb;
    struct row_stat *ns = realloc(*stat, (size_t)ncap * sizeof(**stat));
    if (ns == NULL) return RS_ENOMEM;
    *stat = ns;
    if (meta != NULL) {
        struct user_meta *nu = realloc(*meta, (size_t)ncap * sizeof(**meta));
        if (nu == NULL) return RS_ENOMEM;
        *meta = nu;
    }
    *cap = (uint32_t)ncap;
    return RS_OK;
}

static void init_rows(struct rs_model *m, float *mat, float *bias, struct row_stat *stat,
                      uint32_t from, uint32_t to)
{
    int k = m->k;
    double sd = m->params.init_std;
    for (uint32_t r = from; r < to; r++) {
        float *row = mat + (size_t)r * (size_t)k;
        for (int f = 0; f < k; f++)
            row[f] = sd > 0.0 ? (float)(sd * rng_normal(m)) : 0.0f;
        bias[r] = 0.0f;
        stat[r].g2 = 0.0f;
        stat[r].n = 0;
    }
}

/* ---- users' recency ---- */

static void user_unlink(struct rs_model *m, uint32_t u)
{
    struct user_meta *x = &m->um[u];
    if (x->prev != RS_NONE) m->um[x->prev].next = x->next;
    else m->mru = x->next;
    if (x->next != RS_NONE) m->um[x->next].prev = x->prev;
    else m->lru = x->prev;
}

static void user_push_front(struct rs_model *m, uint32_t u)
{
    struct user_meta *x = &m->um[u];
    x->prev = RS_NONE;
    x->next = m->mru;
    if (m->mru != RS_NONE) m->um[m->mru].prev = u;
    else m->lru = u;
    m->mru = u;
}

/* Makes a new or recycled row live, most recent, seen at the model's clock. */
static void user_link(struct rs_model *m, uint32_t u)
{
    m->um[u].live = 1;
    m->um[u].last_ms = m->clock_ms;
    m->live_users++;
    user_push_front(m, u);
}

void rs_model_touch_user(struct rs_model *m, uint32_t u, int64_t ts_ms)
{
    if (m == NULL || u >= m->n_users || !m->um[u].live) return;
    if (ts_ms > m->clock_ms) m->clock_ms = ts_ms;
    m->um[u].last_ms = m->clock_ms;
    if (m->mru == u) return;
    user_unlink(m, u);
    user_push_front(m, u);
}

uint32_t rs_model_lru_user(const struct rs_model *m, int64_t *last_ms)
{
    if (m == NULL || m->lru == RS_NONE) return RS_NONE;
    if (last_ms != NULL) *last_ms = m->um[m->lru].last_ms;
    return m->lru;
}

void rs_model_forget_user(struct rs_model *m, uint32_t u)
{
    if (m == NULL || u >= m->n_users || !m->um[u].live) return;
    user_unlink(m, u);
    m->um[u].live = 0;
    m->um[u].gen++;
    m->live_users--;
    /* Zero the row so nothing reads the old user's taste before ensure redraws it. */
    memset(m->P + (size_t)u * (size_t)m->k, 0, (size_t)m->k * sizeof(float));
    m->bu[u] = 0.0f;
    m->us[u].g2 = 0.0f;
    m->us[u].n = 0;
}

uint32_t rs_model_live_users(const struct rs_model *m)
{
    return m == NULL ? 0 : m->live_users;
}

size_t rs_model_bytes(const struct rs_model *m)
{
    if (m == NULL) return 0;
    size_t k = (size_t)m->k;
    return sizeof(*m) +
           (size_t)m->cap_users *
               ((k + 1) * sizeof(float) + sizeof(*m->um) + sizeof(*m->us)) +
           (size_t)m->cap_items * ((k + 1) * sizeof(float) + sizeof(*m->is)) +
           (m->ring ? (size_t)m->params.replay_size * sizeof(*m->ring) : 0);
}

rs_err_t rs_model_ensure(struct rs_model *m, uint32_t u, uint32_t i)
{
    rs_err_t err = RS_OK;

    if (m == NULL) {
        err = RS_EINVAL;
        goto out;
    }
    if ((u != RS_NONE && u >= m->params.max_users) ||
        (i != RS_NONE && i >= m->params.max_items)) {
        err = RS_EFULL;
        goto out;
    }
    if (u != RS_NONE && u >= m->n_users) {
        err = grow(&m->P, &m->bu, &m->us, &m->um, &m->cap_users, u + 1, m->params.max_users,
                   m->k);
        if (err != RS_OK) goto out;
    }
    if (i != RS_NONE && i >= m->n_items) {
        err = grow(&m->Q, &m->bi, &m->is, NULL, &m->cap_items, i + 1, m->params.max_items,
                   m->k);
        if (err != RS_OK) goto out;
    }
    /* Only now, with both sides allocated, draw the new rows: users first. */
    if (u != RS_NONE && u >= m->n_users) {
        init_rows(m, m->P, m->bu, m->us, m->n_users, u + 1);
        for (uint32_t v = m->n_users; v <= u; v++) {
            m->um[v].gen = 0;
            user_link(m, v);
        }
        m->n_users = u + 1;
    } else if (u != RS_NONE && !m->um[u].live) {
        init_rows(m, m->P, m->bu, m->us, u, u + 1);
        user_link(m, u);
    }
    if (i != RS_NONE && i >= m->n_items) {
        init_rows(m, m->Q, m->bi, m->is, m->n_items, i + 1);
        m->n_items = i + 1;
    }
out:
    return err;
}

/* ---- training ---- */

/*
 * The bias rate of a row after n of its ratings: 1/(n + prior) while that is
 * above lr, which makes a new row's bias the mean of its residuals shrunk
 * towards 0 as if it had `prior` more ratings at residual 0; then lr.
 */
RS_INLINE float bias_rate(float lr, float prior, uint32_t n)
{
    float d = (float)n + prior;
    return prior > 0.0f && d * lr < 1.0f ? 1.0f / d : lr; /* no division once at lr */
}

/* AdaGrad: adds a row's mean squared gradient g2 and returns its factor rate. */
RS_INLINE float adagrad(struct row_stat *st, float eta, float g2)
{
    st->g2 += g2 > 0.0f ? g2 : 0.0f; /* rounding can leave a tiny negative */
    return eta / sqrtf(st->g2 + ADAGRAD_EPS);
}

/*
 * The rating step with the current mu; returns the error before it. `live`
 * counts the rating towards the rows' bias rates (replayed steps do not).
 */
RS_INLINE float rate_step(struct rs_model *m, uint32_t u, uint32_t i, float r, int live)
{
    int k = m->k;
    float lr = m->params.learning_rate;
    float reg = m->params.regularization;
    float eta = m->params.adagrad_rate;
    float prior = m->params.bias_prior;
    float *p = m->P + (size_t)u * (size_t)k;
    float *q = m->Q + (size_t)i * (size_t)k;
    struct row_stat *su = &m->us[u], *si = &m->is[i];
    float pp = 0.0f, qq = 0.0f;
    float pq = eta > 0.0f ? dot3(p, q, k, &pp, &qq) : dot(p, q, k);
    float e = r - ((float)m->mu + m->bu[u] + m->bi[i] + pq);
    m->bu[u] += bias_rate(lr, prior, su->n) * (e - reg * m->bu[u]);
    m->bi[i] += bias_rate(lr, prior, si->n) * (e - reg * m->bi[i]);
    float lp = lr, lq = lr;
    if (eta > 0.0f) {
        /* |e q - reg p|^2 / k and |e p - reg q|^2 / k from the three dot products */
        float cross = 2.0f * e * reg * pq, inv_k = m->inv_k;
        lp = adagrad(su, eta, (e * e * qq - cross + reg * reg * pp) * inv_k);
        lq = adagrad(si, eta, (e * e * pp - cross + reg * reg * qq) * inv_k);
    }
    if (live) {
        su->n += su->n < UINT32_MAX;
        si->n += si->n < UINT32_MAX;
    }
    sgd_pair(p, q, k, lp, lq, e, reg);
    return e;
}

RS_INLINE float play_confidence(float w)
{
    float c = w < 1.0f ? w : 1.0f + logf(w);
    return c < PLAY_CONF_MAX ? c : PLAY_CONF_MAX;
}

/* b_i + p.q towards target with step lr. */
RS_INLINE void implicit_step(struct rs_model *m, float *p, uint32_t i, float target, float lr)
{
    int k = m->k;
    float reg = m->params.regularization;
    float *q = m->Q + (size_t)i * (size_t)k;
    float e = target - (m->bi[i] + dot(p, q, k));
    m->bi[i] += PLAY_BIAS_SCALE * lr * (e - reg * m->bi[i]);
    sgd_pair(p, q, k, lr, lr, e, reg);
}

RS_INLINE void play_step(struct rs_model *m, uint32_t u, uint32_t i, float w)
{
    float lr = m->params.learning_rate;
    float *p = m->P + (size_t)u * (size_t)m->k;
    implicit_step(m, p, i, 1.0f, lr * play_confidence(w));
    for (int n = 0; n < m->params.negatives; n++) {
        uint32_t j = rng_below(m, m->n_items);
        if (j == i) continue;
        implicit_step(m, p, j, 0.0f, lr);
    }
}

/* Replays the due share of ring events, then records (u, i) in the ring. */
RS_INLINE void replay_and_record(struct rs_model *m, uint32_t u, uint32_t i, float v, int play)
{
    if (m->ring == NULL) return;
    if (m->ring_len > 0) {
        m->replay_debt += m->params.replay_ratio;
        while (m->replay_debt >= 1.0f) {
            m->replay_debt -= 1.0f;
            const struct replay_ev *x = &m->ring[rng_below(m, m->ring_len)];
            if (x->u >= m->n_users || !m->um[x->u].live || (x->tag >> 1) != m->um[x->u].gen)
                continue;
            if (x->tag & 1) play_step(m, x->u, x->i, x->value);
            else rate_step(m, x->u, x->i, x->value, 0);
        }
    }
    struct replay_ev *slot = &m->ring[m->ring_pos];
    slot->u = u;
    slot->i = i;
    slot->value = v;
    slot->tag = m->um[u].gen << 1 | (uint32_t)(play != 0);
    m->ring_pos = m->ring_pos + 1 == m->params.replay_size ? 0 : m->ring_pos + 1;
    if (m->ring_len < m->params.replay_size) m->ring_len++;
}

static int known(const struct rs_model *m, uint32_t u, uint32_t i)
{
    return m != NULL && u < m->n_users && i < m->n_items && m->um[u].live;
}

RS_CLONES float rs_model_update_rate(struct rs_model *m, uint32_t u, uint32_t i, float r)
{
    if (!known(m, u, i) || !isfinite(r) || r < m->params.rating_min ||
        r > m->params.rating_max)
        return NAN;
    m->n_ratings++;
    m->mu += ((double)r - m->mu) / (double)m->n_ratings;
    float e = rate_step(m, u, i, r, 1);
    replay_and_record(m, u, i, r, 0);
    m->events++;
    return e;
}

RS_CLONES void rs_model_update_play(struct rs_model *m, uint32_t u, uint32_t i, float w)
{
    if (!known(m, u, i) || !isfinite(w) || w <= 0.0f) return;
    play_step(m, u, i, w);
    replay_and_record(m, u, i, w, 1);
    m->events++;
}

float rs_model_score(const struct rs_model *m, uint32_t u, uint32_t i)
{
    if (!known(m, u, i)) return NAN;
    int k = m->k;
    return m->bi[i] + dot(m->P + (size_t)u * (size_t)k, m->Q + (size_t)i * (size_t)k, k);
}

/* ---- reading ---- */

RS_CLONES float rs_model_predict(const struct rs_model *m, uint32_t u, uint32_t i)
{
    if (m == NULL) return NAN;
    int k = m->k;
    float s = (float)m->mu;
    int ku = u < m->n_users, ki = i < m->n_items;
    if (ku) s += m->bu[u];
    if (ki) s += m->bi[i];
    if (ku && ki) s += dot(m->P + (size_t)u * (size_t)k, m->Q + (size_t)i * (size_t)k, k);
    if (!(s >= m->params.rating_min)) /* also maps NaN to the floor */
        s = m->params.rating_min;
    if (s > m->params.rating_max) s = m->params.rating_max;
    return s;
}

int rs_model_factors(const struct rs_model *m)
{
    return m->k;
}

uint32_t rs_model_users(const struct rs_model *m)
{
    return m->n_users;
}

uint32_t rs_model_items(const struct rs_model *m)
{
    return m->n_items;
}

float rs_model_global_mean(const struct rs_model *m)
{
    return (float)m->mu;
}

const float *rs_model_user_factors(const struct rs_model *m, uint32_t u)
{
    if (u >= m->n_users) return NULL;
    return m->P + (size_t)u * (size_t)m->k;
}

void rs_model_prefetch_user(const struct rs_model *m, uint32_t u, int stage)
{
    if (m == NULL || u >= m->n_users) return;
    if (stage == 1) {
        const float *p = m->P + (size_t)u * (size_t)m->k;
        for (int f = 0; f < m->k; f += 16)
            __builtin_prefetch(p + f, 1);
        __builtin_prefetch(&m->bu[u], 1);
        __builtin_prefetch(&m->us[u], 1);
        __builtin_prefetch(&m->um[u], 1);
    } else {
        const struct user_meta *x = &m->um[u];
        if (x->prev != RS_NONE) __builtin_prefetch(&m->um[x->prev], 1);
        if (x->next != RS_NONE) __builtin_prefetch(&m->um[x->next], 1);
    }
}

float rs_model_user_bias(const struct rs_model *m, uint32_t u)
{
    return u < m->n_users ? m->bu[u] : 0.0f;
}

const float *rs_model_item_matrix(const struct rs_model *m)
{
    return m->Q;
}

const float *rs_model_item_biases(const struct rs_model *m)
{
    return m->bi;
}

uint64_t rs_model_events(const struct rs_model *m)
{
    return m->events;
}

/* ---- snapshots ---- */

/* 3 added bias_prior, adagrad_rate and the row stats; 2 still loads, with both off. */
#define MODEL_FORMAT 3u
#define MODEL_FORMAT_OLDEST 2u

static rs_err_t put(struct rs_writer *w, const void *p, size_t n)
{
    return n ? w->write(w->ctx, p, n) : RS_OK;
}

static rs_err_t get(struct rs_reader *r, void *p, size_t n)
{
    return n ? r->read(r->ctx, p, n) : RS_OK;
}

static rs_err_t save_stats(struct rs_writer *w, const struct row_stat *st, uint32_t n)
{
    rs_err_t err = RS_OK;
    for (uint32_t r = 0; r < n && !err; r++)
        if (!(err = put(w, &st[r].g2, 4))) err = rs_write_u32(w, st[r].n);
    return err;
}

/* Reads n row stats (format 3) or zeroes them (format 2); RS_ECORRUPT on a bad g2. */
static rs_err_t load_stats(struct rs_reader *r, uint32_t format, struct row_stat *st,
                           uint32_t n)
{
    rs_err_t err;
    for (uint32_t j = 0; j < n; j++) {
        st[j].g2 = 0.0f;
        st[j].n = 0;
        if (format < 3) continue;
        if ((err = get(r, &st[j].g2, 4)) || (err = rs_read_u32(r, &st[j].n))) return err;
        if (!(isfinite(st[j].g2) && st[j].g2 >= 0.0f)) return RS_ECORRUPT;
    }
    return RS_OK;
}

/*
 * Format: a version word, the parameters field by field, the counters and the
 * PRNG state, the recency list ends and clock, then for the rows in use P,
 * b_u, the user records, the users' row stats, Q, b_i, the items' row stats,
 * then the replay ring (length, position, entries). Version 2 had no
 * bias_prior, adagrad_rate or row stats. Fixed-width fields in the machine's
 * byte order (little-endian on every supported target).
 */
rs_err_t rs_model_save(const struct rs_model *m, struct rs_writer *w)
{
    const struct rs_model_params *pa = &m->params;
    int32_t factors = pa->factors, negatives = pa->negatives, has_spare = m->has_spare;
    size_t k = (size_t)m->k;
    rs_err_t err;

    if ((err = rs_write_u32(w, MODEL_FORMAT)) || (err = put(w, &factors, 4)) ||
        (err = put(w, &pa->learning_rate, 4)) || (err = put(w, &pa->regularization, 4)) ||
        (err = put(w, &pa->init_std, 4)) || (err = put(w, &pa->rating_min, 4)) ||
        (err = put(w, &pa->rating_max, 4)) || (err = put(w, &negatives, 4)) ||
        (err = rs_write_u64(w, pa->seed)) || (err = rs_write_u32(w, pa->max_users)) ||
        (err = rs_write_u32(w, pa->max_items)) || (err = put(w, &pa->replay_ratio, 4)) ||
        (err = rs_write_u32(w, pa->replay_size)) || (err = put(w, &pa->bias_prior, 4)) ||
        (err = put(w, &pa->adagrad_rate, 4)) || (err = rs_write_u32(w, m->n_users)) ||
        (err = rs_write_u32(w, m->n_items)) || (err = put(w, &m->mu, 8)) ||
        (err = rs_write_u64(w, m->n_ratings)) || (err = rs_write_u64(w, m->events)) ||
        (err = put(w, m->rng, sizeof(m->rng))) || (err = put(w, &m->spare_normal, 8)) ||
        (err = put(w, &has_spare, 4)) || (err = rs_write_u32(w, m->live_users)) ||
        (err = rs_write_u32(w, m->mru)) || (err = rs_write_u32(w, m->lru)) ||
        (err = put(w, &m->clock_ms, 8)) || (err = put(w, &m->replay_debt, 4)))
        return err;
    if ((err = put(w, m->P, (size_t)m->n_users * k * sizeof(float))) ||
        (err = put(w, m->bu, (size_t)m->n_users * sizeof(float))))
        return err;
    for (uint32_t u = 0; u < m->n_users; u++) {
        const struct user_meta *x = &m->um[u];
        if ((err = rs_write_u32(w, x->prev)) || (err = rs_write_u32(w, x->next)) ||
            (err = put(w, &x->last_ms, 8)) || (err = rs_write_u32(w, x->gen)) ||
            (err = rs_write_u32(w, x->live)))
            return err;
    }
    if ((err = save_stats(w, m->us, m->n_users)) ||
        (err = put(w, m->Q, (size_t)m->n_items * k * sizeof(float))) ||
        (err = put(w, m->bi, (size_t)m->n_items * sizeof(float))) ||
        (err = save_stats(w, m->is, m->n_items)) || (err = rs_write_u32(w, m->ring_len)) ||
        (err = rs_write_u32(w, m->ring_pos)))
        return err;
    for (uint32_t j = 0; j < m->ring_len; j++) {
        const struct replay_ev *x = &m->ring[j];
        if ((err = rs_write_u32(w, x->u)) || (err = rs_write_u32(w, x->i)) ||
            (err = put(w, &x->value, 4)) || (err = rs_write_u32(w, x->tag)))
            return err;
    }
    return RS_OK;
}

#define USER_RECORD 24u /* bytes per saved user record */
#define ROW_STAT 8u     /* bytes per saved row stat (format 3) */

/* The recency list must run mru -> lru through exactly the live users. */
static int recency_ok(const struct rs_model *m)
{
    uint32_t seen = 0, prev = RS_NONE;
    for (uint32_t u = m->mru; u != RS_NONE; u = m->um[u].next) {
        if (u >= m->n_users || !m->um[u].live || m->um[u].prev != prev ||
            ++seen > m->live_users)
            return 0;
        prev = u;
    }
    return seen == m->live_users && m->lru == prev;
}

struct rs_model *rs_model_load(struct rs_reader *r, rs_err_t *err)
{
    struct rs_model_params pa;
    struct rs_model *m = NULL;
    uint32_t format, n_users, n_items, live_users, mru, lru, ring_len, ring_pos;
    int32_t factors, negatives, has_spare;
    double mu, spare;
    float debt;
    int64_t clock_ms;
    uint64_t n_ratings, events, rng[4];

    memset(&pa, 0, sizeof(pa));
    if ((*err = rs_read_u32(r, &format)))
        return NULL;
    if (format < MODEL_FORMAT_OLDEST || format > MODEL_FORMAT) {
        *err = RS_ECORRUPT;
        return NULL;
    }
    if ((*err = get(r, &factors, 4)) || (*err = get(r, &pa.learning_rate, 4)) ||
        (*err = get(r, &pa.regularization, 4)) || (*err = get(r, &pa.init_std, 4)) ||
        (*err = get(r, &pa.rating_min, 4)) || (*err = get(r, &pa.rating_max, 4)) ||
        (*err = get(r, &negatives, 4)) || (*err = rs_read_u64(r, &pa.seed)) ||
        (*err = rs_read_u32(r, &pa.max_users)) || (*err = rs_read_u32(r, &pa.max_items)) ||
        (*err = get(r, &pa.replay_ratio, 4)) || (*err = rs_read_u32(r, &pa.replay_size)) ||
        (format >= 3 && ((*err = get(r, &pa.bias_prior, 4)) ||
                         (*err = get(r, &pa.adagrad_rate, 4)))) ||
        (*err = rs_read_u32(r, &n_users)) || (*err = rs_read_u32(r, &n_items)) ||
        (*err = get(r, &mu, 8)) || (*err = rs_read_u64(r, &n_ratings)) ||
        (*err = rs_read_u64(r, &events)) || (*err = get(r, rng, sizeof(rng))) ||
        (*err = get(r, &spare, 8)) || (*err = get(r, &has_spare, 4)) ||
        (*err = rs_read_u32(r, &live_users)) || (*err = rs_read_u32(r, &mru)) ||
        (*err = rs_read_u32(r, &lru)) || (*err = get(r, &clock_ms, 8)) ||
        (*err = get(r, &debt, 4)))
        return NULL;
    pa.factors = factors;
    pa.negatives = negatives;
    if (!params_ok(&pa) || n_users > pa.max_users || n_items > pa.max_items ||
        live_users > n_users || !isfinite(mu) || !isfinite(spare) ||
        (has_spare != 0 && has_spare != 1) || (rng[0] | rng[1] | rng[2] | rng[3]) == 0 ||
        !(debt >= 0.0f && debt < 1.0f)) {
        *err = RS_ECORRUPT;
        return NULL;
    }
    /* Both matrices, bias vectors and user records must fit in what is left. */
    uint64_t need = ((uint64_t)n_users + n_items) * ((uint64_t)factors + 1) * sizeof(float) +
                    (uint64_t)n_users * USER_RECORD + 8 +
                    (format >= 3 ? ((uint64_t)n_users + n_items) * ROW_STAT : 0);
    if (need > r->remaining(r->ctx)) {
        *err = RS_ECORRUPT;
        return NULL;
    }
    m = rs_model_create(&pa);
    if (m == NULL) {
        *err = RS_ENOMEM;
        return NULL;
    }
    size_t k = (size_t)factors;
    if ((n_users &&
         grow(&m->P, &m->bu, &m->us, &m->um, &m->cap_users, n_users, pa.max_users, m->k)) ||
        (n_items &&
         grow(&m->Q, &m->bi, &m->is, NULL, &m->cap_items, n_items, pa.max_items, m->k))) {
        *err = RS_ENOMEM;
        goto fail;
    }
    if ((*err = get(r, m->P, (size_t)n_users * k * sizeof(float))) ||
        (*err = get(r, m->bu, (size_t)n_users * sizeof(float))))
        goto fail;
    for (uint32_t u = 0; u < n_users; u++) {
        struct user_meta *x = &m->um[u];
        if ((*err = rs_read_u32(r, &x->prev)) || (*err = rs_read_u32(r, &x->next)) ||
            (*err = get(r, &x->last_ms, 8)) || (*err = rs_read_u32(r, &x->gen)) ||
            (*err = rs_read_u32(r, &x->live)))
            goto fail;
        if (x->live > 1) {
            *err = RS_ECORRUPT;
            goto fail;
        }
    }
    if ((*err = load_stats(r, format, m->us, n_users)) ||
        (*err = get(r, m->Q, (size_t)n_items * k * sizeof(float))) ||
        (*err = get(r, m->bi, (size_t)n_items * sizeof(float))) ||
        (*err = load_stats(r, format, m->is, n_items)) || (*err = rs_read_u32(r, &ring_len)) ||
        (*err = rs_read_u32(r, &ring_pos)))
        goto fail;
    m->n_users = n_users;
    m->n_items = n_items;
    m->live_users = live_users;
    m->mru = mru;
    m->lru = lru;
    if (!recency_ok(m) || ring_len > pa.replay_size || (m->ring == NULL && ring_len) ||
        (ring_len < pa.replay_size ? ring_pos != ring_len
                                    : ring_pos >= (pa.replay_size ? pa.replay_size : 1)) ||
        (uint64_t)ring_len * 16 > r->remaining(r->ctx)) {
        *err = RS_ECORRUPT;
        goto fail;
    }
    for (uint32_t j = 0; j < ring_len; j++) {
        struct replay_ev *x = &m->ring[j];
        if ((*err = rs_read_u32(r, &x->u)) || (*err = rs_read_u32(r, &x->i)) ||
            (*err = get(r, &x->value, 4)) || (*err = rs_read_u32(r, &x->tag)))
            goto fail;
        /* Replayed values pass the same checks as live ones. */
        int ok = x->u < n_users && x->i < n_items && isfinite(x->value) &&
                 ((x->tag & 1) ? x->value > 0.0f
                               : x->value >= pa.rating_min && x->value <= pa.rating_max);
        if (!ok) {
            *err = RS_ECORRUPT;
            goto fail;
        }
    }
    m->ring_len = ring_len;
    m->ring_pos = ring_pos;
    m->replay_debt = debt;
    m->clock_ms = clock_ms;
    m->mu = mu;
    m->n_ratings = n_ratings;
    m->events = events;
    memcpy(m->rng, rng, sizeof(rng));
    m->spare_normal = spare;
    m->has_spare = has_spare;
    *err = RS_OK;
    return m;

fail:
    rs_model_destroy(m);
    return NULL;
}

const struct rs_model_params *rs_model_get_params(const struct rs_model *m)
{
    return &m->params;
}
