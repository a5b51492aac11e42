/*
 * kafka.h - the Kafka side of recstream: a consumer-group source that hands
 * each message to a callback and stores its offset only after the callback
 * has applied it, and a keyed producer for `recstream produce`. Both build
 * their librdkafka configuration from [kafka] (pass-through keys included)
 * and, with `brokers = embedded`, start librdkafka's in-process mock cluster.
 * This header exposes no librdkafka type: the rest of recstream never
 * includes rdkafka.h.
 */
#ifndef RECSTREAM_KAFKA_H
#define RECSTREAM_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/config.h"

/* One consumed message, borrowed for the duration of the callback. */
struct rs_kafka_msg {
    const void *payload;
    size_t len;
    const void *key;
    size_t key_len;
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t ts_ms; /* message timestamp, -1 if none */
};

/* Called for each message; return 0 when the message is done with (applied
 * or counted as bad), so its offset may be stored. */
typedef int (*rs_kafka_handler_t)(void *opaque, const struct rs_kafka_msg *msg);

/*
 * Called, when set, for messages a few places ahead of the one being handled,
 * with their key only: stage 0 for the third after it, 1 for the second, 2
 * for the next. A hint to start fetching what handling that message will
 * touch (its rows are cold when users come in any order); it must change no
 * state. Same opaque as the handler.
 */
typedef void (*rs_kafka_prefetch_t)(void *opaque, const void *key, size_t key_len,
                                    int stage);

struct rs_kafka;

/*
 * A consumer subscribed to conf->topics in group conf->group_id. Every
 * unknown [kafka] key is set on the librdkafka configuration; a property it
 * refuses stops start-up with "origin: message" in errstr. Returns NULL on
 * error.
 */
struct rs_kafka *rs_kafka_consumer_create(const struct rs_config *conf, char *errstr,
                                          size_t errstr_size);

/*
 * A producer for conf->topics[0] (plus the dead-letter topic when set).
 * NULL on error, with errstr filled.
 */
struct rs_kafka *rs_kafka_producer_create(const struct rs_config *conf, char *errstr,
                                          size_t errstr_size);

/* Closes the consumer (leaving the group) or flushes the producer, and frees. */
void rs_kafka_destroy(struct rs_kafka *kc);

/* Sets (or, with NULL, clears) the prefetch hint of rs_kafka_consume. */
void rs_kafka_set_prefetch(struct rs_kafka *kc, rs_kafka_prefetch_t fn);

/*
 * Polls up to max messages, waiting at most timeout_ms for the first, and
 * passes each to handler. Returns the number handled (>= 0); transient broker
 * errors are logged, not returned.
 */
int rs_kafka_consume(struct rs_kafka *kc, int timeout_ms, size_t max,
                     rs_kafka_handler_t handler, void *opaque);

/* Commits the offsets stored so far (synchronously when sync). */
rs_err_t rs_kafka_commit(struct rs_kafka *kc, int sync);

/* A position in one topic-partition: the next offset to read. */
struct rs_kafka_offset {
    const char *topic;
    int32_t partition;
    int64_t offset;
};

/*
 * Commits these offsets (e.g. the ones a durable snapshot holds),
 * synchronously when sync, skipping partitions not in the current assignment
 * (a revoked partition's offsets are its new owner's to commit). A failed
 * commit, sync or not, is counted (rs_kafka_stats) and retried about once a
 * second from rs_kafka_consume until it succeeds or a newer call replaces
 * it. RS_OK or RS_EKAFKA (logged).
 */
rs_err_t rs_kafka_commit_offsets(struct rs_kafka *kc, const struct rs_kafka_offset *offs,
                                 size_t n, int sync);

/*
 * Where the model stands in a newly assigned partition: return 1 with
 * *offset set, or 0 to start from the group's committed offset (earliest
 * when there is none). The consumer starts at *offset, or at the committed
 * offset when that is further and was committed by another owner (see
 * rs_kafka_set_owner): another instance applied the events in between.
 */
typedef int (*rs_kafka_offset_fn)(void *opaque, const char *topic, int32_t partition,
                                  int64_t *offset);

/*
 * Makes the consumer ask fn for each partition it is assigned, and stops it
 * committing stored offsets on revocation: the owner of fn commits what it
 * has made durable with rs_kafka_commit_offsets. Call before the first consume.
 */
void rs_kafka_set_offset_fn(struct rs_kafka *kc, rs_kafka_offset_fn fn, void *opaque);

/*
 * Called when partitions are about to be revoked in a rebalance (not when
 * the assignment was lost), while this consumer still owns them: the owner
 * makes its state durable and commits it with rs_kafka_commit_offsets, so the
 * next owner starts where this model ends.
 */
typedef void (*rs_kafka_revoke_fn)(void *opaque);

void rs_kafka_set_revoke_fn(struct rs_kafka *kc, rs_kafka_revoke_fn fn, void *opaque);

/*
 * Names the owner of the state these commits describe (e.g. host and
 * snapshot directory); it goes into every commit's metadata, and a committed
 * offset of another owner's is taken as that owner's progress (see
 * rs_kafka_offset_fn). The string is copied. RS_OK or RS_ENOMEM.
 */
rs_err_t rs_kafka_set_owner(struct rs_kafka *kc, const char *owner);

/*
 * Produces payload keyed by key to the main topic. Blocks while the local
 * queue is full. RS_OK, or RS_EKAFKA with the reason logged.
 */
rs_err_t rs_kafka_produce(struct rs_kafka *kc, const void *key, size_t key_len,
                          const void *payload, size_t len);

/* Waits up to timeout_ms for produced messages to be delivered; returns the
 * number still undelivered. */
int rs_kafka_flush(struct rs_kafka *kc, int timeout_ms);

/* Delivery failures seen by the producer so far. */
uint64_t rs_kafka_delivery_errors(const struct rs_kafka *kc);

/* With brokers = embedded: the mock cluster's bootstrap address, else NULL. */
const char *rs_kafka_embedded_bootstraps(const struct rs_kafka *kc);

/* The consumer lag of one assigned partition. */
struct rs_kafka_lag {
    char topic[128];
    int32_t partition;
    int64_t lag; /* log end offset - the consumer's position; -1 when not yet known */
};

/*
 * Fills out[0..max) with the lag of every assigned partition and returns how
 * many were written. The log end offsets are the watermarks librdkafka caches
 * from its fetch responses (no broker round trip); while the consumer is
 * paused they are asked of the brokers (blocking up to 200 ms), as the cache
 * no longer moves then. After a failed ask the last answer stands and the
 * next ask waits 10 s.
 */
size_t rs_kafka_lag(struct rs_kafka *kc, struct rs_kafka_lag *out, size_t max);

/* Header names of a dead letter: why it was refused, and where it came from
 * (partition and offset as decimal text). */
#define RS_KAFKA_HDR_REASON "recstream.reason"
#define RS_KAFKA_HDR_TOPIC "recstream.source.topic"
#define RS_KAFKA_HDR_PARTITION "recstream.source.partition"
#define RS_KAFKA_HDR_OFFSET "recstream.source.offset"

/*
 * Copies msg, key and value unchanged, to [kafka] dead_letter_topic with the
 * reason and the source topic/partition/offset in headers. The copy is kept
 * until the broker acknowledges it and re-sent (about a second later) after
 * every failed delivery, so it is pending until acknowledged; only a copy
 * larger than the topic accepts is dropped (counted in rs_kafka_stats). RS_OK when
 * queued, RS_EINVAL when no dead-letter topic is configured, RS_ENOMEM.
 */
rs_err_t rs_kafka_dead_letter(struct rs_kafka *kc, const struct rs_kafka_msg *msg,
                              const char *reason);

/* Dead letters not yet acknowledged by the broker. */
uint64_t rs_kafka_dead_letters_pending(const struct rs_kafka *kc);

/*
 * Waits up to timeout_ms for every dead letter to be acknowledged (serving
 * delivery reports and re-sends, nothing is consumed meanwhile); returns the
 * number still pending.
 */
uint64_t rs_kafka_dead_letters_flush(struct rs_kafka *kc, int timeout_ms);

/*
 * Back-pressure: pause stops fetching from every assigned partition (and from
 * partitions assigned while paused); keep calling rs_kafka_consume, which then
 * returns no new messages but keeps the group membership alive. resume
 * undoes it. Both are no-ops when already in that state.
 */
void rs_kafka_pause(struct rs_kafka *kc);
void rs_kafka_resume(struct rs_kafka *kc);

/* What the consumer's side jobs did, for /metrics. */
struct rs_kafka_stats {
    uint64_t dead_letters_produced; /* acknowledged by the broker */
    uint64_t dead_letters_failed;   /* failed delivery attempts (each one re-sent) */
    uint64_t dead_letters_dropped;  /* larger than the topic accepts: never deliverable */
    uint64_t dead_letters_pending;  /* not acknowledged yet */
    uint64_t commits_failed;        /* offset commits that failed (each retried) */
    uint64_t pauses;                /* times consumption was paused */
    int paused;                     /* 1 while paused */
};

void rs_kafka_stats(const struct rs_kafka *kc, struct rs_kafka_stats *st);

#endif
