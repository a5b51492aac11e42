/*
 * redis.h - the Redis sink: one connection, commands pipelined and their
 * replies read in one flush. Each list is one command (SET of a JSON or
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
#include "recstream/ranker.h"

struct rs_redis;

/* A sink for conf's [redis] section. It connects lazily; NULL only on ENOMEM. */
struct rs_redis *rs_redis_create(const struct rs_config *conf);
void rs_redis_destroy(struct rs_redis *r);

/* Connects (and AUTH/SELECT) now if not connected. RS_OK or RS_EREDIS. */
rs_err_t rs_redis_connect(struct rs_redis *r);

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
