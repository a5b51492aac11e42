/*
 * log.c - leveled, timestamped log lines on stderr, and the rate limiter that
 * keeps a flood of identical errors (one per bad event) to a few lines.
 */
#include "recstream/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "recstream/common.h"

static enum rs_log_level current_level = RS_LOG_INFO;

static const char *level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void rs_log_set_level(enum rs_log_level level) { current_level = level; }

enum rs_log_level rs_log_get_level(void) { return current_level; }

int rs_log_level_parse(const char *name, enum rs_log_level *level)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *level = (enum rs_log_level)i;
            return 0;
        }
    }
    return -1;
}

static void vlog(enum rs_log_level level, const char *suffix, const char *fmt,
                 va_list ap)
{
    char msg[1024];
    char stamp[32];
    int64_t now = rs_now_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* One fprintf per line keeps lines whole when threads log at once. */
    fprintf(stderr, "%s.%03dZ %-5s %s%s\n", stamp, (int)(now % 1000),
            level_names[level], msg, suffix);
}

void rs_log(enum rs_log_level level, const char *fmt, ...)
{
    va_list ap;
    if (level > current_level) return;
    va_start(ap, fmt);
    vlog(level, "", fmt, ap);
    va_end(ap);
}

void rs_log_limited(struct rs_log_limit *lim, enum rs_log_level level,
                    const char *fmt, ...)
{
    va_list ap;
    char suffix[64] = "";
    int64_t now = rs_now_ms();

    if (level > current_level) return;
    if (now - lim->window_start_ms >= (int64_t)lim->period_ms) {
        lim->window_start_ms = now;
        lim->in_window = 0;
    }
    if (lim->in_window >= lim->burst) {
        lim->suppressed++;
        return;
    }
    lim->in_window++;
    if (lim->suppressed) {
        snprintf(suffix, sizeof(suffix), " (%llu similar lines suppressed)",
                 (unsigned long long)lim->suppressed);
        lim->suppressed = 0;
    }
    va_start(ap, fmt);
    vlog(level, suffix, fmt, ap);
    va_end(ap);
}
