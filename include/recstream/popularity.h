/*
 * popularity.h - time-decayed item popularity: each event adds its weight to
 * the item's score, and every score halves each half_life_s of event time.
 * The fallback list for new users (rs:pop) and one of the blended signals.
 * Scores are kept relative to a reference time so an update is O(1); the
 * reference moves forward (rescaling all scores) before values could overflow.
 */
#ifndef RECSTREAM_POPULARITY_H
#define RECSTREAM_POPULARITY_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/ranker.h"
#include "recstream/serial.h"

struct rs_popularity;

/* NULL on ENOMEM or a half-life that is not positive. */
struct rs_popularity *rs_popularity_create(double half_life_s);
void rs_popularity_destroy(struct rs_popularity *pop);

/* Adds weight for item at event time ts_ms. RS_OK or RS_ENOMEM. */
rs_err_t rs_popularity_add(struct rs_popularity *pop, uint32_t item, float weight,
                           int64_t ts_ms);

/* The item's score decayed to time now_ms (0 for unknown items). */
double rs_popularity_score(const struct rs_popularity *pop, uint32_t item, int64_t now_ms);

/*
 * Fills scores[0..n_items) with every item's score decayed to now_ms, divided
 * by the largest one (so the best is 1, 0 if there are none).
 */
void rs_popularity_normalized(const struct rs_popularity *pop, int64_t now_ms,
                              float *scores, uint32_t n_items);

/* The n most popular items at now_ms, best first; returns how many. */
size_t rs_popularity_top(const struct rs_popularity *pop, int64_t now_ms, size_t n,
                         struct rs_rec *out);

/* Latest event time seen (0 before any). */
int64_t rs_popularity_clock(const struct rs_popularity *pop);

/* Number of item slots held. */
uint32_t rs_popularity_items(const struct rs_popularity *pop);

rs_err_t rs_popularity_save(const struct rs_popularity *pop, struct rs_writer *w);
struct rs_popularity *rs_popularity_load(struct rs_reader *r, rs_err_t *err);

#endif
