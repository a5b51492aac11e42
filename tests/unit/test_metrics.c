/*
 * test_metrics.c - the /metrics endpoint over a real loopback socket: it
 * serves the latest published text, answers 404 elsewhere, and refuses a bad
 * listen address; the text builders write valid exposition lines, and a
 * histogram's buckets are cumulative.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "recstream/metrics.h"

/* GETs path from 127.0.0.1:port; returns the whole response in out. */
static void http_get(int port, const char *path, char *out, size_t size)
{
    struct sockaddr_in sa = {0};
    char req[256];
    size_t got = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (got + 1 < size && (n = read(fd, out + got, size - 1 - got)) > 0) got += (size_t)n;
    out[got] = '\0';
    close(fd);
}

static void test_serves_the_latest_published_text(void **state)
{
    char errstr[128], resp[4096];
    struct rs_metrics *m = rs_metrics_create("127.0.0.1:0", errstr, sizeof(errstr));
    (void)state;
    assert_non_null(m);
    assert_true(rs_metrics_port(m) > 0);

    assert_int_equal(rs_metrics_publish(m, "a_total 1\n", 10), RS_OK);
    http_get(rs_metrics_port(m), "/metrics", resp, sizeof(resp));
    assert_non_null(strstr(resp, "200 OK"));
    assert_non_null(strstr(resp, "a_total 1\n"));

    assert_int_equal(rs_metrics_publish(m, "a_total 2\n", 10), RS_OK);
    http_get(rs_metrics_port(m), "/metrics", resp, sizeof(resp));
    assert_non_null(strstr(resp, "a_total 2\n"));
    assert_null(strstr(resp, "a_total 1\n"));

    http_get(rs_metrics_port(m), "/other", resp, sizeof(resp));
    assert_non_null(strstr(resp, "404"));
    rs_metrics_destroy(m);
}

static void test_bad_listen_addresses_are_refused(void **state)
{
    char errstr[128];
    (void)state;
    assert_null(rs_metrics_create("nonsense", errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "host:port"));
    assert_null(rs_metrics_create("127.0.0.1:99999", errstr, sizeof(errstr)));
    assert_null(rs_metrics_create("127.0.0.1:x", errstr, sizeof(errstr)));
}

static void test_text_builders_and_cumulative_histogram(void **state)
{
    struct rs_buf b;
    struct rs_histogram h;
    (void)state;
    memset(&h, 0, sizeof(h));
    rs_buf_init(&b);
    assert_int_equal(rs_metrics_family(&b, "x_total", "counter", "Things."), RS_OK);
    assert_int_equal(rs_metrics_sample(&b, "x_total", "reason=\"bad\"", 3), RS_OK);
    assert_int_equal(rs_metrics_sample(&b, "y", NULL, 0.5), RS_OK);
    rs_histogram_observe(&h, 0.0005); /* first bucket */
    rs_histogram_observe(&h, 0.02);   /* le 0.025 */
    rs_histogram_observe(&h, 60);     /* +Inf only */
    assert_int_equal(rs_metrics_histogram(&b, "lat_seconds", "Latency.", &h), RS_OK);
    assert_int_equal(rs_buf_append(&b, "", 1), RS_OK);
    assert_non_null(strstr(b.data, "# HELP x_total Things.\n# TYPE x_total counter\n"));
    assert_non_null(strstr(b.data, "x_total{reason=\"bad\"} 3\n"));
    assert_non_null(strstr(b.data, "y 0.5\n"));
    assert_non_null(strstr(b.data, "lat_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(b.data, "lat_seconds_bucket{le=\"0.01\"} 1\n"));
    assert_non_null(strstr(b.data, "lat_seconds_bucket{le=\"0.025\"} 2\n"));
    assert_non_null(strstr(b.data, "lat_seconds_bucket{le=\"10\"} 2\n"));
    assert_non_null(strstr(b.data, "lat_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(b.data, "lat_seconds_count 3\n"));
    rs_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serves_the_latest_published_text),
        cmocka_unit_test(test_bad_listen_addresses_are_refused),
        cmocka_unit_test(test_text_builders_and_cumulative_histogram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
