/*
 * history.h - which items each user already has: the set the ranker excludes
 * and the neighbour/reason logic reads. One sorted array of item indices per
 * user, grown on demand; membership is a binary search.
 */
#ifndef RECSTREAM_HISTORY_H
#define RECSTREAM_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/serial.h"

struct rs_history;

struct rs_history *rs_history_create(void);
void rs_history_destroy(struct rs_history *h);

/* Adds item to user's set. Returns 1 if it was new, 0 if present, -1 on ENOMEM. */
int rs_history_add(struct rs_history *h, uint32_t user, uint32_t item);

/* 1 if user has item, else 0. */
int rs_history_contains(const struct rs_history *h, uint32_t user, uint32_t item);

/* The user's items in ascending order (borrowed, valid until the next add); *n set. */
const uint32_t *rs_history_items(const struct rs_history *h, uint32_t user, size_t *n);

/* Starts fetching user's entry (stage 1) or its first items (stage 2, the
 * entry by then at hand). Changes nothing. */
void rs_history_prefetch(const struct rs_history *h, uint32_t user, int stage);

/* Forgets everything about user. */
void rs_history_clear(struct rs_history *h, uint32_t user);

/* Snapshot state (serial.h): every user's items. */
rs_err_t rs_history_save(const struct rs_history *h, struct rs_writer *w);
struct rs_history *rs_history_load(struct rs_reader *r, rs_err_t *err);

#endif
