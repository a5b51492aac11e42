/*
 * dirty.c - the users whose list must be recomputed. Events mark users many
 * times between two publishes; the ranker takes them in batches, oldest
 * first. This file owns a bitmap (one bit per user index, grown to the
 * highest user seen) that makes marking idempotent, and a ring buffer of user
 * indices that keeps the order. A user is in the ring exactly while its bit
 * is set, so the ring never holds more entries than there are users.
 * Beside each queued user is the time it was marked (milliseconds of the
 * monotonic clock, 32 bits, compared by difference so wrap-around is
 * harmless), so the publisher can tell how long the oldest one has waited.
 */
#include "recstream/dirty.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_WORDS 16u
#define INITIAL_QUEUE 64u

struct rs_dirty {
    uint64_t *bits;
    size_t nwords;
    uint32_t *queue; /* ring buffer of dirty users, oldest at head */
    uint32_t *since; /* when each was marked (mono ms, truncated), same ring */
    size_t cap;
    size_t head;
    size_t count;
};

struct rs_dirty *rs_dirty_create(void)
{
    return calloc(1, sizeof(struct rs_dirty));
}

void rs_dirty_destroy(struct rs_dirty *d)
{
    if (d == NULL)
        return;
    free(d->bits);
    free(d->queue);
    free(d->since);
    free(d);
}

static int is_set(const struct rs_dirty *d, uint32_t user)
{
    size_t w = user / 64;
    return w < d->nwords && (d->bits[w] >> (user % 64)) & 1u;
}

/* Makes the bitmap cover user. */
static rs_err_t grow_bits(struct rs_dirty *d, uint32_t user)
{
    size_t need = (size_t)user / 64 + 1;
    if (need <= d->nwords)
        return RS_OK;
    size_t n = d->nwords == 0 ? INITIAL_WORDS : d->nwords;
    while (n < need)
        n *= 2;
    uint64_t *bits = realloc(d->bits, n * sizeof(*bits));
    if (bits == NULL)
        return RS_ENOMEM;
    memset(bits + d->nwords, 0, (n - d->nwords) * sizeof(*bits));
    d->bits = bits;
    d->nwords = n;
    return RS_OK;
}

/* Makes room for one more queued user, unrolling the ring into the new array. */
static rs_err_t grow_queue(struct rs_dirty *d)
{
    if (d->count < d->cap)
        return RS_OK;
    size_t cap = d->cap == 0 ? INITIAL_QUEUE : d->cap * 2;
    if (cap > SIZE_MAX / sizeof(uint32_t))
        return RS_ENOMEM;
    uint32_t *queue = malloc(cap * sizeof(*queue));
    uint32_t *since = malloc(cap * sizeof(*since));
    if (queue == NULL || since == NULL) {
        free(queue);
        free(since);
        return RS_ENOMEM;
    }
    for (size_t i = 0; i < d->count; i++) {
        queue[i] = d->queue[(d->head + i) % d->cap];
        since[i] = d->since[(d->head + i) % d->cap];
    }
    free(d->queue);
    free(d->since);
    d->queue = queue;
    d->since = since;
    d->cap = cap;
    d->head = 0;
    return RS_OK;
}

rs_err_t rs_dirty_mark(struct rs_dirty *d, uint32_t user)
{
    if (d == NULL)
        return RS_EINVAL;
    if (is_set(d, user))
        return RS_OK;
    rs_err_t err = grow_bits(d, user);
    if (err != RS_OK)
        return err;
    err = grow_queue(d);
    if (err != RS_OK)
        return err;
    d->queue[(d->head + d->count) % d->cap] = user;
    d->since[(d->head + d->count) % d->cap] = (uint32_t)(rs_mono_ns() / 1000000u);
    d->count++;
    d->bits[user / 64] |= (uint64_t)1 << (user % 64);
    return RS_OK;
}

size_t rs_dirty_count(const struct rs_dirty *d)
{
    return d == NULL ? 0 : d->count;
}

size_t rs_dirty_take(struct rs_dirty *d, uint32_t *out, size_t max)
{
    if (d == NULL || out == NULL)
        return 0;
    size_t n = max < d->count ? max : d->count;
    for (size_t i = 0; i < n; i++) {
        uint32_t user = d->queue[d->head];
        out[i] = user;
        d->bits[user / 64] &= ~((uint64_t)1 << (user % 64));
        d->head = (d->head + 1) % d->cap;
    }
    d->count -= n;
    if (d->count == 0)
        d->head = 0;
    return n;
}

uint32_t rs_dirty_oldest_ms(const struct rs_dirty *d)
{
    if (d == NULL || d->count == 0)
        return 0;
    return (uint32_t)(rs_mono_ns() / 1000000u) - d->since[d->head];
}

uint32_t rs_dirty_at(const struct rs_dirty *d, size_t i)
{
    return d->queue[(d->head + i) % d->cap];
}

rs_err_t rs_dirty_save(const struct rs_dirty *d, struct rs_writer *w)
{
    rs_err_t err = rs_write_u64(w, d->count);
    for (size_t i = 0; i < d->count && err == RS_OK; i++)
        err = rs_write_u32(w, d->queue[(d->head + i) % d->cap]);
    return err;
}

struct rs_dirty *rs_dirty_load(struct rs_reader *r, rs_err_t *err)
{
    struct rs_dirty *d = rs_dirty_create();
    uint64_t count;
    uint32_t user;

    if (d == NULL) {
        *err = RS_ENOMEM;
        return NULL;
    }
    if ((*err = rs_read_u64(r, &count)) != RS_OK)
        goto fail;
    if (count > r->remaining(r->ctx) / 4) {
        *err = RS_ECORRUPT;
        goto fail;
    }
    for (uint64_t i = 0; i < count; i++) {
        if ((*err = rs_read_u32(r, &user)) != RS_OK || (*err = rs_dirty_mark(d, user)) != RS_OK)
            goto fail;
    }
    *err = RS_OK;
    return d;

fail:
    rs_dirty_destroy(d);
    return NULL;
}
