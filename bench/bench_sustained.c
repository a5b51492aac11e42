/*
 * bench_sustained.c - the producer side of scripts/bench/sustained: writes
 * msgpack events (keyed by user) to a topic at a fixed target rate for a
 * given time, or a fixed number of events as fast as it can (a backlog).
 * The events are generated and encoded before the clock starts (a pool of
 * POOL_EVENTS, sent round and round) so what is measured is the producer
 * and the broker, not the generator. The events carry no timestamp: the
 * consumer takes the broker's, as for live traffic.
 *
 *   bench_sustained BROKERS TOPIC RATE SECONDS   RATE events/s (0: unpaced)
 *   bench_sustained BROKERS TOPIC 0 0 EVENTS     a backlog of EVENTS, unpaced
 * prints one JSON object per second ({"second":..,"sent":..} cumulative)
 * and a final one with the achieved rate and the process's CPU seconds
 * (its librdkafka threads included) while producing.
 *
 *   bench_sustained --consume BROKERS TOPIC GROUP
 * is the consumer side, Kafka -> model only: recstream's Kafka source feeds
 * every message to rs_pipeline_handle (no Redis, so no ranking) until
 * SIGTERM, and once a second prints "UNIX_TIME LAG APPLIED" (the consumer
 * lag summed over its partitions, -1 while one is unknown; events applied).
 *
 * Any KEY=VALUE argument, in either mode, is a librdkafka property set on
 * top of recstream's defaults (as [kafka] pass-through keys are), to compare
 * e.g. producer batching or fetch settings in one run.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recstream/config.h"
#include "recstream/event.h"
#include "recstream/gen.h"
#include "recstream/kafka.h"
#include "recstream/log.h"
#include "recstream/pipeline.h"

#define POOL_EVENTS (1u << 20)
#define SLICE_NS 1000000ull /* pacing granularity: 1 ms */

struct pool {
    char *bytes;       /* encoded payloads back to back */
    size_t *off;       /* POOL_EVENTS + 1 offsets into bytes */
    char (*key)[16];   /* user ids */
    unsigned char *key_len;
};

static int pool_fill(struct pool *pl)
{
    struct rs_gen_params gp;
    struct rs_gen *g;
    struct rs_event ev;
    size_t cap = (size_t)POOL_EVENTS * 64, len = 0;

    rs_gen_defaults(&gp);
    gp.events = POOL_EVENTS;
    gp.users = 100000;
    gp.items = 10000;
    gp.clusters = 20;
    gp.rate_share = 0.5;
    pl->bytes = malloc(cap);
    pl->off = malloc(((size_t)POOL_EVENTS + 1) * sizeof(*pl->off));
    pl->key = malloc((size_t)POOL_EVENTS * sizeof(*pl->key));
    pl->key_len = malloc(POOL_EVENTS);
    g = rs_gen_create(&gp);
    if (!pl->bytes || !pl->off || !pl->key || !pl->key_len || !g) return -1;
    for (uint32_t n = 0; rs_gen_next(g, &ev) == RS_OK; n++) {
        size_t w;
        if (cap - len < 1024) {
            char *grown = realloc(pl->bytes, cap * 2);
            if (!grown) return -1;
            pl->bytes = grown;
            cap *= 2;
        }
        ev.ts_ms = 0;
        w = rs_event_encode_msgpack(&ev, pl->bytes + len, cap - len);
        if (w == 0 || ev.user_len > sizeof(pl->key[0])) return -1;
        pl->off[n] = len;
        len += w;
        memcpy(pl->key[n], ev.user, ev.user_len);
        pl->key_len[n] = (unsigned char)ev.user_len;
    }
    pl->off[POOL_EVENTS] = len;
    rs_gen_destroy(g);
    return 0;
}

static void sleep_until(uint64_t due_ns)
{
    uint64_t now = rs_mono_ns();
    if (due_ns > now) {
        struct timespec ts = {(time_t)((due_ns - now) / 1000000000ull),
                              (long)((due_ns - now) % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

/* Arguments of the form KEY=VALUE: librdkafka properties ([kafka] pass-through). */
static int set_props(struct rs_config *conf, int argc, char **argv)
{
    char errstr[512], set[512];
    for (int a = 0; a < argc; a++) {
        snprintf(set, sizeof(set), "kafka.%s", argv[a]);
        if (rs_config_set(conf, set, errstr, sizeof(errstr)) != RS_OK) {
            fprintf(stderr, "%s\n", errstr);
            return -1;
        }
    }
    return 0;
}

/* CPU time of the whole process (all threads, librdkafka's included). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int apply(void *opaque, const struct rs_kafka_msg *msg)
{
    rs_pipeline_handle(opaque, msg->payload, msg->len, msg->ts_ms);
    return 0;
}

static int consume(const char *brokers, const char *topic, const char *group, int nprops,
                   char **props)
{
    struct rs_kafka_lag lags[64];
    char errstr[512], set[512];
    struct rs_config *conf = rs_config_create();
    struct rs_pipeline *p;
    struct rs_kafka *kc;
    uint64_t next;

    snprintf(set, sizeof(set), "kafka.brokers=%s", brokers);
    rs_config_set(conf, set, errstr, sizeof(errstr));
    snprintf(set, sizeof(set), "kafka.topics=%s", topic);
    rs_config_set(conf, set, errstr, sizeof(errstr));
    snprintf(set, sizeof(set), "kafka.group.id=%s", group);
    rs_config_set(conf, set, errstr, sizeof(errstr));
    if (set_props(conf, nprops, props)) return 2;
    p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    kc = p ? rs_kafka_consumer_create(conf, errstr, sizeof(errstr)) : NULL;
    if (!kc) {
        fprintf(stderr, "consumer: %s\n", errstr);
        return 1;
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    next = rs_mono_ns();
    while (!stop) {
        rs_kafka_consume(kc, 100, 10000, apply, p);
        if (rs_mono_ns() >= next) {
            size_t n = rs_kafka_lag(kc, lags, 64);
            long long lag = n ? 0 : -1;
            struct timespec now;
            for (size_t i = 0; i < n && lag >= 0; i++)
                lag = lags[i].lag < 0 ? -1 : lag + lags[i].lag;
            clock_gettime(CLOCK_REALTIME, &now);
            printf("%.2f %lld %llu\n", (double)now.tv_sec + now.tv_nsec / 1e9, lag,
                   (unsigned long long)rs_pipeline_stats(p)->events_applied);
            fflush(stdout);
            next = rs_mono_ns() + 1000000000ull;
        }
    }
    rs_kafka_destroy(kc);
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
    return 0;
}

int main(int argc, char **argv)
{
    char errstr[512], set[512];
    struct rs_config *conf;
    struct rs_kafka *kc;
    struct pool pl;
    double rate, secs;
    uint64_t limit, sent = 0, start, end_ns, next_report, cpu0;
    int second = 0, left, nprops = 0;
    char **props = calloc((size_t)argc, sizeof(*props));

    rs_log_set_level(RS_LOG_WARN);
    /* KEY=VALUE arguments, anywhere: librdkafka properties; the rest positional. */
    {
        int n = 1;
        for (int a = 1; a < argc; a++) {
            if (strchr(argv[a], '=')) props[nprops++] = argv[a];
            else argv[n++] = argv[a];
        }
        argc = n;
    }
    if (argc == 5 && strcmp(argv[1], "--consume") == 0)
        return consume(argv[2], argv[3], argv[4], nprops, props);
    if (argc < 5) {
        fprintf(
            stderr,
            "usage: bench_sustained BROKERS TOPIC RATE SECONDS [EVENTS] [KEY=VALUE ...]\n"
            "       bench_sustained --consume BROKERS TOPIC GROUP [KEY=VALUE ...]\n");
        return 2;
    }
    rate = strtod(argv[3], NULL);
    secs = strtod(argv[4], NULL);
    limit = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
    if (rate < 0 || secs < 0 || (secs == 0 && limit == 0)) {
        fprintf(stderr, "bench_sustained: give SECONDS > 0 or EVENTS > 0\n");
        return 2;
    }
    if (pool_fill(&pl)) {
        fprintf(stderr, "bench_sustained: out of memory generating events\n");
        return 1;
    }
    conf = rs_config_create();
    snprintf(set, sizeof(set), "kafka.brokers=%s", argv[1]);
    rs_config_set(conf, set, errstr, sizeof(errstr));
    snprintf(set, sizeof(set), "kafka.topics=%s", argv[2]);
    rs_config_set(conf, set, errstr, sizeof(errstr));
    if (set_props(conf, nprops, props)) return 2;
    kc = rs_kafka_producer_create(conf, errstr, sizeof(errstr));
    if (!kc) {
        fprintf(stderr, "producer: %s\n", errstr);
        return 1;
    }

    cpu0 = cpu_ns();
    start = rs_mono_ns();
    end_ns = secs > 0 ? start + (uint64_t)(secs * 1e9) : UINT64_MAX;
    next_report = start + 1000000000ull;
    for (uint64_t slice = start;; slice += SLICE_NS) {
        uint64_t now = rs_mono_ns(), due;
        if (now >= end_ns || (limit && sent >= limit)) break;
        /* Events due by the end of this slice; unpaced: a slice's worth. */
        due = rate > 0 ? (uint64_t)((double)(slice + SLICE_NS - start) / 1e9 * rate)
                       : sent + 10000;
        if (limit && due > limit) due = limit;
        while (sent < due) {
            uint32_t n = (uint32_t)(sent % POOL_EVENTS);
            if (rs_kafka_produce(kc, pl.key[n], pl.key_len[n], pl.bytes + pl.off[n],
                                 pl.off[n + 1] - pl.off[n]) != RS_OK)
                return 1;
            sent++;
        }
        now = rs_mono_ns();
        while (now >= next_report) {
            printf("{\"second\":%d,\"sent\":%llu}\n", ++second, (unsigned long long)sent);
            fflush(stdout);
            next_report += 1000000000ull;
        }
        if (rate > 0) sleep_until(slice + SLICE_NS);
        else slice = now;
    }
    left = rs_kafka_flush(kc, 60000);
    {
        double took = (double)(rs_mono_ns() - start) / 1e9;
        double cpu = (double)(cpu_ns() - cpu0) / 1e9;
        printf("{\"pass\":\"produce\",\"target\":%.0f,\"sent\":%llu,\"undelivered\":%llu,"
               "\"seconds\":%.3f,\"events_per_second\":%.0f,\"cpu_seconds\":%.3f}\n",
               rate, (unsigned long long)sent,
               (unsigned long long)(rs_kafka_delivery_errors(kc) + (uint64_t)(left > 0 ? left : 0)),
               took, (double)sent / took, cpu);
    }
    rs_kafka_destroy(kc);
    rs_config_destroy(conf);
    free(pl.bytes);
    free(pl.off);
    free(pl.key);
    free(pl.key_len);
    free(props);
    return left > 0 ? 1 : 0;
}
