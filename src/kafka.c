/*
 * kafka.c - recstream's only contact with librdkafka. It builds the client
 * configuration from [kafka] (recstream's own keys, then every pass-through
 * property, each refused property reported with the file:line it came from),
 * runs the consumer-group poll loop with explicit offset storing (an offset is
 * stored only after the model has the message), handles eager and cooperative
 * rebalances, and produces keyed messages for `recstream produce`.
 *
 * With `brokers = embedded` the handle also owns a librdkafka mock cluster
 * (rdkafka_mock.h): a small Kafka-protocol broker on loopback inside this
 * process, with the configured topics created up front. Other processes may
 * reach it through rs_kafka_embedded_bootstraps().
 */
#include "recstream/kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/log.h"

struct rs_kafka {
    rd_kafka_t *rk;            /* consumer or producer */
    rd_kafka_t *mock_rk;       /* owner of the embedded cluster, or NULL */
    rd_kafka_mock_cluster_t *mcluster;
    char *bootstraps;          /* embedded cluster address, or NULL */
    rd_kafka_topic_t *rkt;     /* producer: the main topic */
    int is_consumer;
    rs_kafka_offset_fn offset_fn; /* start positions for assigned partitions */
    void *offset_opaque;
    uint64_t delivery_errors;
    struct rs_log_limit err_limit;
};

static int set_prop(rd_kafka_conf_t *kconf, const char *origin, const char *key,
                    const char *value, char *errstr, size_t errstr_size)
{
    char kerr[512];
    if (rd_kafka_conf_set(kconf, key, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "%s: kafka property %s: %s", origin, key, kerr);
        return -1;
    }
    return 0;
}

/* Starts the mock cluster and creates the configured topics in it. */
static int start_embedded(struct rs_kafka *kc, const struct rs_config *conf,
                          char *errstr, size_t errstr_size)
{
    char kerr[512];
    rd_kafka_conf_t *mconf = rd_kafka_conf_new();

    if (rd_kafka_conf_set(mconf, "log_level", "3", kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK)
        goto err;
    kc->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, kerr, sizeof(kerr));
    if (!kc->mock_rk) goto err; /* on failure the conf is still ours */
    mconf = NULL;               /* owned by mock_rk from here */

    kc->mcluster = rd_kafka_mock_cluster_new(kc->mock_rk, 1);
    if (!kc->mcluster) {
        snprintf(kerr, sizeof(kerr), "could not create the mock cluster");
        goto err;
    }
    for (size_t t = 0; t < conf->topic_cnt; t++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(
            kc->mcluster, conf->topics[t], conf->embedded_partitions, 1);
        if (e) {
            snprintf(kerr, sizeof(kerr), "creating topic %s: %s", conf->topics[t],
                     rd_kafka_err2str(e));
            goto err;
        }
    }
    if (conf->dead_letter_topic && *conf->dead_letter_topic)
        rd_kafka_mock_topic_create(kc->mcluster, conf->dead_letter_topic, 1, 1);
    kc->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(kc->mcluster));
    if (!kc->bootstraps) {
        snprintf(kerr, sizeof(kerr), "out of memory");
        goto err;
    }
    rs_info("embedded broker listening on %s (%d partitions per topic)", kc->bootstraps,
            conf->embedded_partitions);
    return 0;

err:
    if (mconf) rd_kafka_conf_destroy(mconf);
    snprintf(errstr, errstr_size, "embedded broker: %s", kerr);
    return -1;
}

/* The configuration shared by consumer and producer; NULL on error. */
static rd_kafka_conf_t *base_conf(struct rs_kafka *kc, const struct rs_config *conf,
                                  char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    const char *brokers = conf->brokers;

    if (strcmp(conf->brokers, "embedded") == 0) {
        if (start_embedded(kc, conf, errstr, errstr_size)) goto err;
        brokers = kc->bootstraps;
    }
    if (set_prop(kconf, "[kafka] brokers", "bootstrap.servers", brokers, errstr,
                 errstr_size))
        goto err;
    if (set_prop(kconf, "default", "client.id", "recstream", errstr, errstr_size))
        goto err;
    return kconf;

err:
    rd_kafka_conf_destroy(kconf);
    return NULL;
}

/* Sets the pass-through properties, last, so an operator can override our defaults. */
static int apply_passthrough(rd_kafka_conf_t *kconf, const struct rs_config *conf,
                         char *errstr, size_t errstr_size)
{
    for (size_t p = 0; p < conf->kafka_prop_cnt; p++) {
        const struct rs_config_prop *prop = &conf->kafka_props[p];
        if (set_prop(kconf, prop->origin, prop->key, prop->value, errstr, errstr_size))
            return -1;
    }
    return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3)
        rs_error("kafka %s: %s", fac, buf);
    else if (level <= 4)
        rs_warn("kafka %s: %s", fac, buf);
    else
        rs_debug("kafka %s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct rs_kafka *kc = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rs_error("kafka fatal error: %s", reason);
        return;
    }
    rs_log_limited(&kc->err_limit, RS_LOG_WARN, "kafka: %s: %s",
                   rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void log_partitions(const char *what, const rd_kafka_topic_partition_list_t *parts)
{
    char line[512];
    size_t off = 0;
    line[0] = '\0';
    for (int i = 0; i < parts->cnt && off < sizeof(line) - 64; i++)
        off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s[%d]", i ? " " : "",
                                parts->elems[i].topic, parts->elems[i].partition);
    rs_info("kafka: %s %d partition(s): %s", what, parts->cnt, line);
}

/*
 * Rebalances for both protocols: eager assigns/revokes the whole set,
 * cooperative adds/removes increments. Before partitions are taken away the
 * offsets stored for them are committed, so the next owner starts after the
 * events this process has applied - unless an offset function is set: then
 * positions come from it on assignment (each partition is sought to the
 * offset it returns) and only its owner commits.
 */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    /* NULL when the protocol is not known (yet or any more, e.g. while closing). */
    const char *protocol = rd_kafka_rebalance_protocol(rk);
    int cooperative = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;
    struct rs_kafka *kc = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_partitions("assigned", parts);
        for (int i = 0; kc->offset_fn && i < parts->cnt; i++) {
            int64_t offset;
            rd_kafka_topic_partition_t *tp = &parts->elems[i];
            if (kc->offset_fn(kc->offset_opaque, tp->topic, tp->partition, &offset)) {
                tp->offset = offset;
                rs_info("kafka: %s[%d] starts at offset %lld (snapshot)", tp->topic,
                        tp->partition, (long long)offset);
            }
        }
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            ret = rd_kafka_assign(rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_partitions("revoked", parts);
        if (!kc->offset_fn && !rd_kafka_assignment_lost(rk)) rd_kafka_commit(rk, NULL, 0);
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            ret = rd_kafka_assign(rk, NULL);
    } else {
        rs_error("kafka: rebalance failed: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
    }
    if (error) {
        rs_error("kafka: incremental assignment failed: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (ret) {
        rs_error("kafka: assignment failed: %s", rd_kafka_err2str(ret));
    }
}

struct rs_kafka *rs_kafka_consumer_create(const struct rs_config *conf, char *errstr,
                                          size_t errstr_size)
{
    struct rs_kafka *kc = calloc(1, sizeof(*kc));
    rd_kafka_conf_t *kconf = NULL;
    rd_kafka_topic_partition_list_t *topics = NULL;
    rd_kafka_resp_err_t err;

    if (!kc) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    kc->is_consumer = 1;
    kc->err_limit = (struct rs_log_limit)RS_LOG_LIMIT_INIT(10000, 5);
    kconf = base_conf(kc, conf, errstr, errstr_size);
    if (!kconf) goto err;

    /* recstream decides which offsets are safe: nothing is stored or
     * committed behind its back. Range assignment is the safe default on
     * librdkafka 2.0.2 (cooperative-sticky can abort on close there). */
    if (set_prop(kconf, "default", "group.id", conf->group_id, errstr, errstr_size) ||
        set_prop(kconf, "default", "enable.auto.commit", "false", errstr, errstr_size) ||
        set_prop(kconf, "default", "enable.auto.offset.store", "false", errstr,
                 errstr_size) ||
        set_prop(kconf, "default", "auto.offset.reset", "earliest", errstr,
                 errstr_size) ||
        set_prop(kconf, "default", "partition.assignment.strategy", "range", errstr,
                 errstr_size) ||
        set_prop(kconf, "default", "enable.partition.eof", "false", errstr,
                 errstr_size) ||
        /* Measured (docs/BENCHMARKS.md, "Ingestion"): librdkafka's default prefetch
         * target (100000 messages) made backlog catch-up several times slower than
         * 1000000; the queue stays bounded by queued.max.messages.kbytes. */
        set_prop(kconf, "default", "queued.min.messages", "1000000", errstr,
                 errstr_size) ||
        apply_passthrough(kconf, conf, errstr, errstr_size))
        goto err;

    rd_kafka_conf_set_opaque(kconf, kc);
    rd_kafka_conf_set_log_cb(kconf, log_cb);
    rd_kafka_conf_set_error_cb(kconf, error_cb);
    rd_kafka_conf_set_rebalance_cb(kconf, rebalance_cb);

    kc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, errstr, errstr_size);
    if (!kc->rk) goto err;
    kconf = NULL; /* owned by rk */
    rd_kafka_poll_set_consumer(kc->rk);

    topics = rd_kafka_topic_partition_list_new((int)conf->topic_cnt);
    for (size_t t = 0; t < conf->topic_cnt; t++)
        rd_kafka_topic_partition_list_add(topics, conf->topics[t], RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(kc->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        snprintf(errstr, errstr_size, "subscribing: %s", rd_kafka_err2str(err));
        goto err;
    }
    return kc;

err:
    if (kconf) rd_kafka_conf_destroy(kconf);
    rs_kafka_destroy(kc);
    return NULL;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct rs_kafka *kc = opaque;
    (void)rk;
    if (rkm->err) {
        kc->delivery_errors++;
        rs_log_limited(&kc->err_limit, RS_LOG_ERROR, "kafka: delivery failed: %s",
                       rd_kafka_err2str(rkm->err));
    }
}

struct rs_kafka *rs_kafka_producer_create(const struct rs_config *conf, char *errstr,
                                          size_t errstr_size)
{
    struct rs_kafka *kc = calloc(1, sizeof(*kc));
    rd_kafka_conf_t *kconf = NULL;

    if (!kc) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    kc->err_limit = (struct rs_log_limit)RS_LOG_LIMIT_INIT(10000, 5);
    kconf = base_conf(kc, conf, errstr, errstr_size);
    if (!kconf) goto err;
    /* Throughput defaults for bulk loading; pass-through keys may override. */
    if (set_prop(kconf, "default", "linger.ms", "20", errstr, errstr_size) ||
        set_prop(kconf, "default", "batch.num.messages", "10000", errstr, errstr_size) ||
        set_prop(kconf, "default", "compression.codec", "lz4", errstr, errstr_size) ||
        apply_passthrough(kconf, conf, errstr, errstr_size))
        goto err;
    rd_kafka_conf_set_opaque(kconf, kc);
    rd_kafka_conf_set_log_cb(kconf, log_cb);
    rd_kafka_conf_set_error_cb(kconf, error_cb);
    rd_kafka_conf_set_dr_msg_cb(kconf, dr_msg_cb);

    kc->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, errstr_size);
    if (!kc->rk) goto err;
    kconf = NULL;
    kc->rkt = rd_kafka_topic_new(kc->rk, conf->topics[0], NULL);
    if (!kc->rkt) {
        snprintf(errstr, errstr_size, "topic %s: %s", conf->topics[0],
                 rd_kafka_err2str(rd_kafka_last_error()));
        goto err;
    }
    return kc;

err:
    if (kconf) rd_kafka_conf_destroy(kconf);
    rs_kafka_destroy(kc);
    return NULL;
}

void rs_kafka_destroy(struct rs_kafka *kc)
{
    if (!kc) return;
    if (kc->rk) {
        if (kc->is_consumer) {
            rd_kafka_resp_err_t err = rd_kafka_consumer_close(kc->rk);
            if (err) rs_warn("kafka: closing consumer: %s", rd_kafka_err2str(err));
        } else {
            int left;
            rd_kafka_flush(kc->rk, 10000);
            left = rd_kafka_outq_len(kc->rk);
            if (left > 0) rs_warn("kafka: %d message(s) not delivered at close", left);
        }
        if (kc->rkt) rd_kafka_topic_destroy(kc->rkt);
        rd_kafka_destroy(kc->rk);
    }
    if (kc->mcluster) rd_kafka_mock_cluster_destroy(kc->mcluster);
    if (kc->mock_rk) rd_kafka_destroy(kc->mock_rk);
    free(kc->bootstraps);
    free(kc);
}

int rs_kafka_consume(struct rs_kafka *kc, int timeout_ms, size_t max,
                     rs_kafka_handler_t handler, void *opaque)
{
    int handled = 0;

    for (size_t n = 0; n < max; n++) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(kc->rk, n ? 0 : timeout_ms);
        struct rs_kafka_msg msg;
        rd_kafka_timestamp_type_t tstype;

        if (!rkm) break;
        if (rkm->err) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                rs_log_limited(&kc->err_limit, RS_LOG_WARN, "kafka: consume: %s",
                               rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
            continue;
        }
        msg.payload = rkm->payload;
        msg.len = rkm->len;
        msg.key = rkm->key;
        msg.key_len = rkm->key_len;
        msg.topic = rd_kafka_topic_name(rkm->rkt);
        msg.partition = rkm->partition;
        msg.offset = rkm->offset;
        msg.ts_ms = rd_kafka_message_timestamp(rkm, &tstype);
        if (handler(opaque, &msg) == 0) {
            /* Stores offset + 1: the next message not yet in the model. */
            rd_kafka_resp_err_t err = rd_kafka_offset_store(rkm->rkt, rkm->partition,
                                                            rkm->offset);
            if (err)
                rs_log_limited(&kc->err_limit, RS_LOG_WARN,
                               "kafka: storing offset %s[%d]@%lld: %s", msg.topic,
                               msg.partition, (long long)msg.offset,
                               rd_kafka_err2str(err));
        }
        rd_kafka_message_destroy(rkm);
        handled++;
    }
    return handled;
}

rs_err_t rs_kafka_commit(struct rs_kafka *kc, int sync)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(kc->rk, NULL, !sync);
    /* _NO_OFFSET: nothing new since the last commit. */
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        rs_log_limited(&kc->err_limit, RS_LOG_WARN, "kafka: commit: %s",
                       rd_kafka_err2str(err));
        return RS_EKAFKA;
    }
    return RS_OK;
}

rs_err_t rs_kafka_commit_offsets(struct rs_kafka *kc, const struct rs_kafka_offset *offs,
                                 size_t n, int sync)
{
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_resp_err_t err;

    if (n == 0) return RS_OK;
    list = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(list, offs[i].topic, offs[i].partition)->offset =
            offs[i].offset;
    err = rd_kafka_commit(kc->rk, list, !sync);
    rd_kafka_topic_partition_list_destroy(list);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        rs_log_limited(&kc->err_limit, RS_LOG_WARN, "kafka: commit: %s",
                       rd_kafka_err2str(err));
        return RS_EKAFKA;
    }
    return RS_OK;
}

void rs_kafka_set_offset_fn(struct rs_kafka *kc, rs_kafka_offset_fn fn, void *opaque)
{
    kc->offset_fn = fn;
    kc->offset_opaque = opaque;
}

rs_err_t rs_kafka_produce(struct rs_kafka *kc, const void *key, size_t key_len,
                          const void *payload, size_t len)
{
    for (;;) {
        if (rd_kafka_produce(kc->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                             (void *)payload, len, key, key_len, NULL) == 0)
            break;
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rs_log_limited(&kc->err_limit, RS_LOG_ERROR, "kafka: produce: %s",
                           rd_kafka_err2str(rd_kafka_last_error()));
            return RS_EKAFKA;
        }
        rd_kafka_poll(kc->rk, 100); /* queue full: let deliveries drain */
    }
    rd_kafka_poll(kc->rk, 0);
    return RS_OK;
}

int rs_kafka_flush(struct rs_kafka *kc, int timeout_ms)
{
    rd_kafka_flush(kc->rk, timeout_ms);
    return rd_kafka_outq_len(kc->rk);
}

uint64_t rs_kafka_delivery_errors(const struct rs_kafka *kc)
{
    return kc->delivery_errors;
}

const char *rs_kafka_embedded_bootstraps(const struct rs_kafka *kc)
{
    return kc->bootstraps;
}

size_t rs_kafka_lag(struct rs_kafka *kc, struct rs_kafka_lag *out, size_t max)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    size_t n = 0;

    if (!kc->is_consumer || rd_kafka_assignment(kc->rk, &parts) || !parts) return 0;
    rd_kafka_position(kc->rk, parts);
    for (int i = 0; i < parts->cnt && n < max; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t lo = -1, hi = -1;
        snprintf(out[n].topic, sizeof(out[n].topic), "%s", tp->topic);
        out[n].partition = tp->partition;
        out[n].lag = -1;
        if (rd_kafka_get_watermark_offsets(kc->rk, tp->topic, tp->partition, &lo, &hi) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            hi >= 0 && tp->offset >= 0)
            out[n].lag = hi > tp->offset ? hi - tp->offset : 0;
        n++;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return n;
}
