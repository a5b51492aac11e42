/*
 * test_common.c - the calling thread's scheduler times: its CPU time grows
 * while it computes, and its wait for a CPU grows while another thread holds
 * the only CPU both may run on.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "recstream/common.h"

static atomic_int spinning;

static void *spin(void *arg)
{
    (void)arg;
    while (atomic_load(&spinning)) {
    }
    return NULL;
}

/* Busy for ms of wall-clock time. */
static void busy_ms(uint64_t ms)
{
    uint64_t end = rs_mono_ns() + ms * 1000000u;
    while (rs_mono_ns() < end) {
    }
}

static void test_run_and_wait_times(void **state)
{
    uint64_t run0, wait0, run1, wait1, run2, wait2;
    cpu_set_t one, all;
    pthread_t th;
    (void)state;

    if (rs_thread_sched_ns(&run0, &wait0) != 0) skip(); /* kernel without schedstat */

    busy_ms(200); /* alone on whatever CPU: mostly running */
    assert_int_equal(rs_thread_sched_ns(&run1, &wait1), 0);
    assert_true(run1 - run0 >= 20000000u);

    /* Both threads on one CPU: each runs about half the time and waits the rest. */
    assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof(one), &one), 0);
    atomic_store(&spinning, 1);
    assert_int_equal(pthread_create(&th, NULL, spin, NULL), 0);
    assert_int_equal(pthread_setaffinity_np(th, sizeof(one), &one), 0);
    busy_ms(400);
    atomic_store(&spinning, 0);
    pthread_join(th, NULL);
    assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof(all), &all), 0);
    assert_int_equal(rs_thread_sched_ns(&run2, &wait2), 0);
    assert_true(run2 > run1);
    assert_true(wait2 - wait1 >= 100000000u); /* >= 100 ms of the 400 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_and_wait_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
