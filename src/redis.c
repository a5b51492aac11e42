/*
 * redis.c - recstream's only contact with hiredis. Commands are appended to
 * one connection's output buffer and their replies read back in rs_redis_flush,
 * so a batch of lists costs one round trip. Every list replacement is a single
 * command (SET key blob [EX ttl]) or a MULTI/EXEC block (sorted sets), so a
 * reader never sees half a list. A failed connection is dropped and made again
 * on the next call, with a growing pause between attempts; the caller keeps
 * its own record of what still has to be written.
 */
#include "recstream/redis.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "recstream/listfmt.h"
#include "recstream/log.h"

#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000

struct rs_redis {
    redisContext *c;
    char *host;
    int port;
    char *password;
    int db;
    int ttl_s;
    enum rs_list_format format;
    size_t pending;       /* replies owed by the server */
    int failed;           /* an append failed: the batch is lost */
    int64_t next_try_ms;  /* no reconnect before this */
    int retry_ms;
    char errstr[256];
    struct rs_buf zargs;  /* score strings for ZADD */
};

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

struct rs_redis *rs_redis_create(const struct rs_config *conf)
{
    struct rs_redis *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->host = dup_or_empty(conf->redis_host);
    r->password = dup_or_empty(conf->redis_password);
    if (!r->host || !r->password) {
        rs_redis_destroy(r);
        return NULL;
    }
    r->port = conf->redis_port;
    r->db = conf->redis_db;
    r->ttl_s = conf->redis_ttl_s;
    r->format = conf->redis_format;
    r->retry_ms = RETRY_MIN_MS;
    rs_buf_init(&r->zargs);
    return r;
}

static void disconnect(struct rs_redis *r)
{
    if (r->c) redisFree(r->c);
    r->c = NULL;
    r->pending = 0;
}

void rs_redis_destroy(struct rs_redis *r)
{
    if (!r) return;
    disconnect(r);
    rs_buf_free(&r->zargs);
    free(r->host);
    free(r->password);
    free(r);
}

/* Runs one command synchronously during connection set-up. */
static int setup_command(struct rs_redis *r, int argc, const char **argv)
{
    redisReply *reply = redisCommandArgv(r->c, argc, argv, NULL);
    int ok = reply && reply->type != REDIS_REPLY_ERROR;
    snprintf(r->errstr, sizeof(r->errstr), "%s: %s", argv[0],
             reply ? (reply->type == REDIS_REPLY_ERROR ? reply->str : "ok") : r->c->errstr);
    if (reply) freeReplyObject(reply);
    return ok ? 0 : -1;
}

/* Drops the connection and sets when the next attempt may be made. */
static void backoff(struct rs_redis *r)
{
    disconnect(r);
    r->next_try_ms = rs_now_ms() + r->retry_ms;
    r->retry_ms = r->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : r->retry_ms * 2;
}

rs_err_t rs_redis_connect(struct rs_redis *r)
{
    struct timeval tv = {2, 0};

    if (r->c) return RS_OK;
    if (rs_now_ms() < r->next_try_ms) return RS_EREDIS;

    r->c = redisConnectWithTimeout(r->host, r->port, tv);
    if (!r->c || r->c->err) {
        snprintf(r->errstr, sizeof(r->errstr), "connect %s:%d: %s", r->host, r->port,
                 r->c ? r->c->errstr : "out of memory");
        goto err;
    }
    redisSetTimeout(r->c, tv);
    if (*r->password) {
        const char *argv[] = {"AUTH", r->password};
        if (setup_command(r, 2, argv)) goto err;
    }
    if (r->db) {
        char db[16];
        const char *argv[] = {"SELECT", db};
        snprintf(db, sizeof(db), "%d", r->db);
        if (setup_command(r, 2, argv)) goto err;
    }
    r->retry_ms = RETRY_MIN_MS;
    r->errstr[0] = '\0';
    rs_info("redis: connected to %s:%d", r->host, r->port);
    return RS_OK;

err:
    backoff(r);
    return RS_EREDIS;
}

static rs_err_t append(struct rs_redis *r, int argc, const char **argv,
                       const size_t *argvlen)
{
    if (r->failed) return RS_EREDIS;
    if (!r->c && rs_redis_connect(r) != RS_OK) {
        r->failed = 1;
        return RS_EREDIS;
    }
    if (redisAppendCommandArgv(r->c, argc, argv, argvlen) != REDIS_OK) {
        snprintf(r->errstr, sizeof(r->errstr), "append: %s", r->c->errstr);
        r->failed = 1;
        return RS_EREDIS;
    }
    r->pending++;
    return RS_OK;
}

static rs_err_t append_zset(struct rs_redis *r, const char *key, size_t key_len,
                            const struct rs_rec *recs, size_t n,
                            const char *const *names, const size_t *name_lens)
{
    const char *argv[2 + 2 * 1024];
    size_t argvlen[2 + 2 * 1024];
    size_t offs[1024];
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"}, *del[] = {"DEL", key};
    size_t del_len[] = {3, key_len};
    rs_err_t err;

    if (n > 1024) n = 1024;
    rs_buf_reset(&r->zargs);
    for (size_t j = 0; j < n; j++) {
        char score[32];
        size_t len = rs_listfmt_score(recs[j].score, score);
        offs[j] = r->zargs.len;
        if (rs_buf_append(&r->zargs, score, len) != RS_OK) return RS_ENOMEM;
    }
    if ((err = append(r, 1, multi, NULL)) || (err = append(r, 2, del, del_len)))
        return err;
    if (n > 0) {
        argv[0] = "ZADD";
        argvlen[0] = 4;
        argv[1] = key;
        argvlen[1] = key_len;
        for (size_t j = 0; j < n; j++) {
            size_t end = j + 1 < n ? offs[j + 1] : r->zargs.len;
            argv[2 + 2 * j] = r->zargs.data + offs[j];
            argvlen[2 + 2 * j] = end - offs[j];
            argv[3 + 2 * j] = names[j];
            argvlen[3 + 2 * j] = name_lens[j];
        }
        if ((err = append(r, (int)(2 + 2 * n), argv, argvlen))) return err;
        if (r->ttl_s > 0) {
            char ttl[16];
            const char *ex[] = {"EXPIRE", key, ttl};
            size_t ex_len[] = {6, key_len, 0};
            ex_len[2] = (size_t)snprintf(ttl, sizeof(ttl), "%d", r->ttl_s);
            if ((err = append(r, 3, ex, ex_len))) return err;
        }
    }
    return append(r, 1, exec, NULL);
}

rs_err_t rs_redis_append_list(struct rs_redis *r, const char *key, size_t key_len,
                              const void *blob, size_t blob_len,
                              const struct rs_rec *recs, size_t n_recs,
                              const char *const *item_names, const size_t *item_lens)
{
    const char *argv[5];
    size_t argvlen[5];
    char ttl[16];
    int argc = 3;

    if (r->format == RS_FORMAT_ZSET)
        return append_zset(r, key, key_len, recs, n_recs, item_names, item_lens);
    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = key;
    argvlen[1] = key_len;
    argv[2] = blob;
    argvlen[2] = blob_len;
    if (r->ttl_s > 0) {
        argv[3] = "EX";
        argvlen[3] = 2;
        argvlen[4] = (size_t)snprintf(ttl, sizeof(ttl), "%d", r->ttl_s);
        argv[4] = ttl;
        argc = 5;
    }
    return append(r, argc, argv, argvlen);
}

rs_err_t rs_redis_append_del(struct rs_redis *r, const char *key, size_t key_len)
{
    const char *argv[] = {"DEL", key};
    size_t argvlen[] = {3, key_len};
    return append(r, 2, argv, argvlen);
}

rs_err_t rs_redis_append_hset(struct rs_redis *r, const char *key, size_t n_fields,
                              const char *const *fields, const char *const *values)
{
    const char *argv[2 + 2 * 16];
    int argc = 0;
    if (n_fields > 16) return RS_EINVAL;
    argv[argc++] = "HSET";
    argv[argc++] = key;
    for (size_t f = 0; f < n_fields; f++) {
        argv[argc++] = fields[f];
        argv[argc++] = values[f];
    }
    return append(r, argc, argv, NULL);
}

rs_err_t rs_redis_flush(struct rs_redis *r)
{
    rs_err_t result = r->failed ? RS_EREDIS : RS_OK;

    while (r->c && r->pending > 0) {
        redisReply *reply = NULL;
        if (redisGetReply(r->c, (void **)&reply) != REDIS_OK) {
            snprintf(r->errstr, sizeof(r->errstr), "%s", r->c->errstr);
            backoff(r);
            result = RS_EREDIS;
            break;
        }
        r->pending--;
        if (reply->type == REDIS_REPLY_ERROR) {
            snprintf(r->errstr, sizeof(r->errstr), "%s", reply->str);
            result = RS_EREDIS;
        }
        freeReplyObject(reply);
    }
    if (r->failed) {
        /* A half-sent batch: start over on a fresh connection. */
        if (r->c) backoff(r);
        r->failed = 0;
    }
    return result;
}

const char *rs_redis_errstr(const struct rs_redis *r)
{
    return r->errstr;
}
