/*
 * neighbors.h - online item-item similarity from co-occurrence in users'
 * recent histories, time-decayed, in bounded memory per item. It also owns
 * each user's recent-history ring (the last `window` distinct items), which
 * the ranker reads to score neighbours and to give reasons.
 *
 * Definition. Every event (u, i, t) whose item i is not already in u's ring
 * is an occurrence of i: N_i += d(t), with d(t) = 2^(t / h) and h the
 * half-life, and i co-occurs with every item j of the ring. The pair's weight
 * is w = d(t) * (1 - gap_decay)^g, g the steps from the newest item of the
 * ring back to j (0 for the newest); it is added in the earlier item's row,
 * C_ji += w (j was followed by i), and in the later one's scaled by the
 * backward weight b, C_ij += b * w. Then i enters the ring (the oldest item
 * leaves when it is full). An event whose item is already in the ring only
 * moves it to the newest place. The similarity is
 *     sim(i, j) = C_ij / sqrt(N_i * N_j),
 * in which the common decay factor 2^(-now/h) cancels: at any time it weighs
 * each co-occurrence by 2^(-age/h). With b = 1 and gap_decay = 0 (the state
 * a new object starts in) it is the decayed cosine of the two items' user
 * sets, symmetric up to the sketch error and in [0, 1] unless a pair
 * re-enters the same user's ring many times. With b < 1 row i leans to what
 * users took after i, and with gap_decay > 0 to what they took soon after:
 * people consume in sequences (a series in order, an album after a single),
 * and the ranker scores a user's candidates from the rows of the items they
 * took last. On the streams of docs/BENCHMARKS.md ("Streaming accuracy"),
 * b = 0.25 and gap_decay = 0.1 (the config defaults) against the symmetric
 * form changed the neighbours' prequential recall@20 by -0.2% on MovieLens
 * 100K, +11% and +18% on MovieLens 1M as ratings and as plays, and +140% on
 * Last.fm tag events.
 * Support shrinkage (Herlocker et al. 1999's significance weighting, in the
 * smooth form of Koren 2008): with shrink lambda > 0 the similarity used
 * everywhere (top lists, rs:sim, the ranker) is
 *     sim(i, j) = C_ij / sqrt(N_i * N_j) * c / (c + lambda),
 * c = C_ij weighed at the clock (the latest event time seen: a co-occurrence
 * that old counts 2^(-age/h)). A pair seen together once or twice, common in
 * a sparse catalogue where cosine is 1/sqrt(N) for two rare items, is scaled
 * down; a pair with many co-occurrences keeps its cosine. Measured on Last.fm
 * tag events, MovieLens 100K and 1M (docs/BENCHMARKS.md). The clock moves
 * with every event, so every similarity can change with any event.
 *
 * Bounded memory. Item i keeps C_ij for at most S = 2k partners j in a
 * weighted Space-Saving sketch with probabilistic admission: a new partner
 * takes a free slot; when none is free it takes the slot with the smallest
 * count m, inheriting m as its error, if it is fresh (N_j at most the
 * increment w: a new item enters at once the rows where its pair counts in
 * full, that of the item just before it, and with gap_decay = 0 all the
 * earlier items' rows) or else with probability w / (m + w); otherwise the
 * increment is dropped. A held
 * partner's increments are all counted, so count - error is a lower bound
 * of its true C_ij, and sim uses it.
 * Why not plain Space-Saving (always replace): real co-occurrence rows are
 * flat (a popular item pairs with thousands of items, the best with < 1% of
 * the row), and always replacing churns every slot on every new partner, so
 * the strong partners are evicted before they can count. Measured on
 * MovieLens 100K (time order, window 20): Star Wars' neighbours were noise at
 * S = 40 and right only from S ~ 640; with probabilistic admission they are
 * right (Return of the Jedi, Godfather, Raiders, ...) at S = 40. A slot held
 * by a strong partner grows and is never the smallest, so a partner with a
 * large share of the row is kept: the adversarial test (one partner with a
 * third of the pairs among endless one-off partners) proves it.
 * The draws come from the module's own seeded generator (saved with the
 * state), so the same events give the same sketch. Nothing grows with
 * traffic: memory per item is exactly RS_NEIGHBORS_ITEM_BYTES(k) =
 * 12 * 2k + 20 bytes (slot id, count and error per slot; a 16-byte row head
 * with N_i, the used-slot count and changed flag, and the smallest-count hint;
 * the item's place in the changed queue),
 * and per user 4 * window + 4 bytes for the ring.
 *
 * Cost: one event touches the new item's row and the rows of the <= window
 * items of the ring: 2 * (window - 1) slot updates, no allocation once the
 * user and item arrays have grown.
 */
#ifndef RECSTREAM_NEIGHBORS_H
#define RECSTREAM_NEIGHBORS_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/ranker.h"
#include "recstream/serial.h"

/* The default support shrinkage lambda (config [neighbors] shrink). */
#define RS_NEIGHBORS_SHRINK_DEFAULT 2.0

/* Bytes of neighbour state per item and per user (see above). */
#define RS_NEIGHBORS_SLOTS(k) (2u * (uint32_t)(k))
#define RS_NEIGHBORS_ITEM_BYTES(k) (12u * RS_NEIGHBORS_SLOTS(k) + 20u)
#define RS_NEIGHBORS_USER_BYTES(window) (4u * (uint32_t)(window) + 4u)

struct rs_neighbors;

/* k similar items kept per item (1..1000), rings of window items (1..1000),
 * half-life in seconds (> 0). NULL on a bad argument or ENOMEM. */
struct rs_neighbors *rs_neighbors_create(int k, int window, double half_life_s);
void rs_neighbors_destroy(struct rs_neighbors *nb);

/*
 * Applies one event: user played/rated item at event time ts_ms. Grows the
 * user and item arrays when their index is new (RS_ENOMEM leaves everything
 * as it was). Items whose neighbours changed are marked (see take_changed).
 */
rs_err_t rs_neighbors_add(struct rs_neighbors *nb, uint32_t user, uint32_t item,
                          int64_t ts_ms);

/* Sets the support shrinkage lambda (>= 0, finite; 0: plain cosine). RS_OK or RS_EINVAL. */
rs_err_t rs_neighbors_set_shrink(struct rs_neighbors *nb, double shrink);

/*
 * Sets how a pair is weighed by order (see Definition): backward_weight b in
 * [0, 1] for the later item's row, gap_decay in [0, 1) per step between the
 * two items. Applies to events added from then on (counts already held stay);
 * like the shrinkage it is configuration, not saved state. A new object has
 * b = 1, gap_decay = 0. RS_OK or RS_EINVAL.
 */
rs_err_t rs_neighbors_set_order(struct rs_neighbors *nb, double backward_weight,
                                double gap_decay);

/*
 * The clock: the latest event time seen (INT64_MIN before any). It is not in
 * the saved state; set_clock moves it forward to ts_ms (never back), e.g. to
 * the popularity clock after a load.
 */
int64_t rs_neighbors_clock(const struct rs_neighbors *nb);
void rs_neighbors_set_clock(struct rs_neighbors *nb, int64_t ts_ms);

/* Empties user's ring (for `forget`); counts already added stay. */
void rs_neighbors_forget(struct rs_neighbors *nb, uint32_t user);

/* Starts fetching user's ring of recent items. Changes nothing. */
void rs_neighbors_prefetch_user(const struct rs_neighbors *nb, uint32_t user);

/* User's recent items, oldest first (borrowed, valid until the next add); *n set. */
const uint32_t *rs_neighbors_recent(const struct rs_neighbors *nb, uint32_t user,
                                    size_t *n);

/*
 * Item's top min(max, k) neighbours by sim, best first (ties: lower index
 * first), written to out with score = sim and why = RS_NONE. Returns how many.
 */
size_t rs_neighbors_similar(const struct rs_neighbors *nb, uint32_t item, size_t max,
                            struct rs_rec *out);

/*
 * The same set in no particular order, cheaper (no sort): for the ranker.
 * scratch must hold RS_NEIGHBORS_SLOTS(k) entries.
 */
size_t rs_neighbors_top(const struct rs_neighbors *nb, uint32_t item, size_t max,
                        struct rs_rec *out, struct rs_rec *scratch);

/*
 * What the similarities were computed from, for caches of top lists (the
 * ranker keeps one): instance is unique to this object in the process,
 * changes grows whenever any similarity may change: a new occurrence, the
 * clock moving forward (the shrinkage weighs support at the clock), a new
 * shrink. Equal stamps mean every rs_neighbors_top result is unchanged.
 * events counts the events applied (rs_neighbors_add calls that returned
 * RS_OK), for readers that bound a cached list's staleness in events.
 */
struct rs_neighbors_stamp {
    uint64_t instance;
    uint64_t changes;
    uint64_t events;
};
struct rs_neighbors_stamp rs_neighbors_stamp(const struct rs_neighbors *nb);

/* sim(i, j) as item i's row holds it (0 if j is not held). */
float rs_neighbors_sim(const struct rs_neighbors *nb, uint32_t i, uint32_t j);

/* Moves up to max items whose neighbours changed into out; returns how many. */
size_t rs_neighbors_take_changed(struct rs_neighbors *nb, uint32_t *out, size_t max);

/* Marks item changed again (e.g. its list could not be published). */
void rs_neighbors_mark_changed(struct rs_neighbors *nb, uint32_t item);

/* Items whose neighbours changed and were not taken yet. */
size_t rs_neighbors_changed(const struct rs_neighbors *nb);

int rs_neighbors_k(const struct rs_neighbors *nb);
int rs_neighbors_window(const struct rs_neighbors *nb);
uint32_t rs_neighbors_items(const struct rs_neighbors *nb);

/* Bytes of item and user state in use: items * ITEM_BYTES + users * USER_BYTES. */
size_t rs_neighbors_state_bytes(const struct rs_neighbors *nb);

rs_err_t rs_neighbors_save(const struct rs_neighbors *nb, struct rs_writer *w);
struct rs_neighbors *rs_neighbors_load(struct rs_reader *r, rs_err_t *err);

#endif
