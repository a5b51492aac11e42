/*
 * memio.h - an in-memory rs_writer/rs_reader pair for unit tests that save a
 * module's state and load it back (serial.h): a growable buffer, a read
 * position, and RS_ECORRUPT when a read runs past what was written.
 */
#ifndef RECSTREAM_TEST_MEMIO_H
#define RECSTREAM_TEST_MEMIO_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/serial.h"

struct mem {
    char *buf;
    size_t len, cap, pos;
};

static inline rs_err_t mem_write(void *ctx, const void *buf, size_t len)
{
    struct mem *m = ctx;
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + len)
            cap *= 2;
        char *nb = realloc(m->buf, cap);
        if (nb == NULL)
            return RS_ENOMEM;
        m->buf = nb;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, buf, len);
    m->len += len;
    return RS_OK;
}

static inline rs_err_t mem_read(void *ctx, void *buf, size_t len)
{
    struct mem *m = ctx;
    if (m->pos + len > m->len)
        return RS_ECORRUPT;
    memcpy(buf, m->buf + m->pos, len);
    m->pos += len;
    return RS_OK;
}

static inline uint64_t mem_remaining(void *ctx)
{
    struct mem *m = ctx;
    return m->len - m->pos;
}


#endif
