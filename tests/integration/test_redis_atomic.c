/*
 * test_redis_atomic.c - a reader must never see half a list. For each
 * [redis] format, the sink replaces one key again and again, alternating
 * between two different 20-entry lists, while a second connection reads the
 * key in a tight loop on its own thread. Every read must be exactly the old
 * list or the new one: never missing, empty, or a mix. Needs a real
 * redis-server (RS_REDIS_PORT; scripts/test.sh starts one).
 */
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <pthread.h>

#include "recstream/config.h"
#include "recstream/idmap.h"
#include "recstream/listfmt.h"
#include "recstream/log.h"
#include "recstream/redis.h"

#define N 20
#define ROUNDS 3000
#define KEY "atomic:rec:u"

struct shared {
    int port;
    enum rs_list_format format;
    struct rs_buf blob[2]; /* the two lists as stored (json/msgpack) */
    atomic_int done; /* set by the writer when it has finished */
    long reads, bad;
    char first_bad[256];
};

/* For zset: does the reply hold exactly list v's members (0: A = i0.., 1: B = i100..)? */
static int zset_is(const redisReply *r, int v)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != N) return 0;
    for (size_t j = 0; j < r->elements; j++) {
        char want[16];
        snprintf(want, sizeof(want), "i%d", v * 100 + (int)j);
        if (strcmp(r->element[j]->str, want) != 0) return 0;
    }
    return 1;
}

static void *reader(void *arg)
{
    struct shared *s = arg;
    redisContext *c = redisConnect("127.0.0.1", s->port);
    int seen_first = 0;

    while (!atomic_load(&s->done)) {
        redisReply *r = s->format == RS_FORMAT_ZSET
                            ? redisCommand(c, "ZREVRANGE " KEY " 0 -1")
                            : redisCommand(c, "GET " KEY);
        int ok;
        if (!r) break;
        if (s->format == RS_FORMAT_ZSET) {
            ok = zset_is(r, 0) || zset_is(r, 1);
            if (!seen_first && r->type == REDIS_REPLY_ARRAY && r->elements == 0) ok = 1;
        } else {
            ok = r->type == REDIS_REPLY_STRING &&
                 ((r->len == s->blob[0].len && !memcmp(r->str, s->blob[0].data, r->len)) ||
                  (r->len == s->blob[1].len && !memcmp(r->str, s->blob[1].data, r->len)));
            if (!seen_first && r->type == REDIS_REPLY_NIL) ok = 1;
        }
        if (ok && !(r->type == REDIS_REPLY_NIL ||
                    (r->type == REDIS_REPLY_ARRAY && r->elements == 0)))
            seen_first = 1;
        if (!ok && s->bad++ == 0)
            snprintf(s->first_bad, sizeof(s->first_bad), "reply type %d, len %zu, elements %zu",
                     r->type, r->len, r->elements);
        s->reads++;
        freeReplyObject(r);
    }
    redisFree(c);
    return NULL;
}

static void run_format(enum rs_list_format format)
{
    struct shared s;
    struct rs_config *conf = rs_config_create();
    struct rs_idmap *items = rs_idmap_create(0);
    struct rs_rec recs[2][N];
    const char *names[2][N];
    size_t lens[2][N];
    char errstr[256], set[64];
    struct rs_redis *sink;
    pthread_t th;
    const char *port = getenv("RS_REDIS_PORT");
    redisContext *c;
    redisReply *del;

    if (!port) fail_msg("RS_REDIS_PORT is not set: run through scripts/test.sh");
    memset(&s, 0, sizeof(s));
    s.port = atoi(port);
    s.format = format;
    snprintf(set, sizeof(set), "redis.port=%d", s.port);
    assert_int_equal(rs_config_set(conf, set, errstr, sizeof(errstr)), RS_OK);
    snprintf(set, sizeof(set), "redis.format=%s", rs_config_format_name(format));
    assert_int_equal(rs_config_set(conf, set, errstr, sizeof(errstr)), RS_OK);

    for (int v = 0; v < 2; v++) {
        rs_buf_init(&s.blob[v]);
        for (int j = 0; j < N; j++) {
            char id[16];
            uint32_t idx;
            int len = snprintf(id, sizeof(id), "i%d", v * 100 + j);
            assert_int_equal(rs_idmap_intern(items, id, (size_t)len, &idx, NULL), RS_OK);
            recs[v][j] = (struct rs_rec){idx, (float)(N - j), RS_NONE};
            names[v][j] = rs_idmap_name(items, idx, &lens[v][j]);
        }
        if (format == RS_FORMAT_MSGPACK)
            rs_listfmt_msgpack(&s.blob[v], recs[v], N, items);
        else
            rs_listfmt_json(&s.blob[v], recs[v], N, items);
    }
    c = redisConnect("127.0.0.1", s.port);
    del = redisCommand(c, "DEL " KEY);
    freeReplyObject(del);
    redisFree(c);

    sink = rs_redis_create(conf);
    assert_int_equal(pthread_create(&th, NULL, reader, &s), 0);
    for (int round = 0; round < ROUNDS; round++) {
        int v = round & 1;
        assert_int_equal(rs_redis_append_list(sink, KEY, strlen(KEY), s.blob[v].data,
                                              s.blob[v].len, recs[v], N, names[v], lens[v]),
                         RS_OK);
        assert_int_equal(rs_redis_flush(sink), RS_OK);
    }
    atomic_store(&s.done, 1);
    pthread_join(th, NULL);
    printf("format %s: %ld reads during %d replacements, %ld torn\n",
           rs_config_format_name(format), s.reads, ROUNDS, s.bad);
    if (s.bad) fail_msg("a reader saw a torn list: %s", s.first_bad);
    assert_true(s.reads > 100);

    rs_redis_destroy(sink);
    rs_buf_free(&s.blob[0]);
    rs_buf_free(&s.blob[1]);
    rs_idmap_destroy(items);
    rs_config_destroy(conf);
}

static void test_json_lists_are_replaced_whole(void **state)
{
    (void)state;
    run_format(RS_FORMAT_JSON);
}

static void test_msgpack_lists_are_replaced_whole(void **state)
{
    (void)state;
    run_format(RS_FORMAT_MSGPACK);
}

static void test_zset_lists_are_replaced_whole(void **state)
{
    (void)state;
    run_format(RS_FORMAT_ZSET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_lists_are_replaced_whole),
        cmocka_unit_test(test_msgpack_lists_are_replaced_whole),
        cmocka_unit_test(test_zset_lists_are_replaced_whole),
    };
    rs_log_set_level(RS_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
