/*
 * publisher.h - the Redis writer thread and the bounded queue of batches it
 * writes. The model's thread fills a batch (Redis commands already encoded,
 * plus what they stand for: the users whose lists they hold and counts for
 * the statistics), submits it and goes on; the writer sends batches in order,
 * one round trip each, and retries a batch that failed (after the sink's
 * reconnect backoff) until it is written or the publisher is destroyed. The
 * model's thread then reaps written batches, in order, and releases them.
 * There are `slots` batches: when all are in use, acquire returns NULL and the
 * caller keeps its work (the dirty set holds it). Only the writer touches the
 * Redis sink once the publisher exists.
 */
#ifndef RECSTREAM_PUBLISHER_H
#define RECSTREAM_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/redis.h"

/* One batch. The model's thread owns every field but `failures` and
 * `written_ns` between acquire and submit and again after reap. */
struct rs_pub_batch {
    struct rs_redis_batch cmds;
    uint32_t *users;        /* users whose lists (or deletions) are in cmds */
    size_t n_users;
    size_t users_cap;
    uint32_t *items;        /* items whose similar-items lists are in cmds */
    size_t n_items;
    size_t items_cap;
    uint64_t lists;         /* user lists SET */
    uint64_t deleted;       /* user lists deleted */
    uint64_t sims;          /* similar-items lists SET */
    size_t forgotten_bytes; /* bytes of the caller's forget queue whose DELs are in cmds */
    struct rs_buf note;     /* the caller's own record of what the batch holds; emptied on acquire */
    uint64_t submitted_ns;
    /* set by the writer */
    uint64_t written_ns;
    uint64_t failures;      /* attempts that failed before it was written */
};

struct rs_publisher;

/* Starts the writer thread over redis (borrowed; it must outlive the
 * publisher and is used by that thread alone). NULL on error. */
struct rs_publisher *rs_publisher_create(struct rs_redis *redis, size_t slots);

/* Stops the writer (abandoning a batch it is retrying) and frees everything. */
void rs_publisher_destroy(struct rs_publisher *pub);

/* An empty batch to fill, or NULL when every slot is submitted or unreaped. */
struct rs_pub_batch *rs_publisher_acquire(struct rs_publisher *pub);

/* Makes room for n more users (items) in b. RS_OK or RS_ENOMEM. */
rs_err_t rs_pub_batch_reserve_users(struct rs_pub_batch *b, size_t n);
rs_err_t rs_pub_batch_reserve_items(struct rs_pub_batch *b, size_t n);

/* Hands the batch last acquired to the writer. */
void rs_publisher_submit(struct rs_publisher *pub, struct rs_pub_batch *b);

/* The oldest written batch not yet released, or NULL. */
struct rs_pub_batch *rs_publisher_reap(struct rs_publisher *pub);

/* Gives the batch reap returned back to the pool. */
void rs_publisher_release(struct rs_publisher *pub, struct rs_pub_batch *b);

/* Waits until a batch can be reaped, a write attempt fails, or timeout_ms
 * passed. Returns 1 when a batch can be reaped. */
int rs_publisher_wait(struct rs_publisher *pub, int timeout_ms);

/* The i-th oldest batch not yet released (i < rs_publisher_in_flight): for
 * snapshots, which count its users as still dirty. Model's thread only. */
const struct rs_pub_batch *rs_publisher_in_flight_at(const struct rs_publisher *pub,
                                                     size_t i);

/* ---- fill levels (cheap; safe from the model's thread at any time) ---- */

/* Batches submitted and not yet written (the writer's backlog). */
size_t rs_publisher_queued(struct rs_publisher *pub);
/* Batches submitted or written but not yet released. */
size_t rs_publisher_in_flight(const struct rs_publisher *pub);
/* The number of slots. */
size_t rs_publisher_slots(const struct rs_publisher *pub);
/* 1 while the writer's last attempt failed (Redis down or refusing). */
int rs_publisher_failing(struct rs_publisher *pub);
/* Write attempts that failed since the publisher started. */
uint64_t rs_publisher_failures(struct rs_publisher *pub);
/* Copies the writer's last error message into buf. */
void rs_publisher_errstr(struct rs_publisher *pub, char *buf, size_t size);

#endif
