/*
 * dirty.h - the set of users whose list must be recomputed and published.
 * A bitmap for membership and an array for the order users became dirty, so
 * marking is O(1) and a burst of events from one user costs one publish.
 */
#ifndef RECSTREAM_DIRTY_H
#define RECSTREAM_DIRTY_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/serial.h"

struct rs_dirty;

struct rs_dirty *rs_dirty_create(void);
void rs_dirty_destroy(struct rs_dirty *d);

/* Marks user dirty. RS_OK or RS_ENOMEM. */
rs_err_t rs_dirty_mark(struct rs_dirty *d, uint32_t user);

/* Number of dirty users. */
size_t rs_dirty_count(const struct rs_dirty *d);

/*
 * Moves up to max dirty users, oldest first, into out and clears them.
 * Returns how many were taken.
 */
size_t rs_dirty_take(struct rs_dirty *d, uint32_t *out, size_t max);

/* How long (ms) the oldest dirty user has waited since it was marked; 0 if none. */
uint32_t rs_dirty_oldest_ms(const struct rs_dirty *d);

/* The i-th oldest dirty user, i < rs_dirty_count(d); the set is unchanged. */
uint32_t rs_dirty_at(const struct rs_dirty *d, size_t i);

/* Snapshot state (serial.h): the dirty users in order. */
rs_err_t rs_dirty_save(const struct rs_dirty *d, struct rs_writer *w);
struct rs_dirty *rs_dirty_load(struct rs_reader *r, rs_err_t *err);

#endif
