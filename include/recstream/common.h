/*
 * common.h - the few things every recstream module shares: the error codes,
 * clocks and the limits written into the product contract (docs/ARCHITECTURE.md).
 * Nothing here allocates or touches a network library.
 */
#ifndef RECSTREAM_COMMON_H
#define RECSTREAM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define RS_VERSION "0.1.0"

/* The one error enum. Functions return RS_OK (0) or one of these. */
typedef enum rs_err {
    RS_OK = 0,
    RS_ENOMEM,   /* allocation failed */
    RS_EIO,      /* read/write/system call failed, see errno */
    RS_EINVAL,   /* bad argument or configuration */
    RS_EPARSE,   /* input could not be parsed */
    RS_ECORRUPT, /* stored data failed a check */
    RS_EFULL,    /* a configured bound was reached */
    RS_ENOENT,   /* not found / end of input */
    RS_EKAFKA,   /* the Kafka client reported an error */
    RS_EREDIS,   /* the Redis client reported an error */
} rs_err_t;

/* A short static description of err, never NULL. */
const char *rs_err_str(rs_err_t err);

/* Longest external user or item id, in bytes (DESIGN.md, "Events"). */
#define RS_ID_MAX 256

/* Sentinel for "no index" in dense id spaces. */
#define RS_NONE UINT32_MAX

/* Wall-clock milliseconds since the epoch. */
int64_t rs_now_ms(void);

/* Monotonic nanoseconds, for intervals. */
uint64_t rs_mono_ns(void);

/*
 * The calling thread's CPU time and the time it has spent runnable but
 * waiting for a CPU, in ns since it started (Linux's per-thread schedstat).
 * 0, or -1 where the kernel does not keep them.
 */
int rs_thread_sched_ns(uint64_t *run_ns, uint64_t *wait_ns);

#endif
