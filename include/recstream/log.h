/*
 * log.h - leveled logging to stderr with timestamps, and a rate limiter for
 * errors that can repeat once per event (bad input, a Redis outage).
 */
#ifndef RECSTREAM_LOG_H
#define RECSTREAM_LOG_H

#include <stdint.h>

enum rs_log_level {
    RS_LOG_ERROR = 0,
    RS_LOG_WARN,
    RS_LOG_INFO,
    RS_LOG_DEBUG,
};

/* Sets the most verbose level that is printed (default RS_LOG_INFO). */
void rs_log_set_level(enum rs_log_level level);
enum rs_log_level rs_log_get_level(void);

/* Parses "error", "warn", "info" or "debug"; returns 0 or -1 if unknown. */
int rs_log_level_parse(const char *name, enum rs_log_level *level);

/* Prints one line: "2026-11-29T09:05:05.123Z LEVEL message". */
void rs_log(enum rs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * A rate limiter: at most `burst` lines per `period_ms`; the lines dropped are
 * counted and reported by the next line that passes.
 */
struct rs_log_limit {
    int64_t window_start_ms;
    uint32_t period_ms;
    uint32_t burst;
    uint32_t in_window;
    uint64_t suppressed;
};

#define RS_LOG_LIMIT_INIT(period_ms, burst) {0, (period_ms), (burst), 0, 0}

void rs_log_limited(struct rs_log_limit *lim, enum rs_log_level level,
                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define rs_error(...) rs_log(RS_LOG_ERROR, __VA_ARGS__)
#define rs_warn(...) rs_log(RS_LOG_WARN, __VA_ARGS__)
#define rs_info(...) rs_log(RS_LOG_INFO, __VA_ARGS__)
#define rs_debug(...)                                                          \
    do {                                                                       \
        if (rs_log_get_level() >= RS_LOG_DEBUG) rs_log(RS_LOG_DEBUG, __VA_ARGS__); \
    } while (0)

#endif
