/*
 * ranker.h - a user's top-N: model scores for every item computed with
 * OpenBLAS (users batched into one sgemm over the item matrix), items the user
 * already has excluded, the N best kept by a bounded heap (no full sort).
 */
#ifndef RECSTREAM_RANKER_H
#define RECSTREAM_RANKER_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/history.h"
#include "recstream/model.h"

/* One entry of a list: the item, its score, and the history item behind it. */
struct rs_rec {
    uint32_t item;
    float score;
    uint32_t why; /* RS_NONE when there is no reason */
};

struct rs_ranker;

/* A ranker for lists of top_n entries, ranking up to batch users per sgemm. */
struct rs_ranker *rs_ranker_create(int top_n, int batch);
void rs_ranker_destroy(struct rs_ranker *rk);

/*
 * Ranks users[0..n). For user users[j], writes at most top_n entries, best
 * first, to out[j*top_n ...] and their number to counts[j]. Users unknown to
 * the model get 0 entries. Returns RS_OK or RS_ENOMEM.
 */
rs_err_t rs_ranker_rank(struct rs_ranker *rk, const struct rs_model *m,
                        const struct rs_history *h, const uint32_t *users,
                        size_t n, struct rs_rec *out, size_t *counts);

/*
 * The reference: the same list by scoring each item with a dot product and
 * sorting them all. For tests.
 */
size_t rs_ranker_rank_naive(const struct rs_model *m, const struct rs_history *h,
                            uint32_t user, int top_n, struct rs_rec *out);

#endif
