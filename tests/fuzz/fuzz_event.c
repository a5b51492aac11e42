/*
 * fuzz_event.c - libFuzzer target for the event decoders: any bytes go
 * through rs_event_decode (msgpack or JSON by first byte) and the two
 * decoders directly. A decoded event must satisfy the contract (ids within
 * RS_ID_MAX and NUL-terminated, a known type, a finite value) and survive an
 * encode/decode round trip unchanged. Built with clang -fsanitize=fuzzer,
 * address,undefined by scripts/fuzz.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/event.h"

static void check(const struct rs_event *ev)
{
    if (ev->user_len == 0 || ev->user_len > RS_ID_MAX || ev->user[ev->user_len] != '\0') abort();
    if (ev->type != RS_EVENT_FORGET &&
        (ev->item_len == 0 || ev->item_len > RS_ID_MAX || ev->item[ev->item_len] != '\0'))
        abort();
    if (ev->type < RS_EVENT_PLAY || ev->type > RS_EVENT_FORGET) abort();
    if (!isfinite(ev->value) || ev->ts_ms < 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct rs_event_limits lim = {1, 5, RS_EVENT_MAX_BYTES_DEFAULT};
    struct rs_event ev, back;
    unsigned char buf[2048];
    size_t len;

    if (rs_event_decode(data, size, &lim, &ev) == RS_REASON_OK) {
        check(&ev);
        len = rs_event_encode_msgpack(&ev, buf, sizeof(buf));
        if (len == 0) abort();
        if (rs_event_decode_msgpack(buf, len, &lim, &back) != RS_REASON_OK) abort();
        if (back.type != ev.type || back.user_len != ev.user_len ||
            memcmp(back.user, ev.user, ev.user_len) != 0 || back.value != ev.value ||
            back.ts_ms != ev.ts_ms)
            abort();
    }
    if (rs_event_decode_json(data, size, &lim, &ev) == RS_REASON_OK) check(&ev);
    if (rs_event_decode_msgpack(data, size, &lim, &ev) == RS_REASON_OK) check(&ev);
    return 0;
}
