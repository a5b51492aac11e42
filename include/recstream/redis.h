/*
 * redis.h - the Redis sink: one connection, commands pipelined and their
 * replies read in one flush. Commands are encoded in the Redis protocol by
 * recstream itself into a struct rs_redis_batch, which any thread may fill
 * (the encoders only read the sink's fixed settings) and the sink's owner
 * sends whole. Each list is one command (SET of a JSON or
 * msgpack blob, or a MULTI/EXEC block for sorted sets), so a reader sees the
 * old list or the new one, never a mix. On a connection error the sink reports
 * it and reconnects on the next call; the caller keeps what was not written.
 * This header exposes no hiredis type.
 */
#ifndef RECSTREAM_REDIS_H
#define RECSTREAM_REDIS_H

#include <stddef.h>

#include "recstream/common.h"
#include "recstream/config.h"
#include "recstream/listfmt.h"
#include "recstream/ranker.h"

struct rs_redis;

/* A sink for conf's [redis] section. It connects lazily; NULL only on ENOMEM. */
struct rs_redis *rs_redis_create(const struct rs_config *conf);
void rs_redis_destroy(struct rs_redis *r);

/* Connects (and AUTH/SELECT) now if not connected. RS_OK or RS_EREDIS. */
rs_err_t rs_redis_connect(struct rs_redis *r);

/* Commands in the Redis protocol, pipelined, and how many replies they owe. */
struct rs_redis_batch {
    struct rs_buf bytes;
    size_t replies;
};

void rs_redis_batch_init(struct rs_redis_batch *b);
void rs_redis_batch_free(struct rs_redis_batch *b);
void rs_redis_batch_reset(struct rs_redis_batch *b);

/*
 * Encodes the replacement of key's list into b, as rs_redis_append_list
 * sends it (r's format and TTL). Reads only r's fixed settings, so a thread
 * other than the one sending may call it. RS_OK or RS_ENOMEM (b unchanged).
 */
rs_err_t rs_redis_batch_list(const struct rs_redis *r, struct rs_redis_batch *b,
                             const char *key, size_t key_len, const void *blob,
                             size_t blob_len, const struct rs_rec *recs, size_t n_recs,
                             const char *const *item_names, const size_t *item_lens);

/* Encodes DEL key into b. */
rs_err_t rs_redis_batch_del(struct rs_redis_batch *b, const char *key, size_t key_len);

/* Encodes HSET key field value [field value ...] (at most 16 pairs) into b. */
rs_err_t rs_redis_batch_hset(struct rs_redis_batch *b, const char *key, size_t n_fields,
                             const char *const *fields, const char *const *values);

/*
 * Sends b whole and reads every reply (connecting first if needed). RS_OK if
 * every command succeeded; RS_EREDIS otherwise: the connection is dropped
 * when the failure was not an error reply, and the whole batch may be sent
 * again (every command in it is an idempotent overwrite or delete).
 */
rs_err_t rs_redis_send(struct rs_redis *r, const struct rs_redis_batch *b);

/* 1 when the sink's format needs the item names (zset), 0 when only the blob. */
int rs_redis_needs_names(const struct rs_redis *r);

/*
 * Queues the replacement of key's list. blob is the list rendered by listfmt
 * (json or msgpack formats); for the zset format recs/items are used instead.
 */
rs_err_t rs_redis_append_list(struct rs_redis *r, const char *key, size_t key_len,
                              const void *blob, size_t blob_len,
                              const struct rs_rec *recs, size_t n_recs,
                              const char *const *item_names, const size_t *item_lens);

/* Queues DEL key. */
rs_err_t rs_redis_append_del(struct rs_redis *r, const char *key, size_t key_len);

/* Queues HSET key field value [field value ...] for the meta hash. */
rs_err_t rs_redis_append_hset(struct rs_redis *r, const char *key, size_t n_fields,
                              const char *const *fields, const char *const *values);

/* Sends everything queued and reads every reply. RS_OK if all succeeded,
 * RS_EREDIS otherwise (the whole batch should be retried). */
rs_err_t rs_redis_flush(struct rs_redis *r);

/* The last error message ("" if none). */
const char *rs_redis_errstr(const struct rs_redis *r);

#endif
