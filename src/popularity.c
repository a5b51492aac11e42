/*
 * popularity.c - decayed item counts. An item's score at time t is
 * sum_e w_e * 2^(-(t - t_e)/h). We store s_i = sum_e w_e * 2^((t_e - t_ref)/h)
 * so an event is one multiply-add, and the score at t is s_i * 2^(-(t - t_ref)/h).
 * When a new event's factor 2^((t_e - t_ref)/h) would pass 2^64, every s_i is
 * multiplied by 2^(-(t_e - t_ref)/h) and t_ref moves to t_e: one O(items) pass
 * per 64 half-lives of event time. Events older than t_ref (out of order) are
 * fine: their factor is below 1.
 */
#include "recstream/popularity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RESCALE_EXPONENT 64.0

struct rs_popularity {
    double half_life_ms;
    int64_t t_ref;   /* reference time of the stored scores */
    int64_t clock;   /* latest event time seen */
    int have_ref;
    double *score;   /* per item, relative to t_ref */
    uint32_t n;      /* items with a slot */
    uint32_t cap;
};

struct rs_popularity *rs_popularity_create(double half_life_s)
{
    struct rs_popularity *pop;
    if (!(half_life_s > 0) || !isfinite(half_life_s)) return NULL;
    pop = calloc(1, sizeof(*pop));
    if (!pop) return NULL;
    pop->half_life_ms = half_life_s * 1000.0;
    return pop;
}

void rs_popularity_destroy(struct rs_popularity *pop)
{
    if (!pop) return;
    free(pop->score);
    free(pop);
}

static rs_err_t grow(struct rs_popularity *pop, uint32_t item)
{
    uint32_t cap = pop->cap ? pop->cap : 1024;
    double *score;
    while (cap <= item) cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
    score = realloc(pop->score, (size_t)cap * sizeof(*score));
    if (!score) return RS_ENOMEM;
    memset(score + pop->cap, 0, (size_t)(cap - pop->cap) * sizeof(*score));
    pop->score = score;
    pop->cap = cap;
    return RS_OK;
}

/* Moves the reference time to t, rescaling every stored score. */
static void rebase(struct rs_popularity *pop, int64_t t)
{
    double f = exp2(-(double)(t - pop->t_ref) / pop->half_life_ms);
    for (uint32_t i = 0; i < pop->n; i++) pop->score[i] *= f;
    pop->t_ref = t;
}

rs_err_t rs_popularity_add(struct rs_popularity *pop, uint32_t item, float weight,
                           int64_t ts_ms)
{
    double exponent;
    if (item >= pop->cap && grow(pop, item) != RS_OK) return RS_ENOMEM;
    if (item >= pop->n) pop->n = item + 1;
    if (!pop->have_ref) {
        pop->t_ref = ts_ms;
        pop->have_ref = 1;
    }
    exponent = (double)(ts_ms - pop->t_ref) / pop->half_life_ms;
    if (exponent > RESCALE_EXPONENT) {
        rebase(pop, ts_ms);
        exponent = 0;
    }
    pop->score[item] += (double)weight * exp2(exponent);
    if (ts_ms > pop->clock) pop->clock = ts_ms;
    return RS_OK;
}

double rs_popularity_score(const struct rs_popularity *pop, uint32_t item, int64_t now_ms)
{
    if (item >= pop->n) return 0;
    return pop->score[item] * exp2(-(double)(now_ms - pop->t_ref) / pop->half_life_ms);
}

void rs_popularity_normalized(const struct rs_popularity *pop, int64_t now_ms,
                              float *scores, uint32_t n_items)
{
    double best = 0;
    (void)now_ms; /* one common decay factor: it cancels in the ratio */
    for (uint32_t i = 0; i < n_items && i < pop->n; i++)
        if (pop->score[i] > best) best = pop->score[i];
    for (uint32_t i = 0; i < n_items; i++)
        scores[i] = (i < pop->n && best > 0) ? (float)(pop->score[i] / best) : 0.0f;
}

/* Min-heap on score (ties: higher item index is "smaller", so lower wins). */
static int worse(const struct rs_rec *a, const struct rs_rec *b)
{
    return a->score < b->score || (a->score == b->score && a->item > b->item);
}

static void sift_down(struct rs_rec *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        struct rs_rec t;
        if (l < n && worse(&h[l], &h[m])) m = l;
        if (r < n && worse(&h[r], &h[m])) m = r;
        if (m == i) return;
        t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

size_t rs_popularity_top(const struct rs_popularity *pop, int64_t now_ms, size_t n,
                         struct rs_rec *out)
{
    size_t k = 0;
    double f = exp2(-(double)(now_ms - pop->t_ref) / pop->half_life_ms);

    if (n == 0) return 0;
    for (uint32_t i = 0; i < pop->n; i++) {
        struct rs_rec c = {i, (float)(pop->score[i] * f), RS_NONE};
        if (!(pop->score[i] > 0)) continue;
        if (k < n) {
            out[k++] = c;
            if (k == n)
                for (size_t j = n / 2 + 1; j-- > 0;) sift_down(out, n, j);
        } else if (worse(&out[0], &c)) {
            out[0] = c;
            sift_down(out, n, 0);
        }
    }
    if (k < n)
        for (size_t j = k / 2 + 1; j-- > 0;) sift_down(out, k, j);
    /* Heap sort, worst first out to the back: the array ends best first. */
    for (size_t end = k; end > 1; end--) {
        struct rs_rec t = out[0];
        out[0] = out[end - 1];
        out[end - 1] = t;
        sift_down(out, end - 1, 0);
    }
    return k;
}

int64_t rs_popularity_clock(const struct rs_popularity *pop)
{
    return pop->clock;
}

uint32_t rs_popularity_items(const struct rs_popularity *pop)
{
    return pop->n;
}

rs_err_t rs_popularity_save(const struct rs_popularity *pop, struct rs_writer *w)
{
    rs_err_t err;
    if ((err = w->write(w->ctx, &pop->half_life_ms, sizeof(pop->half_life_ms))) ||
        (err = w->write(w->ctx, &pop->t_ref, sizeof(pop->t_ref))) ||
        (err = w->write(w->ctx, &pop->clock, sizeof(pop->clock))) ||
        (err = rs_write_u32(w, (uint32_t)pop->have_ref)) || (err = rs_write_u32(w, pop->n)))
        return err;
    return pop->n ? w->write(w->ctx, pop->score, (size_t)pop->n * sizeof(double)) : RS_OK;
}

struct rs_popularity *rs_popularity_load(struct rs_reader *r, rs_err_t *err)
{
    double half_life_ms;
    uint32_t have_ref, n;
    struct rs_popularity *pop = NULL;
    int64_t t_ref, clock;

    if ((*err = r->read(r->ctx, &half_life_ms, sizeof(half_life_ms))) ||
        (*err = r->read(r->ctx, &t_ref, sizeof(t_ref))) ||
        (*err = r->read(r->ctx, &clock, sizeof(clock))) || (*err = rs_read_u32(r, &have_ref)) ||
        (*err = rs_read_u32(r, &n)))
        return NULL;
    if (!(half_life_ms > 0) || (uint64_t)n * sizeof(double) > r->remaining(r->ctx)) {
        *err = RS_ECORRUPT;
        return NULL;
    }
    pop = rs_popularity_create(half_life_ms / 1000.0);
    if (!pop || (n && grow(pop, n - 1) != RS_OK)) {
        *err = RS_ENOMEM;
        goto fail;
    }
    pop->t_ref = t_ref;
    pop->clock = clock;
    pop->have_ref = have_ref != 0;
    pop->n = n;
    if (n && (*err = r->read(r->ctx, pop->score, (size_t)n * sizeof(double)))) goto fail;
    *err = RS_OK;
    return pop;

fail:
    rs_popularity_destroy(pop);
    return NULL;
}
