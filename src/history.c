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

void rs_history_clear(struct rs_history *h, uint32_t user)
{
    if (h == NULL || user >= h->nusers)
        return;
    free(h->users[user].items);
    h->users[user].items = NULL;
    h->users[user].n = 0;
    h->users[user].cap = 0;
}
