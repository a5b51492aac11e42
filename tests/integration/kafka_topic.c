/*
 * kafka_topic.c - creates a topic with a given number of partitions on the
 * test broker, so an integration test controls how events are spread (one
 * partition: one order, hence a bit-identical model). Talks to the broker
 * with librdkafka's admin API directly.
 *   kafka_topic BROKERS TOPIC PARTITIONS
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    char errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_NewTopic_t *topic;
    rd_kafka_queue_t *queue;
    rd_kafka_event_t *ev;
    const rd_kafka_CreateTopics_result_t *res;
    const rd_kafka_topic_result_t **results;
    size_t n;
    int rc = 1;

    if (argc != 4) {
        fprintf(stderr, "usage: kafka_topic BROKERS TOPIC PARTITIONS\n");
        return 2;
    }
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_topic: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka_topic: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    topic = rd_kafka_NewTopic_new(argv[2], atoi(argv[3]), 1, errstr, sizeof(errstr));
    if (!topic) {
        fprintf(stderr, "kafka_topic: %s\n", errstr);
        rd_kafka_destroy(rk);
        return 1;
    }
    queue = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &topic, 1, NULL, queue);
    ev = rd_kafka_queue_poll(queue, 30000);
    if (!ev) {
        fprintf(stderr, "kafka_topic: no answer from %s\n", argv[1]);
    } else if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "kafka_topic: %s\n", rd_kafka_event_error_string(ev));
    } else {
        res = rd_kafka_event_CreateTopics_result(ev);
        results = rd_kafka_CreateTopics_result_topics(res, &n);
        if (n == 1 && rd_kafka_topic_result_error(results[0]) == RD_KAFKA_RESP_ERR_NO_ERROR)
            rc = 0;
        else if (n == 1)
            fprintf(stderr, "kafka_topic: %s: %s\n", argv[2],
                    rd_kafka_topic_result_error_string(results[0]));
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(queue);
    rd_kafka_NewTopic_destroy(topic);
    rd_kafka_destroy(rk);
    return rc;
}
