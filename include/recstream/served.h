/*
 * served.h - the list each user was last served: the items of the top-N list
 * last written to Redis for them, kept so that an incoming event can tell
 * whether its item was on the user's list (the online hit rate in /metrics,
 * prequential recall measured on real traffic). Process-local: not in
 * snapshots, so after a restart a user counts again once their list has been
 * published anew.
 */
#ifndef RECSTREAM_SERVED_H
#define RECSTREAM_SERVED_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"

struct rs_served;

/* Remembers up to width items per user (the top_n of the lists). NULL on ENOMEM. */
struct rs_served *rs_served_create(size_t width);
void rs_served_destroy(struct rs_served *s);

/* Records items[0..n) (n capped at width) as user's list. RS_OK or RS_ENOMEM. */
rs_err_t rs_served_set(struct rs_served *s, uint32_t user, const uint32_t *items, size_t n);

/* Forgets user's list (the user was evicted or forgotten, or the key deleted). */
void rs_served_clear(struct rs_served *s, uint32_t user);

/* -1 when user has no list, 1 when item is on it, 0 when not. */
int rs_served_contains(const struct rs_served *s, uint32_t user, uint32_t item);

/* Bytes held. */
size_t rs_served_bytes(const struct rs_served *s);

#endif
