/*
 * ranker.h - a user's top-N: model scores for every item computed with
 * OpenBLAS (users batched into one sgemm over the item matrix), blended with
 * item-neighbour and popularity scores, items the user already has excluded,
 * the N best kept by a bounded heap (no full sort), each with its reason.
 *
 * The blend (rs_ranker_blend). For user u and item j,
 *     score = w_mf * mf + w_nb * nb + w_pop * pop
 * with each signal scaled so that 1 means "as good as this signal gets":
 *   mf  = (r_uj - mean_u) / (max_u - mean_u), r_uj the model's raw score
 *         (mu + b_u + b_j + p_u.q_j); mean_u and max_u are taken over a fixed
 *         sample of min(items, 512) evenly spaced items (all items in a small
 *         catalogue), so the user's best items score about 1 and an average
 *         one 0. 0 for users the model does not know or when max_u = mean_u.
 *   nb  = sum over h in u's recent items of (1 - d)^age(h) * sim(h, j) for
 *         the j among h's top-k neighbours (sim as neighbors.h defines it,
 *         shrunk by its support; d the weights' recency_decay, age(h) 0 for
 *         the newest recent item, 1 for the one before, ...: what the user
 *         took last says most about what they take next); 0 for items no
 *         recent item points to. Not rescaled per
 *         user: its size is the evidence. Strong, well-supported neighbours
 *         (MovieLens: sums of several) outweigh the model; a sparse catalogue
 *         whose pairs were seen together once or twice (Last.fm) gives small
 *         sums and leaves the order to the model. (Dividing by the user's
 *         best sum, as before, made weak evidence look as strong as any.)
 *         At most RS_RANKER_MAX_CANDIDATES candidates are kept per user (the
 *         strongest); with window * k <= that number, all are.
 *   pop = decayed popularity / the most popular item's (the best is 1).
 * Reasons: an item with nb > 0 carries why = the recent item h with the
 * largest term (1 - d)^age(h) * sim(h, j) (the newest on ties); others RS_NONE.
 * Exclusions: every item in the history (the full set the history module
 * holds) and every item in the recent ring.
 * Cold start: a user without a model row and without recent items ranks by
 * popularity alone (trending); if no active signal has anything for a user
 * (e.g. popularity weight 0), the user gets no entries.
 * Order: higher score first; on equal scores the lower item index. NaN
 * scores are never recommended.
 * The ranker keeps the items' top-k neighbour lists it computed, bounded
 * (8 MB), and reuses them while rs_neighbors_stamp says the neighbours are
 * unchanged (users ranked together in one publish share most of their recent
 * items): the lists are exactly those computed afresh. With a staleness
 * bound (rs_ranker_set_list_staleness) a list is also reused for a while
 * after the neighbours changed.
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
struct rs_neighbors;
struct rs_popularity;

/* Neighbour candidates kept per user in a blend (see above). */
#define RS_RANKER_MAX_CANDIDATES 2048

/* The blend's weights ([ranking] mf_weight, neighbor_weight, popularity_weight)
 * and how fast the neighbour term forgets ([ranking] recency_decay). */
struct rs_rank_weights {
    float mf;
    float neighbor;
    float popularity;
    float recency_decay; /* in [0, 1): see nb above; 0 (the old rule): all count alike */
};

/* What a blend reads (all borrowed). The model defines the item range and is required. */
struct rs_rank_sources {
    const struct rs_model *model;
    const struct rs_history *history;       /* NULL: only the recent ring is excluded */
    const struct rs_neighbors *neighbors;   /* NULL: no neighbour signal, no reasons */
    const struct rs_popularity *popularity; /* NULL: no popularity signal */
};

/* A ranker for lists of top_n entries, ranking up to batch users per sgemm. */
struct rs_ranker *rs_ranker_create(int top_n, int batch);
void rs_ranker_destroy(struct rs_ranker *rk);

/*
 * Model scores only (mu + b_u + b_i + p_u.q_i, unscaled), history excluded,
 * no reasons. Ranks users[0..n). For user users[j], writes at most top_n entries, best
 * first, to out[j*top_n ...] and their number to counts[j]. Users unknown to
 * the model get 0 entries. Returns RS_OK or RS_ENOMEM.
 */
rs_err_t rs_ranker_rank(struct rs_ranker *rk, const struct rs_model *m,
                        const struct rs_history *h, const uint32_t *users, size_t n,
                        struct rs_rec *out, size_t *counts);

/*
 * The blended lists (formula above): for user users[j], at most top_n entries,
 * best first, to out[j*top_n ...] and their number to counts[j]. Weights must
 * be finite and >= 0. Any weights may be passed (e.g. an evaluation scoring
 * each signal alone); recency_decay must be in [0, 1). Returns RS_OK,
 * RS_EINVAL or RS_ENOMEM.
 */
rs_err_t rs_ranker_blend(struct rs_ranker *rk, const struct rs_rank_sources *src,
                         const struct rs_rank_weights *w, const uint32_t *users, size_t n,
                         struct rs_rec *out, size_t *counts);

/*
 * How stale a cached top-k neighbour list may be when it is reused: at most
 * max_age_ms milliseconds old (monotonic clock, read once per call) and at
 * most max_events neighbour events behind (rs_neighbors_stamp's events);
 * a bound of 0 is not checked, and both 0 (the default) is the exact rule:
 * a list is reused only while the neighbours are unchanged, so lists equal
 * those of rs_ranker_blend_naive. A reused stale list holds the
 * similarities as they were when it was computed: the neighbour term of a
 * blend may lag by up to the bound. ([ranking] neighbor_list_max_age_ms.)
 */
void rs_ranker_set_list_staleness(struct rs_ranker *rk, uint64_t max_age_ms,
                                  uint64_t max_events);

/*
 * The scoring pass over the items is compiled for AVX-512, AVX2 and the
 * baseline; a new ranker uses the widest the CPU runs. All give the same
 * lists. For tests: use the one isa names ("avx512", "avx2", "base"), or
 * "avx512-floor": the AVX-512 pass that, for lists of up to 32, takes a
 * floor for the threshold in a first pass every time (by default it does
 * when the offers it sees make that pay).
 * Returns 0, or -1 (nothing changed) when the name is unknown or the CPU
 * lacks it.
 */
int rs_ranker_set_isa(struct rs_ranker *rk, const char *isa);

/*
 * The references: the same lists by scoring each item with a plain dot
 * product and sorting them all. For tests.
 */
size_t rs_ranker_rank_naive(const struct rs_model *m, const struct rs_history *h,
                            uint32_t user, int top_n, struct rs_rec *out);
size_t rs_ranker_blend_naive(const struct rs_rank_sources *src,
                             const struct rs_rank_weights *w, uint32_t user, int top_n,
                             struct rs_rec *out);

#endif
