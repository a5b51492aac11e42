/*
 * serial.h - how a module writes its state into a snapshot and reads it back,
 * without knowing about files, sections or checksums (the snapshot module
 * owns those). A module with state exposes
 *     rs_err_t rs_<module>_save(const struct rs_<module> *x, struct rs_writer *w);
 *     struct rs_<module> *rs_<module>_load(struct rs_reader *r, ..., rs_err_t *err);
 * writing fixed-width little-endian fields and whole arrays, and checking
 * every count it reads against what the rest of the stream can hold.
 */
#ifndef RECSTREAM_SERIAL_H
#define RECSTREAM_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"

struct rs_writer {
    /* Appends len bytes; RS_OK or RS_EIO/RS_ENOMEM. */
    rs_err_t (*write)(void *ctx, const void *buf, size_t len);
    void *ctx;
};

struct rs_reader {
    /* Reads exactly len bytes; RS_OK, or RS_ECORRUPT when fewer remain. */
    rs_err_t (*read)(void *ctx, void *buf, size_t len);
    /* Bytes left in the current section (for sanity checks on counts). */
    uint64_t (*remaining)(void *ctx);
    void *ctx;
};

static inline rs_err_t rs_write_u32(struct rs_writer *w, uint32_t v)
{
    return w->write(w->ctx, &v, sizeof(v));
}

static inline rs_err_t rs_write_u64(struct rs_writer *w, uint64_t v)
{
    return w->write(w->ctx, &v, sizeof(v));
}

static inline rs_err_t rs_read_u32(struct rs_reader *r, uint32_t *v)
{
    return r->read(r->ctx, v, sizeof(*v));
}

static inline rs_err_t rs_read_u64(struct rs_reader *r, uint64_t *v)
{
    return r->read(r->ctx, v, sizeof(*v));
}

#endif
