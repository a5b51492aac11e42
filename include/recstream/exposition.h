/*
 * exposition.h - what recstream reports on /metrics: the pipeline's counters
 * and sizes rendered as Prometheus text with standard names and units
 * (`recstream_*_total`, `_seconds`, `_bytes`). Called by the model's thread;
 * the result is handed to rs_metrics_publish.
 */
#ifndef RECSTREAM_EXPOSITION_H
#define RECSTREAM_EXPOSITION_H

#include <stdint.h>

#include "recstream/common.h"
#include "recstream/kafka.h"
#include "recstream/listfmt.h"
#include "recstream/pipeline.h"

/* Process-level facts the pipeline does not hold. */
struct rs_exposition_extra {
    int64_t start_time_ms;           /* process start, wall clock */
    const struct rs_kafka_lag *lags; /* per assigned partition, or NULL */
    size_t lag_cnt;
    const struct rs_kafka_stats *kafka; /* dead letters, commits, pauses; or NULL */
    int have_sched;                     /* the two below are known (rs_thread_sched_ns) */
    uint64_t model_run_ns, model_wait_ns; /* the model's thread: on a CPU, waiting for one */
};

/* Appends the whole exposition text for p to b. RS_OK or RS_ENOMEM. */
rs_err_t rs_exposition_render(struct rs_buf *b, const struct rs_pipeline *p,
                              const struct rs_exposition_extra *extra);

#endif
