/*
 * bench_freshness.c - how long after an event is appended to Kafka does its
 * user's list become readable in Redis? Measured from outside recstream, on
 * this program's own clock: a producer sends background events at a target
 * rate (random users and items) and, every probe interval, one event of a
 * brand-new "probe" user; a reader thread polls the probe users' keys
 * (pipelined EXISTS) and records when each key first exists. A probe is
 * polled every 0.5 ms at first and then every 1/100 of its age, so a
 * latency is measured to within 0.5 ms or 1% and the reader's own load on
 * Redis and on the machine stays bounded when lists lag by seconds (polling
 * every pending probe every 0.5 ms would make a slow run slower still). A new user has no
 * list before their first event (probe ids carry a tag new in every run),
 * so the key's appearance is that event's effect. recstream runs as its own process against the same broker/Redis.
 *
 *   bench_freshness BROKERS TOPIC REDIS_PORT PREFIX RATE SECONDS [ITEMS] [USERS]
 * prints one JSON object: rate achieved, probes, p50/p99/max latency in ms;
 * with RS_FRESHNESS_DUMP=FILE also every latency (ms), one per line.
 */
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recstream/common.h"
#include "recstream/event.h"

#define PROBE_EVERY_NS 5000000ull /* 200 probes per second */
#define MAX_PROBES 100000

struct probe {
    uint64_t sent_ns;
    uint64_t seen_ns;  /* 0 until the key exists */
    uint64_t check_ns; /* the reader's next poll of the key */
};

#define POLL_MIN_NS 500000ull /* 0.5 ms */
#define POLL_AGE_DIV 100u     /* then 1% of the probe's age */

static struct probe probes[MAX_PROBES];
static volatile int n_probes; /* published by the producer, read by the reader */
static volatile int producing = 1;
static int redis_port;
static const char *prefix;
static unsigned run_tag; /* probe ids are new in every run: "probe<tag>-<n>" */

static void *reader(void *arg)
{
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    int first_pending = 0;
    (void)arg;
    if (!c || c->err) {
        fprintf(stderr, "reader: cannot connect to redis\n");
        exit(1);
    }
    for (;;) {
        int n = n_probes, asked = 0;
        uint64_t now, asked_at;
        __sync_synchronize();
        asked_at = rs_mono_ns();
        for (int p = first_pending; p < n; p++) {
            if (probes[p].seen_ns || probes[p].check_ns > asked_at) continue;
            redisAppendCommand(c, "EXISTS %srec:probe%u-%d", prefix, run_tag, p);
            asked++;
        }
        now = rs_mono_ns();
        for (int p = first_pending, got = 0; p < n && got < asked; p++) {
            redisReply *r;
            uint64_t wait;
            if (probes[p].seen_ns || probes[p].check_ns > asked_at) continue;
            if (redisGetReply(c, (void **)&r) != REDIS_OK) exit(1);
            got++;
            if (r->integer == 1) {
                probes[p].seen_ns = rs_mono_ns(); /* when the answer came: never early */
            } else {
                wait = (now - probes[p].sent_ns) / POLL_AGE_DIV;
                probes[p].check_ns = now + (wait > POLL_MIN_NS ? wait : POLL_MIN_NS);
            }
            freeReplyObject(r);
        }
        while (first_pending < n && probes[first_pending].seen_ns) first_pending++;
        if (!producing && first_pending == n_probes) break;
        if (!producing && rs_mono_ns() - probes[n_probes - 1].sent_ns > 30000000000ull) break;
        {
            struct timespec ts = {0, 500000};
            nanosleep(&ts, NULL);
        }
    }
    redisFree(c);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    pthread_t th;
    struct rs_event ev;
    char buf[512];
    double rate, seconds;
    uint32_t items, users;
    uint64_t start, next_probe, sent = 0, lat[MAX_PROBES];
    int n_lat = 0, missed = 0;

    if (argc < 7) {
        fprintf(stderr, "usage: bench_freshness BROKERS TOPIC REDIS_PORT PREFIX RATE SECONDS "
                        "[ITEMS] [USERS]\n");
        return 2;
    }
    redis_port = atoi(argv[3]);
    prefix = argv[4];
    rate = atof(argv[5]);
    seconds = atof(argv[6]);
    items = argc > 7 ? (uint32_t)atoi(argv[7]) : 2000;
    users = argc > 8 ? (uint32_t)atoi(argv[8]) : 100000;

    rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "linger.ms", "1", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", errstr, sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    pthread_create(&th, NULL, reader, NULL);

    memset(&ev, 0, sizeof(ev));
    ev.type = RS_EVENT_PLAY;
    ev.value = 1;
    srand(11);
    run_tag = (unsigned)(rs_now_ms() % 1000000000);
    start = rs_mono_ns();
    next_probe = start;
    while (rs_mono_ns() - start < (uint64_t)(seconds * 1e9)) {
        uint64_t now = rs_mono_ns();
        uint64_t due = (uint64_t)((double)(now - start) / 1e9 * rate);
        for (; sent < due; sent++) {
            size_t len;
            ev.user_len = (uint16_t)snprintf(ev.user, sizeof(ev.user), "bg%u",
                                             (unsigned)rand() % users);
            ev.item_len = (uint16_t)snprintf(ev.item, sizeof(ev.item), "i%u",
                                             (unsigned)rand() % items);
            len = rs_event_encode_msgpack(&ev, buf, sizeof(buf));
            while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]),
                                     RD_KAFKA_V_KEY(ev.user, ev.user_len),
                                     RD_KAFKA_V_VALUE(buf, len),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
                rd_kafka_poll(rk, 1);
        }
        if (now >= next_probe && n_probes < MAX_PROBES) {
            size_t len;
            int p = n_probes;
            ev.user_len = (uint16_t)snprintf(ev.user, sizeof(ev.user), "probe%u-%d", run_tag, p);
            ev.item_len = (uint16_t)snprintf(ev.item, sizeof(ev.item), "i%u",
                                             (unsigned)rand() % items);
            len = rs_event_encode_msgpack(&ev, buf, sizeof(buf));
            probes[p].sent_ns = rs_mono_ns();
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_KEY(ev.user, ev.user_len),
                              RD_KAFKA_V_VALUE(buf, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            __sync_synchronize();
            n_probes = p + 1;
            next_probe += PROBE_EVERY_NS;
        }
        rd_kafka_poll(rk, 0);
        { /* send in 0.2 ms ticks rather than spinning: the machine is shared */
            struct timespec tick = {0, 200000};
            nanosleep(&tick, NULL);
        }
    }
    producing = 0;
    rd_kafka_flush(rk, 10000);
    pthread_join(th, NULL);

    for (int p = 0; p < n_probes; p++) {
        if (probes[p].seen_ns)
            lat[n_lat++] = probes[p].seen_ns - probes[p].sent_ns;
        else
            missed++;
    }
    qsort(lat, (size_t)n_lat, sizeof(lat[0]), cmp_u64);
    if (getenv("RS_FRESHNESS_DUMP")) { /* every latency in ms, for plots */
        FILE *f = fopen(getenv("RS_FRESHNESS_DUMP"), "w");
        for (int i = 0; f && i < n_lat; i++) fprintf(f, "%.3f\n", (double)lat[i] / 1e6);
        if (f) fclose(f);
    }
    printf("{\"target_rate\":%.0f,\"events\":%llu,\"achieved_rate\":%.0f,\"probes\":%d,"
           "\"missed\":%d,\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"max_ms\":%.1f}\n",
           rate, (unsigned long long)sent, (double)sent / seconds, n_probes, missed,
           n_lat ? (double)lat[n_lat / 2] / 1e6 : -1,
           n_lat ? (double)lat[(size_t)(n_lat * 0.99)] / 1e6 : -1,
           n_lat ? (double)lat[n_lat - 1] / 1e6 : -1);
    rd_kafka_destroy(rk);
    return missed ? 1 : 0;
}
