/*
 * event.h - one user event as the model sees it, and the decoders that turn
 * untrusted bytes (a Kafka message value, a line of a file) into it. Every
 * way an input can be wrong has a reason code; decoding never crashes and
 * never allocates per event.
 */
#ifndef RECSTREAM_EVENT_H
#define RECSTREAM_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"

enum rs_event_type {
    RS_EVENT_PLAY = 1,
    RS_EVENT_RATE = 2,
    RS_EVENT_FORGET = 3,
};

/*
 * A decoded event. Ids are copied (not borrowed), NUL-terminated, 1..RS_ID_MAX
 * bytes; integer ids are written in decimal, so 42 and "42" are the same id.
 */
struct rs_event {
    enum rs_event_type type;
    uint16_t user_len;
    uint16_t item_len; /* 0 for forget */
    float value;       /* rating for rate, weight for play (default 1) */
    int64_t ts_ms;     /* event time; 0 when absent (caller fills it) */
    char user[RS_ID_MAX + 1];
    char item[RS_ID_MAX + 1];
};

/* Why an input was refused. Kept stable: metrics and dead letters name them. */
enum rs_event_reason {
    RS_REASON_OK = 0,
    RS_REASON_EMPTY,          /* zero-length payload */
    RS_REASON_TOO_LARGE,      /* payload over the size limit */
    RS_REASON_MALFORMED,      /* not valid JSON / msgpack, or truncated */
    RS_REASON_NOT_OBJECT,     /* valid, but not a map/object */
    RS_REASON_DUPLICATE_KEY,  /* a key appears twice */
    RS_REASON_MISSING_USER,
    RS_REASON_MISSING_ITEM,
    RS_REASON_MISSING_TYPE,
    RS_REASON_BAD_ID,         /* id neither string nor integer, or empty */
    RS_REASON_ID_TOO_LONG,    /* id over RS_ID_MAX bytes */
    RS_REASON_BAD_TYPE,       /* type not one of play, rate, forget */
    RS_REASON_BAD_VALUE,      /* value not a number, NaN or infinite */
    RS_REASON_OFF_SCALE,      /* rating outside [rating_min, rating_max]; play weight <= 0 */
    RS_REASON_MISSING_VALUE,  /* rate without a value */
    RS_REASON_BAD_TS,         /* ts not an integer, or negative */
    RS_REASON_COUNT
};

/* Short stable name of a reason ("malformed", "id_too_long", ...). */
const char *rs_event_reason_str(enum rs_event_reason reason);

/*
 * What the decoder accepts. Passing NULL limits means: no rating scale check
 * and max_bytes RS_EVENT_MAX_BYTES_DEFAULT; max_bytes 0 also means the default.
 */
struct rs_event_limits {
    double rating_min;
    double rating_max;
    size_t max_bytes; /* largest payload accepted */
};

#define RS_EVENT_MAX_BYTES_DEFAULT 4096

/*
 * Decodes one payload: a msgpack map, or a JSON object when the first
 * non-blank byte is '{'. Unknown keys are ignored. Returns RS_REASON_OK and
 * fills ev, or the reason the payload was refused (ev is then undefined).
 */
enum rs_event_reason rs_event_decode(const void *buf, size_t len,
                                     const struct rs_event_limits *lim,
                                     struct rs_event *ev);

/* Same checks, for each encoding alone. */
enum rs_event_reason rs_event_decode_json(const void *buf, size_t len,
                                          const struct rs_event_limits *lim,
                                          struct rs_event *ev);
enum rs_event_reason rs_event_decode_msgpack(const void *buf, size_t len,
                                             const struct rs_event_limits *lim,
                                             struct rs_event *ev);

/*
 * Checks an event built by other means (a file source) against lim, as the
 * decoders do: ids present and within RS_ID_MAX, value finite and on scale.
 */
enum rs_event_reason rs_event_validate(const struct rs_event *ev,
                                       const struct rs_event_limits *lim);

/*
 * Measures the msgpack object at the start of buf without building it and
 * without allocating. Returns 1 and sets *size to its length in bytes when the
 * whole object is in buf, 0 when more bytes are needed to finish it, -1 when
 * the bytes cannot be msgpack (a reserved byte). Containers that announce more
 * entries than bytes remain count as incomplete, never as a big allocation.
 * Stream readers (the msgpack file source) use it to cut objects before
 * handing each one to rs_event_decode_msgpack.
 */
int rs_event_msgpack_size(const void *buf, size_t len, size_t *size);

/*
 * Encodes ev as a msgpack map {user, item, type, value, ts} into buf.
 * Returns the bytes written, or 0 if size is too small.
 */
size_t rs_event_encode_msgpack(const struct rs_event *ev, void *buf, size_t size);

/* Name of an event type ("play", "rate", "forget"). */
const char *rs_event_type_str(enum rs_event_type type);

#endif
