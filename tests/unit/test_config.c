/*
 * test_config.c - the config module: defaults, a file setting every section,
 * each kind of bad input refused with its "file:line:" and a word that says
 * why, ${ENV} expansion, quotes and comments, --set overrides (dotted Kafka
 * keys included), pass-through properties with their origin, and the shipped
 * config/recstream.conf (found through RS_SOURCE_DIR).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "recstream/config.h"
#include "recstream/log.h"

#define TMP_TEMPLATE "/tmp/rs_test_config_XXXXXX"

/* Writes text to a new temp file; path must hold sizeof(TMP_TEMPLATE). */
static void write_file(char *path, const char *text)
{
    size_t len = strlen(text);
    int fd;

    strcpy(path, TMP_TEMPLATE);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Loads text over the defaults; the file is removed before returning. */
static rs_err_t load_text(const char *text, struct rs_config **conf, char *path,
                          char *errstr, size_t errstr_size)
{
    rs_err_t err;

    *conf = rs_config_create();
    assert_non_null(*conf);
    write_file(path, text);
    errstr[0] = '\0';
    err = rs_config_load(*conf, path, errstr, errstr_size);
    unlink(path);
    return err;
}

/* text must fail with want, at line, with word in the message. */
static void expect_load_error(const char *text, rs_err_t want, int line, const char *word)
{
    char path[sizeof(TMP_TEMPLATE)], errstr[512], prefix[64];
    struct rs_config *conf;
    rs_err_t err = load_text(text, &conf, path, errstr, sizeof(errstr));

    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    if (err != want) fail_msg("error %d (%s), expected %d: %s", err, errstr, want, text);
    if (strncmp(errstr, prefix, strlen(prefix)) != 0)
        fail_msg("'%s' does not start with '%s'", errstr, prefix);
    if (!strstr(errstr, word)) fail_msg("'%s' does not mention '%s'", errstr, word);
    rs_config_destroy(conf);
}

/* text must load; returns the config for checks. */
static struct rs_config *expect_load_ok(const char *text)
{
    char path[sizeof(TMP_TEMPLATE)], errstr[512];
    struct rs_config *conf;
    rs_err_t err = load_text(text, &conf, path, errstr, sizeof(errstr));

    if (err != RS_OK) fail_msg("load failed (%d): %s", err, errstr);
    return conf;
}

static void test_defaults_match_documented_values(void **state)
{
    struct rs_config *conf = rs_config_create();
    (void)state;

    assert_non_null(conf);
    assert_null(conf->path);
    assert_string_equal(conf->brokers, "embedded");
    assert_int_equal(conf->topic_cnt, 1);
    assert_string_equal(conf->topics[0], "recstream-events");
    assert_string_equal(conf->group_id, "recstream");
    assert_string_equal(conf->dead_letter_topic, "");
    assert_int_equal(conf->embedded_partitions, 4);
    assert_int_equal(conf->kafka_prop_cnt, 0);
    assert_string_equal(conf->redis_host, "127.0.0.1");
    assert_int_equal(conf->redis_port, 6379);
    assert_string_equal(conf->redis_password, "");
    assert_int_equal(conf->redis_db, 0);
    assert_string_equal(conf->redis_prefix, "rs:");
    assert_int_equal(conf->redis_format, RS_FORMAT_JSON);
    assert_int_equal(conf->redis_ttl_s, 0);
    assert_int_equal(conf->publish_interval_ms, 100);
    assert_int_equal(conf->factors, 64);
    assert_true(conf->learning_rate == 0.045);
    assert_true(conf->regularization == 0.1);
    assert_true(conf->init_std == 0.05);
    assert_true(conf->rating_min == 1.0);
    assert_true(conf->rating_max == 5.0);
    assert_int_equal(conf->negatives, 4);
    assert_true(conf->seed == 42);
    assert_int_equal(conf->max_users, 10000000);
    assert_int_equal(conf->max_items, 1000000);
    assert_int_equal(conf->neighbors_k, 20);
    assert_int_equal(conf->neighbors_window, 20);
    assert_true(conf->neighbors_half_life_s == 315360000.0);
    assert_true(conf->neighbors_shrink == 2.0);
    assert_true(conf->neighbors_backward_weight == 0.25);
    assert_true(conf->neighbors_gap_decay == 0.1);
    assert_true(conf->popularity_half_life_s == 604800.0);
    assert_int_equal(conf->top_n, 20);
    assert_true(conf->mf_weight == 0.02);
    assert_true(conf->neighbor_weight == 1.0);
    assert_true(conf->popularity_weight == 0.025);
    assert_true(conf->recency_decay == 0.1);
    assert_int_equal(conf->neighbor_list_max_age_ms, 250);
    assert_true(conf->neighbor_list_max_events == 0);
    assert_string_equal(conf->snapshot_dir, "./snapshots");
    assert_int_equal(conf->snapshot_interval_s, 60);
    assert_true(conf->snapshot_every_events == 0);
    assert_int_equal(conf->snapshot_keep, 3);
    assert_string_equal(conf->metrics_listen, "127.0.0.1:9464");
    assert_int_equal(conf->log_level, RS_LOG_INFO);
    assert_int_equal(rs_config_check(conf, NULL, 0), RS_OK);
    rs_config_destroy(conf);
}

static void test_destroy_null_is_noop(void **state)
{
    (void)state;
    rs_config_destroy(NULL);
}

static void test_loads_file_with_every_section(void **state)
{
    struct rs_config *conf;
    (void)state;

    conf = expect_load_ok("; a comment\n"
                          "# another\n"
                          "\n"
                          "[kafka]\n"
                          "brokers = k1:9092,k2:9092\n"
                          "topics = plays, rates ,skips\n"
                          "group.id = g1\n"
                          "dead_letter_topic = bad\n"
                          "embedded.partitions = 64\n"
                          "[redis]\n"
                          "host = redis.local\n"
                          "port = 6380\n"
                          "password = pw\n"
                          "db = 15\n"
                          "prefix = x:\n"
                          "format = zset\n"
                          "ttl_s = 31536000\n"
                          "publish_interval_ms = 60000\n"
                          "[model]\n"
                          "factors = 1024\n"
                          "learning_rate = 1\n"
                          "regularization = 0\n"
                          "init_std = 0.5\n"
                          "rating_min = 0.5\n"
                          "rating_max = 10\n"
                          "negatives = 0\n"
                          "seed = 18446744073709551615\n"
                          "max_users = 2147483648\n"
                          "max_items = 1\n"
                          "[neighbors]\n"
                          "k = 1000\n"
                          "window = 1\n"
                          "half_life_s = 0.5\n"
                          "[ranking]\n"
                          "top_n = 1\n"
                          "mf_weight = 0\n"
                          "neighbor_weight = 1000\n"
                          "popularity_weight = 0.25\n"
                          "recency_decay = 0.99\n"
                          "[snapshot]\n"
                          "dir = /var/lib/recstream\n"
                          "interval_s = 0\n"
                          "every_events = 9223372036854775807\n"
                          "keep = 1000\n"
                          "[metrics]\n"
                          "listen = 127.0.0.1:9100\n"
                          "[log]\n"
                          "level = debug\n");
    assert_non_null(conf->path);
    assert_string_equal(conf->brokers, "k1:9092,k2:9092");
    assert_int_equal(conf->topic_cnt, 3);
    assert_string_equal(conf->topics[0], "plays");
    assert_string_equal(conf->topics[1], "rates");
    assert_string_equal(conf->topics[2], "skips");
    assert_string_equal(conf->group_id, "g1");
    assert_string_equal(conf->dead_letter_topic, "bad");
    assert_int_equal(conf->embedded_partitions, 64);
    assert_int_equal(conf->kafka_prop_cnt, 0);
    assert_string_equal(conf->redis_host, "redis.local");
    assert_int_equal(conf->redis_port, 6380);
    assert_string_equal(conf->redis_password, "pw");
    assert_int_equal(conf->redis_db, 15);
    assert_string_equal(conf->redis_prefix, "x:");
    assert_int_equal(conf->redis_format, RS_FORMAT_ZSET);
    assert_int_equal(conf->redis_ttl_s, 31536000);
    assert_int_equal(conf->publish_interval_ms, 60000);
    assert_int_equal(conf->factors, 1024);
    assert_true(conf->learning_rate == 1.0);
    assert_true(conf->regularization == 0.0);
    assert_true(conf->init_std == 0.5);
    assert_true(conf->rating_min == 0.5);
    assert_true(conf->rating_max == 10.0);
    assert_int_equal(conf->negatives, 0);
    assert_true(conf->seed == UINT64_MAX);
    assert_true(conf->max_users == 2147483648u);
    assert_int_equal(conf->max_items, 1);
    assert_int_equal(conf->neighbors_k, 1000);
    assert_int_equal(conf->neighbors_window, 1);
    assert_true(conf->neighbors_half_life_s == 0.5);
    assert_int_equal(conf->top_n, 1);
    assert_true(conf->mf_weight == 0.0);
    assert_true(conf->neighbor_weight == 1000.0);
    assert_true(conf->popularity_weight == 0.25);
    assert_true(conf->recency_decay == 0.99);
    assert_string_equal(conf->snapshot_dir, "/var/lib/recstream");
    assert_int_equal(conf->snapshot_interval_s, 0);
    assert_true(conf->snapshot_every_events == INT64_MAX);
    assert_int_equal(conf->snapshot_keep, 1000);
    assert_string_equal(conf->metrics_listen, "127.0.0.1:9100");
    assert_int_equal(conf->log_level, RS_LOG_DEBUG);
    rs_config_destroy(conf);
}

static void test_rejects_unknown_key(void **state)
{
    (void)state;
    expect_load_error("[model]\nfactors = 8\nfactor = 8\n", RS_EINVAL, 3, "unknown key");
    expect_load_error("[model]\nfactor = 8\n", RS_EINVAL, 2, "did you mean 'factors'");
    expect_load_error("[redis]\nprot = 1\n", RS_EINVAL, 2, "did you mean 'port'");
    expect_load_error("[redis]\nsomething = 1\n", RS_EINVAL, 2,
                      "unknown key 'something'");
}

static void test_rejects_unknown_section(void **state)
{
    (void)state;
    expect_load_error("[model]\nfactors = 8\n[modle]\nfactors = 8\n", RS_EINVAL, 3,
                      "unknown section");
    /* reported at the header even when the section holds no key */
    expect_load_error("[log]\n\n[nope]\n", RS_EINVAL, 3, "[nope]");
}

static void test_rejects_key_outside_section(void **state)
{
    (void)state;
    expect_load_error("factors = 8\n", RS_EPARSE, 1, "outside");
}

static void test_rejects_value_below_range(void **state)
{
    (void)state;
    expect_load_error("[model]\nfactors = 0\n", RS_EINVAL, 2, "out of range [1, 1024]");
    expect_load_error("[redis]\nport = -1\n", RS_EINVAL, 2, "out of range");
    expect_load_error("[model]\nlearning_rate = 0\n", RS_EINVAL, 2,
                      "out of range (0, 1]");
    expect_load_error("[neighbors]\nhalf_life_s = -3\n", RS_EINVAL, 2, "out of range");
    expect_load_error("[ranking]\nneighbor_list_max_age_ms = 60001\n", RS_EINVAL, 2,
                      "out of range [0, 60000]");
    expect_load_error("[ranking]\nneighbor_list_max_events = -1\n", RS_EINVAL, 2,
                      "out of range");
    expect_load_error("[ranking]\nrecency_decay = 1\n", RS_EINVAL, 2,
                      "out of range [0, 0.99]");
    expect_load_error("[ranking]\nrecency_decay = -0.1\n", RS_EINVAL, 2, "out of range");
    expect_load_error("[model]\nseed = -1\n", RS_EINVAL, 2, "out of range");
}

static void test_rejects_value_above_range(void **state)
{
    (void)state;
    expect_load_error("[model]\nfactors = 1025\n", RS_EINVAL, 2,
                      "out of range [1, 1024]");
    expect_load_error("[redis]\n\n\ndb = 16\n", RS_EINVAL, 4, "out of range [0, 15]");
    expect_load_error("[model]\nmax_users = 2147483649\n", RS_EINVAL, 2, "out of range");
    expect_load_error("[ranking]\nmf_weight = 1000.5\n", RS_EINVAL, 2, "out of range");
    expect_load_error("[kafka]\nembedded.partitions = 65\n", RS_EINVAL, 2,
                      "out of range");
}

static void test_rejects_integer_overflow(void **state)
{
    (void)state;
    expect_load_error("[model]\nfactors = 99999999999999999999\n", RS_EINVAL, 2,
                      "out of range");
    expect_load_error("[snapshot]\nevery_events = 9223372036854775808\n", RS_EINVAL, 2,
                      "out of range");
    expect_load_error("[model]\nseed = 18446744073709551616\n", RS_EINVAL, 2,
                      "out of range");
    expect_load_error("[model]\ninit_std = 1e999\n", RS_EINVAL, 2, "out of range");
}

static void test_rejects_value_that_is_not_a_number(void **state)
{
    (void)state;
    expect_load_error("[model]\nfactors = many\n", RS_EPARSE, 2, "not a number");
    expect_load_error("[model]\nfactors =\n", RS_EPARSE, 2, "not a number");
    expect_load_error("[model]\nlearning_rate = fast\n", RS_EPARSE, 2, "not a number");
    expect_load_error("[model]\nlearning_rate = nan\n", RS_EPARSE, 2,
                      "not a finite number");
    expect_load_error("[neighbors]\nhalf_life_s = inf\n", RS_EPARSE, 2, "finite");
}

static void test_rejects_trailing_garbage(void **state)
{
    (void)state;
    expect_load_error("[model]\nfactors = 12x\n", RS_EPARSE, 2, "trailing garbage");
    expect_load_error("[model]\nlearning_rate = 0.1.2\n", RS_EPARSE, 2,
                      "trailing garbage");
    expect_load_error("[model]\nseed = 42s\n", RS_EPARSE, 2, "trailing garbage");
    expect_load_error("[redis]\nttl_s = 1e3\n", RS_EPARSE, 2, "trailing garbage");
}

static void test_rejects_bad_enum(void **state)
{
    (void)state;
    expect_load_error("[redis]\nformat = xml\n", RS_EINVAL, 2, "json|msgpack|zset");
    expect_load_error("[log]\nlevel = verbose\n", RS_EINVAL, 2, "error|warn|info|debug");
}

static void test_accepts_enum_in_any_case(void **state)
{
    struct rs_config *conf =
        expect_load_ok("[redis]\nformat = MsgPack\n[log]\nlevel = WARN\n");
    (void)state;

    assert_int_equal(conf->redis_format, RS_FORMAT_MSGPACK);
    assert_int_equal(conf->log_level, RS_LOG_WARN);
    rs_config_destroy(conf);
}

static void test_rejects_unset_environment_variable(void **state)
{
    (void)state;
    unsetenv("RS_TEST_SURELY_UNSET");
    expect_load_error("[redis]\npassword = ${RS_TEST_SURELY_UNSET}\n", RS_EINVAL, 2,
                      "environment variable RS_TEST_SURELY_UNSET is not set");
    expect_load_error("[redis]\npassword = ${RS_TEST\n", RS_EPARSE, 2, "unterminated");
    expect_load_error("[redis]\npassword = ${}\n", RS_EPARSE, 2, "bad environment");
}

static void test_missing_file_is_io_error_with_reason(void **state)
{
    struct rs_config *conf = rs_config_create();
    char errstr[256];
    (void)state;

    assert_int_equal(
        rs_config_load(conf, "/tmp/rs_test_config_no_such_file", errstr, sizeof(errstr)),
        RS_EIO);
    assert_non_null(strstr(errstr, "/tmp/rs_test_config_no_such_file: "));
    assert_non_null(strstr(errstr, "No such file"));
    assert_null(conf->path);
    rs_config_destroy(conf);
}

static void test_directory_is_io_error(void **state)
{
    struct rs_config *conf = rs_config_create();
    char errstr[256];
    (void)state;

    assert_int_equal(rs_config_load(conf, "/tmp", errstr, sizeof(errstr)), RS_EIO);
    assert_non_null(strstr(errstr, "/tmp:"));
    rs_config_destroy(conf);
}

static void test_rejects_rating_min_not_below_max(void **state)
{
    (void)state;
    /* the message points at the later of the two keys */
    expect_load_error("[model]\nrating_max = 3\n\nrating_min = 3\n", RS_EINVAL, 4,
                      "rating_min (3) must be less than rating_max (3)");
    expect_load_error("[model]\nrating_min = 7\n", RS_EINVAL, 2, "rating_min");
}

static void test_rejects_empty_topics(void **state)
{
    (void)state;
    expect_load_error("[kafka]\ntopics =\n", RS_EINVAL, 2, "topics is empty");
    expect_load_error("[kafka]\ntopics = \"\"\n", RS_EINVAL, 2, "topics is empty");
    expect_load_error("[kafka]\ntopics = a,,b\n", RS_EINVAL, 2, "empty item");
    expect_load_error("[kafka]\ntopics = a,\n", RS_EINVAL, 2, "empty item");
    expect_load_error("[kafka]\ntopics = a, b, a\n", RS_EINVAL, 2, "listed twice");
}

static void test_rejects_empty_required_string(void **state)
{
    (void)state;
    expect_load_error("[kafka]\nbrokers =\n", RS_EINVAL, 2, "brokers must not be empty");
    expect_load_error("[snapshot]\ndir = \"\"\n", RS_EINVAL, 2, "dir must not be empty");
}

static void test_rejects_cross_key_conflicts(void **state)
{
    (void)state;
    expect_load_error("[kafka]\ntopics = a, b\ndead_letter_topic = b\n", RS_EINVAL, 3,
                      "dead_letter_topic 'b' is also in topics");
    expect_load_error("[ranking]\nmf_weight = 0\nneighbor_weight = 0\npopularity_weight = 0\n",
                      RS_EINVAL, 4, "nothing to rank by");
    expect_load_error("[metrics]\nlisten = localhost\n", RS_EINVAL, 2, "host:port");
    expect_load_error("[metrics]\nlisten = localhost:99999\n", RS_EINVAL, 2, "host:port");
}

static void test_rejects_syntax_errors(void **state)
{
    (void)state;
    expect_load_error("[model]\nfactors 8\n", RS_EPARSE, 2, "syntax error");
    expect_load_error("[model\nfactors = 8\n", RS_EPARSE, 1, "syntax error");
    expect_load_error("[model] factors = 8\n", RS_EPARSE, 1, "unexpected text");
    expect_load_error("[model]\nlearning_rate = \"0.1\n", RS_EPARSE, 2, "unterminated");
    /* the first error wins, even when a later line is also wrong */
    expect_load_error("[model]\nfactors 8\nfactor = 2\n", RS_EPARSE, 2, "syntax error");
    expect_load_error("[model]\nfactor = 2\nfactors 8\n", RS_EINVAL, 2, "unknown key");
}

static void test_expands_environment_variables(void **state)
{
    struct rs_config *conf;
    (void)state;

    setenv("RS_TEST_PW", "s3cr3t", 1);
    setenv("RS_TEST_FACTORS", "16", 1);
    setenv("RS_TEST_EMPTY", "", 1);
    conf = expect_load_ok("[redis]\n"
                          "password = ${RS_TEST_PW}\n"
                          "prefix = a${RS_TEST_EMPTY}b:$$x:$y\n"
                          "[model]\n"
                          "factors = ${RS_TEST_FACTORS}\n"
                          "[kafka]\n"
                          "sasl.password = \"pre ${RS_TEST_PW} post\"\n");
    assert_string_equal(conf->redis_password, "s3cr3t");
    assert_string_equal(conf->redis_prefix, "ab:$x:$y");
    assert_int_equal(conf->factors, 16);
    assert_int_equal(conf->kafka_prop_cnt, 1);
    assert_string_equal(conf->kafka_props[0].value, "pre s3cr3t post");
    rs_config_destroy(conf);
    unsetenv("RS_TEST_PW");
    unsetenv("RS_TEST_FACTORS");
    unsetenv("RS_TEST_EMPTY");
}

static void test_quotes_and_inline_comments_are_handled(void **state)
{
    struct rs_config *conf;
    (void)state;

    conf = expect_load_ok("[redis] ; trailing comment on a header\n"
                          "host = h1 ; inline\n"
                          "password = \"a ;b #c\" # kept inside the quotes\n"
                          "prefix = p#q;r:\t# no blank before # or ; keeps them\n"
                          "  port = 6390   # indented keys are keys, not continuations\n"
                          "db = \" 3\"\n"
                          "[kafka]\n"
                          "brokers = \"\"embedded\"\"\n");
    assert_string_equal(conf->redis_host, "h1");
    assert_string_equal(conf->redis_password, "a ;b #c");
    assert_string_equal(conf->redis_prefix, "p#q;r:");
    assert_int_equal(conf->redis_port, 6390);
    assert_int_equal(conf->redis_db, 3);
    assert_string_equal(conf->brokers, "\"embedded\"");
    rs_config_destroy(conf);
    expect_load_error("[redis]\nport=6390#x\n", RS_EPARSE, 2, "trailing garbage");
}

static void test_accepts_lines_longer_than_inih_buffer(void **state)
{
    char text[4096], value[1500];
    struct rs_config *conf;
    (void)state;

    memset(value, 'x', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    value[0] = 'h';
    snprintf(text, sizeof(text),
             "[kafka]\nbrokers = %s\nsasl.jaas.config = org.Module required "
             "username=\"u\" password=\"%s\";\n[model]\nfactors = 3\n",
             value, value);
    conf = expect_load_ok(text);
    assert_string_equal(conf->brokers, value);
    assert_int_equal(conf->kafka_prop_cnt, 1);
    assert_int_equal(strlen(conf->kafka_props[0].value),
                     strlen("org.Module required username=\"u\" password=\"\";") +
                         strlen(value));
    assert_int_equal(conf->factors, 3);
    rs_config_destroy(conf);
}

static void test_reads_crlf_and_bom(void **state)
{
    struct rs_config *conf;
    (void)state;

    conf =
        expect_load_ok("\xEF\xBB\xBF[model]\r\nfactors = 7\r\n[log]\r\nlevel = warn\r\n");
    assert_int_equal(conf->factors, 7);
    assert_int_equal(conf->log_level, RS_LOG_WARN);
    rs_config_destroy(conf);
}

static void test_setting_key_twice_keeps_last(void **state)
{
    struct rs_config *conf;
    (void)state;

    /* the sanitizer build fails here if a replaced value leaks */
    conf = expect_load_ok("[kafka]\ntopics = a\ntopics = b, c\nbrokers = x\nbrokers = y\n"
                          "socket.timeout.ms = 1\nsocket.timeout.ms = 2\n");
    assert_int_equal(conf->topic_cnt, 2);
    assert_string_equal(conf->topics[0], "b");
    assert_string_equal(conf->brokers, "y");
    assert_int_equal(conf->kafka_prop_cnt, 1);
    assert_string_equal(conf->kafka_props[0].value, "2");
    rs_config_destroy(conf);
}

static void test_passthrough_keys_keep_order_and_origin(void **state)
{
    char path[sizeof(TMP_TEMPLATE)], errstr[256], origin[64];
    struct rs_config *conf;
    (void)state;

    assert_int_equal(load_text("[kafka]\n"
                               "security.protocol = SASL_SSL\n"
                               "group.id = mine\n"
                               "sasl.mechanisms = PLAIN\n"
                               "\n"
                               "security.protocol = SSL\n",
                               &conf, path, errstr, sizeof(errstr)),
                     RS_OK);
    assert_string_equal(conf->group_id, "mine"); /* a known key, not passed through */
    assert_int_equal(conf->kafka_prop_cnt, 2);
    assert_string_equal(conf->kafka_props[0].key, "security.protocol");
    assert_string_equal(conf->kafka_props[0].value, "SSL");
    snprintf(origin, sizeof(origin), "%s:6", path);
    assert_string_equal(conf->kafka_props[0].origin, origin);
    assert_string_equal(conf->kafka_props[1].key, "sasl.mechanisms");
    assert_string_equal(conf->kafka_props[1].value, "PLAIN");
    snprintf(origin, sizeof(origin), "%s:4", path);
    assert_string_equal(conf->kafka_props[1].origin, origin);

    assert_int_equal(rs_config_set(conf, "kafka.sasl.mechanisms=SCRAM-SHA-512", errstr,
                                   sizeof(errstr)),
                     RS_OK);
    assert_int_equal(conf->kafka_prop_cnt, 2);
    assert_string_equal(conf->kafka_props[1].value, "SCRAM-SHA-512");
    assert_string_equal(conf->kafka_props[1].origin, "--set");
    rs_config_destroy(conf);
}

static void test_set_overrides_values(void **state)
{
    struct rs_config *conf = rs_config_create();
    char errstr[256];
    (void)state;

    assert_int_equal(rs_config_set(conf, "model.factors=8", errstr, sizeof(errstr)),
                     RS_OK);
    assert_int_equal(conf->factors, 8);
    assert_int_equal(
        rs_config_set(conf, " redis.format = msgpack ", errstr, sizeof(errstr)), RS_OK);
    assert_int_equal(conf->redis_format, RS_FORMAT_MSGPACK);
    assert_int_equal(rs_config_set(conf, "kafka.group.id=other", errstr, sizeof(errstr)),
                     RS_OK);
    assert_string_equal(conf->group_id, "other");
    assert_int_equal(conf->kafka_prop_cnt, 0);
    assert_int_equal(
        rs_config_set(conf, "kafka.embedded.partitions=2", errstr, sizeof(errstr)),
        RS_OK);
    assert_int_equal(conf->embedded_partitions, 2);
    assert_int_equal(
        rs_config_set(conf, "kafka.security.protocol=SASL_SSL", errstr, sizeof(errstr)),
        RS_OK);
    assert_int_equal(conf->kafka_prop_cnt, 1);
    assert_string_equal(conf->kafka_props[0].key, "security.protocol");
    assert_string_equal(conf->kafka_props[0].value, "SASL_SSL");
    assert_string_equal(conf->kafka_props[0].origin, "--set");
    assert_int_equal(rs_config_set(conf, "redis.password=a=b", errstr, sizeof(errstr)),
                     RS_OK);
    assert_string_equal(conf->redis_password, "a=b");
    assert_int_equal(rs_config_set(conf, "kafka.topics=x,y", errstr, sizeof(errstr)),
                     RS_OK);
    assert_int_equal(conf->topic_cnt, 2);
    assert_string_equal(conf->topics[1], "y");
    rs_config_destroy(conf);
}

static void test_set_refuses_bad_input_naming_the_assignment(void **state)
{
    struct rs_config *conf = rs_config_create();
    char errstr[256];
    (void)state;

    assert_int_equal(rs_config_set(conf, "model.factors=0", errstr, sizeof(errstr)),
                     RS_EINVAL);
    assert_string_equal(errstr, "--set model.factors=0: value 0 out of range [1, 1024]");
    assert_int_equal(conf->factors, 64);
    assert_int_equal(rs_config_set(conf, "model.factor=3", errstr, sizeof(errstr)),
                     RS_EINVAL);
    assert_non_null(strstr(errstr, "unknown key 'factor'"));
    assert_int_equal(rs_config_set(conf, "modl.factors=3", errstr, sizeof(errstr)),
                     RS_EINVAL);
    assert_non_null(strstr(errstr, "unknown section [modl]"));
    assert_int_equal(rs_config_set(conf, "factors=3", errstr, sizeof(errstr)), RS_EPARSE);
    assert_string_equal(errstr, "--set factors=3: expected section.key=value");
    assert_int_equal(rs_config_set(conf, "model.factors", errstr, sizeof(errstr)),
                     RS_EPARSE);
    assert_int_equal(rs_config_set(conf, "kafka.=x", errstr, sizeof(errstr)), RS_EPARSE);
    assert_int_equal(rs_config_set(conf, "log.level=loud", errstr, sizeof(errstr)),
                     RS_EINVAL);
    assert_non_null(strstr(errstr, "--set log.level=loud: "));
    assert_int_equal(conf->log_level, RS_LOG_INFO);
    rs_config_destroy(conf);
}

static void test_check_after_set_catches_cross_key_conflicts(void **state)
{
    struct rs_config *conf = rs_config_create();
    char errstr[256];
    (void)state;

    /* overrides may pass through an inconsistent state, in any order */
    assert_int_equal(rs_config_set(conf, "model.rating_min=6", errstr, sizeof(errstr)),
                     RS_OK);
    assert_int_equal(rs_config_check(conf, errstr, sizeof(errstr)), RS_EINVAL);
    assert_non_null(strstr(errstr, "rating_min (6) must be less than rating_max (5)"));
    assert_int_equal(rs_config_set(conf, "model.rating_max=10", errstr, sizeof(errstr)),
                     RS_OK);
    assert_int_equal(rs_config_check(conf, errstr, sizeof(errstr)), RS_OK);
    rs_config_destroy(conf);
}

static void test_format_names(void **state)
{
    (void)state;
    assert_string_equal(rs_config_format_name(RS_FORMAT_JSON), "json");
    assert_string_equal(rs_config_format_name(RS_FORMAT_MSGPACK), "msgpack");
    assert_string_equal(rs_config_format_name(RS_FORMAT_ZSET), "zset");
    assert_string_equal(rs_config_format_name((enum rs_list_format)7), "unknown");
}

static void test_shipped_config_loads_and_states_the_defaults(void **state)
{
    const char *dir = getenv("RS_SOURCE_DIR");
    char path[1024], errstr[512];
    struct rs_config *conf, *def;
    (void)state;

    if (!dir) skip();
    snprintf(path, sizeof(path), "%s/config/recstream.conf", dir);
    conf = rs_config_create();
    def = rs_config_create();
    assert_non_null(conf);
    assert_non_null(def);
    if (rs_config_load(conf, path, errstr, sizeof(errstr)) != RS_OK)
        fail_msg("%s", errstr);
    assert_string_equal(conf->path, path);
    /* the file says its values are the defaults */
    assert_string_equal(conf->brokers, def->brokers);
    assert_int_equal(conf->topic_cnt, def->topic_cnt);
    assert_string_equal(conf->topics[0], def->topics[0]);
    assert_string_equal(conf->group_id, def->group_id);
    assert_string_equal(conf->dead_letter_topic, def->dead_letter_topic);
    assert_int_equal(conf->embedded_partitions, def->embedded_partitions);
    assert_int_equal(conf->kafka_prop_cnt, 0);
    assert_string_equal(conf->redis_host, def->redis_host);
    assert_int_equal(conf->redis_port, def->redis_port);
    assert_string_equal(conf->redis_password, def->redis_password);
    assert_int_equal(conf->redis_db, def->redis_db);
    assert_string_equal(conf->redis_prefix, def->redis_prefix);
    assert_int_equal(conf->redis_format, def->redis_format);
    assert_int_equal(conf->redis_ttl_s, def->redis_ttl_s);
    assert_int_equal(conf->publish_interval_ms, def->publish_interval_ms);
    assert_int_equal(conf->factors, def->factors);
    assert_true(conf->learning_rate == def->learning_rate);
    assert_true(conf->regularization == def->regularization);
    assert_true(conf->init_std == def->init_std);
    assert_true(conf->rating_min == def->rating_min);
    assert_true(conf->rating_max == def->rating_max);
    assert_int_equal(conf->negatives, def->negatives);
    assert_true(conf->seed == def->seed);
    assert_int_equal(conf->max_users, def->max_users);
    assert_int_equal(conf->max_items, def->max_items);
    assert_int_equal(conf->neighbors_k, def->neighbors_k);
    assert_int_equal(conf->neighbors_window, def->neighbors_window);
    assert_true(conf->neighbors_half_life_s == def->neighbors_half_life_s);
    assert_true(conf->neighbors_shrink == def->neighbors_shrink);
    assert_true(conf->neighbors_backward_weight == def->neighbors_backward_weight);
    assert_true(conf->neighbors_gap_decay == def->neighbors_gap_decay);
    assert_int_equal(conf->top_n, def->top_n);
    assert_true(conf->mf_weight == def->mf_weight);
    assert_true(conf->neighbor_weight == def->neighbor_weight);
    assert_true(conf->popularity_weight == def->popularity_weight);
    assert_true(conf->recency_decay == def->recency_decay);
    assert_string_equal(conf->snapshot_dir, def->snapshot_dir);
    assert_int_equal(conf->snapshot_interval_s, def->snapshot_interval_s);
    assert_true(conf->snapshot_every_events == def->snapshot_every_events);
    assert_int_equal(conf->snapshot_keep, def->snapshot_keep);
    assert_string_equal(conf->metrics_listen, def->metrics_listen);
    assert_int_equal(conf->log_level, def->log_level);
    rs_config_destroy(def);
    rs_config_destroy(conf);
}

static void test_apply_live_copies_only_live_settings(void **state)
{
    char errstr[256];
    struct rs_config *running = rs_config_create();
    struct rs_config *fresh = rs_config_create();
    (void)state;
    assert_int_equal(rs_config_set(fresh, "ranking.mf_weight=0.5", errstr, sizeof(errstr)), RS_OK);
    assert_int_equal(rs_config_set(fresh, "redis.publish_interval_ms=250", errstr, sizeof(errstr)),
                     RS_OK);
    assert_int_equal(rs_config_set(fresh, "log.level=debug", errstr, sizeof(errstr)), RS_OK);
    assert_int_equal(rs_config_set(fresh, "model.factors=8", errstr, sizeof(errstr)), RS_OK);
    assert_int_equal(
        rs_config_set(fresh, "ranking.recency_decay=0.2", errstr, sizeof(errstr)), RS_OK);
    assert_int_equal(rs_config_apply_live(running, fresh), 4);
    assert_true(running->mf_weight == 0.5);
    assert_true(running->recency_decay == 0.2);
    assert_int_equal(running->publish_interval_ms, 250);
    assert_int_equal(running->log_level, 3);
    assert_int_equal(running->factors, 64); /* needs a restart: unchanged */
    assert_int_equal(rs_config_apply_live(running, fresh), 0);
    rs_config_destroy(running);
    rs_config_destroy(fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_documented_values),
        cmocka_unit_test(test_destroy_null_is_noop),
        cmocka_unit_test(test_loads_file_with_every_section),
        cmocka_unit_test(test_rejects_unknown_key),
        cmocka_unit_test(test_rejects_unknown_section),
        cmocka_unit_test(test_rejects_key_outside_section),
        cmocka_unit_test(test_rejects_value_below_range),
        cmocka_unit_test(test_rejects_value_above_range),
        cmocka_unit_test(test_rejects_integer_overflow),
        cmocka_unit_test(test_rejects_value_that_is_not_a_number),
        cmocka_unit_test(test_rejects_trailing_garbage),
        cmocka_unit_test(test_rejects_bad_enum),
        cmocka_unit_test(test_accepts_enum_in_any_case),
        cmocka_unit_test(test_rejects_unset_environment_variable),
        cmocka_unit_test(test_missing_file_is_io_error_with_reason),
        cmocka_unit_test(test_directory_is_io_error),
        cmocka_unit_test(test_rejects_rating_min_not_below_max),
        cmocka_unit_test(test_rejects_empty_topics),
        cmocka_unit_test(test_rejects_empty_required_string),
        cmocka_unit_test(test_rejects_cross_key_conflicts),
        cmocka_unit_test(test_rejects_syntax_errors),
        cmocka_unit_test(test_expands_environment_variables),
        cmocka_unit_test(test_quotes_and_inline_comments_are_handled),
        cmocka_unit_test(test_accepts_lines_longer_than_inih_buffer),
        cmocka_unit_test(test_reads_crlf_and_bom),
        cmocka_unit_test(test_setting_key_twice_keeps_last),
        cmocka_unit_test(test_passthrough_keys_keep_order_and_origin),
        cmocka_unit_test(test_set_overrides_values),
        cmocka_unit_test(test_set_refuses_bad_input_naming_the_assignment),
        cmocka_unit_test(test_check_after_set_catches_cross_key_conflicts),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_apply_live_copies_only_live_settings),
        cmocka_unit_test(test_shipped_config_loads_and_states_the_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
