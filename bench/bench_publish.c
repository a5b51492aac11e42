/*
 * bench_publish.c - publish throughput to a local redis-server, ranking
 * excluded: top-20 lists rendered by listfmt and written through the Redis
 * sink in pipelined batches, the way the pipeline publishes (rendered on this
 * thread, sent by the publisher's writer thread), for each format, against the bare ceiling of
 * pipelined SETs of pre-rendered blobs sent with hiredis directly (the same
 * run, the same server, one run of each in turn per repeat). Also Redis memory
 * per stored list (INFO memory).
 *
 *   bench_publish PORT [LISTS] [REPEATS]
 * prints one JSON object per format on stdout.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/config.h"
#include "recstream/idmap.h"
#include "recstream/listfmt.h"
#include "recstream/publisher.h"
#include "recstream/redis.h"

#define TOP_N 20
#define BATCH 256

static long long used_memory(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO memory");
    const char *p = r && r->str ? strstr(r->str, "used_memory:") : NULL;
    long long v = p ? atoll(p + 12) : -1;
    if (r) freeReplyObject(r);
    return v;
}

static void flush_db(redisContext *c)
{
    redisReply *r = redisCommand(c, "FLUSHDB");
    if (r) freeReplyObject(r);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Writes `lists` lists as the pipeline does: the main thread renders and encodes
 * batches of BATCH lists, the publisher's writer thread sends them, so rendering
 * overlaps Redis's work. Returns lists/s. */
static double run_sink(struct rs_redis *sink, enum rs_list_format format,
                       const struct rs_idmap *items, const struct rs_rec *recs, int lists)
{
    struct rs_publisher *pub = rs_publisher_create(sink, 8);
    struct rs_pub_batch *b = NULL, *done;
    struct rs_buf blob;
    const char *names[TOP_N];
    size_t lens[TOP_N];
    uint64_t t0 = rs_mono_ns();
    int reaped = 0;

    rs_buf_init(&blob);
    for (int u = 0; u < lists; u++) {
        const struct rs_rec *list = recs + (size_t)(u % 1000) * TOP_N;
        char name[32];
        int len = snprintf(name, sizeof(name), "bench:rec:u%d", u);
        while (!b) {
            while ((done = rs_publisher_reap(pub))) {
                reaped += (int)done->lists;
                rs_publisher_release(pub, done);
            }
            if (!(b = rs_publisher_acquire(pub))) rs_publisher_wait(pub, 100);
        }
        rs_buf_reset(&blob);
        if (format == RS_FORMAT_JSON)
            rs_listfmt_json(&blob, list, TOP_N, items);
        else if (format == RS_FORMAT_MSGPACK)
            rs_listfmt_msgpack(&blob, list, TOP_N, items);
        if (rs_redis_needs_names(sink)) /* as the pipeline does: only zset sends names */
            for (int j = 0; j < TOP_N; j++)
                names[j] = rs_idmap_name(items, list[j].item, &lens[j]);
        rs_redis_batch_list(sink, &b->cmds, name, (size_t)len, blob.data, blob.len, list,
                            TOP_N, names, lens);
        b->lists++;
        if ((u + 1) % BATCH == 0 || u + 1 == lists) {
            rs_publisher_submit(pub, b);
            b = NULL;
        }
    }
    while (reaped < lists) {
        while ((done = rs_publisher_reap(pub))) {
            reaped += (int)done->lists;
            rs_publisher_release(pub, done);
        }
        if (reaped < lists && !rs_publisher_wait(pub, 1000) && rs_publisher_failing(pub)) {
            fprintf(stderr, "publishing failed\n");
            exit(1);
        }
    }
    t0 = rs_mono_ns() - t0;
    rs_publisher_destroy(pub);
    rs_buf_free(&blob);
    return lists / ((double)t0 / 1e9);
}

/* The ceiling: pre-rendered JSON blobs SET with hiredis pipelining alone. */
static double run_bare(redisContext *c, const struct rs_buf *blobs, const size_t *offs,
                       int lists)
{
    uint64_t t0 = rs_mono_ns();
    for (int u = 0; u < lists; u++) {
        char name[32];
        size_t i = (size_t)(u % 1000);
        const char *argv[3] = {"SET", name, blobs->data + offs[i]};
        size_t argvlen[3] = {3, 0, offs[i + 1] - offs[i]};
        argvlen[1] = (size_t)snprintf(name, sizeof(name), "bench:rec:u%d", u);
        redisAppendCommandArgv(c, 3, argv, argvlen);
        if ((u + 1) % BATCH == 0 || u + 1 == lists) {
            int pending = (u % BATCH) + 1;
            for (int k = 0; k < pending; k++) {
                redisReply *r;
                if (redisGetReply(c, (void **)&r) != REDIS_OK) exit(1);
                freeReplyObject(r);
            }
        }
    }
    return lists / ((double)(rs_mono_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 6379;
    int lists = argc > 2 ? atoi(argv[2]) : 200000;
    int repeats = argc > 3 ? atoi(argv[3]) : 5;
    static const enum rs_list_format formats[] = {RS_FORMAT_JSON, RS_FORMAT_MSGPACK,
                                                  RS_FORMAT_ZSET};
    struct rs_idmap *items = rs_idmap_create(0);
    struct rs_rec *recs = malloc(sizeof(*recs) * 1000 * TOP_N);
    struct rs_buf blobs;
    size_t offs[1001];
    redisContext *c = redisConnect("127.0.0.1", port);
    char errstr[256], set[64];
    double bare[16];

    if (!c || c->err || !items || !recs) {
        fprintf(stderr, "cannot connect to redis on port %d\n", port);
        return 1;
    }
    /* 1000 distinct realistic lists over a 100k-item catalogue. */
    srand(1);
    for (uint32_t i = 0; i < 100000; i++) {
        char id[16];
        uint32_t idx;
        int len = snprintf(id, sizeof(id), "%u", 100000 + i * 7);
        rs_idmap_intern(items, id, (size_t)len, &idx, NULL);
    }
    rs_buf_init(&blobs);
    for (int l = 0; l < 1000; l++) {
        float score = 5.0f;
        for (int j = 0; j < TOP_N; j++) {
            score -= (float)(rand() % 1000) / 10000.0f;
            recs[l * TOP_N + j] = (struct rs_rec){(uint32_t)(rand() % 100000), score,
                                                  (j % 3 == 0) ? (uint32_t)(rand() % 100000)
                                                               : RS_NONE};
        }
        offs[l] = blobs.len;
        rs_listfmt_json(&blobs, recs + l * TOP_N, TOP_N, items);
    }
    offs[1000] = blobs.len;

    if (repeats > 16) repeats = 16;
    /* Repeats outermost, formats inside: on a shared machine the load drifts, and
     * each format's runs then see the same drift as the ceiling's. */
    {
        enum { NF = sizeof(formats) / sizeof(formats[0]) };
        struct rs_config *conf[NF];
        double rate[NF][16];
        long long bytes[NF];
        for (size_t f = 0; f < NF; f++) {
            conf[f] = rs_config_create();
            snprintf(set, sizeof(set), "redis.port=%d", port);
            rs_config_set(conf[f], set, errstr, sizeof(errstr));
            snprintf(set, sizeof(set), "redis.format=%s", rs_config_format_name(formats[f]));
            rs_config_set(conf[f], set, errstr, sizeof(errstr));
        }
        for (int r = 0; r < repeats; r++) {
            flush_db(c);
            bare[r] = run_bare(c, &blobs, offs, lists);
            for (size_t f = 0; f < NF; f++) {
                struct rs_redis *sink = rs_redis_create(conf[f]);
                long long before;
                flush_db(c);
                before = used_memory(c);
                rate[f][r] = run_sink(sink, formats[f], items, recs, lists);
                bytes[f] = used_memory(c) - before;
                rs_redis_destroy(sink);
            }
        }
        qsort(bare, (size_t)repeats, sizeof(double), cmp_double);
        printf("{\"format\":\"bare-set\",\"lists\":%d,\"lists_per_second\":%.0f}\n", lists,
               bare[repeats / 2]);
        for (size_t f = 0; f < NF; f++) {
            qsort(rate[f], (size_t)repeats, sizeof(double), cmp_double);
            printf("{\"format\":\"%s\",\"lists\":%d,\"lists_per_second\":%.0f,"
                   "\"ratio_to_bare_set\":%.3f,\"redis_bytes_per_list\":%.0f}\n",
                   rs_config_format_name(formats[f]), lists, rate[f][repeats / 2],
                   rate[f][repeats / 2] / bare[repeats / 2], (double)bytes[f] / lists);
            rs_config_destroy(conf[f]);
        }
    }
    flush_db(c);
    redisFree(c);
    rs_buf_free(&blobs);
    free(recs);
    rs_idmap_destroy(items);
    return 0;
}
