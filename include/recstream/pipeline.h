/*
 * pipeline.h - the model side of the main loop, shared by `run` (events from
 * Kafka) and `replay` (events from a file): decode, map ids, update the model,
 * feed the item neighbours and popularity, mark the user dirty; then, every
 * publish interval, rank the dirty users and write their lists to Redis,
 * with the similar-items lists of changed items and the trending list. It
 * owns the id maps, the model, the histories, the neighbours, the
 * popularity, the dirty set, per-user event counts, the next offset of every
 * topic-partition it has read, and the ranker; it borrows the Redis sink.
 * All of that state but the ranker goes into snapshots.
 */
#ifndef RECSTREAM_PIPELINE_H
#define RECSTREAM_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/config.h"
#include "recstream/event.h"
#include "recstream/idmap.h"
#include "recstream/metrics.h"
#include "recstream/model.h"
#include "recstream/ranker.h"
#include "recstream/redis.h"
#include "recstream/snapshot.h"

struct rs_pipeline_stats {
    uint64_t events_applied;
    uint64_t events_rejected;
    uint64_t rejected_by_reason[RS_REASON_COUNT];
    uint64_t events_over_capacity; /* refused because max_users/max_items was reached */
    uint64_t users_evicted;        /* idle or least recent users dropped (model.when_full, idle_user_ttl_s) */
    uint64_t lists_published;
    uint64_t sim_lists_published;
    uint64_t lists_deleted;
    uint64_t publish_errors;
};

/* Operational facts of this process (not saved in snapshots), for /metrics. */
struct rs_pipeline_ops {
    /* Where an event's freshness goes, stage by stage (one observation each): */
    struct rs_histogram event_lag_seconds;  /* per event: Kafka timestamp to applied */
    struct rs_histogram dirty_wait_seconds; /* per user batch: its oldest user's wait to be ranked */
    struct rs_histogram rank_seconds;       /* per user batch: ranking and encoding it */
    struct rs_histogram publish_seconds;    /* per batch: handed to the writer to acknowledged */
    uint64_t snapshots_written;
    uint64_t snapshots_failed;
    int64_t last_snapshot_ms;            /* wall clock of the last good one; 0: none */
    uint64_t fork_max_ns;                /* longest fork (ingestion stall) for a snapshot */
    uint64_t snapshot_last_ns;           /* duration of the last good snapshot */
    uint64_t events_consumed;            /* inputs handled: applied, rejected or refused */
    double sq_err_ema;                   /* moving average of rate events' squared error,
                                            each measured before its SGD step */
    uint64_t rated;                      /* rate events in that average */
    uint64_t hit_checks;                 /* events of users who had been served a list */
    uint64_t hits;                       /* ... whose item was on that list */
};

struct rs_pipeline;

/* The model parameters [model] sets. */
void rs_pipeline_model_params(const struct rs_config *conf, struct rs_model_params *mp);

/* A pipeline configured by conf (borrowed; must outlive it), publishing
 * through redis (borrowed; NULL: nothing is published). NULL on error. */
struct rs_pipeline *rs_pipeline_create(const struct rs_config *conf,
                                       struct rs_redis *redis, char *errstr,
                                       size_t errstr_size);
void rs_pipeline_destroy(struct rs_pipeline *p);

/*
 * Decodes one payload and applies it, or counts it as rejected. ts_ms is used
 * when the event carries no time. Returns the reason (RS_REASON_OK if applied
 * or refused only for capacity).
 */
enum rs_event_reason rs_pipeline_handle(struct rs_pipeline *p, const void *buf,
                                        size_t len, int64_t ts_ms);

/* Applies an already decoded and validated event. RS_OK, RS_EFULL (counted), RS_ENOMEM.
 */
rs_err_t rs_pipeline_apply(struct rs_pipeline *p, const struct rs_event *ev);

/*
 * A hint, for an event a few places ahead in the stream, whose user is
 * probably user[0..len) (producers key messages by user): starts fetching
 * what applying it will touch, in stages 0, 1, 2 (rs_kafka_prefetch_t; each
 * reads what the stage before fetched). Changes nothing.
 */
void rs_pipeline_prefetch(struct rs_pipeline *p, const void *user, size_t len, int stage);

/* Counts an input refused for reason. */
void rs_pipeline_reject(struct rs_pipeline *p, enum rs_event_reason reason);

/*
 * 1 when a batch is due: RANK_BATCH (64) users are dirty, or the oldest dirty
 * user has waited publish_interval_ms, or forgotten users' keys wait, or the
 * interval passed since similar-items lists, rs:pop and rs:meta were queued
 * and one of them changed.
 */
int rs_pipeline_publish_due(const struct rs_pipeline *p);

/* Milliseconds until rs_pipeline_publish_due may become 1 (0: now), at most
 * publish_interval_ms: how long the caller may block waiting for events. */
int rs_pipeline_publish_wait_ms(const struct rs_pipeline *p);

/*
 * The streaming publish, never blocking on Redis: folds the batches Redis
 * acknowledged into the statistics, then ranks due users in batches of up to
 * 64 and hands each batch's encoded lists to the writer thread, for a few
 * milliseconds at most or until the writer's queue is full (users then stay
 * dirty); then similar-items lists, rs:pop and rs:meta when due. Without a
 * sink it only drains what would be published. RS_OK or RS_ENOMEM.
 */
rs_err_t rs_pipeline_publish_step(struct rs_pipeline *p);

/*
 * Ranks and writes every dirty user's list (users without history get their
 * key deleted), every changed item's similar-items list, the trending list if
 * events arrived, then the meta hash, and waits until Redis acknowledged all
 * of it. RS_EREDIS when the writer's last attempt failed: what was not
 * written stays pending (dirty, or queued with the writer, which retries)
 * and a later call goes on.
 */
rs_err_t rs_pipeline_publish(struct rs_pipeline *p);

/* Fill levels of the writer's queue, for back-pressure: batches waiting to be
 * written, batches not yet acknowledged and folded in, and the queue's size. */
size_t rs_pipeline_publish_queued(const struct rs_pipeline *p);
size_t rs_pipeline_publish_in_flight(const struct rs_pipeline *p);
size_t rs_pipeline_publish_slots(const struct rs_pipeline *p);

/*
 * The blended list (ranker.h, [ranking] weights, top_n entries) the user with
 * external id user[0..len) gets now; an unknown user gets the cold-start
 * (trending) list. Writes up to top_n entries to out and their number to *n.
 */
rs_err_t rs_pipeline_recommend(struct rs_pipeline *p, const char *user, size_t len,
                               struct rs_rec *out, size_t *n);

/* The blend weights of conf's [ranking] (recency decay included). */
struct rs_rank_weights rs_pipeline_weights(const struct rs_config *conf);

/* The same with any weights (e.g. an evaluation scoring one signal alone). */
rs_err_t rs_pipeline_recommend_with(struct rs_pipeline *p, const char *user, size_t len,
                                    const struct rs_rank_weights *w, struct rs_rec *out,
                                    size_t *n);

/* Item's top min(max, k) similar items; RS_ENOENT for an unknown item. */
rs_err_t rs_pipeline_similar(const struct rs_pipeline *p, const char *item, size_t len,
                             size_t max, struct rs_rec *out, size_t *n);

/* Lists waiting to be published or acknowledged by Redis: dirty users and those in
 * batches not acknowledged yet, changed items, the trending list, forgotten users. */
size_t rs_pipeline_pending(const struct rs_pipeline *p);

/* Number of users waiting to be published: dirty, or in a batch Redis has not acknowledged. */
size_t rs_pipeline_dirty(const struct rs_pipeline *p);

const struct rs_pipeline_stats *rs_pipeline_stats(const struct rs_pipeline *p);
const struct rs_idmap *rs_pipeline_users(const struct rs_pipeline *p);
const struct rs_idmap *rs_pipeline_items(const struct rs_pipeline *p);
const struct rs_model *rs_pipeline_model(const struct rs_pipeline *p);

/* ---- snapshot state ---------------------------------------------------- */

/* Where one topic-partition stands: the next offset whose event is not in the model. */
struct rs_pipeline_offset {
    const char *topic; /* owned by the pipeline */
    int32_t partition;
    int64_t next;
};

/*
 * Records that every message of topic/partition before next has been applied
 * or counted (called once per message). RS_OK or RS_ENOMEM (only when a
 * partition is seen for the first time).
 */
rs_err_t rs_pipeline_set_offset(struct rs_pipeline *p, const char *topic, int32_t partition,
                                int64_t next);

/* 1 with *next when topic/partition is known (from events or a snapshot), else 0. */
int rs_pipeline_offset(const struct rs_pipeline *p, const char *topic, int32_t partition,
                       int64_t *next);

/* Every known topic-partition (borrowed until the next set_offset or load); returns how many. */
size_t rs_pipeline_offsets(const struct rs_pipeline *p, const struct rs_pipeline_offset **out);

/* Events applied for user index u (0 for unknown users). */
uint32_t rs_pipeline_user_events(const struct rs_pipeline *p, uint32_t u);

/* The shape parameters conf gives a snapshot. */
void rs_pipeline_shape(const struct rs_config *conf, struct rs_snapshot_shape *shape);

/*
 * rs_snapshot_fill_t: writes the whole state of the pipeline p (a struct
 * rs_pipeline *), one section per module.
 */
rs_err_t rs_pipeline_snapshot_fill(void *p, struct rs_snapshot_writer *sw);

/*
 * rs_snapshot_load_t: replaces the state of the pipeline p with the verified
 * snapshot's. On any error p is unchanged; RS_ECORRUPT when the sections do
 * not agree with each other.
 */
rs_err_t rs_pipeline_snapshot_load(void *p, const struct rs_snapshot *snap, char *errstr,
                                   size_t errstr_size);

/* Records that an event stamped at_ms (Kafka's timestamp, wall clock) was applied now. */
void rs_pipeline_note_event_lag(struct rs_pipeline *p, int64_t at_ms);

/* Records a snapshot's outcome (ok or failed) at wall-clock at_ms and the fork
 * pause it cost; rs:meta's last_snapshot_ms and /metrics report them. */
void rs_pipeline_note_snapshot(struct rs_pipeline *p, int ok, int64_t at_ms, uint64_t fork_ns);

/* Records how long the last good snapshot took, from start to durable on disk. */
void rs_pipeline_note_snapshot_duration(struct rs_pipeline *p, uint64_t ns);

const struct rs_pipeline_ops *rs_pipeline_ops(const struct rs_pipeline *p);

#endif
