/*
 * metrics.h - Prometheus metrics over HTTP ([metrics] listen). The thread that
 * owns the model renders the exposition text now and then (a second is
 * plenty) and hands it over with rs_metrics_publish; the HTTP server's own
 * thread serves the latest text on GET /metrics. No counter is shared between
 * threads, so ingestion never takes a lock per event. The text builders
 * below write the exposition format (# HELP, # TYPE, samples with labels).
 */
#ifndef RECSTREAM_METRICS_H
#define RECSTREAM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/listfmt.h"

struct rs_metrics;

/*
 * Starts an HTTP server on listen ("host:port"; port 0 picks a free one).
 * NULL with errstr filled if the address is bad or cannot be bound.
 */
struct rs_metrics *rs_metrics_create(const char *listen, char *errstr, size_t errstr_size);

/* Stops the server and frees; NULL is a no-op. */
void rs_metrics_destroy(struct rs_metrics *m);

/* The port the server listens on. */
int rs_metrics_port(const struct rs_metrics *m);

/* Replaces the text served on /metrics (copied). RS_OK or RS_ENOMEM. */
rs_err_t rs_metrics_publish(struct rs_metrics *m, const char *text, size_t len);

/* Appends "# HELP name help\n# TYPE name type\n" (type: counter, gauge, histogram). */
rs_err_t rs_metrics_family(struct rs_buf *b, const char *name, const char *type,
                           const char *help);

/*
 * Appends one sample line: name{labels} value. labels is the text between the
 * braces ("reason=\"malformed\"") or NULL for none.
 */
rs_err_t rs_metrics_sample(struct rs_buf *b, const char *name, const char *labels,
                           double value);

/*
 * A cumulative histogram with fixed upper bounds (seconds), filled by the
 * owner thread and rendered with rs_metrics_histogram.
 */
#define RS_METRICS_BUCKETS 12

struct rs_histogram {
    uint64_t counts[RS_METRICS_BUCKETS + 1]; /* last: +Inf */
    double sum;
    uint64_t count;
};

/* The bucket bounds: 1 ms to 10 s. */
extern const double rs_metrics_bounds[RS_METRICS_BUCKETS];

void rs_histogram_observe(struct rs_histogram *h, double seconds);
rs_err_t rs_metrics_histogram(struct rs_buf *b, const char *name, const char *help,
                              const struct rs_histogram *h);

#endif
