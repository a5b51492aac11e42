/*
 * model.c - the online biased matrix factorisation model (Surprise's SVD
 * family), trained by one SGD step per event. It owns the global mean, the
 * user and item biases, the user factor matrix P and the item factor matrix Q,
 * all contiguous float arrays grown geometrically by rs_model_ensure, and the
 * model's own PRNG (xoshiro256**, seeded through splitmix64) that draws new
 * factor rows and the negatives of play events, so that the same calls with
 * the same seed give bit-identical arrays.
 *
 * How rate and play share the parameters: both train the same P and Q.
 * A rating trains the full prediction mu + b_u + b_i + p_u . q_i (mu is the
 * running mean of all accepted ratings, updated before the step, so the step
 * uses the mean including this rating; before the first rating mu is the middle
 * of the scale). A play trains only the dot product
 * p_u . q_i towards 1 for the played item and towards 0 for `negatives` items
 * drawn uniformly from the known items (squared loss, as ISGD); plays never
 * touch mu or the biases, which stay rating-only quantities.
 * The confidence of a play scales its positive step by c(w): w itself for
 * 0 < w < 1, 1 + ln(w) for w >= 1 (counts or seconds grow the step slowly),
 * capped at PLAY_CONF_MAX so one long play cannot blow up the factors.
 * Negatives always take an unscaled step.
 */
#include "recstream/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/serial.h"

#define MIN_ROWS 16u
#define PLAY_CONF_MAX 4.0f
#define MAX_FACTORS 4096
#define MAX_NEGATIVES 1000

struct rs_model {
    struct rs_model_params params;
    int k;
    uint32_t n_users, n_items;
    uint32_t cap_users, cap_items;
    float *P;  /* cap_users x k */
    float *Q;  /* cap_items x k */
    float *bu; /* cap_users */
    float *bi; /* cap_items */
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

static float dot(const float *restrict a, const float *restrict b, int k)
{
    float s = 0.0f;
    for (int f = 0; f < k; f++)
        s += a[f] * b[f];
    return s;
}

/* p += lr*(e*q - reg*p); q += lr*(e*p_old - reg*q), element by element. */
static void sgd_pair(float *restrict p, float *restrict q, int k, float lr, float e,
                     float reg)
{
    for (int f = 0; f < k; f++) {
        float pu = p[f];
        float qi = q[f];
        p[f] = pu + lr * (e * qi - reg * pu);
        q[f] = qi + lr * (e * pu - reg * qi);
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
           pa->max_items >= 1 && pa->max_items < RS_NONE;
}

struct rs_model *rs_model_create(const struct rs_model_params *params)
{
    if (params == NULL || !params_ok(params)) return NULL;
    struct rs_model *m = calloc(1, sizeof(*m));
    if (m == NULL) return NULL;
    m->params = *params;
    m->k = params->factors;
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
    free(m);
}

/*
 * Grows one side (matrix + bias vector) to hold at least `need` rows.
 * On failure the old arrays stay valid (realloc keeps them).
 */
static rs_err_t grow(float **mat, float **bias, uint32_t *cap, uint32_t need,
                     uint32_t max, int k)
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
    *cap = (uint32_t)ncap;
    return RS_OK;
}

static void init_rows(struct rs_model *m, float *mat, float *bias, uint32_t from,
                      uint32_t to)
{
    int k = m->k;
    double sd = m->params.init_std;
    for (uint32_t r = from; r < to; r++) {
        float *row = mat + (size_t)r * (size_t)k;
        for (int f = 0; f < k; f++)
            row[f] = sd > 0.0 ? (float)(sd * rng_normal(m)) : 0.0f;
        bias[r] = 0.0f;
    }
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
        err = grow(&m->P, &m->bu, &m->cap_users, u + 1, m->params.max_users, m->k);
        if (err != RS_OK) goto out;
    }
    if (i != RS_NONE && i >= m->n_items) {
        err = grow(&m->Q, &m->bi, &m->cap_items, i + 1, m->params.max_items, m->k);
        if (err != RS_OK) goto out;
    }
    /* Only now, with both sides allocated, draw the new rows: users first. */
    if (u != RS_NONE && u >= m->n_users) {
        init_rows(m, m->P, m->bu, m->n_users, u + 1);
        m->n_users = u + 1;
    }
    if (i != RS_NONE && i >= m->n_items) {
        init_rows(m, m->Q, m->bi, m->n_items, i + 1);
        m->n_items = i + 1;
    }
out:
    return err;
}

/* ---- training ---- */

float rs_model_update_rate(struct rs_model *m, uint32_t u, uint32_t i, float r)
{
    if (m == NULL || u >= m->n_users || i >= m->n_items || !isfinite(r) ||
        r < m->params.rating_min || r > m->params.rating_max)
        return NAN;

    int k = m->k;
    float lr = m->params.learning_rate;
    float reg = m->params.regularization;
    float *p = m->P + (size_t)u * (size_t)k;
    float *q = m->Q + (size_t)i * (size_t)k;

    m->n_ratings++;
    m->mu += ((double)r - m->mu) / (double)m->n_ratings;

    float pred = (float)m->mu + m->bu[u] + m->bi[i] + dot(p, q, k);
    float e = r - pred;
    m->bu[u] += lr * (e - reg * m->bu[u]);
    m->bi[i] += lr * (e - reg * m->bi[i]);
    sgd_pair(p, q, k, lr, e, reg);
    m->events++;
    return e;
}

static float play_confidence(float w)
{
    float c = w < 1.0f ? w : 1.0f + logf(w);
    return c < PLAY_CONF_MAX ? c : PLAY_CONF_MAX;
}

void rs_model_update_play(struct rs_model *m, uint32_t u, uint32_t i, float w)
{
    if (m == NULL || u >= m->n_users || i >= m->n_items || !isfinite(w) || w <= 0.0f)
        return;

    int k = m->k;
    float lr = m->params.learning_rate;
    float reg = m->params.regularization;
    float *p = m->P + (size_t)u * (size_t)k;
    float *q = m->Q + (size_t)i * (size_t)k;

    float e = 1.0f - dot(p, q, k);
    sgd_pair(p, q, k, lr * play_confidence(w), e, reg);

    for (int n = 0; n < m->params.negatives; n++) {
        uint32_t j = rng_below(m, m->n_items);
        if (j == i) continue;
        float *qj = m->Q + (size_t)j * (size_t)k;
        sgd_pair(p, qj, k, lr, 0.0f - dot(p, qj, k), reg);
    }
    m->events++;
}

/* ---- reading ---- */

float rs_model_predict(const struct rs_model *m, uint32_t u, uint32_t i)
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

#define MODEL_FORMAT 1u

static rs_err_t put(struct rs_writer *w, const void *p, size_t n)
{
    return n ? w->write(w->ctx, p, n) : RS_OK;
}

static rs_err_t get(struct rs_reader *r, void *p, size_t n)
{
    return n ? r->read(r->ctx, p, n) : RS_OK;
}

/*
 * Format: a version word, the parameters field by field, the counters, the
 * PRNG state, then P, b_u, Q, b_i for the rows in use. Fixed-width fields in
 * the machine's byte order (little-endian on every supported target).
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
        (err = rs_write_u32(w, pa->max_items)) || (err = rs_write_u32(w, m->n_users)) ||
        (err = rs_write_u32(w, m->n_items)) || (err = put(w, &m->mu, 8)) ||
        (err = rs_write_u64(w, m->n_ratings)) || (err = rs_write_u64(w, m->events)) ||
        (err = put(w, m->rng, sizeof(m->rng))) || (err = put(w, &m->spare_normal, 8)) ||
        (err = put(w, &has_spare, 4)))
        return err;
    if ((err = put(w, m->P, (size_t)m->n_users * k * sizeof(float))) ||
        (err = put(w, m->bu, (size_t)m->n_users * sizeof(float))) ||
        (err = put(w, m->Q, (size_t)m->n_items * k * sizeof(float))) ||
        (err = put(w, m->bi, (size_t)m->n_items * sizeof(float))))
        return err;
    return RS_OK;
}

struct rs_model *rs_model_load(struct rs_reader *r, rs_err_t *err)
{
    struct rs_model_params pa;
    struct rs_model *m = NULL;
    uint32_t format, n_users, n_items;
    int32_t factors, negatives, has_spare;
    double mu, spare;
    uint64_t n_ratings, events, rng[4];

    memset(&pa, 0, sizeof(pa));
    if ((*err = rs_read_u32(r, &format)))
        return NULL;
    if (format != MODEL_FORMAT) {
        *err = RS_ECORRUPT;
        return NULL;
    }
    if ((*err = get(r, &factors, 4)) || (*err = get(r, &pa.learning_rate, 4)) ||
        (*err = get(r, &pa.regularization, 4)) || (*err = get(r, &pa.init_std, 4)) ||
        (*err = get(r, &pa.rating_min, 4)) || (*err = get(r, &pa.rating_max, 4)) ||
        (*err = get(r, &negatives, 4)) || (*err = rs_read_u64(r, &pa.seed)) ||
        (*err = rs_read_u32(r, &pa.max_users)) || (*err = rs_read_u32(r, &pa.max_items)) ||
        (*err = rs_read_u32(r, &n_users)) || (*err = rs_read_u32(r, &n_items)) ||
        (*err = get(r, &mu, 8)) || (*err = rs_read_u64(r, &n_ratings)) ||
        (*err = rs_read_u64(r, &events)) || (*err = get(r, rng, sizeof(rng))) ||
        (*err = get(r, &spare, 8)) || (*err = get(r, &has_spare, 4)))
        return NULL;
    pa.factors = factors;
    pa.negatives = negatives;
    if (!params_ok(&pa) || n_users > pa.max_users || n_items > pa.max_items ||
        !isfinite(mu) || !isfinite(spare) || (has_spare != 0 && has_spare != 1) ||
        (rng[0] | rng[1] | rng[2] | rng[3]) == 0) {
        *err = RS_ECORRUPT;
        return NULL;
    }
    /* Both matrices and bias vectors must fit in what is left. */
    uint64_t need = ((uint64_t)n_users + n_items) * ((uint64_t)factors + 1) * sizeof(float);
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
    if ((n_users && grow(&m->P, &m->bu, &m->cap_users, n_users, pa.max_users, m->k)) ||
        (n_items && grow(&m->Q, &m->bi, &m->cap_items, n_items, pa.max_items, m->k))) {
        *err = RS_ENOMEM;
        goto fail;
    }
    if ((*err = get(r, m->P, (size_t)n_users * k * sizeof(float))) ||
        (*err = get(r, m->bu, (size_t)n_users * sizeof(float))) ||
        (*err = get(r, m->Q, (size_t)n_items * k * sizeof(float))) ||
        (*err = get(r, m->bi, (size_t)n_items * sizeof(float))))
        goto fail;
    m->n_users = n_users;
    m->n_items = n_items;
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
