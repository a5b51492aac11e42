/*
 * model.h - the online model: global mean, user and item biases and k latent
 * factors, updated by one SGD step per event (ratings: biased MF; plays:
 * positive-only SGD with sampled negatives), optionally followed by replayed
 * recent events. Ratings can step at per-row rates (a count-based rate for the
 * biases, AdaGrad for the factors) so one pass learns a new user or item
 * fast. Rows are contiguous (user u's factors at P[u*k], item i's at
 * Q[i*k]) so the ranker can hand the item matrix to BLAS as it is. Users are
 * kept in recency order so the least recently seen can be evicted. The random
 * state is part of the model: the same events in the same order with the same
 * seed give the same bits.
 */
#ifndef RECSTREAM_MODEL_H
#define RECSTREAM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/serial.h"

struct rs_model_params {
    int factors;          /* k */
    float learning_rate;
    float regularization;
    float init_std;       /* new factors drawn from N(0, init_std^2) */
    float rating_min;
    float rating_max;
    int negatives;        /* sampled negatives per play event */
    uint64_t seed;
    uint32_t max_users;
    uint32_t max_items;
    float replay_ratio;    /* replayed events per live event, 0..100; 0: off */
    uint32_t replay_size;  /* recent events kept for replay; 0: off */
    /* Ratings: a row's bias steps at max(learning_rate, 1/(n + bias_prior)) after
     * n ratings of that row, 0..1e6; 0: off (learning_rate throughout). */
    float bias_prior;
    /* Ratings: per-row AdaGrad step for the factors, adagrad_rate / sqrt(sum of
     * the row's mean squared gradients), 0..1; 0: off (learning_rate). */
    float adagrad_rate;
};

struct rs_model;

/* A model with no users or items; NULL on bad params or ENOMEM. */
struct rs_model *rs_model_create(const struct rs_model_params *params);
void rs_model_destroy(struct rs_model *m);

/*
 * Makes room for user index u and item index i (dense, from the id maps),
 * initialising new rows (and redrawing a forgotten user's row). RS_EFULL past max_users/max_items, RS_ENOMEM; on
 * error neither side grows. Pass RS_NONE for u or i to grow only the other side.
 */
rs_err_t rs_model_ensure(struct rs_model *m, uint32_t u, uint32_t i);

/*
 * One SGD step on an explicit rating r for (u, i). Returns the error before the
 * step, or NAN without changing anything when r is not finite, off the rating
 * scale, or u/i has not been ensured.
 */
float rs_model_update_rate(struct rs_model *m, uint32_t u, uint32_t i, float r);

/*
 * One step on an implicit play with confidence weight w (positive + sampled
 * negatives). Ignored when w is not finite or <= 0, or u/i has not been ensured.
 */
void rs_model_update_play(struct rs_model *m, uint32_t u, uint32_t i, float w);

/* Predicted rating for (u, i), clamped to the rating scale. */
float rs_model_predict(const struct rs_model *m, uint32_t u, uint32_t i);

/* The ranking score b_i + p_u . q_i (no clamping); NAN for an unknown pair. */
float rs_model_score(const struct rs_model *m, uint32_t u, uint32_t i);

/* Marks user u as seen at event time ts_ms (the clock never goes back). */
void rs_model_touch_user(struct rs_model *m, uint32_t u, int64_t ts_ms);

/* The least recently seen live user and its last time, or RS_NONE. */
uint32_t rs_model_lru_user(const struct rs_model *m, int64_t *last_ms);

/*
 * Evicts user u: its row is cleared, its replayed events dropped, and the next
 * rs_model_ensure of u draws a fresh row (for the id that reuses the index).
 */
void rs_model_forget_user(struct rs_model *m, uint32_t u);

/* Users with a live row. */
uint32_t rs_model_live_users(const struct rs_model *m);

/* Bytes of memory the model holds. */
size_t rs_model_bytes(const struct rs_model *m);

/* Sizes and raw parameters, for the ranker and snapshots (borrowed). */
int rs_model_factors(const struct rs_model *m);
uint32_t rs_model_users(const struct rs_model *m);
uint32_t rs_model_items(const struct rs_model *m);
float rs_model_global_mean(const struct rs_model *m);
const float *rs_model_user_factors(const struct rs_model *m, uint32_t u); /* k floats */
/* Starts fetching what an event of user u touches: its factor row, bias and
 * statistics (stage 1), then its neighbours in the recency list (stage 2).
 * Changes nothing. */
void rs_model_prefetch_user(const struct rs_model *m, uint32_t u, int stage);
float rs_model_user_bias(const struct rs_model *m, uint32_t u);
const float *rs_model_item_matrix(const struct rs_model *m); /* items x k, row-major */
const float *rs_model_item_biases(const struct rs_model *m); /* items */

/* Events applied so far. */
uint64_t rs_model_events(const struct rs_model *m);

/* The parameters the model runs with (borrowed). */
const struct rs_model_params *rs_model_get_params(const struct rs_model *m);

/*
 * Snapshot: parameters, every row, the counters and the PRNG state, so a
 * loaded model predicts the same and, fed the same events, trains to the same
 * bits as the model that was saved. Load returns NULL with *err RS_ECORRUPT
 * on any inconsistent or truncated input, RS_ENOMEM, or the reader's error.
 */
rs_err_t rs_model_save(const struct rs_model *m, struct rs_writer *w);
struct rs_model *rs_model_load(struct rs_reader *r, rs_err_t *err);

#endif
