/*
 * test_pipeline.c - the model side of the main loop without a Redis sink:
 * good payloads are applied and counted, bad ones are counted by reason and
 * leave the model alone, ids map to the same dense index whether they arrive
 * as integers or strings, and the capacity bound refuses new ids without
 * stopping the stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "recstream/config.h"
#include "recstream/log.h"
#include "recstream/pipeline.h"

static struct rs_config *conf_with(const char *set1, const char *set2)
{
    char errstr[256];
    struct rs_config *conf = rs_config_create();
    assert_non_null(conf);
    assert_int_equal(rs_config_set(conf, "model.factors=8", errstr, sizeof(errstr)), RS_OK);
    if (set1) assert_int_equal(rs_config_set(conf, set1, errstr, sizeof(errstr)), RS_OK);
    if (set2) assert_int_equal(rs_config_set(conf, set2, errstr, sizeof(errstr)), RS_OK);
    return conf;
}

static enum rs_event_reason feed(struct rs_pipeline *p, const char *json)
{
    return rs_pipeline_handle(p, json, strlen(json), 1000);
}

static void test_good_events_are_applied_and_bad_ones_counted_by_reason(void **state)
{
    char errstr[256];
    struct rs_config *conf = conf_with(NULL, NULL);
    struct rs_pipeline *p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    const struct rs_pipeline_stats *st;
    (void)state;

    assert_non_null(p);
    assert_int_equal(feed(p, "{\"user\":\"a\",\"item\":\"x\",\"type\":\"rate\",\"value\":4}"),
                     RS_REASON_OK);
    assert_int_equal(feed(p, "{\"user\":7,\"item\":\"y\",\"type\":\"play\"}"), RS_REASON_OK);
    assert_int_equal(feed(p, "{\"user\":\"a\",\"item\":\"y\",\"type\":\"rate\",\"value\":9}"),
                     RS_REASON_OFF_SCALE);
    assert_int_equal(feed(p, "{\"user\":\"a\""), RS_REASON_MALFORMED);
    assert_int_equal(feed(p, "{\"item\":\"y\",\"type\":\"play\"}"), RS_REASON_MISSING_USER);

    st = rs_pipeline_stats(p);
    assert_int_equal(st->events_applied, 2);
    assert_int_equal(st->events_rejected, 3);
    assert_int_equal(st->rejected_by_reason[RS_REASON_OFF_SCALE], 1);
    assert_int_equal(st->rejected_by_reason[RS_REASON_MALFORMED], 1);
    assert_int_equal(st->rejected_by_reason[RS_REASON_MISSING_USER], 1);
    assert_int_equal(rs_idmap_count(rs_pipeline_users(p)), 2);
    assert_int_equal(rs_idmap_count(rs_pipeline_items(p)), 2);
    assert_int_equal(rs_model_events(rs_pipeline_model(p)), 2);
    assert_int_equal(rs_pipeline_dirty(p), 2);

    /* Without a sink, publishing drains the dirty set. */
    assert_int_equal(rs_pipeline_publish(p), RS_OK);
    assert_int_equal(rs_pipeline_dirty(p), 0);
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
}

static void test_integer_and_string_ids_are_the_same_user(void **state)
{
    char errstr[256];
    struct rs_config *conf = conf_with(NULL, NULL);
    struct rs_pipeline *p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    uint32_t idx;
    (void)state;

    assert_int_equal(feed(p, "{\"user\":42,\"item\":1,\"type\":\"play\"}"), RS_REASON_OK);
    assert_int_equal(feed(p, "{\"user\":\"42\",\"item\":\"1\",\"type\":\"play\"}"),
                     RS_REASON_OK);
    assert_int_equal(rs_idmap_count(rs_pipeline_users(p)), 1);
    assert_int_equal(rs_idmap_find(rs_pipeline_users(p), "42", 2, &idx), RS_OK);
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
}

static void test_capacity_bound_refuses_new_users_but_keeps_known_ones(void **state)
{
    char errstr[256], json[128];
    struct rs_config *conf = conf_with("model.max_users=3", "model.when_full=refuse");
    struct rs_pipeline *p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    (void)state;

    for (int u = 0; u < 5; u++) {
        snprintf(json, sizeof(json), "{\"user\":%d,\"item\":1,\"type\":\"play\"}", u);
        assert_int_equal(feed(p, json), RS_REASON_OK);
    }
    assert_int_equal(feed(p, "{\"user\":0,\"item\":2,\"type\":\"play\"}"), RS_REASON_OK);
    assert_int_equal(rs_idmap_count(rs_pipeline_users(p)), 3);
    assert_int_equal(rs_pipeline_stats(p)->events_over_capacity, 2);
    assert_int_equal(rs_pipeline_stats(p)->events_applied, 4);
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_events_are_applied_and_bad_ones_counted_by_reason),
        cmocka_unit_test(test_integer_and_string_ids_are_the_same_user),
        cmocka_unit_test(test_capacity_bound_refuses_new_users_but_keeps_known_ones),
    };
    rs_log_set_level(RS_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
