/*
 * test_kafka.c - the Kafka module against the embedded broker (librdkafka's
 * mock cluster): messages produced by one client reach a consumer group,
 * offsets are stored only for handled messages and a commit makes a later
 * consumer of the same group start after them; a property librdkafka refuses
 * is reported with where it came from. The real-broker path is covered by the
 * integration tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "recstream/config.h"
#include "recstream/kafka.h"
#include "recstream/log.h"

struct counter {
    int seen;
    int refuse_after; /* handler returns -1 from this message on; -1: never */
    int64_t last_offset;
};

static int count_handler(void *opaque, const struct rs_kafka_msg *msg)
{
    struct counter *c = opaque;
    c->seen++;
    c->last_offset = msg->offset;
    assert_non_null(msg->topic);
    assert_true(msg->len > 0);
    if (c->refuse_after >= 0 && c->seen > c->refuse_after) return -1;
    return 0;
}

static struct rs_config *make_conf(const char *brokers, const char *group)
{
    char errstr[256];
    char set[256];
    struct rs_config *conf = rs_config_create();
    assert_non_null(conf);
    snprintf(set, sizeof(set), "kafka.brokers=%s", brokers);
    assert_int_equal(rs_config_set(conf, set, errstr, sizeof(errstr)), RS_OK);
    snprintf(set, sizeof(set), "kafka.group.id=%s", group);
    assert_int_equal(rs_config_set(conf, set, errstr, sizeof(errstr)), RS_OK);
    assert_int_equal(rs_config_set(conf, "kafka.topics=t1", errstr, sizeof(errstr)), RS_OK);
    assert_int_equal(
        rs_config_set(conf, "kafka.embedded.partitions=2", errstr, sizeof(errstr)), RS_OK);
    /* The mock cluster ignores LeaveGroup: a group's next consumer waits out
     * the last one's session, so keep sessions short here. */
    assert_int_equal(
        rs_config_set(conf, "kafka.session.timeout.ms=6000", errstr, sizeof(errstr)), RS_OK);
    return conf;
}

static void produce_n(const char *brokers, int first, int n)
{
    char errstr[256];
    struct rs_config *conf = make_conf(brokers, "producer");
    struct rs_kafka *kp = rs_kafka_producer_create(conf, errstr, sizeof(errstr));
    assert_non_null(kp);
    for (int i = first; i < first + n; i++) {
        char key[16], val[32];
        int len = snprintf(val, sizeof(val), "{\"n\":%d}", i);
        snprintf(key, sizeof(key), "u%d", i % 7);
        assert_int_equal(rs_kafka_produce(kp, key, strlen(key), val, (size_t)len), RS_OK);
    }
    assert_int_equal(rs_kafka_flush(kp, 10000), 0);
    assert_int_equal(rs_kafka_delivery_errors(kp), 0);
    rs_kafka_destroy(kp);
    rs_config_destroy(conf);
}

/* Consumes until `want` messages were handled or timeout_ms passed. */
static int consume_until(struct rs_kafka *kc, struct counter *c, int want, int timeout_ms)
{
    uint64_t deadline = rs_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (c->seen < want && rs_mono_ns() < deadline)
        rs_kafka_consume(kc, 100, 1000, count_handler, c);
    return c->seen;
}

static void test_committed_offsets_resume_the_group_after_handled_messages(void **state)
{
    char errstr[256];
    struct rs_config *owner_conf = make_conf("embedded", "owner");
    struct rs_kafka *owner;
    struct rs_config *conf;
    struct rs_kafka *kc;
    struct counter c = {0, -1, -1};
    const char *bootstraps;
    (void)state;

    /* The owner holds the mock cluster; it consumes nothing itself. */
    owner = rs_kafka_consumer_create(owner_conf, errstr, sizeof(errstr));
    assert_non_null(owner);
    bootstraps = rs_kafka_embedded_bootstraps(owner);
    assert_non_null(bootstraps);
    produce_n(bootstraps, 0, 500);

    conf = make_conf(bootstraps, "g1");
    kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_non_null(kc);
    assert_int_equal(consume_until(kc, &c, 500, 30000), 500);
    assert_int_equal(rs_kafka_commit(kc, 1), RS_OK);
    rs_kafka_destroy(kc);

    /* Same group again: nothing old is redelivered, only what is new. */
    produce_n(bootstraps, 500, 10);
    memset(&c, 0, sizeof(c));
    c.refuse_after = -1;
    kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_non_null(kc);
    consume_until(kc, &c, 11, 8000);
    assert_int_equal(c.seen, 10);
    rs_kafka_destroy(kc);

    rs_config_destroy(conf);
    rs_kafka_destroy(owner);
    rs_config_destroy(owner_conf);
}

/* The prefetch hint sees the keys of messages ahead, in all three stages, and
 * changes nothing about what is handled. */
struct hints {
    int stage[3];
    int bad_keys;
};

/* The handler's counter first, so count_handler reads it from the same opaque. */
struct hinted {
    struct counter c;
    struct hints h;
};

static void count_hint(void *opaque, const void *key, size_t key_len, int stage)
{
    struct hints *h = &((struct hinted *)opaque)->h;
    const char *k = key;
    if (stage < 0 || stage > 2 || key_len != 2 || k[0] != 'u' || k[1] < '0' || k[1] > '6')
        h->bad_keys++;
    else
        h->stage[stage]++;
}

static void test_prefetch_hints_name_keys_ahead(void **state)
{
    char errstr[256];
    struct rs_config *owner_conf = make_conf("embedded", "owner");
    struct rs_kafka *owner = rs_kafka_consumer_create(owner_conf, errstr, sizeof(errstr));
    struct rs_config *conf;
    struct rs_kafka *kc;
    struct hinted s = {{0, -1, -1}, {{0, 0, 0}, 0}};
    (void)state;

    assert_non_null(owner);
    produce_n(rs_kafka_embedded_bootstraps(owner), 0, 500);
    conf = make_conf(rs_kafka_embedded_bootstraps(owner), "g4");
    kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_non_null(kc);
    rs_kafka_set_prefetch(kc, count_hint);
    assert_int_equal(consume_until(kc, &s.c, 500, 30000), 500);
    assert_int_equal(s.h.bad_keys, 0);
    for (int st = 0; st < 3; st++) {
        assert_true(s.h.stage[st] > 0);
        assert_true(s.h.stage[st] <= 500);
    }
    rs_kafka_destroy(kc);
    rs_config_destroy(conf);
    rs_kafka_destroy(owner);
    rs_config_destroy(owner_conf);
}

static void test_unhandled_messages_are_not_committed(void **state)
{
    char errstr[256];
    struct rs_config *owner_conf = make_conf("embedded", "owner");
    struct rs_kafka *owner = rs_kafka_consumer_create(owner_conf, errstr, sizeof(errstr));
    struct rs_config *conf;
    struct rs_kafka *kc;
    struct counter c = {0, 0, -1};
    const char *bootstraps;
    (void)state;

    assert_non_null(owner);
    bootstraps = rs_kafka_embedded_bootstraps(owner);
    produce_n(bootstraps, 0, 50);

    /* The handler refuses everything: no offset may be stored or committed. */
    conf = make_conf(bootstraps, "g2");
    kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_non_null(kc);
    assert_int_equal(consume_until(kc, &c, 50, 30000), 50);
    rs_kafka_commit(kc, 1);
    rs_kafka_destroy(kc);

    memset(&c, 0, sizeof(c));
    c.refuse_after = -1;
    kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_non_null(kc);
    assert_int_equal(consume_until(kc, &c, 50, 30000), 50);
    rs_kafka_destroy(kc);

    rs_config_destroy(conf);
    rs_kafka_destroy(owner);
    rs_config_destroy(owner_conf);
}

static void test_refused_property_names_its_origin(void **state)
{
    char errstr[256] = "";
    struct rs_config *conf = make_conf("127.0.0.1:1", "g3");
    struct rs_kafka *kc;
    (void)state;

    assert_int_equal(rs_config_set(conf, "kafka.no.such.property=1", errstr, sizeof(errstr)),
                     RS_OK);
    kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    assert_null(kc);
    assert_non_null(strstr(errstr, "--set"));
    assert_non_null(strstr(errstr, "no.such.property"));
    rs_config_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_committed_offsets_resume_the_group_after_handled_messages),
        cmocka_unit_test(test_unhandled_messages_are_not_committed),
        cmocka_unit_test(test_prefetch_hints_name_keys_ahead),
        cmocka_unit_test(test_refused_property_names_its_origin),
    };
    rs_log_set_level(getenv("RS_TEST_VERBOSE") ? RS_LOG_DEBUG : RS_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
