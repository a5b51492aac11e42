/*
 * gen.h - synthetic event streams with planted structure, any size: users and
 * items fall into clusters, and a user mostly plays or rates items of their
 * own cluster, so a working recommender must find the clusters. Used by the
 * quick start, the tests and the benchmarks; needs no data download.
 */
#ifndef RECSTREAM_GEN_H
#define RECSTREAM_GEN_H

#include <stdint.h>

#include "recstream/common.h"
#include "recstream/event.h"

struct rs_gen_params {
    uint32_t users;
    uint32_t items;
    uint32_t clusters;
    uint64_t events;
    uint64_t seed;
    double rate_share;     /* share of events that are `rate` (rest are `play`) */
    double noise;          /* share of events on an item outside the user's cluster */
    int64_t start_ms;      /* timestamp of the first event */
    int64_t step_ms;       /* time between events */
};

void rs_gen_defaults(struct rs_gen_params *p);

struct rs_gen;

struct rs_gen *rs_gen_create(const struct rs_gen_params *p);
void rs_gen_destroy(struct rs_gen *g);

/* Writes the next event to ev. Returns RS_OK, or RS_ENOENT after p->events. */
rs_err_t rs_gen_next(struct rs_gen *g, struct rs_event *ev);

/* The planted cluster of a user or item index (ids are "u<n>" and "i<n>"). */
uint32_t rs_gen_user_cluster(const struct rs_gen *g, uint32_t user);
uint32_t rs_gen_item_cluster(const struct rs_gen *g, uint32_t item);

#endif
