/*
 * common.c - error names and clocks shared by every module, and the calling
 * thread's scheduler times.
 */
#include "recstream/common.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

const char *rs_err_str(rs_err_t err)
{
    switch (err) {
    case RS_OK: return "ok";
    case RS_ENOMEM: return "out of memory";
    case RS_EIO: return "i/o error";
    case RS_EINVAL: return "invalid argument";
    case RS_EPARSE: return "parse error";
    case RS_ECORRUPT: return "corrupt data";
    case RS_EFULL: return "limit reached";
    case RS_ENOENT: return "not found";
    case RS_EKAFKA: return "kafka error";
    case RS_EREDIS: return "redis error";
    }
    return "unknown error";
}

int64_t rs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t rs_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* /proc/thread-self/schedstat: "run_ns wait_ns timeslices" (kernels with
 * CONFIG_SCHED_INFO, which Debian's and most distributions' have). */
int rs_thread_sched_ns(uint64_t *run_ns, uint64_t *wait_ns)
{
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    int got;
    if (!f) return -1;
    got = fscanf(f, "%" SCNu64 " %" SCNu64, run_ns, wait_ns);
    fclose(f);
    return got == 2 ? 0 : -1;
}
