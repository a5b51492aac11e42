/*
 * redis.c - recstream's only contact with hiredis. Commands are encoded in
 * the Redis protocol into a batch (rs_redis_batch_*), written to the socket
 * whole and their replies read back with hiredis's reader (rs_redis_send),
 * so a batch of lists costs one round trip. Every list replacement is a single
 * command (SET key blob [EX ttl]) or a MULTI/EXEC block (sorted sets), so a
 * reader never sees half a list. A failed connection is dropped and made again
 * on the next call, with a growing pause between attempts; the caller keeps
 * its own record of what still has to be written.
 */
#include "recstream/redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
    char ttl_str[16];     /* ttl_s in decimal ("" when 0) */
    int64_t next_try_ms;  /* no reconnect before this */
    int retry_ms;
    char errstr[256];
    struct rs_redis_batch queued; /* what rs_redis_append_* queued for rs_redis_flush */
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
    if (r->ttl_s > 0) snprintf(r->ttl_str, sizeof(r->ttl_str), "%d", r->ttl_s);
    r->retry_ms = RETRY_MIN_MS;
    rs_redis_batch_init(&r->queued);
    return r;
}

static void disconnect(struct rs_redis *r)
{
    if (r->c) redisFree(r->c);
    r->c = NULL;
}

void rs_redis_destroy(struct rs_redis *r)
{
    if (!r) return;
    disconnect(r);
    rs_redis_batch_free(&r->queued);
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

/* ---- the Redis protocol, encoded here --------------------------------
 * hiredis's own formatter allocates and formats each command separately and
 * its output buffer is copied again on every partial write; a batch encoded
 * here is written to the socket as it is. */

void rs_redis_batch_init(struct rs_redis_batch *b)
{
    rs_buf_init(&b->bytes);
    b->replies = 0;
}

void rs_redis_batch_free(struct rs_redis_batch *b)
{
    rs_buf_free(&b->bytes);
    b->replies = 0;
}

void rs_redis_batch_reset(struct rs_redis_batch *b)
{
    rs_buf_reset(&b->bytes);
    b->replies = 0;
}

/* Writes c followed by n in decimal and CRLF; returns the length (<= 24). */
static size_t len_line(char *out, char c, size_t n)
{
    char digits[20];
    size_t nd = 0, len = 0;
    do {
        digits[nd++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    out[len++] = c;
    while (nd) out[len++] = digits[--nd];
    out[len++] = '\r';
    out[len++] = '\n';
    return len;
}

static rs_err_t put_header(struct rs_buf *b, char c, size_t n)
{
    char line[24];
    return rs_buf_append(b, line, len_line(line, c, n));
}

/* One bulk string: $len CRLF bytes CRLF. */
static rs_err_t put_bulk(struct rs_buf *b, const void *s, size_t n)
{
    rs_err_t err;
    if ((err = put_header(b, '$', n)) || (err = rs_buf_append(b, s, n))) return err;
    return rs_buf_append(b, "\r\n", 2);
}

static rs_err_t put_command(struct rs_buf *b, int argc, const char *const *argv,
                            const size_t *argvlen)
{
    rs_err_t err = put_header(b, '*', (size_t)argc);
    for (int a = 0; a < argc && !err; a++)
        err = put_bulk(b, argv[a], argvlen ? argvlen[a] : strlen(argv[a]));
    return err;
}

/* Appends one command to b; on ENOMEM b is as it was. */
static rs_err_t batch_command(struct rs_redis_batch *b, int argc, const char *const *argv,
                              const size_t *argvlen)
{
    size_t mark = b->bytes.len;
    if (put_command(&b->bytes, argc, argv, argvlen)) {
        b->bytes.len = mark;
        return RS_ENOMEM;
    }
    b->replies++;
    return RS_OK;
}

static rs_err_t batch_zset(const struct rs_redis *r, struct rs_redis_batch *b,
                           const char *key, size_t key_len, const struct rs_rec *recs,
                           size_t n, const char *const *names, const size_t *name_lens)
{
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"}, *del[] = {"DEL", key};
    size_t del_len[] = {3, key_len};
    size_t mark = b->bytes.len, replies = b->replies;
    char score[32];
    rs_err_t err;

    if (n > 1024) n = 1024;
    if ((err = batch_command(b, 1, multi, NULL)) || (err = batch_command(b, 2, del, del_len)))
        goto fail;
    if (n > 0) {
        /* ZADD key score member ...: the scores are formatted straight into b */
        if ((err = put_header(&b->bytes, '*', 2 + 2 * n)) ||
            (err = put_bulk(&b->bytes, "ZADD", 4)) || (err = put_bulk(&b->bytes, key, key_len)))
            goto fail;
        for (size_t j = 0; j < n; j++) {
            size_t len = rs_listfmt_score(recs[j].score, score);
            if ((err = put_bulk(&b->bytes, score, len)) ||
                (err = put_bulk(&b->bytes, names[j], name_lens[j])))
                goto fail;
        }
        b->replies++;
        if (r->ttl_s > 0) {
            const char *ex[] = {"EXPIRE", key, r->ttl_str};
            size_t ex_len[] = {6, key_len, strlen(r->ttl_str)};
            if ((err = batch_command(b, 3, ex, ex_len))) goto fail;
        }
    }
    if ((err = batch_command(b, 1, exec, NULL))) goto fail;
    return RS_OK;

fail:
    b->bytes.len = mark;
    b->replies = replies;
    return RS_ENOMEM;
}

rs_err_t rs_redis_batch_list(const struct rs_redis *r, struct rs_redis_batch *b,
                             const char *key, size_t key_len, const void *blob,
                             size_t blob_len, const struct rs_rec *recs, size_t n_recs,
                             const char *const *item_names, const size_t *item_lens)
{
    const char *argv[5] = {"SET", key, blob, "EX", r->ttl_str};
    size_t argvlen[5] = {3, key_len, blob_len, 2, strlen(r->ttl_str)};

    if (r->format == RS_FORMAT_ZSET)
        return batch_zset(r, b, key, key_len, recs, n_recs, item_names, item_lens);
    return batch_command(b, r->ttl_s > 0 ? 5 : 3, argv, argvlen);
}

rs_err_t rs_redis_batch_del(struct rs_redis_batch *b, const char *key, size_t key_len)
{
    const char *argv[] = {"DEL", key};
    size_t argvlen[] = {3, key_len};
    return batch_command(b, 2, argv, argvlen);
}

rs_err_t rs_redis_batch_hset(struct rs_redis_batch *b, const char *key, size_t n_fields,
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
    return batch_command(b, argc, argv, NULL);
}

int rs_redis_needs_names(const struct rs_redis *r)
{
    return r->format == RS_FORMAT_ZSET;
}

/* Writes all of buf to the socket (its send timeout bounds a stalled server). */
static int write_all(struct rs_redis *r, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = send(r->c->fd, buf, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            snprintf(r->errstr, sizeof(r->errstr), "write: %s",
                     w < 0 ? strerror(errno) : "connection closed");
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

rs_err_t rs_redis_send(struct rs_redis *r, const struct rs_redis_batch *b)
{
    rs_err_t result = RS_OK;

    if (b->replies == 0) return RS_OK;
    if (!r->c && rs_redis_connect(r) != RS_OK) return RS_EREDIS;
    if (write_all(r, b->bytes.data, b->bytes.len)) {
        backoff(r);
        return RS_EREDIS;
    }
    for (size_t i = 0; i < b->replies; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(r->c, (void **)&reply) != REDIS_OK) {
            snprintf(r->errstr, sizeof(r->errstr), "%s", r->c->errstr);
            backoff(r);
            return RS_EREDIS;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            snprintf(r->errstr, sizeof(r->errstr), "%s", reply->str);
            result = RS_EREDIS;
        }
        freeReplyObject(reply);
    }
    return result;
}

/* ---- the one-thread interface: append, then flush --------------------- */

rs_err_t rs_redis_append_list(struct rs_redis *r, const char *key, size_t key_len,
                              const void *blob, size_t blob_len,
                              const struct rs_rec *recs, size_t n_recs,
                              const char *const *item_names, const size_t *item_lens)
{
    return rs_redis_batch_list(r, &r->queued, key, key_len, blob, blob_len, recs, n_recs,
                               item_names, item_lens);
}

rs_err_t rs_redis_append_del(struct rs_redis *r, const char *key, size_t key_len)
{
    return rs_redis_batch_del(&r->queued, key, key_len);
}

rs_err_t rs_redis_append_hset(struct rs_redis *r, const char *key, size_t n_fields,
                              const char *const *fields, const char *const *values)
{
    return rs_redis_batch_hset(&r->queued, key, n_fields, fields, values);
}

rs_err_t rs_redis_flush(struct rs_redis *r)
{
    rs_err_t err = rs_redis_send(r, &r->queued);
    rs_redis_batch_reset(&r->queued);
    return err;
}

const char *rs_redis_errstr(const struct rs_redis *r)
{
    return r->errstr;
}
