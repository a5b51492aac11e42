/*
 * history.c - the items each user already has. The ranker asks "does user u
 * have item i?" for every candidate, so membership must be cheap and the
 * whole set must come back in order for the neighbour logic: one sorted,
 * geometrically grown uint32 array per user, in an outer array indexed by
 * user that grows on demand. This file owns both levels of arrays.
 */
#include "recstream/history.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_ITEMS 4u
#define INITIAL_USERS 64u

struct user_items {
    uint32_t *items; /* ascending, no duplicates */
    uint32_t n;
    uint32_t cap;
};

struct rs_history {
    struct user_items *users;
    size_t nusers; /* length of users (all entries initialised) */
};

struct rs_history *rs_history_create(void)
{
    return calloc(1, sizeof(struct rs_history));
}

void rs_history_destroy(struct rs_history *h)
{
    if (h == NULL)
        return;
    for (size_t u = 0; u < h->nusers; u++)
        free(h->users[u].items);
    free(h->users);
    free(h);
}

/* First position in a whose value is >= item. */
static uint32_t lower_bound(const uint32_t *a, uint32_t n, uint32_t item)
{
    uint32_t lo = 0;
    uint32_t hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] < item)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Makes users[user] exist. 0 or -1 on ENOMEM. */
static int grow_users(struct rs_history *h, uint32_t user)
{
    size_t need = (size_t)user + 1;
    if (need <= h->nusers)
        return 0;
    size_t n = h->nusers == 0 ? INITIAL_USERS : h->nusers;
    while (n < need)
        n *= 2;
    if (n > SIZE_MAX / sizeof(struct user_items))
        return -1;
    struct user_items *users = realloc(h->users, n * sizeof(*users));
    if (users == NULL)
        return -1;
    memset(users + h->nusers, 0, (n - h->nusers) * sizeof(*users));
    h->users = users;
    h->nusers = n;
    return 0;
}

int rs_history_add(struct rs_history *h, uint32_t user, uint32_t item)
{
    if (h == NULL || grow_users(h, user) != 0)
        return -1;
    struct user_items *ui = &h->users[user];
    uint32_t pos = lower_bound(ui->items, ui->n, item);
    if (pos < ui->n && ui->items[pos] == item)
        return 0;
    if (ui->n == ui->cap) {
        /* n is bounded by the number of distinct uint32 items, so cap never overflows. */
        uint64_t cap = ui->cap == 0 ? INITIAL_ITEMS : (uint64_t)ui->cap * 2;
        if (cap > UINT32_MAX)
            cap = UINT32_MAX;
        uint32_t *items = realloc(ui->items, (size_t)cap * sizeof(*items));
        if (items == NULL)
            return -1;
        ui->items = items;
        ui->cap = (uint32_t)cap;
    }
    memmove(ui->items + pos + 1, ui->items + pos, (size_t)(ui->n - pos) * sizeof(*ui->items));
    ui->items[pos] = item;
    ui->n++;
    return 1;
}

int rs_history_contains(const struct rs_history *h, uint32_t user, uint32_t item)
{
    if (h == NULL || user >= h->nusers)
        return 0;
    const struct user_items *ui = &h->users[user];
    uint32_t pos = lower_bound(ui->items, ui->n, item);
    return pos < ui->n && ui->items[pos] == item;
}

const uint32_t *rs_history_items(const struct rs_history *h, uint32_t user, size_t *n)
{
    if (h == NULL || user >= h->nusers) {
        if (n != NULL)
            *n = 0;
        return NULL;
    }
    if (n != NULL)
        *n = h->users[user].n;
    return h->users[user].items;
}

void rs_history_prefetch(const struct rs_history *h, uint32_t user, int stage)
{
    if (h == NULL || user >= h->nusers) return;
    if (stage == 1)
        __builtin_prefetch(&h->users[user]);
    else if (h->users[user].n > 0)
        __builtin_prefetch(h->users[user].items);
}

void rs_history_clear(struct rs_history *h, uint32_t user)
{
    if (h == NULL || user >= h->nusers)
        return;
    free(h->users[user].items);
    h->users[user].items = NULL;
    h->users[user].n = 0;
    h->users[user].cap = 0;
}

rs_err_t rs_history_save(const struct rs_history *h, struct rs_writer *w)
{
    /* Trailing users without items are not written. */
    uint64_t nusers = h->nusers;
    rs_err_t err;

    while (nusers > 0 && h->users[nusers - 1].n == 0)
        nusers--;
    if ((err = rs_write_u64(w, nusers)) != RS_OK)
        return err;
    for (uint64_t u = 0; u < nusers; u++) {
        const struct user_items *ui = &h->users[u];
        if ((err = rs_write_u32(w, ui->n)) != RS_OK)
            return err;
        if (ui->n && (err = w->write(w->ctx, ui->items, (size_t)ui->n * sizeof(uint32_t))) != RS_OK)
            return err;
    }
    return RS_OK;
}

struct rs_history *rs_history_load(struct rs_reader *r, rs_err_t *err)
{
    struct rs_history *h = rs_history_create();
    uint64_t nusers;
    uint32_t n;

    if (h == NULL) {
        *err = RS_ENOMEM;
        return NULL;
    }
    if ((*err = rs_read_u64(r, &nusers)) != RS_OK)
        goto fail;
    /* Each user takes at least its 4-byte count. */
    if (nusers > UINT32_MAX || nusers * 4 > r->remaining(r->ctx)) {
        *err = RS_ECORRUPT;
        goto fail;
    }
    if (nusers > 0 && grow_users(h, (uint32_t)(nusers - 1)) != 0) {
        *err = RS_ENOMEM;
        goto fail;
    }
    for (uint64_t u = 0; u < nusers; u++) {
        struct user_items *ui = &h->users[u];
        if ((*err = rs_read_u32(r, &n)) != RS_OK)
            goto fail;
        if ((uint64_t)n * sizeof(uint32_t) > r->remaining(r->ctx)) {
            *err = RS_ECORRUPT;
            goto fail;
        }
        if (n == 0)
            continue;
        if ((ui->items = malloc((size_t)n * sizeof(uint32_t))) == NULL) {
            *err = RS_ENOMEM;
            goto fail;
        }
        ui->cap = n;
        if ((*err = r->read(r->ctx, ui->items, (size_t)n * sizeof(uint32_t))) != RS_OK)
            goto fail;
        ui->n = n;
        for (uint32_t j = 1; j < n; j++) {
            if (ui->items[j - 1] >= ui->items[j]) {
                *err = RS_ECORRUPT; /* must be ascending without duplicates */
                goto fail;
            }
        }
    }
    *err = RS_OK;
    return h;

fail:
    rs_history_destroy(h);
    return NULL;
}
