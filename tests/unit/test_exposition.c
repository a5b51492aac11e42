/*
 * test_exposition.c - the /metrics text reflects the pipeline: applied and
 * rejected counts (every reason present), model sizes, build info, snapshot
 * outcomes and the publish-duration histogram; the model thread's scheduler
 * times only where they are known.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "recstream/config.h"
#include "recstream/exposition.h"
#include "recstream/log.h"

/* The exposition text of p into b (replacing what b held), NUL-terminated. */
static void render(struct rs_buf *b, const struct rs_pipeline *p,
                   const struct rs_exposition_extra *extra)
{
    rs_buf_reset(b);
    assert_int_equal(rs_exposition_render(b, p, extra), RS_OK);
    assert_int_equal(rs_buf_append(b, "", 1), RS_OK);
}

static void test_counters_follow_the_events_fed(void **state)
{
    char errstr[256];
    struct rs_config *conf = rs_config_create();
    struct rs_pipeline *p;
    struct rs_kafka_lag lag = {"events", 3, 42};
    struct rs_kafka_stats kst = {7, 2, 5, 1, 3, 4, 1};
    struct rs_exposition_extra extra = {
        .start_time_ms = 1000, .lags = &lag, .lag_cnt = 1, .kafka = &kst};
    struct rs_buf b;
    const char *good = "{\"user\":\"a\",\"item\":\"x\",\"type\":\"play\"}";
    const char *good2 = "{\"user\":\"b\",\"item\":\"y\",\"type\":\"play\"}";
    const char *bad = "{\"user\":\"a\"";
    (void)state;

    assert_int_equal(rs_config_set(conf, "model.factors=4", errstr, sizeof(errstr)), RS_OK);
    p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    assert_non_null(p);
    rs_pipeline_handle(p, good, strlen(good), 1);
    rs_pipeline_handle(p, good2, strlen(good2), 1);
    rs_pipeline_handle(p, bad, strlen(bad), 1);

    rs_pipeline_note_snapshot(p, 1, 5000, 2000000);
    rs_pipeline_note_snapshot(p, 0, 6000, 1000000);
    rs_pipeline_note_snapshot_duration(p, 250000000);
    rs_buf_init(&b);
    render(&b, p, &extra);
    assert_non_null(strstr(b.data, "\nrecstream_events_applied_total 2\n"));
    assert_non_null(strstr(b.data, "\nrecstream_events_consumed_total 3\n"));
    assert_non_null(strstr(b.data, "\nrecstream_snapshot_duration_seconds 0.25\n"));
    assert_non_null(strstr(b.data, "\nrecstream_events_rejected_total{reason=\"malformed\"} 1\n"));
    assert_non_null(strstr(b.data, "\nrecstream_events_rejected_total{reason=\"bad_ts\"} 0\n"));
    assert_non_null(strstr(b.data, "\nrecstream_dead_letters_total{result=\"produced\"} 7\n"));
    assert_non_null(strstr(b.data, "\nrecstream_dead_letters_total{result=\"failed\"} 2\n"));
    assert_non_null(strstr(b.data, "\nrecstream_dead_letters_total{result=\"dropped\"} 5\n"));
    assert_non_null(strstr(b.data, "\nrecstream_dead_letters_pending 1\n"));
    assert_non_null(strstr(b.data, "\nrecstream_offset_commit_failures_total 3\n"));
    assert_non_null(strstr(b.data, "\nrecstream_consumer_pauses_total 4\n"));
    assert_non_null(strstr(b.data, "\nrecstream_consumer_paused 1\n"));
    assert_non_null(strstr(b.data, "\nrecstream_model_users 2\n"));
    assert_non_null(strstr(b.data, "\nrecstream_model_items 2\n"));
    assert_non_null(strstr(b.data, "\nrecstream_model_factors 4\n"));
    assert_non_null(strstr(b.data, "\nprocess_start_time_seconds 1\n"));
    assert_non_null(strstr(b.data, "recstream_build_info{version=\""));
    assert_non_null(strstr(b.data, "\nrecstream_snapshots_total{result=\"ok\"} 1\n"));
    assert_non_null(strstr(b.data, "\nrecstream_snapshots_total{result=\"failed\"} 1\n"));
    assert_non_null(strstr(b.data, "\nrecstream_snapshot_last_success_timestamp_seconds 5\n"));
    assert_non_null(strstr(b.data, "\nrecstream_snapshot_fork_max_seconds 0.002\n"));
    assert_non_null(strstr(b.data, "\nrecstream_publish_duration_seconds_count 0\n"));
    assert_non_null(strstr(b.data, "\nrecstream_live_checked_events_total 0\n"));
    assert_non_null(strstr(b.data, "\nrecstream_live_hits_total 0\n"));
    assert_non_null(strstr(b.data, "\nrecstream_live_hit_rate 0\n"));
    assert_non_null(strstr(b.data, "\nrecstream_consumer_lag{topic=\"events\",partition=\"3\"} 42\n"));
    assert_null(strstr(b.data, "recstream_model_thread_cpu"));

    extra.have_sched = 1;
    extra.model_run_ns = 2500000000u;
    extra.model_wait_ns = 500000000u;
    render(&b, p, &extra);
    assert_non_null(strstr(b.data, "\nrecstream_model_thread_cpu_seconds_total 2.5\n"));
    assert_non_null(strstr(b.data, "\nrecstream_model_thread_cpu_wait_seconds_total 0.5\n"));
    assert_non_null(strstr(b.data, "# TYPE recstream_model_thread_cpu_wait_seconds_total counter\n"));
    rs_buf_free(&b);
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_follow_the_events_fed),
    };
    rs_log_set_level(RS_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
