/*
 * exposition.c - renders the pipeline's state as Prometheus text. Counters
 * end in _total, sizes in _bytes, times in _seconds; rejected events carry
 * their reason as a label, with every reason present (at 0) so dashboards
 * can rely on the series existing.
 */
#include "recstream/exposition.h"

#include <math.h>
#include <stdio.h>

#include "recstream/event.h"
#include "recstream/metrics.h"
#include "recstream/model.h"

static rs_err_t counter(struct rs_buf *b, const char *name, const char *help, double v)
{
    rs_err_t err = rs_metrics_family(b, name, "counter", help);
    return err ? err : rs_metrics_sample(b, name, NULL, v);
}

static rs_err_t gauge(struct rs_buf *b, const char *name, const char *help, double v)
{
    rs_err_t err = rs_metrics_family(b, name, "gauge", help);
    return err ? err : rs_metrics_sample(b, name, NULL, v);
}

/* Bytes held by the model's parameter arrays. */
static double model_bytes(const struct rs_model *m)
{
    double k = rs_model_factors(m);
    return ((double)rs_model_users(m) + (double)rs_model_items(m)) * (k + 1) * sizeof(float);
}

/* The consumer's side jobs: dead letters, offset commits, back-pressure. */
static rs_err_t render_kafka(struct rs_buf *b, const struct rs_kafka_stats *k)
{
    rs_err_t err = rs_metrics_family(b, "recstream_dead_letters_total", "counter",
                                     "Bad messages copied to the dead-letter topic: "
                                     "acknowledged (produced), failed delivery attempts "
                                     "(each re-sent), dropped as too large for it.");
    if (!err)
        err = rs_metrics_sample(b, "recstream_dead_letters_total", "result=\"produced\"",
                                (double)k->dead_letters_produced);
    if (!err)
        err = rs_metrics_sample(b, "recstream_dead_letters_total", "result=\"failed\"",
                                (double)k->dead_letters_failed);
    if (!err)
        err = rs_metrics_sample(b, "recstream_dead_letters_total", "result=\"dropped\"",
                                (double)k->dead_letters_dropped);
    if (!err)
        err = gauge(b, "recstream_dead_letters_pending",
                    "Dead letters not acknowledged by the broker yet (snapshots wait).",
                    (double)k->dead_letters_pending);
    if (!err)
        err = counter(b, "recstream_offset_commit_failures_total",
                      "Kafka offset commits that failed (each retried).",
                      (double)k->commits_failed);
    if (!err)
        err = counter(b, "recstream_consumer_pauses_total",
                      "Times consumption was paused for back-pressure.", (double)k->pauses);
    if (!err)
        err = gauge(b, "recstream_consumer_paused",
                    "1 while consumption is paused for back-pressure.", (double)k->paused);
    return err;
}

rs_err_t rs_exposition_render(struct rs_buf *b, const struct rs_pipeline *p,
                              const struct rs_exposition_extra *extra)
{
    const struct rs_pipeline_stats *st = rs_pipeline_stats(p);
    const struct rs_model *m = rs_pipeline_model(p);
    const struct rs_pipeline_ops *ops = rs_pipeline_ops(p);
    rs_err_t err = RS_OK;
    char labels[64];

    err = rs_metrics_family(b, "recstream_build_info", "gauge", "Version of recstream.");
    if (!err) err = rs_metrics_sample(b, "recstream_build_info", "version=\"" RS_VERSION "\"", 1);
    if (!err)
        err = gauge(b, "process_start_time_seconds", "Start time of the process since the epoch.",
                    (double)extra->start_time_ms / 1000.0);
    if (!err)
        err = counter(b, "recstream_events_consumed_total",
                      "Events read from the source since start: applied, rejected or "
                      "refused for capacity.",
                      (double)ops->events_consumed);
    if (!err)
        err = counter(b, "recstream_events_applied_total", "Events applied to the model.",
                      (double)st->events_applied);
    if (!err)
        err = rs_metrics_family(b, "recstream_events_rejected_total", "counter",
                                "Events refused as bad input, by reason.");
    for (int r = 1; r < RS_REASON_COUNT && !err; r++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"",
                 rs_event_reason_str((enum rs_event_reason)r));
        err = rs_metrics_sample(b, "recstream_events_rejected_total", labels,
                                (double)st->rejected_by_reason[r]);
    }
    if (!err)
        err = counter(b, "recstream_events_over_capacity_total",
                      "Events dropped because max_users or max_items was reached.",
                      (double)st->events_over_capacity);
    if (!err)
        err = counter(b, "recstream_lists_published_total", "Top-N lists written to Redis.",
                      (double)st->lists_published);
    if (!err)
        err = counter(b, "recstream_lists_deleted_total",
                      "Top-N lists deleted from Redis (users without history).",
                      (double)st->lists_deleted);
    if (!err)
        err = counter(b, "recstream_publish_errors_total",
                      "Publish rounds that failed (Redis errors); their users stay dirty.",
                      (double)st->publish_errors);
    if (!err)
        err = gauge(b, "recstream_dirty_users",
                    "Users waiting for their list to be published (dirty, or in a batch "
                    "Redis has not acknowledged).",
                    (double)rs_pipeline_dirty(p));
    if (!err)
        err = gauge(b, "recstream_publish_batches_queued",
                    "Batches of lists waiting for the Redis writer thread (of "
                    "recstream_publish_batches_max).",
                    (double)rs_pipeline_publish_queued(p));
    if (!err)
        err = gauge(b, "recstream_publish_batches_max",
                    "Batches the Redis writer's queue holds at most.",
                    (double)rs_pipeline_publish_slots(p));
    if (!err)
        err = gauge(b, "recstream_model_users", "Users in the model.",
                    (double)rs_idmap_count(rs_pipeline_users(p)));
    if (!err)
        err = gauge(b, "recstream_model_items", "Items in the model.",
                    (double)rs_idmap_count(rs_pipeline_items(p)));
    if (!err)
        err = gauge(b, "recstream_model_bytes", "Bytes held by the model's factors and biases.",
                    model_bytes(m));
    if (!err)
        err = gauge(b, "recstream_model_factors", "Latent factors per user and item (k).",
                    (double)rs_model_factors(m));
    if (!err)
        err = counter(b, "recstream_similar_lists_published_total",
                      "Similar-items lists (rs:sim) written to Redis.",
                      (double)st->sim_lists_published);
    if (!err)
        err = counter(b, "recstream_users_evicted_total",
                      "Users dropped as idle or least recent (model.when_full, idle_user_ttl_s).",
                      (double)st->users_evicted);
    if (!err)
        err = rs_metrics_histogram(b, "recstream_event_lag_seconds",
                                   "Per event: from its Kafka timestamp to being applied.",
                                   &ops->event_lag_seconds);
    if (!err)
        err = rs_metrics_histogram(b, "recstream_dirty_wait_seconds",
                                   "Per batch of users: how long its oldest user waited "
                                   "in the dirty set to be ranked.",
                                   &ops->dirty_wait_seconds);
    if (!err)
        err = rs_metrics_histogram(b, "recstream_rank_seconds",
                                   "Per batch of users: ranking and encoding their lists.",
                                   &ops->rank_seconds);
    if (!err)
        err = rs_metrics_histogram(b, "recstream_publish_duration_seconds",
                                   "Per batch: from being handed to the Redis writer to "
                                   "Redis acknowledging every command in it.",
                                   &ops->publish_seconds);
    if (!err)
        err = rs_metrics_family(b, "recstream_snapshots_total", "counter",
                                "Snapshots taken, by result.");
    if (!err)
        err = rs_metrics_sample(b, "recstream_snapshots_total", "result=\"ok\"",
                                (double)ops->snapshots_written);
    if (!err)
        err = rs_metrics_sample(b, "recstream_snapshots_total", "result=\"failed\"",
                                (double)ops->snapshots_failed);
    if (!err)
        err = gauge(b, "recstream_snapshot_last_success_timestamp_seconds",
                    "When the last good snapshot was written (0: none yet).",
                    (double)ops->last_snapshot_ms / 1000.0);
    if (!err)
        err = gauge(b, "recstream_training_rmse",
                    "Moving average (about the last 1000 ratings) of the rating error "
                    "before each SGD step: prequential RMSE on live traffic.",
                    ops->rated ? sqrt(ops->sq_err_ema) : 0.0);
    if (!err)
        err = counter(b, "recstream_live_checked_events_total",
                      "Events of users who had been served a list (denominator of the "
                      "online hit rate).",
                      (double)ops->hit_checks);
    if (!err)
        err = counter(b, "recstream_live_hits_total",
                      "Events whose item was on the list last published for the user.",
                      (double)ops->hits);
    if (!err)
        err = gauge(b, "recstream_live_hit_rate",
                    "Online hit rate since start: live_hits_total / "
                    "live_checked_events_total (0 before any check).",
                    ops->hit_checks ? (double)ops->hits / (double)ops->hit_checks : 0.0);
    if (!err && extra->have_sched)
        err = counter(b, "recstream_model_thread_cpu_seconds_total",
                      "CPU time of the model's thread (consumes, applies, ranks, encodes).",
                      (double)extra->model_run_ns / 1e9);
    if (!err && extra->have_sched)
        err = counter(b, "recstream_model_thread_cpu_wait_seconds_total",
                      "Time the model's thread was ready to run but waited for a CPU "
                      "(other processes or threads had the cores): when it grows by "
                      "a large share of a second per second, recstream is short of CPU "
                      "rather than slow.",
                      (double)extra->model_wait_ns / 1e9);
    if (!err && extra->lag_cnt > 0) {
        err = rs_metrics_family(b, "recstream_consumer_lag", "gauge",
                                "Messages in an assigned partition not consumed yet "
                                "(-1: not known yet).");
        for (size_t l = 0; l < extra->lag_cnt && !err; l++) {
            char lab[192];
            snprintf(lab, sizeof(lab), "topic=\"%s\",partition=\"%d\"", extra->lags[l].topic,
                     extra->lags[l].partition);
            err = rs_metrics_sample(b, "recstream_consumer_lag", lab,
                                    (double)extra->lags[l].lag);
        }
    }
    if (!err && extra->kafka) err = render_kafka(b, extra->kafka);
    if (!err)
        err = gauge(b, "recstream_snapshot_duration_seconds",
                    "Time the last good background snapshot took, fork to durable file.",
                    (double)ops->snapshot_last_ns / 1e9);
    if (!err)
        err = gauge(b, "recstream_snapshot_fork_max_seconds",
                    "Longest ingestion stall (the fork) taking a snapshot.",
                    (double)ops->fork_max_ns / 1e9);
    return err;
}
