/*
 * test_pipeline.c - the model side of the main loop without a Redis sink:
 * good payloads are applied and counted, bad ones are counted by reason and
 * leave the model alone, ids map to the same dense index whether they arrive
 * as integers or strings, the capacity bound refuses new ids without
 * stopping the stream (when_full = refuse) or evicts the least recently seen
 * user (when_full = evict) so that memory stays flat under endless new ids,
 * and the blended lists: a stranger gets the trending items, a known user
 * never gets what they have and each reason is an item they played, similar
 * items come from co-occurrence. Snapshots: a restored pipeline holds the
 * same state (offsets, counts, every section byte for byte) and, fed the same
 * events, stays bit-identical to one that never stopped; a snapshot whose
 * sections do not hold together is refused and leaves the pipeline as it was;
 * lists Redis never acknowledged are written again after a restore.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>
#include <unistd.h>

#include "recstream/config.h"
#include "recstream/log.h"
#include "recstream/pipeline.h"
#include "recstream/redis.h"

static struct rs_config *conf_with(const char *set1, const char *set2)
{
    char errstr[256];
    struct rs_config *conf = rs_config_create();
    assert_non_null(conf);
    assert_int_equal(rs_config_set(conf, "model.factors=8", errstr, sizeof(errstr)),
                     RS_OK);
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
    assert_int_equal(
        feed(p, "{\"user\":\"a\",\"item\":\"x\",\"type\":\"rate\",\"value\":4}"),
        RS_REASON_OK);
    assert_int_equal(feed(p, "{\"user\":7,\"item\":\"y\",\"type\":\"play\"}"),
                     RS_REASON_OK);
    assert_int_equal(
        feed(p, "{\"user\":\"a\",\"item\":\"y\",\"type\":\"rate\",\"value\":9}"),
        RS_REASON_OFF_SCALE);
    assert_int_equal(feed(p, "{\"user\":\"a\""), RS_REASON_MALFORMED);
    assert_int_equal(feed(p, "{\"item\":\"y\",\"type\":\"play\"}"),
                     RS_REASON_MISSING_USER);

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

static void test_lists_blend_trending_neighbours_and_reasons(void **state)
{
    char errstr[256], json[160];
    struct rs_config *conf = conf_with("ranking.top_n=5", NULL);
    struct rs_pipeline *p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    struct rs_rec out[5];
    size_t n;
    (void)state;

    /* Item "hit" is played by everyone; users 0..29 play a then b (pairs). */
    for (int u = 0; u < 30; u++) {
        snprintf(json, sizeof(json), "{\"user\":%d,\"item\":\"hit\",\"type\":\"play\"}",
                 u);
        feed(p, json);
        snprintf(json, sizeof(json), "{\"user\":%d,\"item\":\"a%d\",\"type\":\"play\"}",
                 u, u % 3);
        feed(p, json);
        snprintf(json, sizeof(json), "{\"user\":%d,\"item\":\"b%d\",\"type\":\"play\"}",
                 u, u % 3);
        feed(p, json);
    }
    assert_true(rs_pipeline_publish_due(p) || rs_pipeline_pending(p) > 0);
    /* A stranger gets the trending list: "hit" first, no reasons. */
    assert_int_equal(rs_pipeline_recommend(p, "stranger", 8, out, &n), RS_OK);
    assert_true(n >= 1);
    size_t len;
    const char *name = rs_idmap_name(rs_pipeline_items(p), out[0].item, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(name, "hit", 3);
    for (size_t j = 0; j < n; j++)
        assert_int_equal(out[j].why, RS_NONE);
    /* A new user who played a1 gets b1 because of a1, and never a1 itself. */
    feed(p, "{\"user\":\"new\",\"item\":\"a1\",\"type\":\"play\"}");
    assert_int_equal(rs_pipeline_recommend(p, "new", 3, out, &n), RS_OK);
    int found = 0;
    uint32_t a1, b1;
    assert_int_equal(rs_idmap_find(rs_pipeline_items(p), "a1", 2, &a1), RS_OK);
    assert_int_equal(rs_idmap_find(rs_pipeline_items(p), "b1", 2, &b1), RS_OK);
    for (size_t j = 0; j < n; j++) {
        assert_int_not_equal(out[j].item, a1);
        if (out[j].why != RS_NONE) assert_int_equal(out[j].why, a1);
        if (out[j].item == b1) found = j == 0 && out[j].why == a1;
    }
    assert_true(found);
    /* Similar items of a1: b1 (and hit), from co-occurrence. */
    assert_int_equal(rs_pipeline_similar(p, "a1", 2, 5, out, &n), RS_OK);
    assert_true(n >= 1);
    int has_b1 = 0;
    for (size_t j = 0; j < n; j++)
        has_b1 |= out[j].item == b1;
    assert_true(has_b1);
    assert_int_equal(rs_pipeline_similar(p, "zzz", 3, 5, out, &n), RS_ENOENT);
    /* Without a sink, publishing drains everything pending. */
    assert_int_equal(rs_pipeline_publish(p), RS_OK);
    assert_int_equal(rs_pipeline_pending(p), 0);
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
}

static void feed_range(struct rs_pipeline *p, int from, int to)
{
    char json[160];
    for (int e = from; e < to; e++) {
        if (e % 97 == 0)
            snprintf(json, sizeof(json), "{\"user\":\"u%d\",\"type\":\"forget\"}", e % 53);
        else
            snprintf(json, sizeof(json),
                     "{\"user\":\"u%d\",\"item\":\"i%d\",\"type\":\"%s\",\"value\":%d,"
                     "\"ts\":%d}",
                     e % 53, (e * 7) % 31, e % 3 ? "play" : "rate", 1 + e % 5,
                     1000000 + e * 10);
        assert_int_equal(feed(p, json), RS_REASON_OK);
        assert_int_equal(rs_pipeline_set_offset(p, e % 2 ? "b" : "a", e % 2, e / 2 + 1), RS_OK);
    }
}

/* The score of b among a's similar items (0 when absent). */
static float similar_score(struct rs_pipeline *p, const char *a, const char *b)
{
    struct rs_rec out[8];
    size_t n, len;
    assert_int_equal(rs_pipeline_similar(p, a, strlen(a), 8, out, &n), RS_OK);
    for (size_t j = 0; j < n; j++) {
        const char *name = rs_idmap_name(rs_pipeline_items(p), out[j].item, &len);
        if (len == strlen(b) && memcmp(name, b, len) == 0) return out[j].score;
    }
    return 0.0f;
}

/* Every user takes "first" then "next": with the [neighbors] order weights
 * of the config (backward 0.25 by default) first's row holds next far more
 * strongly than next's row holds first; with 1 and 0 both are the cosine. */
static void test_the_pipeline_weighs_pairs_by_the_configured_order(void **state)
{
    char errstr[256], json[160];
    (void)state;
    for (int symmetric = 0; symmetric < 2; symmetric++) {
        struct rs_config *conf = symmetric ? conf_with("neighbors.backward_weight=1",
                                                       "neighbors.gap_decay=0")
                                           : conf_with(NULL, NULL);
        struct rs_pipeline *p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
        assert_non_null(p);
        for (int u = 0; u < 20; u++) {
            snprintf(json, sizeof(json), "{\"user\":\"u%d\",\"item\":\"first\",\"type\":\"play\"}", u);
            assert_int_equal(feed(p, json), RS_REASON_OK);
            snprintf(json, sizeof(json), "{\"user\":\"u%d\",\"item\":\"next\",\"type\":\"play\"}", u);
            assert_int_equal(feed(p, json), RS_REASON_OK);
        }
        float forward = similar_score(p, "first", "next");
        float backward = similar_score(p, "next", "first");
        assert_true(forward > 0 && backward > 0);
        if (symmetric)
            assert_true(fabsf(forward - backward) <= 1e-6f * forward);
        else
            assert_true(backward < forward / 2);
        rs_pipeline_destroy(p);
        rs_config_destroy(conf);
    }
}

/* Writes p's snapshot into dir; returns it opened (verified). */
static struct rs_snapshot *snapshot_of(struct rs_pipeline *p, const struct rs_config *conf,
                                       const char *dir)
{
    struct rs_snapshot_shape shape;
    char path[512], errstr[512];
    struct rs_snapshot *snap;

    rs_pipeline_shape(conf, &shape);
    if (rs_snapshot_write(dir, 2, &shape, rs_pipeline_snapshot_fill, p, path, sizeof(path),
                          errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    snap = rs_snapshot_open(path, errstr, sizeof(errstr));
    assert_non_null(snap);
    assert_null(rs_snapshot_problem(snap));
    return snap;
}

static uint64_t section_sum(const struct rs_snapshot *snap, const char *name)
{
    for (size_t i = 0; i < rs_snapshot_sections(snap); i++)
        if (strcmp(rs_snapshot_section_at(snap, i)->name, name) == 0)
            return rs_snapshot_section_at(snap, i)->checksum;
    fail_msg("no section %s", name);
    return 0;
}

static void test_a_restored_pipeline_stays_bit_identical_to_one_that_never_stopped(void **state)
{
    static const char *state_sections[] = {"users",      "items",       "model",
                                           "history",    "neighbors",   "popularity",
                                           "user_events", "offsets",    "dirty",
                                           "meta"};
    char dir_a[] = "/tmp/rs-test-pipeline.XXXXXX", dir_b[] = "/tmp/rs-test-pipeline.XXXXXX";
    char errstr[512], cmd[128];
    struct rs_config *conf = conf_with(NULL, NULL);
    struct rs_pipeline *a = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    struct rs_pipeline *b = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    struct rs_snapshot *snap, *sa, *sb;
    int64_t next;
    uint32_t u;
    (void)state;

    assert_non_null(mkdtemp(dir_a));
    assert_non_null(mkdtemp(dir_b));
    feed_range(a, 0, 3000);
    snap = snapshot_of(a, conf, dir_a);
    assert_int_equal(rs_pipeline_snapshot_load(b, snap, errstr, sizeof(errstr)), RS_OK);
    rs_snapshot_close(snap);

    assert_int_equal(rs_pipeline_stats(b)->events_applied, 3000);
    /* forget erases users (every 97th event), so fewer than 53 remain */
    assert_int_equal(rs_idmap_count(rs_pipeline_users(b)), rs_idmap_count(rs_pipeline_users(a)));
    assert_true(rs_idmap_count(rs_pipeline_users(b)) > 40);
    assert_int_equal(rs_pipeline_offset(b, "a", 0, &next), 1);
    assert_int_equal(next, 1500);
    assert_int_equal(rs_pipeline_offset(b, "b", 1, &next), 1);
    assert_int_equal(next, 1500);
    assert_int_equal(rs_pipeline_offset(b, "a", 1, &next), 0);
    assert_int_equal(rs_idmap_find(rs_pipeline_users(b), "u5", 2, &u), RS_OK);
    assert_int_equal(rs_pipeline_user_events(b, u), rs_pipeline_user_events(a, u));
    assert_true(rs_pipeline_user_events(b, u) > 0);
    assert_int_equal(rs_pipeline_dirty(b), rs_pipeline_dirty(a));

    feed_range(a, 3000, 5000);
    feed_range(b, 3000, 5000);
    sa = snapshot_of(a, conf, dir_a);
    sb = snapshot_of(b, conf, dir_b);
    for (size_t i = 0; i < sizeof(state_sections) / sizeof(state_sections[0]); i++)
        if (section_sum(sa, state_sections[i]) != section_sum(sb, state_sections[i]))
            fail_msg("section %s differs after restore", state_sections[i]);
    rs_snapshot_close(sa);
    rs_snapshot_close(sb);
    rs_pipeline_destroy(a);
    rs_pipeline_destroy(b);
    rs_config_destroy(conf);
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir_a, dir_b);
    assert_int_equal(system(cmd), 0);
}

/* Lists taken for writing but never acknowledged (the sink is a port nothing
 * listens on) are in the snapshot: a restore has the users dirty again and
 * the items' similar-items lists changed again. */
static void test_lists_redis_never_acknowledged_are_published_after_a_restore(void **state)
{
    char dir[] = "/tmp/rs-test-pipeline.XXXXXX";
    char errstr[512], cmd[128], json[160];
    struct rs_config *conf = conf_with("redis.port=1", "redis.publish_interval_ms=1");
    struct rs_redis *sink;
    struct rs_pipeline *a, *b;
    struct rs_snapshot *snap;
    size_t changed;
    (void)state;

    rs_log_set_level(RS_LOG_ERROR); /* the writer's connection warnings */
    assert_non_null(mkdtemp(dir));
    sink = rs_redis_create(conf);
    assert_non_null(sink);
    a = rs_pipeline_create(conf, sink, errstr, sizeof(errstr));
    b = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    assert_non_null(a);
    assert_non_null(b);
    for (int u = 0; u < 4; u++) /* 4 users, each with the same 3 items: 3 changed items */
        for (int i = 0; i < 3; i++) {
            snprintf(json, sizeof(json), "{\"user\":\"u%d\",\"item\":\"i%d\",\"type\":\"play\"}",
                     u, i);
            assert_int_equal(feed(a, json), RS_REASON_OK);
        }
    for (int step = 0; step < 20 && rs_pipeline_dirty(a) + rs_pipeline_publish_queued(a) > 0;
         step++) {
        usleep(2000);
        assert_int_equal(rs_pipeline_publish_step(a), RS_OK);
    }
    /* Everything is taken and in flight: users, then the items' lists. */
    assert_true(rs_pipeline_publish_in_flight(a) >= 2);
    assert_int_equal(rs_pipeline_pending(a), 4); /* the users in flight; items not counted */

    snap = snapshot_of(a, conf, dir);
    assert_int_equal(rs_pipeline_snapshot_load(b, snap, errstr, sizeof(errstr)), RS_OK);
    rs_snapshot_close(snap);
    assert_int_equal(rs_pipeline_dirty(b), 4);
    /* pending = dirty users + changed items + rs:pop (always written after a restore) */
    changed = rs_pipeline_pending(b) - rs_pipeline_dirty(b) - 1;
    assert_int_equal(changed, 3);

    rs_pipeline_destroy(a);
    rs_pipeline_destroy(b);
    rs_redis_destroy(sink);
    rs_config_destroy(conf);
    rs_log_set_level(RS_LOG_INFO);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A snapshot with only the meta section of another pipeline. */
static rs_err_t fill_meta_only(void *ctx, struct rs_snapshot_writer *sw)
{
    (void)ctx;
    struct rs_writer *w = rs_snapshot_section_begin(sw, 1, "meta");
    uint64_t zeros[7] = {0};
    if (!w) return RS_EIO;
    rs_write_u32(w, 7);
    w->write(w->ctx, zeros, sizeof(zeros));
    rs_write_u32(w, 0);
    return rs_snapshot_section_end(sw);
}

static void test_a_snapshot_that_does_not_hold_together_leaves_the_pipeline_alone(void **state)
{
    char dir[] = "/tmp/rs-test-pipeline.XXXXXX";
    char errstr[512], path[600], cmd[128];
    struct rs_config *conf = conf_with(NULL, NULL);
    struct rs_pipeline *p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    struct rs_snapshot_shape shape;
    struct rs_snapshot *snap;
    uint32_t users_before;
    (void)state;

    assert_non_null(mkdtemp(dir));
    feed_range(p, 0, 100);
    users_before = rs_idmap_count(rs_pipeline_users(p));
    rs_pipeline_shape(conf, &shape);
    assert_int_equal(rs_snapshot_write(dir, 2, &shape, fill_meta_only, NULL, path,
                                       sizeof(path), errstr, sizeof(errstr)),
                     RS_OK);
    snap = rs_snapshot_open(path, errstr, sizeof(errstr));
    assert_int_equal(rs_pipeline_snapshot_load(p, snap, errstr, sizeof(errstr)), RS_ECORRUPT);
    assert_non_null(strstr(errstr, "missing"));
    rs_snapshot_close(snap);
    assert_int_equal(rs_pipeline_stats(p)->events_applied, 100);
    assert_int_equal(rs_idmap_count(rs_pipeline_users(p)), users_before);
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static size_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * 10 million distinct new user ids through a pipeline capped at 10,000 users:
 * the least recently seen are evicted, the bytes held (and the process's
 * resident memory) stop growing once the cap is reached, and 100 users who
 * keep coming back keep their ids, rows and histories throughout.
 */
static void test_endless_new_users_evict_the_least_recent_and_memory_stays_flat(void **state)
{
#if defined(__SANITIZE_ADDRESS__)
    const uint64_t total = 2000000; /* ASan is slower, and its quarantine inflates RSS */
    const int check_rss = 0;
#else
    const uint64_t total = 10000000;
    const int check_rss = 1;
#endif
    enum { CAP = 10000, ACTIVE = 100 };
    char errstr[256];
    struct rs_config *conf = conf_with("model.max_users=10000", "model.when_full=evict");
    struct rs_pipeline *p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    static struct rs_event ev;
    size_t rss_warm = 0, bytes_warm = 0;
    uint64_t fresh = 0;
    (void)state;
    assert_non_null(p);

    ev.type = RS_EVENT_PLAY;
    ev.value = 1.0f;
    for (uint64_t n = 0; n < total; n++) {
        if (n % 50 == 0) /* each active user returns every 5,000 events */
            ev.user_len = (uint16_t)snprintf(ev.user, sizeof(ev.user), "active-%d",
                                             (int)((n / 50) % ACTIVE));
        else
            ev.user_len = (uint16_t)snprintf(ev.user, sizeof(ev.user), "new-%llu",
                                             (unsigned long long)fresh++);
        ev.item_len = (uint16_t)snprintf(ev.item, sizeof(ev.item), "i%d", (int)(n % 500));
        ev.ts_ms = (int64_t)n;
        assert_int_equal(rs_pipeline_apply(p, &ev), RS_OK);
        if (n % 4096 == 0) rs_pipeline_publish(p); /* no sink: drains the dirty set */
        if (n == 200000) {
            rss_warm = rss_bytes();
            bytes_warm = rs_model_bytes(rs_pipeline_model(p)) +
                         rs_idmap_bytes(rs_pipeline_users(p));
        }
    }
    size_t bytes_end = rs_model_bytes(rs_pipeline_model(p)) +
                       rs_idmap_bytes(rs_pipeline_users(p));
    size_t rss_end = rss_bytes();
    print_message("users held %u, evicted %llu; model+ids %zu -> %zu bytes, RSS %zu -> %zu\n",
                  rs_idmap_count(rs_pipeline_users(p)),
                  (unsigned long long)rs_pipeline_stats(p)->users_evicted, bytes_warm,
                  bytes_end, rss_warm, rss_end);
    assert_true(rs_idmap_count(rs_pipeline_users(p)) <= CAP);
    assert_true(rs_idmap_span(rs_pipeline_users(p)) <= CAP);
    assert_true(rs_pipeline_stats(p)->users_evicted >= total - total / 50 - CAP);
    assert_int_equal(rs_pipeline_stats(p)->events_over_capacity, 0);
    /* The cap holds: what the model and id map own is the same as after warm-up. */
    assert_true(bytes_end <= bytes_warm + bytes_warm / 4);
    if (check_rss) assert_true(rss_end <= rss_warm + (16u << 20));
    /* The returning users kept their place and their learnt rows. */
    for (int a = 0; a < ACTIVE; a++) {
        uint32_t u;
        char id[32];
        int len = snprintf(id, sizeof(id), "active-%d", a);
        assert_int_equal(rs_idmap_find(rs_pipeline_users(p), id, (size_t)len, &u), RS_OK);
        const float *row = rs_model_user_factors(rs_pipeline_model(p), u);
        assert_non_null(row);
        assert_true(row[0] != 0.0f);
    }
    /* A user not seen for 10,000 newer ones is gone. */
    assert_int_equal(rs_idmap_find(rs_pipeline_users(p), "new-0", 5, NULL), RS_ENOENT);
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
}

static void test_idle_users_are_evicted_after_the_ttl(void **state)
{
    char errstr[256];
    struct rs_config *conf = conf_with("model.idle_user_ttl_s=60", NULL);
    struct rs_pipeline *p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    struct rs_event ev = {.type = RS_EVENT_PLAY, .value = 1.0f};
    (void)state;
    assert_non_null(p);
    const char *users[] = {"old", "mid", "new"};
    const int64_t at[] = {0, 30000, 50000};
    for (int j = 0; j < 3; j++) {
        ev.user_len = (uint16_t)snprintf(ev.user, sizeof(ev.user), "%s", users[j]);
        ev.item_len = (uint16_t)snprintf(ev.item, sizeof(ev.item), "x");
        ev.ts_ms = at[j];
        assert_int_equal(rs_pipeline_apply(p, &ev), RS_OK);
    }
    /* At t = 80 s only "old" (last seen at 0) is past 60 s of idleness. */
    ev.user_len = (uint16_t)snprintf(ev.user, sizeof(ev.user), "new");
    ev.ts_ms = 80000;
    assert_int_equal(rs_pipeline_apply(p, &ev), RS_OK);
    assert_int_equal(rs_idmap_find(rs_pipeline_users(p), "old", 3, NULL), RS_ENOENT);
    assert_int_equal(rs_idmap_find(rs_pipeline_users(p), "mid", 3, NULL), RS_OK);
    assert_int_equal(rs_pipeline_stats(p)->users_evicted, 1);
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_events_are_applied_and_bad_ones_counted_by_reason),
        cmocka_unit_test(test_integer_and_string_ids_are_the_same_user),
        cmocka_unit_test(test_capacity_bound_refuses_new_users_but_keeps_known_ones),
        cmocka_unit_test(test_lists_blend_trending_neighbours_and_reasons),
        cmocka_unit_test(test_a_restored_pipeline_stays_bit_identical_to_one_that_never_stopped),
        cmocka_unit_test(test_the_pipeline_weighs_pairs_by_the_configured_order),
        cmocka_unit_test(test_a_snapshot_that_does_not_hold_together_leaves_the_pipeline_alone),
        cmocka_unit_test(test_lists_redis_never_acknowledged_are_published_after_a_restore),
        cmocka_unit_test(test_endless_new_users_evict_the_least_recent_and_memory_stays_flat),
        cmocka_unit_test(test_idle_users_are_evicted_after_the_ttl),
    };
    rs_log_set_level(RS_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
