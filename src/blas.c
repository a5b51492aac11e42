/*
 * blas.c - picks OpenBLAS kernels the CPU can run when OpenBLAS itself did not
 * recognise the CPU (blas.h). The kernel family is chosen by feature flags
 * alone: AVX-512 F/BW/DQ/VL/CD for SkylakeX kernels, AVX2 and FMA for Haswell
 * kernels; OpenBLAS's own choice is kept unless it is an SSE-era family.
 * The switch needs a new process because OpenBLAS reads OPENBLAS_CORETYPE
 * once, in its load-time constructor.
 */
#include "recstream/blas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* OpenBLAS's own declaration is in cblas.h's openblas_config.h, which not
 * every packaging installs; the symbol is in every build. */
char *openblas_get_corename(void);

/* Families OpenBLAS falls back to or that predate AVX. */
static const char *const sse_era[] = {"Prescott", "Core2",  "Penryn",     "Dunnington",
                                      "Nehalem",  "Katmai", "Coppermine", "Northwood",
                                      "Banias",   "Atom",   "Unknown"};

const char *rs_blas_better_core(const char *detected, int avx512, int avx2_fma)
{
    int old = 0;
    if (!detected) return NULL;
    for (size_t i = 0; i < sizeof(sse_era) / sizeof(sse_era[0]); i++)
        if (strcasecmp(detected, sse_era[i]) == 0) old = 1;
    if (!old) return NULL;
    if (avx512) return "SkylakeX";
    if (avx2_fma) return "Haswell";
    return NULL;
}

const char *rs_blas_core(void)
{
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

void rs_blas_fix_kernels(char **argv)
{
    const char *core;
    int avx512 = 0, avx2_fma = 0;

    if (getenv("OPENBLAS_CORETYPE")) return;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512cd");
    avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    core = rs_blas_better_core(openblas_get_corename(), avx512, avx2_fma);
    if (!core) return;
    if (setenv("OPENBLAS_CORETYPE", core, 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* Still here: carry on with OpenBLAS's kernels (and say so once). */
    fprintf(stderr,
            "recstream: OpenBLAS chose %s kernels for this CPU; restarting with %s "
            "kernels failed, so ranking runs slower (set OPENBLAS_CORETYPE=%s)\n",
            openblas_get_corename(), core, core);
    unsetenv("OPENBLAS_CORETYPE");
}
