/*
 * test_kafka_faults.c - the Kafka module under faults a real broker cannot
 * produce on demand, injected into librdkafka's mock cluster (rdkafka_mock.h):
 * failed fetch requests (no message lost or delivered twice), failed offset
 * commits (counted, retried, and what lands is exactly what was asked), a
 * broker of a three-broker cluster going down (its partitions move, every
 * message still arrives once), a dead letter whose delivery fails (counted,
 * re-sent until acknowledged; one too large for its topic dropped), and
 * commits for partitions not assigned (skipped). Kept apart from test_kafka.c so ctest runs the two in parallel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "recstream/config.h"
#include "recstream/kafka.h"
#include "recstream/log.h"

/* Kafka protocol API keys (the mock cluster takes them as numbers). */
#define API_PRODUCE 0
#define API_FETCH 1
#define API_OFFSET_COMMIT 8

#define MAX_MSGS 4096
#define PARTITIONS 4

struct mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    const char *bootstraps;
};

static void mock_start(struct mock *m, int brokers)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(m->rk);
    m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
    assert_non_null(m->mc);
    assert_int_equal(rd_kafka_mock_topic_create(m->mc, "t1", PARTITIONS, brokers), 0);
    assert_int_equal(rd_kafka_mock_topic_create(m->mc, "dlq", 1, brokers), 0);
    assert_int_equal(rd_kafka_mock_topic_create(m->mc, "other", 1, brokers), 0);
    m->bootstraps = rd_kafka_mock_cluster_bootstraps(m->mc);
}

static void mock_stop(struct mock *m)
{
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
}

static void set(struct rs_config *conf, const char *fmt, const char *value)
{
    char errstr[256], line[512];
    snprintf(line, sizeof(line), fmt, value);
    assert_int_equal(rs_config_set(conf, line, errstr, sizeof(errstr)), RS_OK);
}

static struct rs_config *make_conf(const char *brokers, const char *group,
                                   const char *topics)
{
    struct rs_config *conf = rs_config_create();
    assert_non_null(conf);
    set(conf, "kafka.brokers=%s", brokers);
    set(conf, "kafka.group.id=%s", group);
    set(conf, "kafka.topics=%s", topics);
    set(conf, "kafka.session.timeout.ms=%s", "6000");
    set(conf, "kafka.reconnect.backoff.max.ms=%s", "500");
    return conf;
}

/* Produces {"n":first}..{"n":first+n-1} to t1, keyed so they spread. */
static void produce_n(const char *brokers, int first, int n)
{
    char errstr[256];
    struct rs_config *conf = make_conf(brokers, "producer", "t1");
    struct rs_kafka *kp = rs_kafka_producer_create(conf, errstr, sizeof(errstr));
    assert_non_null(kp);
    for (int i = first; i < first + n; i++) {
        char key[16], val[32];
        int len = snprintf(val, sizeof(val), "{\"n\":%d}", i);
        snprintf(key, sizeof(key), "u%d", i % 13);
        assert_int_equal(rs_kafka_produce(kp, key, strlen(key), val, (size_t)len), RS_OK);
    }
    assert_int_equal(rs_kafka_flush(kp, 30000), 0);
    assert_int_equal(rs_kafka_delivery_errors(kp), 0);
    rs_kafka_destroy(kp);
    rs_config_destroy(conf);
}

/* Produces one {"n":n,"pad":"xx..."} of about size bytes to t1. */
static void produce_big(const char *brokers, int n, size_t size)
{
    char errstr[256];
    struct rs_config *conf = make_conf(brokers, "producer", "t1");
    struct rs_kafka *kp = rs_kafka_producer_create(conf, errstr, sizeof(errstr));
    char *val = malloc(size + 1);
    int len;
    assert_non_null(kp);
    assert_non_null(val);
    len = snprintf(val, size + 1, "{\"n\":%d,\"pad\":\"", n);
    memset(val + len, 'x', size - (size_t)len - 2);
    memcpy(val + size - 2, "\"}", 2);
    assert_int_equal(rs_kafka_produce(kp, "big", 3, val, size), RS_OK);
    assert_int_equal(rs_kafka_flush(kp, 30000), 0);
    free(val);
    rs_kafka_destroy(kp);
    rs_config_destroy(conf);
}

/* What a consumer saw: how often each message, and each partition's next offset. */
struct seen {
    struct rs_kafka *kc;
    int times[MAX_MSGS];
    int distinct, total;
    int64_t next[PARTITIONS];
    int dead_every; /* dead-letter every message whose n is a multiple; 0: none */
};

static int seen_handler(void *opaque, const struct rs_kafka_msg *msg)
{
    struct seen *s = opaque;
    char text[32];
    size_t len = msg->len < sizeof(text) - 1 ? msg->len : sizeof(text) - 1;
    int n = -1;
    memcpy(text, msg->payload, len);
    text[len] = '\0';
    assert_int_equal(sscanf(text, "{\"n\":%d}", &n), 1);
    assert_true(n >= 0 && n < MAX_MSGS);
    if (s->times[n]++ == 0) s->distinct++;
    s->total++;
    if (msg->partition >= 0 && msg->partition < PARTITIONS)
        s->next[msg->partition] = msg->offset + 1;
    if (s->dead_every && n % s->dead_every == 0)
        assert_int_equal(rs_kafka_dead_letter(s->kc, msg, "test_reason"), RS_OK);
    return 0;
}

static void consume_until(struct seen *s, int distinct, int timeout_ms)
{
    uint64_t deadline = rs_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (s->distinct < distinct && rs_mono_ns() < deadline)
        rs_kafka_consume(s->kc, 100, 1000, seen_handler, s);
}

/* Keeps the consumer polling (side jobs: retries) for ms milliseconds. */
static void consume_for(struct seen *s, int ms)
{
    uint64_t deadline = rs_mono_ns() + (uint64_t)ms * 1000000ull;
    while (rs_mono_ns() < deadline)
        rs_kafka_consume(s->kc, 100, 1000, seen_handler, s);
}

static void assert_each_once(const struct seen *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s->times[i] != 1) fail_msg("message %d delivered %d times", i, s->times[i]);
    assert_int_equal(s->total, n);
}

/* The group's committed offset of topic[partition], read by a client of its own. */
static int64_t committed(const char *brokers, const char *group, const char *topic,
                         int32_t partition)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    int64_t off;

    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_topic_partition_list_add(list, topic, partition);
    assert_int_equal(rd_kafka_committed(rk, list, 10000), 0);
    off = list->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    return off;
}

static void test_fetch_errors_neither_lose_nor_repeat_messages(void **state)
{
    char errstr[256];
    struct mock m;
    struct rs_config *conf;
    static struct seen s;
    struct rs_kafka_stats st;
    (void)state;

    mock_start(&m, 1);
    produce_n(m.bootstraps, 0, 2000);
    rd_kafka_mock_push_request_errors(
        m.mc, API_FETCH, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    conf = make_conf(m.bootstraps, "fetch", "t1");
    memset(&s, 0, sizeof(s));
    s.kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_non_null(s.kc);
    consume_until(&s, 2000, 60000);
    consume_for(&s, 300); /* a duplicate would show up here */
    assert_each_once(&s, 2000);
    rs_kafka_stats(s.kc, &st);
    assert_int_equal(st.commits_failed, 0);
    rs_kafka_destroy(s.kc);
    rs_config_destroy(conf);
    mock_stop(&m);
}

static void
test_failed_commits_are_counted_and_retried_with_the_same_offsets(void **state)
{
    char errstr[256];
    struct mock m;
    struct rs_config *conf;
    static struct seen s;
    struct rs_kafka_offset offs[PARTITIONS];
    struct rs_kafka_stats st;
    (void)state;

    mock_start(&m, 1);
    produce_n(m.bootstraps, 0, 500);
    conf = make_conf(m.bootstraps, "commit", "t1");
    memset(&s, 0, sizeof(s));
    s.kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_non_null(s.kc);
    consume_until(&s, 500, 30000);
    assert_each_once(&s, 500);

    /* Commit only part of what was consumed (as a snapshot older than the
     * model would): exactly that must land, not the consumer's position. */
    for (int p = 0; p < PARTITIONS; p++) {
        offs[p].topic = "t1";
        offs[p].partition = p;
        offs[p].offset = s.next[p] / 2;
    }
    rd_kafka_mock_push_request_errors(m.mc, API_OFFSET_COMMIT, 2,
                                      RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE,
                                      RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE);
    assert_int_equal(rs_kafka_commit_offsets(s.kc, offs, PARTITIONS, 1), RS_EKAFKA);
    consume_for(&s, 3500); /* the retries, a second apart: one fails, one lands */
    rs_kafka_stats(s.kc, &st);
    assert_true(st.commits_failed >= 2);
    for (int p = 0; p < PARTITIONS; p++)
        assert_int_equal(committed(m.bootstraps, "commit", "t1", p), offs[p].offset);
    assert_int_equal(s.total, 500); /* nothing redelivered meanwhile */
    rs_kafka_destroy(s.kc);
    rs_config_destroy(conf);
    mock_stop(&m);
}

static void test_commits_skip_partitions_not_assigned(void **state)
{
    char errstr[256];
    struct mock m;
    struct rs_config *conf;
    static struct seen s;
    struct rs_kafka_offset offs[2] = {{"t1", 0, 0}, {"other", 0, 7}};
    (void)state;

    mock_start(&m, 1);
    produce_n(m.bootstraps, 0, 100);
    conf = make_conf(m.bootstraps, "owned", "t1");
    memset(&s, 0, sizeof(s));
    s.kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_non_null(s.kc);
    consume_until(&s, 100, 30000);
    offs[0].offset = s.next[0];
    assert_int_equal(rs_kafka_commit_offsets(s.kc, offs, 2, 1), RS_OK);
    assert_int_equal(committed(m.bootstraps, "owned", "t1", 0), s.next[0]);
    assert_int_equal(committed(m.bootstraps, "owned", "other", 0),
                     RD_KAFKA_OFFSET_INVALID);
    rs_kafka_destroy(s.kc);
    rs_config_destroy(conf);
    mock_stop(&m);
}

static void test_a_broker_down_in_a_three_broker_cluster(void **state)
{
    char errstr[256];
    struct mock m;
    struct rs_config *conf;
    static struct seen s;
    (void)state;

    mock_start(&m, 3);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_mock_partition_set_leader(m.mc, "t1", p, 1 + p % 3);
    rd_kafka_mock_coordinator_set(m.mc, "group", "three", 1);
    produce_n(m.bootstraps, 0, 1000);
    conf = make_conf(m.bootstraps, "three", "t1");
    memset(&s, 0, sizeof(s));
    s.kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_non_null(s.kc);
    consume_until(&s, 1000, 30000);
    assert_int_equal(s.distinct, 1000);

    /* Broker 3 goes down; its partition (2) gets a new leader, as an election would. */
    rd_kafka_mock_broker_set_down(m.mc, 3);
    rd_kafka_mock_partition_set_leader(m.mc, "t1", 2, 2);
    produce_n(m.bootstraps, 1000, 1000);
    consume_until(&s, 2000, 60000);
    consume_for(&s, 300);
    assert_each_once(&s, 2000);
    rs_kafka_destroy(s.kc);
    rs_config_destroy(conf);
    mock_stop(&m);
}

static void test_failed_dead_letters_are_counted_and_sent_again(void **state)
{
    char errstr[256];
    struct mock m;
    struct rs_config *conf, *dconf;
    static struct seen s, d;
    struct rs_kafka_stats st;
    (void)state;

    mock_start(&m, 1);
    produce_n(m.bootstraps, 0, 200);
    conf = make_conf(m.bootstraps, "dead", "t1");
    set(conf, "kafka.dead_letter_topic=%s", "dlq");
    memset(&s, 0, sizeof(s));
    s.dead_every = 10;
    s.kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_non_null(s.kc);
    /* The first produce requests to the dead-letter topic are refused. */
    rd_kafka_mock_push_request_errors(m.mc, API_PRODUCE, 2,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    consume_until(&s, 200, 30000);
    assert_int_equal(rs_kafka_dead_letters_flush(s.kc, 15000), 0);
    rs_kafka_stats(s.kc, &st);
    assert_int_equal(st.dead_letters_produced, 20);
    assert_true(st.dead_letters_failed >= 1);
    assert_int_equal(st.dead_letters_pending, 0);

    /* The dead-letter topic holds each of the 20 once, unchanged. */
    dconf = make_conf(m.bootstraps, "reader", "dlq");
    memset(&d, 0, sizeof(d));
    d.kc = rs_kafka_consumer_create(dconf, errstr, sizeof(errstr));
    assert_non_null(d.kc);
    consume_until(&d, 20, 30000);
    consume_for(&d, 300);
    assert_int_equal(d.total, 20);
    for (int i = 0; i < 200; i++)
        assert_int_equal(d.times[i], i % 10 == 0 ? 1 : 0);
    rs_kafka_destroy(d.kc);
    rs_kafka_destroy(s.kc);
    rs_config_destroy(dconf);
    rs_config_destroy(conf);
    mock_stop(&m);
}

static void test_a_dead_letter_too_large_for_its_topic_is_dropped(void **state)
{
    char errstr[256];
    struct mock m;
    struct rs_config *conf;
    static struct seen s;
    struct rs_kafka_stats st;
    (void)state;

    mock_start(&m, 1);
    produce_n(m.bootstraps, 0, 10);
    produce_big(m.bootstraps, 10, 3000);
    conf = make_conf(m.bootstraps, "big", "t1");
    set(conf, "kafka.dead_letter_topic=%s", "dlq");
    set(conf, "kafka.message.max.bytes=%s", "2000"); /* what the topic accepts, here */
    memset(&s, 0, sizeof(s));
    s.dead_every = 1;
    s.kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_non_null(s.kc);
    consume_until(&s, 11, 30000);
    assert_each_once(&s, 11);
    /* Never deliverable: dropped and counted, not holding snapshots back. */
    assert_int_equal(rs_kafka_dead_letters_flush(s.kc, 10000), 0);
    rs_kafka_stats(s.kc, &st);
    assert_int_equal(st.dead_letters_produced, 10);
    assert_int_equal(st.dead_letters_dropped, 1);
    rs_kafka_destroy(s.kc);
    rs_config_destroy(conf);
    mock_stop(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_errors_neither_lose_nor_repeat_messages),
        cmocka_unit_test(
            test_failed_commits_are_counted_and_retried_with_the_same_offsets),
        cmocka_unit_test(test_commits_skip_partitions_not_assigned),
        cmocka_unit_test(test_a_broker_down_in_a_three_broker_cluster),
        cmocka_unit_test(test_failed_dead_letters_are_counted_and_sent_again),
        cmocka_unit_test(test_a_dead_letter_too_large_for_its_topic_is_dropped),
    };
    rs_log_set_level(getenv("RS_TEST_VERBOSE") ? RS_LOG_DEBUG : RS_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
