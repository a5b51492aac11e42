/*
 * ranker.c - turns the model into top-N lists. Users are ranked in batches:
 * their factor rows are gathered into one small matrix U and a single
 * cblas_sgemm per block of item columns gives S = U * Q^T; each row then gets
 * mu + b_u + b_i added (so a rate model's score is its predicted rating,
 * unclamped), the user's history is skipped by walking its sorted item list
 * alongside the columns, and a bounded heap keeps the N best without sorting
 * the catalogue. The ranker owns its scratch buffers (U, S, the heaps), grown
 * on demand and reused, so ranking allocates nothing once warmed up.
 * Order: higher score first; on equal scores the lower item index wins. NaN
 * scores (a diverged model) are never recommended. The naive reference
 * below applies the same formula and the same order.
 */
#include "recstream/ranker.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Item columns per sgemm: bounds S at batch x ITEM_BLOCK floats. */
#define ITEM_BLOCK 4096u

struct rs_ranker {
    int top_n;
    int batch;
    float *U; /* batch x k */
    size_t U_cap;
    float *S; /* batch x min(items, ITEM_BLOCK) */
    size_t S_cap;
    struct rs_rec *heaps; /* batch heaps of top_n entries */
    size_t *heap_len;     /* batch */
    size_t *slot_user;    /* batch: index j into users[] */
    size_t *hist_pos;     /* batch: cursor into the user's history */
};

/* a ranks before b. */
static int better(const struct rs_rec *a, const struct rs_rec *b)
{
    return a->score > b->score || (a->score == b->score && a->item < b->item);
}

/* ---- bounded heap: the root is the worst kept entry ---- */

static void sift_down(struct rs_rec *hp, size_t len, size_t at)
{
    for (;;) {
        size_t l = 2 * at + 1, r = l + 1, worst = at;
        if (l < len && better(&hp[worst], &hp[l])) worst = l;
        if (r < len && better(&hp[worst], &hp[r])) worst = r;
        if (worst == at) return;
        struct rs_rec t = hp[at];
        hp[at] = hp[worst];
        hp[worst] = t;
        at = worst;
    }
}

static void heap_offer(struct rs_rec *hp, size_t *len, size_t cap, uint32_t item,
                       float score)
{
    struct rs_rec c = {item, score, RS_NONE};
    if (*len < cap) {
        size_t at = (*len)++;
        while (at > 0) {
            size_t up = (at - 1) / 2;
            if (!better(&hp[up], &c)) break;
            hp[at] = hp[up];
            at = up;
        }
        hp[at] = c;
    } else if (better(&c, &hp[0])) {
        hp[0] = c;
        sift_down(hp, *len, 0);
    }
}

/* Writes the heap to out best-first (heap sort; the heap is consumed). */
static size_t heap_drain(struct rs_rec *hp, size_t len, struct rs_rec *out)
{
    size_t n = len;
    while (len > 0) {
        out[len - 1] = hp[0];
        hp[0] = hp[--len];
        sift_down(hp, len, 0);
    }
    return n;
}

/* ---- lifecycle ---- */

struct rs_ranker *rs_ranker_create(int top_n, int batch)
{
    if (top_n < 1 || batch < 1) return NULL;
    struct rs_ranker *rk = calloc(1, sizeof(*rk));
    if (rk == NULL) return NULL;
    rk->top_n = top_n;
    rk->batch = batch;
    size_t b = (size_t)batch;
    if ((size_t)top_n > SIZE_MAX / sizeof(struct rs_rec) / b) goto fail;
    rk->heaps = malloc(b * (size_t)top_n * sizeof(*rk->heaps));
    rk->heap_len = malloc(b * sizeof(*rk->heap_len));
    rk->slot_user = malloc(b * sizeof(*rk->slot_user));
    rk->hist_pos = malloc(b * sizeof(*rk->hist_pos));
    if (!rk->heaps || !rk->heap_len || !rk->slot_user || !rk->hist_pos) goto fail;
    return rk;
fail:
    rs_ranker_destroy(rk);
    return NULL;
}

void rs_ranker_destroy(struct rs_ranker *rk)
{
    if (rk == NULL) return;
    free(rk->U);
    free(rk->S);
    free(rk->heaps);
    free(rk->heap_len);
    free(rk->slot_user);
    free(rk->hist_pos);
    free(rk);
}

static rs_err_t reserve(float **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return RS_OK;
    if (need > SIZE_MAX / sizeof(float)) return RS_ENOMEM;
    float *nb = realloc(*buf, need * sizeof(float));
    if (nb == NULL) return RS_ENOMEM;
    *buf = nb;
    *cap = need;
    return RS_OK;
}

/* ---- ranking ---- */

/* Scores one block of columns [i0, i0+nb) for the b users gathered in rk->U. */
static void score_block(struct rs_ranker *rk, const struct rs_model *m,
                        const struct rs_history *h, const uint32_t *users, size_t b,
                        uint32_t i0, uint32_t nb)
{
    int k = rs_model_factors(m);
    const float *Q = rs_model_item_matrix(m) + (size_t)i0 * (size_t)k;
    const float *bi = rs_model_item_biases(m);
    float mu = rs_model_global_mean(m);
    size_t cap = (size_t)rk->top_n;

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)nb, k, 1.0f, rk->U,
                k, Q, k, 0.0f, rk->S, (int)nb);

    for (size_t s = 0; s < b; s++) {
        uint32_t u = users[rk->slot_user[s]];
        const float *row = rk->S + s * nb;
        float base = mu + rs_model_user_bias(m, u);
        size_t nh = 0;
        const uint32_t *hist = h ? rs_history_items(h, u, &nh) : NULL;
        size_t hp = rk->hist_pos[s];
        struct rs_rec *heap = rk->heaps + s * cap;
        for (uint32_t c = 0; c < nb; c++) {
            uint32_t i = i0 + c;
            while (hp < nh && hist[hp] < i)
                hp++;
            if (hp < nh && hist[hp] == i) continue;
            float score = row[c] + (bi[i] + base);
            if (isnan(score)) continue;
            heap_offer(heap, &rk->heap_len[s], cap, i, score);
        }
        rk->hist_pos[s] = hp;
    }
}

rs_err_t rs_ranker_rank(struct rs_ranker *rk, const struct rs_model *m,
                        const struct rs_history *h, const uint32_t *users, size_t n,
                        struct rs_rec *out, size_t *counts)
{
    rs_err_t err = RS_OK;

    if (rk == NULL || m == NULL ||
        (n > 0 && (users == NULL || out == NULL || counts == NULL))) {
        err = RS_EINVAL;
        goto out;
    }
    for (size_t j = 0; j < n; j++)
        counts[j] = 0;

    int k = rs_model_factors(m);
    uint32_t n_users = rs_model_users(m);
    uint32_t n_items = rs_model_items(m);
    if (n_items == 0 || n_users == 0) goto out;

    size_t batch = (size_t)rk->batch;
    size_t block = n_items < ITEM_BLOCK ? n_items : ITEM_BLOCK;
    if ((err = reserve(&rk->U, &rk->U_cap, batch * (size_t)k)) != RS_OK) goto out;
    if ((err = reserve(&rk->S, &rk->S_cap, batch * block)) != RS_OK) goto out;

    size_t top = (size_t)rk->top_n;
    size_t j = 0;
    while (j < n) {
        /* Gather up to `batch` known users into U. */
        size_t b = 0;
        for (; j < n && b < batch; j++) {
            if (users[j] >= n_users) continue;
            memcpy(rk->U + b * (size_t)k, rs_model_user_factors(m, users[j]),
                   (size_t)k * sizeof(float));
            rk->slot_user[b] = j;
            rk->heap_len[b] = 0;
            rk->hist_pos[b] = 0;
            b++;
        }
        if (b == 0) break;
        for (uint32_t i0 = 0; i0 < n_items; i0 += (uint32_t)block) {
            uint32_t nb = n_items - i0 < block ? n_items - i0 : (uint32_t)block;
            score_block(rk, m, h, users, b, i0, nb);
        }
        for (size_t s = 0; s < b; s++) {
            size_t uj = rk->slot_user[s];
            counts[uj] = heap_drain(rk->heaps + s * top, rk->heap_len[s], out + uj * top);
        }
    }
out:
    return err;
}

static int cmp_rec(const void *a, const void *b)
{
    const struct rs_rec *x = a, *y = b;
    if (better(x, y)) return -1;
    if (better(y, x)) return 1;
    return 0;
}

size_t rs_ranker_rank_naive(const struct rs_model *m, const struct rs_history *h,
                            uint32_t user, int top_n, struct rs_rec *out)
{
    size_t n = 0;
    struct rs_rec *all = NULL;

    if (m == NULL || out == NULL || top_n < 1 || user >= rs_model_users(m) ||
        rs_model_items(m) == 0)
        goto out;
    uint32_t n_items = rs_model_items(m);
    int k = rs_model_factors(m);
    all = malloc((size_t)n_items * sizeof(*all));
    if (all == NULL) goto out;

    const float *p = rs_model_user_factors(m, user);
    const float *Q = rs_model_item_matrix(m);
    const float *bi = rs_model_item_biases(m);
    float base = rs_model_global_mean(m) + rs_model_user_bias(m, user);
    size_t cnt = 0;
    for (uint32_t i = 0; i < n_items; i++) {
        if (h != NULL && rs_history_contains(h, user, i)) continue;
        const float *q = Q + (size_t)i * (size_t)k;
        float d = 0.0f;
        for (int f = 0; f < k; f++)
            d += p[f] * q[f];
        float score = d + (bi[i] + base);
        if (isnan(score)) continue;
        all[cnt].item = i;
        all[cnt].score = score;
        all[cnt].why = RS_NONE;
        cnt++;
    }
    qsort(all, cnt, sizeof(*all), cmp_rec);
    n = cnt < (size_t)top_n ? cnt : (size_t)top_n;
    memcpy(out, all, n * sizeof(*out));
out:
    free(all);
    return n;
}
