/*
 * blas.h - OpenBLAS kernels for the CPU recstream runs on. OpenBLAS builds
 * with DYNAMIC_ARCH pick their kernels from the CPU model when the library
 * loads; a model they do not know (new server CPUs, and virtual CPUs that
 * hide their model) falls back to SSE3 ("Prescott") kernels, several times
 * slower than the CPU can run. rs_blas_fix_kernels() is called first thing in
 * main(): in that case it sets OPENBLAS_CORETYPE to the widest kernel family
 * the CPU supports and starts the same program again with the same arguments,
 * so the library loads with those kernels. A user-set OPENBLAS_CORETYPE is
 * always respected.
 */
#ifndef RECSTREAM_BLAS_H
#define RECSTREAM_BLAS_H

/* The OpenBLAS kernel family to use on this CPU when OpenBLAS fell back to
 * SSE-era kernels: "SkylakeX" (AVX-512), "Haswell" (AVX2 + FMA), or NULL to
 * keep OpenBLAS's own choice. detected is openblas_get_corename(). */
const char *rs_blas_better_core(const char *detected, int avx512, int avx2_fma);

/* Re-executes argv with OPENBLAS_CORETYPE set when rs_blas_better_core says
 * so (and it is not set already); returns only when nothing was done or the
 * exec failed (then it logs why and OpenBLAS's choice stays). */
void rs_blas_fix_kernels(char **argv);

/* OpenBLAS's kernel family in this process ("SkylakeX", "Prescott", ...). */
const char *rs_blas_core(void);

#endif
