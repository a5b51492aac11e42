/*
 * metrics.c - the /metrics endpoint, served by libmicrohttpd from its own
 * thread. The only state shared with the model's thread is one text buffer
 * behind a mutex: the owner renders and swaps it in, the server copies it
 * into each response. Anything but GET /metrics is answered 404.
 */
#include "recstream/metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/log.h"

const double rs_metrics_bounds[RS_METRICS_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

struct rs_metrics {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;
    char *text;
    size_t len;
    int port;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version,
                              const char *upload_data, size_t *upload_data_size,
                              void **con_cls)
{
    struct rs_metrics *m = cls;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    unsigned int status = MHD_HTTP_OK;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;

    if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0) {
        static const char nf[] = "not found: try GET /metrics\n";
        resp = MHD_create_response_from_buffer(sizeof(nf) - 1, (void *)nf,
                                               MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_FOUND;
    } else {
        pthread_mutex_lock(&m->lock);
        resp = MHD_create_response_from_buffer(m->len, m->text ? m->text : "",
                                               MHD_RESPMEM_MUST_COPY);
        pthread_mutex_unlock(&m->lock);
    }
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Splits "host:port" and resolves host to an IPv4 address. */
static int parse_listen(const char *listen, struct sockaddr_in *sa, char *errstr,
                        size_t errstr_size)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    char *end;
    long port;
    struct addrinfo hints, *res = NULL;

    if (!colon || (size_t)(colon - listen) >= sizeof(host)) goto bad;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535) goto bad;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    if (getaddrinfo(*host ? host : "0.0.0.0", NULL, &hints, &res) != 0 || !res) {
        snprintf(errstr, errstr_size, "metrics listen %s: cannot resolve '%s'", listen,
                 host);
        return -1;
    }
    memcpy(sa, res->ai_addr, sizeof(*sa));
    sa->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
bad:
    snprintf(errstr, errstr_size, "metrics listen '%s': expected host:port", listen);
    return -1;
}

struct rs_metrics *rs_metrics_create(const char *listen, char *errstr, size_t errstr_size)
{
    struct rs_metrics *m;
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;

    if (parse_listen(listen, &sa, errstr, errstr_size)) return NULL;
    m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
                                 NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned int)10, MHD_OPTION_END);
    if (!m->daemon) {
        snprintf(errstr, errstr_size, "metrics: cannot listen on %s", listen);
        rs_metrics_destroy(m);
        return NULL;
    }
    info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : ntohs(sa.sin_port);
    rs_info("metrics: serving http://%s:%d/metrics", inet_ntoa(sa.sin_addr), m->port);
    return m;
}

void rs_metrics_destroy(struct rs_metrics *m)
{
    if (!m) return;
    if (m->daemon) MHD_stop_daemon(m->daemon);
    pthread_mutex_destroy(&m->lock);
    free(m->text);
    free(m);
}

int rs_metrics_port(const struct rs_metrics *m)
{
    return m->port;
}

rs_err_t rs_metrics_publish(struct rs_metrics *m, const char *text, size_t len)
{
    char *copy = malloc(len + 1), *old;
    if (!copy) return RS_ENOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    pthread_mutex_lock(&m->lock);
    old = m->text;
    m->text = copy;
    m->len = len;
    pthread_mutex_unlock(&m->lock);
    free(old);
    return RS_OK;
}

static rs_err_t appendf(struct rs_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static rs_err_t appendf(struct rs_buf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line)) return RS_EINVAL;
    return rs_buf_append(b, line, (size_t)n);
}

rs_err_t rs_metrics_family(struct rs_buf *b, const char *name, const char *type,
                           const char *help)
{
    return appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

rs_err_t rs_metrics_sample(struct rs_buf *b, const char *name, const char *labels,
                           double value)
{
    if (labels && *labels) return appendf(b, "%s{%s} %.17g\n", name, labels, value);
    return appendf(b, "%s %.17g\n", name, value);
}

void rs_histogram_observe(struct rs_histogram *h, double seconds)
{
    int i = 0;
    while (i < RS_METRICS_BUCKETS && seconds > rs_metrics_bounds[i]) i++;
    h->counts[i]++;
    h->sum += seconds;
    h->count++;
}

rs_err_t rs_metrics_histogram(struct rs_buf *b, const char *name, const char *help,
                              const struct rs_histogram *h)
{
    uint64_t cumulative = 0;
    rs_err_t err = rs_metrics_family(b, name, "histogram", help);
    for (int i = 0; i <= RS_METRICS_BUCKETS && !err; i++) {
        cumulative += h->counts[i];
        if (i < RS_METRICS_BUCKETS)
            err = appendf(b, "%s_bucket{le=\"%g\"} %llu\n", name, rs_metrics_bounds[i],
                          (unsigned long long)cumulative);
        else
            err = appendf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                          (unsigned long long)cumulative);
    }
    if (!err) err = appendf(b, "%s_sum %.17g\n%s_count %llu\n", name, h->sum, name,
                            (unsigned long long)h->count);
    return err;
}
