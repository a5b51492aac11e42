/*
 * e2e_check.c - the independent judge of the Kafka -> recstream -> Redis
 * integration test. Given the events file that was produced, it checks what a
 * frontend and an operator would see afterwards:
 *   - every user with events has an rs:rec:{user} list in Redis that parses
 *     as the JSON of DESIGN.md and is not empty;
 *   - no list holds an item the user already has;
 *   - the consumer group's committed offsets reach the end of every partition
 *     and add up to the number of events produced.
 * It talks to the real servers with hiredis and librdkafka directly, not
 * through recstream's own sink or source.
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/filesrc.h"
#include "recstream/history.h"
#include "recstream/idmap.h"

static int failures;

#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            if (failures++ < 20) {                                                     \
                fprintf(stderr, "FAIL: ");                                             \
                fprintf(stderr, __VA_ARGS__);                                          \
                fprintf(stderr, "\n");                                                 \
            }                                                                          \
        }                                                                              \
    } while (0)

struct opts {
    const char *input, *brokers, *topic, *group, *prefix;
    int redis_port;
    long expect;
};

static int check_lists(const struct opts *o, struct rs_idmap *users, struct rs_idmap *items,
                       struct rs_history *h)
{
    redisContext *c = redisConnect("127.0.0.1", o->redis_port);
    uint32_t n_users = rs_idmap_span(users), lists = 0, entries = 0;

    if (!c || c->err) {
        fprintf(stderr, "FAIL: redis connect: %s\n", c ? c->errstr : "oom");
        return -1;
    }
    for (uint32_t u = 0; u < n_users; u++) {
        size_t len, n;
        const char *name = rs_idmap_name(users, u, &len);
        redisReply *reply = redisCommand(c, "GET %s%s%b", o->prefix, "rec:", name, len);
        json_error_t jerr;
        json_t *list;

        if (!reply) {
            fprintf(stderr, "FAIL: redis: %s\n", c->errstr);
            redisFree(c);
            return -1;
        }
        CHECK(reply->type == REDIS_REPLY_STRING, "user %.*s has no list", (int)len, name);
        if (reply->type != REDIS_REPLY_STRING) {
            freeReplyObject(reply);
            continue;
        }
        list = json_loadb(reply->str, reply->len, 0, &jerr);
        CHECK(list && json_is_array(list), "user %.*s: list does not parse: %s", (int)len,
              name, jerr.text);
        n = list ? json_array_size(list) : 0;
        CHECK(n > 0, "user %.*s: empty list", (int)len, name);
        for (size_t j = 0; j < n; j++) {
            json_t *e = json_array_get(list, j);
            json_t *item = json_object_get(e, "item");
            json_t *score = json_object_get(e, "score");
            uint32_t idx;
            CHECK(json_is_string(item) && json_is_number(score),
                  "user %.*s: entry %zu lacks item or score", (int)len, name, j);
            if (!json_is_string(item)) continue;
            if (rs_idmap_find(items, json_string_value(item), json_string_length(item),
                              &idx) == RS_OK)
                CHECK(!rs_history_contains(h, u, idx),
                      "user %.*s: list holds %s, which the user already has", (int)len, name,
                      json_string_value(item));
            entries++;
        }
        if (list) lists++;
        json_decref(list);
        freeReplyObject(reply);
    }
    redisFree(c);
    printf("lists: %u users with events, %u lists parsed, %u entries\n", n_users, lists,
           entries);
    return 0;
}

static int check_offsets(const struct opts *o)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt;
    rd_kafka_topic_partition_list_t *parts;
    long total = 0;
    int rc = -1;

    rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", o->group, errstr, sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "FAIL: kafka client: %s\n", errstr);
        return -1;
    }
    rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1 ||
        md->topics[0].partition_cnt < 1) {
        fprintf(stderr, "FAIL: no metadata for topic %s\n", o->topic);
        goto out;
    }
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(parts, o->topic, md->topics[0].partitions[p].id);
    if (rd_kafka_committed(rk, parts, 10000)) {
        fprintf(stderr, "FAIL: could not read committed offsets\n");
    } else {
        for (int p = 0; p < parts->cnt; p++) {
            int64_t lo = 0, hi = 0;
            int64_t committed = parts->elems[p].offset;
            rd_kafka_query_watermark_offsets(rk, o->topic, parts->elems[p].partition, &lo,
                                             &hi, 10000);
            printf("partition %d: committed %lld, end %lld\n", parts->elems[p].partition,
                   (long long)committed, (long long)hi);
            CHECK(committed == hi, "partition %d: committed offset %lld, end %lld",
                  parts->elems[p].partition, (long long)committed, (long long)hi);
            if (committed > 0) total += committed;
        }
        CHECK(total == o->expect, "committed offsets cover %ld events, produced %ld", total,
              o->expect);
        printf("offsets: committed offsets cover %ld of %ld events\n", total, o->expect);
        rc = 0;
    }
    rd_kafka_topic_partition_list_destroy(parts);
out:
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"input", required_argument, NULL, 'i'},  {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},  {"group", required_argument, NULL, 'g'},
        {"prefix", required_argument, NULL, 'p'}, {"redis-port", required_argument, NULL, 'r'},
        {"expect", required_argument, NULL, 'e'}, {NULL, 0, NULL, 0},
    };
    struct opts o = {0};
    struct rs_event_limits lim = {0.5, 5, RS_EVENT_MAX_BYTES_DEFAULT};
    struct rs_idmap *users = rs_idmap_create(0), *items = rs_idmap_create(0);
    struct rs_history *h = rs_history_create();
    struct rs_filesrc *fs;
    struct rs_event ev;
    char errstr[256];
    long events = 0;
    int opt;

    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'i': o.input = optarg; break;
        case 'b': o.brokers = optarg; break;
        case 't': o.topic = optarg; break;
        case 'g': o.group = optarg; break;
        case 'p': o.prefix = optarg; break;
        case 'r': o.redis_port = atoi(optarg); break;
        case 'e': o.expect = atol(optarg); break;
        default: return 2;
        }
    }
    if (!o.input || !o.brokers || !o.topic || !o.group || !o.prefix || !o.redis_port) {
        fprintf(stderr, "usage: e2e_check --input F --brokers B --topic T --group G "
                        "--prefix P --redis-port N --expect N\n");
        return 2;
    }
    fs = rs_filesrc_open(o.input, RS_FILE_AUTO, &lim, errstr, sizeof(errstr));
    if (!fs) {
        fprintf(stderr, "FAIL: %s\n", errstr);
        return 1;
    }
    for (;;) {
        enum rs_event_reason reason;
        uint64_t record;
        uint32_t u, i;
        rs_err_t err = rs_filesrc_next(fs, &ev, &reason, &record);
        if (err == RS_ENOENT) break;
        if (err) continue;
        events++;
        rs_idmap_intern(users, ev.user, ev.user_len, &u, NULL);
        rs_idmap_intern(items, ev.item, ev.item_len, &i, NULL);
        rs_history_add(h, u, i);
    }
    rs_filesrc_close(fs);
    CHECK(events == o.expect, "input has %ld events, expected %ld", events, o.expect);

    if (check_lists(&o, users, items, h) || check_offsets(&o)) failures++;
    rs_history_destroy(h);
    rs_idmap_destroy(users);
    rs_idmap_destroy(items);
    printf("%s (%d failure%s)\n", failures ? "FAILED" : "OK", failures,
           failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
