/*
 * bench_consume.c - Kafka ingestion speed against a real broker: first
 * produces EVENTS msgpack events (keyed by user) to a fresh topic, then
 * consumes them back through recstream's Kafka source, three ways, each in
 * a fresh consumer group so every pass reads the whole backlog:
 *   consume        poll + offset store, payload untouched (the ceiling)
 *   decode         + rs_event_decode of every payload
 *   pipeline       + the whole model path (ids, SGD step, history, dirty)
 * with any extra librdkafka properties given as KEY=VALUE arguments (to
 * compare e.g. queued.min.messages settings in the same run).
 *
 *   bench_consume BROKERS TOPIC EVENTS [KEY=VALUE ...]
 * prints one JSON object per pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/config.h"
#include "recstream/event.h"
#include "recstream/gen.h"
#include "recstream/kafka.h"
#include "recstream/log.h"
#include "recstream/pipeline.h"

enum pass { PASS_CONSUME, PASS_DECODE, PASS_PIPELINE };

struct ctx {
    enum pass pass;
    uint64_t n;
    uint64_t bad;
    struct rs_event ev;
    struct rs_event_limits lim;
    struct rs_pipeline *p;
};

static int handler(void *opaque, const struct rs_kafka_msg *msg)
{
    struct ctx *c = opaque;
    c->n++;
    if (c->pass == PASS_DECODE) {
        if (rs_event_decode(msg->payload, msg->len, &c->lim, &c->ev) != RS_REASON_OK) c->bad++;
    } else if (c->pass == PASS_PIPELINE) {
        rs_pipeline_handle(c->p, msg->payload, msg->len, msg->ts_ms);
    }
    return 0;
}

static struct rs_config *make_conf(const char *brokers, const char *topic, const char *group,
                                   int argc, char **argv)
{
    char errstr[512], set[512];
    struct rs_config *conf = rs_config_create();
    snprintf(set, sizeof(set), "kafka.brokers=%s", brokers);
    rs_config_set(conf, set, errstr, sizeof(errstr));
    snprintf(set, sizeof(set), "kafka.topics=%s", topic);
    rs_config_set(conf, set, errstr, sizeof(errstr));
    snprintf(set, sizeof(set), "kafka.group.id=%s", group);
    rs_config_set(conf, set, errstr, sizeof(errstr));
    rs_config_set(conf, "model.factors=64", errstr, sizeof(errstr));
    for (int a = 0; a < argc; a++) {
        snprintf(set, sizeof(set), "kafka.%s", argv[a]);
        if (rs_config_set(conf, set, errstr, sizeof(errstr)) != RS_OK) {
            fprintf(stderr, "%s\n", errstr);
            exit(2);
        }
    }
    return conf;
}

int main(int argc, char **argv)
{
    static const char *names[] = {"consume", "decode", "pipeline"};
    char errstr[512], group[128];
    struct rs_config *conf;
    struct rs_kafka *kc;
    uint64_t events;

    if (argc < 4) {
        fprintf(stderr, "usage: bench_consume BROKERS TOPIC EVENTS [KEY=VALUE ...]\n");
        return 2;
    }
    rs_log_set_level(RS_LOG_WARN);
    events = strtoull(argv[3], NULL, 10);

    /* The backlog. */
    {
        struct rs_gen_params gp;
        struct rs_gen *g;
        struct rs_event ev;
        char buf[1024];
        uint64_t t0 = rs_mono_ns();
        rs_gen_defaults(&gp);
        gp.events = events;
        gp.users = 100000;
        gp.items = 10000;
        gp.clusters = 20;
        gp.rate_share = 0.5;
        conf = make_conf(argv[1], argv[2], "producer", 0, NULL);
        kc = rs_kafka_producer_create(conf, errstr, sizeof(errstr));
        g = rs_gen_create(&gp);
        if (!kc || !g) {
            fprintf(stderr, "producer: %s\n", errstr);
            return 1;
        }
        while (rs_gen_next(g, &ev) == RS_OK) {
            size_t len = rs_event_encode_msgpack(&ev, buf, sizeof(buf));
            rs_kafka_produce(kc, ev.user, ev.user_len, buf, len);
        }
        if (rs_kafka_flush(kc, 60000) != 0) return 1;
        printf("{\"pass\":\"produce\",\"events\":%llu,\"events_per_second\":%.0f}\n",
               (unsigned long long)events, events / ((double)(rs_mono_ns() - t0) / 1e9));
        fflush(stdout);
        rs_gen_destroy(g);
        rs_kafka_destroy(kc);
        rs_config_destroy(conf);
    }

    for (int pass = PASS_CONSUME; pass <= PASS_PIPELINE; pass++) {
        struct ctx c;
        uint64_t t0 = 0;
        memset(&c, 0, sizeof(c));
        c.pass = (enum pass)pass;
        c.lim = (struct rs_event_limits){1, 5, RS_EVENT_MAX_BYTES_DEFAULT};
        snprintf(group, sizeof(group), "bench-%s-%d", names[pass], (int)rs_now_ms() % 100000);
        conf = make_conf(argv[1], argv[2], group, argc - 4, argv + 4);
        if (pass == PASS_PIPELINE) c.p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
        kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
        if (!kc) {
            fprintf(stderr, "consumer: %s\n", errstr);
            return 1;
        }
        /* The clock starts with the first message: group join is not ingestion. */
        while (c.n < events) {
            int got = rs_kafka_consume(kc, 1000, 10000, handler, &c);
            if (got > 0 && t0 == 0) t0 = rs_mono_ns();
        }
        printf("{\"pass\":\"%s\",\"events\":%llu,\"bad\":%llu,\"events_per_second\":%.0f}\n",
               names[pass], (unsigned long long)c.n, (unsigned long long)c.bad,
               c.n / ((double)(rs_mono_ns() - t0) / 1e9));
        fflush(stdout);
        rs_kafka_destroy(kc);
        rs_pipeline_destroy(c.p);
        rs_config_destroy(conf);
    }
    return 0;
}
