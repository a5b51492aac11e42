/*
 * test_publisher.c - the writer thread's queue without a Redis server (the
 * sink points at a port nothing listens on; the integration tests write to a
 * real redis-server): slots run out and come back only through reap/release,
 * in order; a failing write is retried and reported, never acknowledged; the
 * fill levels follow; destroying the publisher stops a writer that is
 * retrying. Built under ThreadSanitizer by scripts/test.sh as well.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "recstream/config.h"
#include "recstream/log.h"
#include "recstream/publisher.h"
#include "recstream/redis.h"

static struct rs_redis *dead_sink(struct rs_config **conf)
{
    char errstr[256];
    *conf = rs_config_create();
    assert_non_null(*conf);
    assert_int_equal(rs_config_set(*conf, "redis.port=1", errstr, sizeof(errstr)), RS_OK);
    return rs_redis_create(*conf);
}

static void test_slots_fill_and_failures_are_retried_not_acknowledged(void **state)
{
    struct rs_config *conf;
    struct rs_redis *sink = dead_sink(&conf);
    struct rs_publisher *pub = rs_publisher_create(sink, 3);
    struct rs_pub_batch *b[3];
    (void)state;

    assert_non_null(pub);
    assert_int_equal(rs_publisher_slots(pub), 3);
    for (int i = 0; i < 3; i++) {
        b[i] = rs_publisher_acquire(pub);
        assert_non_null(b[i]);
        assert_int_equal(rs_redis_batch_del(&b[i]->cmds, "k", 1), RS_OK);
        assert_int_equal(rs_pub_batch_reserve_users(b[i], 100), RS_OK);
        b[i]->users[b[i]->n_users++] = (uint32_t)i;
        rs_publisher_submit(pub, b[i]);
        assert_int_equal(rs_publisher_in_flight(pub), (size_t)i + 1);
    }
    assert_null(rs_publisher_acquire(pub)); /* bounded: every slot is in use */
    /* The first write fails (nothing listens): reported, kept, nothing to reap. */
    assert_int_equal(rs_publisher_wait(pub, 5000), 0);
    assert_true(rs_publisher_failures(pub) >= 1);
    assert_true(rs_publisher_failing(pub));
    assert_null(rs_publisher_reap(pub));
    assert_int_equal(rs_publisher_queued(pub), 3);
    /* The unacknowledged batches stay readable, oldest first, for snapshots. */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(rs_publisher_in_flight_at(pub, i)->users[0], (uint32_t)i);
    {
        char why[256];
        rs_publisher_errstr(pub, why, sizeof(why));
        assert_true(strlen(why) > 0);
    }
    rs_publisher_destroy(pub); /* stops a writer that is retrying */
    rs_redis_destroy(sink);
    rs_config_destroy(conf);
}

static void test_an_unsubmitted_batch_is_not_written(void **state)
{
    struct rs_config *conf;
    struct rs_redis *sink = dead_sink(&conf);
    struct rs_publisher *pub = rs_publisher_create(sink, 1);
    struct rs_pub_batch *b;
    (void)state;

    b = rs_publisher_acquire(pub);
    assert_non_null(b);
    assert_int_equal(rs_redis_batch_del(&b->cmds, "k", 1), RS_OK);
    /* Acquired again without a submit: the same slot, emptied. */
    assert_ptr_equal(rs_publisher_acquire(pub), b);
    assert_int_equal(b->cmds.replies, 0);
    assert_int_equal(rs_publisher_in_flight(pub), 0);
    assert_int_equal(rs_publisher_queued(pub), 0);
    assert_int_equal(rs_publisher_wait(pub, 10), 0);
    assert_int_equal(rs_publisher_failures(pub), 0);
    rs_publisher_destroy(pub);
    rs_redis_destroy(sink);
    rs_config_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_fill_and_failures_are_retried_not_acknowledged),
        cmocka_unit_test(test_an_unsubmitted_batch_is_not_written),
    };
    rs_log_set_level(RS_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
