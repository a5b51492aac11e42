/*
 * listfmt.h - renders a top-N list into the bytes stored in Redis (DESIGN.md,
 * "Redis keys"): a JSON array `[{"item":"42","score":0.931,"why":"17"},...]`
 * or the same array in msgpack. Scores are written with fixed precision
 * without printf. The Redis sink sends the bytes; this module knows no Redis.
 */
#ifndef RECSTREAM_LISTFMT_H
#define RECSTREAM_LISTFMT_H

#include <stddef.h>

#include "recstream/common.h"
#include "recstream/idmap.h"
#include "recstream/ranker.h"

/* A growable byte buffer. */
struct rs_buf {
    char *data;
    size_t len;
    size_t cap;
};

void rs_buf_init(struct rs_buf *b);
void rs_buf_free(struct rs_buf *b);
void rs_buf_reset(struct rs_buf *b);
rs_err_t rs_buf_append(struct rs_buf *b, const void *data, size_t len);

/*
 * Appends the list recs[0..n) to b, item and reason ids looked up in items.
 * Returns RS_OK or RS_ENOMEM.
 */
rs_err_t rs_listfmt_json(struct rs_buf *b, const struct rs_rec *recs, size_t n,
                         const struct rs_idmap *items);
rs_err_t rs_listfmt_msgpack(struct rs_buf *b, const struct rs_rec *recs, size_t n,
                            const struct rs_idmap *items);

/* Writes score with 4 decimals into out (at least 24 bytes); returns length. */
size_t rs_listfmt_score(float score, char *out);

#endif
