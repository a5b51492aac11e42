/*
 * publisher.c - the Redis writer thread. Batches live in a fixed ring of
 * slots addressed by three sequence numbers: `submitted` and `reaped` are
 * advanced only by the model's thread, `written` only by the writer, all
 * under one mutex (the model's thread reads its own two without it). A slot
 * is filled by the model's thread between acquire and submit, read by the
 * writer between submit and written, and read again by the model's thread
 * after reap, so no byte of a batch is ever touched by two threads at once;
 * the mutex orders the hand-overs. The writer sends batches in order: a
 * failed one is retried (the sink reconnects with its own backoff, and this
 * thread re-tries every RETRY_MS) before any later one, so an older list can
 * never overwrite a newer one. Nothing here allocates per batch once the
 * slots' buffers have grown to their working size.
 */
#include "recstream/publisher.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recstream/log.h"

#define RETRY_MS 100

struct rs_publisher {
    struct rs_redis *redis;
    struct rs_pub_batch *slots;
    size_t n;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t work; /* writer: a batch was submitted, or stop */
    pthread_cond_t done; /* model's thread: a batch was written, or an attempt failed */
    size_t submitted;    /* batches ever submitted (model's thread) */
    size_t written;      /* batches ever written (writer) */
    size_t reaped;       /* batches ever released (model's thread) */
    int stop;
    int failing;
    uint64_t failures;   /* attempts that failed, ever (writer) */
    char errstr[256];
    struct rs_log_limit warn_limit; /* writer only */
};

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *writer_main(void *arg)
{
    struct rs_publisher *pub = arg;

    pthread_mutex_lock(&pub->mu);
    for (;;) {
        struct rs_pub_batch *b;
        rs_err_t err;

        while (!pub->stop && pub->written == pub->submitted)
            pthread_cond_wait(&pub->work, &pub->mu);
        if (pub->stop) break;
        b = &pub->slots[pub->written % pub->n];
        pthread_mutex_unlock(&pub->mu);

        err = rs_redis_send(pub->redis, &b->cmds);

        pthread_mutex_lock(&pub->mu);
        if (err == RS_OK) {
            b->written_ns = rs_mono_ns();
            pub->written++;
            pub->failing = 0;
            pthread_cond_broadcast(&pub->done);
            continue;
        }
        b->failures++;
        pub->failures++;
        pub->failing = 1;
        snprintf(pub->errstr, sizeof(pub->errstr), "%s", rs_redis_errstr(pub->redis));
        rs_log_limited(&pub->warn_limit, RS_LOG_WARN,
                       "redis: writing %zu commands failed: %s (retrying; lists are kept)",
                       b->cmds.replies, pub->errstr);
        pthread_cond_broadcast(&pub->done);
        if (!pub->stop) {
            struct timespec ts;
            deadline_in(&ts, RETRY_MS);
            pthread_cond_timedwait(&pub->work, &pub->mu, &ts);
        }
    }
    pthread_mutex_unlock(&pub->mu);
    return NULL;
}

struct rs_publisher *rs_publisher_create(struct rs_redis *redis, size_t slots)
{
    struct rs_publisher *pub = calloc(1, sizeof(*pub));

    if (!pub) return NULL;
    pub->redis = redis;
    pub->n = slots ? slots : 1;
    pub->warn_limit = (struct rs_log_limit)RS_LOG_LIMIT_INIT(10000, 3);
    pub->slots = calloc(pub->n, sizeof(*pub->slots));
    if (!pub->slots) {
        free(pub);
        return NULL;
    }
    for (size_t s = 0; s < pub->n; s++) {
        rs_redis_batch_init(&pub->slots[s].cmds);
        rs_buf_init(&pub->slots[s].note);
    }
    pthread_mutex_init(&pub->mu, NULL);
    pthread_cond_init(&pub->work, NULL);
    pthread_cond_init(&pub->done, NULL);
    if (pthread_create(&pub->thread, NULL, writer_main, pub) != 0) {
        rs_publisher_destroy(pub);
        return NULL;
    }
    pub->started = 1;
    return pub;
}

void rs_publisher_destroy(struct rs_publisher *pub)
{
    if (!pub) return;
    if (pub->started) {
        pthread_mutex_lock(&pub->mu);
        pub->stop = 1;
        pthread_cond_broadcast(&pub->work);
        pthread_mutex_unlock(&pub->mu);
        pthread_join(pub->thread, NULL);
    }
    for (size_t s = 0; s < pub->n; s++) {
        rs_redis_batch_free(&pub->slots[s].cmds);
        free(pub->slots[s].users);
        free(pub->slots[s].items);
        rs_buf_free(&pub->slots[s].note);
    }
    pthread_cond_destroy(&pub->work);
    pthread_cond_destroy(&pub->done);
    pthread_mutex_destroy(&pub->mu);
    free(pub->slots);
    free(pub);
}

struct rs_pub_batch *rs_publisher_acquire(struct rs_publisher *pub)
{
    struct rs_pub_batch *b;

    if (pub->submitted - pub->reaped >= pub->n) return NULL;
    b = &pub->slots[pub->submitted % pub->n];
    rs_redis_batch_reset(&b->cmds);
    b->n_users = b->n_items = 0;
    b->lists = b->deleted = b->sims = 0;
    b->forgotten_bytes = 0;
    rs_buf_reset(&b->note);
    b->submitted_ns = b->written_ns = 0;
    b->failures = 0;
    return b;
}

/* Grows *v (holding len, room for *cap) to room for len + n entries. */
static rs_err_t reserve(uint32_t **v, size_t *cap, size_t len, size_t n)
{
    size_t want = *cap ? *cap : 64;
    uint32_t *grown;

    if (len + n <= *cap) return RS_OK;
    while (want < len + n) want *= 2;
    if (!(grown = realloc(*v, want * sizeof(*grown)))) return RS_ENOMEM;
    *v = grown;
    *cap = want;
    return RS_OK;
}

rs_err_t rs_pub_batch_reserve_users(struct rs_pub_batch *b, size_t n)
{
    return reserve(&b->users, &b->users_cap, b->n_users, n);
}

rs_err_t rs_pub_batch_reserve_items(struct rs_pub_batch *b, size_t n)
{
    return reserve(&b->items, &b->items_cap, b->n_items, n);
}

void rs_publisher_submit(struct rs_publisher *pub, struct rs_pub_batch *b)
{
    b->submitted_ns = rs_mono_ns();
    pthread_mutex_lock(&pub->mu);
    pub->submitted++;
    pthread_cond_signal(&pub->work);
    pthread_mutex_unlock(&pub->mu);
}

struct rs_pub_batch *rs_publisher_reap(struct rs_publisher *pub)
{
    size_t written;

    if (pub->reaped == pub->submitted) return NULL;
    pthread_mutex_lock(&pub->mu);
    written = pub->written;
    pthread_mutex_unlock(&pub->mu);
    return pub->reaped < written ? &pub->slots[pub->reaped % pub->n] : NULL;
}

void rs_publisher_release(struct rs_publisher *pub, struct rs_pub_batch *b)
{
    (void)b;
    pub->reaped++;
}

int rs_publisher_wait(struct rs_publisher *pub, int timeout_ms)
{
    struct timespec ts;
    uint64_t failures;
    int ready;

    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&pub->mu);
    failures = pub->failures;
    while (pub->reaped == pub->written && pub->written < pub->submitted &&
           pub->failures == failures &&
           pthread_cond_timedwait(&pub->done, &pub->mu, &ts) == 0) {
    }
    ready = pub->reaped < pub->written;
    pthread_mutex_unlock(&pub->mu);
    return ready;
}

const struct rs_pub_batch *rs_publisher_in_flight_at(const struct rs_publisher *pub,
                                                     size_t i)
{
    return &pub->slots[(pub->reaped + i) % pub->n];
}

size_t rs_publisher_queued(struct rs_publisher *pub)
{
    size_t q;
    pthread_mutex_lock(&pub->mu);
    q = pub->submitted - pub->written;
    pthread_mutex_unlock(&pub->mu);
    return q;
}

size_t rs_publisher_in_flight(const struct rs_publisher *pub)
{
    return pub->submitted - pub->reaped;
}

size_t rs_publisher_slots(const struct rs_publisher *pub)
{
    return pub->n;
}

int rs_publisher_failing(struct rs_publisher *pub)
{
    int f;
    pthread_mutex_lock(&pub->mu);
    f = pub->failing;
    pthread_mutex_unlock(&pub->mu);
    return f;
}

void rs_publisher_errstr(struct rs_publisher *pub, char *buf, size_t size)
{
    pthread_mutex_lock(&pub->mu);
    snprintf(buf, size, "%s", pub->errstr);
    pthread_mutex_unlock(&pub->mu);
}

uint64_t rs_publisher_failures(struct rs_publisher *pub)
{
    uint64_t f;
    pthread_mutex_lock(&pub->mu);
    f = pub->failures;
    pthread_mutex_unlock(&pub->mu);
    return f;
}
