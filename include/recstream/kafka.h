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
 * Commits exactly these offsets (e.g. the ones a durable snapshot holds),
 * synchronously when sync. RS_OK or RS_EKAFKA (logged).
 */
rs_err_t rs_kafka_commit_offsets(struct rs_kafka *kc, const struct rs_kafka_offset *offs,
                                 size_t n, int sync);

/*
 * Where to start a newly assigned partition: return 1 with *offset set, or 0
 * to start from the group's committed offset (earliest when there is none).
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
 * Fills out[0..max) with the lag of every assigned partition, from the
 * watermarks librdkafka caches from its fetch responses (no broker round
 * trip), and returns how many were written.
 */
size_t rs_kafka_lag(struct rs_kafka *kc, struct rs_kafka_lag *out, size_t max);

#endif
