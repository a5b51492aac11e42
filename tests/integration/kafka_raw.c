/*
 * kafka_raw.c - the integration tests' own Kafka client, independent of
 * recstream's source: it writes messages byte for byte (bad ones included,
 * which `recstream produce` would refuse to encode) and judges a dead-letter
 * topic against the source topic. Talks to the broker with librdkafka
 * directly.
 *
 *   kafka_raw produce BROKERS TOPIC FILE
 *       one message per line of FILE: "KEY<TAB>VALUE" (no tab: no key);
 *       idempotent, so a retry never duplicates; exit 1 on any delivery error
 *   kafka_raw dead-letters BROKERS SOURCE_TOPIC DLQ_TOPIC EXPECT
 *       reads EXPECT dead letters (30 s at most) and the whole source topic;
 *       checks every dead letter's key and value equal the source message its
 *       headers point to and that no source message is there twice; prints
 *       "REASON<TAB>VALUE" per dead letter; exit 1 on any mismatch
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PARTITIONS 64

static int failures;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond) && failures++ < 20) {                                                \
            fprintf(stderr, "FAIL: ");                                                   \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, "\n");                                                       \
        }                                                                                \
    } while (0)

static int dr_errors;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (rkm->err && dr_errors++ < 5)
        fprintf(stderr, "kafka_raw: delivery failed: %s\n", rd_kafka_err2str(rkm->err));
}

static int produce(const char *brokers, const char *topic, const char *path)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long sent = 0;

    if (!f) {
        perror(path);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "linger.ms", "10", errstr, sizeof(errstr))) {
        fprintf(stderr, "kafka_raw: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        fclose(f);
        return 1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka_raw: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        fclose(f);
        return 1;
    }
    while ((len = getline(&line, &cap, f)) > 0) {
        char *tab, *value = line;
        size_t klen = 0;
        if (line[len - 1] == '\n') line[--len] = '\0';
        tab = memchr(line, '\t', (size_t)len);
        if (tab) {
            klen = (size_t)(tab - line);
            value = tab + 1;
        }
        for (;;) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY(tab ? line : NULL, klen),
                RD_KAFKA_V_VALUE(value, (size_t)(line + len - value)), RD_KAFKA_V_END);
            if (!err) break;
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "kafka_raw: produce: %s\n", rd_kafka_err2str(err));
                dr_errors++;
                break;
            }
            rd_kafka_poll(rk, 100);
        }
        rd_kafka_poll(rk, 0);
        sent++;
    }
    free(line);
    fclose(f);
    rd_kafka_flush(rk, 60000);
    if (rd_kafka_outq_len(rk) > 0) dr_errors++;
    rd_kafka_destroy(rk);
    printf("kafka_raw: %ld messages to %s, %d error(s)\n", sent, topic, dr_errors);
    return dr_errors ? 1 : 0;
}

/* A message kept for comparison: owned copies. */
struct copy {
    int32_t partition;
    int64_t offset;
    char *key, *value, *reason, *src_topic;
    size_t key_len, value_len;
    int64_t src_partition, src_offset;
    int seen;
};

static char *dup_bytes(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static char *header(rd_kafka_headers_t *hdrs, const char *name)
{
    const void *v;
    size_t n;
    if (!hdrs || rd_kafka_header_get_last(hdrs, name, &v, &n)) return NULL;
    return dup_bytes(v, n);
}

/* Reads every message of topic (all partitions, from the start) up to want
 * (-1: up to the end of each partition), 30 s at most. Returns the count. */
static size_t read_topic(rd_kafka_t *rk, const char *topic, long want, struct copy **out)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_topic_partition_list_t *parts;
    int64_t ends[MAX_PARTITIONS];
    size_t n = 0, cap = 0;
    time_t deadline = time(NULL) + 30;
    int np;

    *out = NULL;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1 ||
        md->topics[0].partition_cnt < 1) {
        fprintf(stderr, "kafka_raw: no metadata for %s\n", topic);
        if (md) rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        return 0;
    }
    np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (np > MAX_PARTITIONS) np = MAX_PARTITIONS;
    parts = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++) {
        int64_t lo = 0;
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        ends[p] = 0;
        rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &ends[p], 10000);
    }
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    while (time(NULL) < deadline) {
        rd_kafka_message_t *rkm;
        int done = 1;
        if (want >= 0) {
            done = (long)n >= want;
        } else {
            for (int p = 0; p < np; p++) {
                int64_t got = 0;
                for (size_t i = 0; i < n; i++)
                    if ((*out)[i].partition == p && (*out)[i].offset + 1 > got)
                        got = (*out)[i].offset + 1;
                if (got < ends[p]) done = 0;
            }
        }
        if (done) break;
        rkm = rd_kafka_consumer_poll(rk, 200);
        if (!rkm) continue;
        if (!rkm->err) {
            rd_kafka_headers_t *hdrs = NULL;
            struct copy *c;
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                *out = realloc(*out, cap * sizeof(**out));
                if (!*out) abort();
            }
            c = &(*out)[n++];
            memset(c, 0, sizeof(*c));
            c->partition = rkm->partition;
            c->offset = rkm->offset;
            c->key = dup_bytes(rkm->key, rkm->key ? rkm->key_len : 0);
            c->key_len = rkm->key ? rkm->key_len : 0;
            c->value = dup_bytes(rkm->payload, rkm->len);
            c->value_len = rkm->len;
            rd_kafka_message_headers(rkm, &hdrs);
            c->reason = header(hdrs, "recstream.reason");
            c->src_topic = header(hdrs, "recstream.source.topic");
            {
                char *s = header(hdrs, "recstream.source.partition");
                c->src_partition = s ? atoll(s) : -1;
                free(s);
                s = header(hdrs, "recstream.source.offset");
                c->src_offset = s ? atoll(s) : -1;
                free(s);
            }
        }
        rd_kafka_message_destroy(rkm);
    }
    rd_kafka_assign(rk, NULL);
    return n;
}

static void free_copies(struct copy *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].key);
        free(c[i].value);
        free(c[i].reason);
        free(c[i].src_topic);
    }
    free(c);
}

static int dead_letters(const char *brokers, const char *src, const char *dlq,
                        long expect)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    struct copy *dl = NULL, *sm = NULL;
    size_t ndl, nsm;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "group.id", "kafka_raw", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr))) {
        fprintf(stderr, "kafka_raw: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka_raw: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    ndl = read_topic(rk, dlq, expect, &dl);
    nsm = read_topic(rk, src, -1, &sm);
    CHECK((long)ndl == expect, "%zu dead letters in %s, expected %ld", ndl, dlq, expect);
    for (size_t i = 0; i < ndl; i++) {
        const struct copy *d = &dl[i];
        struct copy *s = NULL;
        CHECK(d->reason && *d->reason, "dead letter %zu has no reason header", i);
        CHECK(d->src_topic && strcmp(d->src_topic, src) == 0,
              "dead letter %zu: source topic %s, expected %s", i,
              d->src_topic ? d->src_topic : "(none)", src);
        for (size_t j = 0; j < nsm; j++)
            if (sm[j].partition == d->src_partition && sm[j].offset == d->src_offset)
                s = &sm[j];
        CHECK(s != NULL, "dead letter %zu points to %s[%lld]@%lld, which does not exist",
              i, src, (long long)d->src_partition, (long long)d->src_offset);
        if (!s) continue;
        CHECK(s->seen++ == 0, "%s[%lld]@%lld is dead-lettered twice", src,
              (long long)d->src_partition, (long long)d->src_offset);
        CHECK(s->key_len == d->key_len && memcmp(s->key, d->key, d->key_len) == 0 &&
                  s->value_len == d->value_len &&
                  memcmp(s->value, d->value, d->value_len) == 0,
              "dead letter of %s[%lld]@%lld differs from the message", src,
              (long long)d->src_partition, (long long)d->src_offset);
        printf("%s\t%s\n", d->reason ? d->reason : "", d->value);
    }
    fprintf(stderr,
            "kafka_raw: %zu dead letters checked against %zu source messages: %s\n", ndl,
            nsm, failures ? "FAILED" : "ok");
    free_copies(dl, ndl);
    free_copies(sm, nsm);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "produce") == 0)
        return produce(argv[2], argv[3], argv[4]);
    if (argc == 6 && strcmp(argv[1], "dead-letters") == 0)
        return dead_letters(argv[2], argv[3], argv[4], atol(argv[5]));
    fprintf(stderr,
            "usage: kafka_raw produce BROKERS TOPIC FILE\n"
            "       kafka_raw dead-letters BROKERS SOURCE_TOPIC DLQ_TOPIC EXPECT\n");
    return 2;
}
