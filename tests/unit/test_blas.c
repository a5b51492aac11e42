/*
 * test_blas.c - OpenBLAS kernel choice: which detected families are upgraded
 * and to what, and, in this very program, that the restart takes effect
 * (main() calls rs_blas_fix_kernels like recstream's; when it set
 * OPENBLAS_CORETYPE, OpenBLAS must now report that family).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "recstream/blas.h"

static void test_sse_era_families_are_upgraded(void **state)
{
    (void)state;
    assert_string_equal(rs_blas_better_core("Prescott", 1, 1), "SkylakeX");
    assert_string_equal(rs_blas_better_core("Prescott", 0, 1), "Haswell");
    assert_string_equal(rs_blas_better_core("nehalem", 0, 1), "Haswell");
    assert_null(rs_blas_better_core("Prescott", 0, 0)); /* nothing better to run */
}

static void test_known_families_are_kept(void **state)
{
    (void)state;
    assert_null(rs_blas_better_core("Haswell", 1, 1));
    assert_null(rs_blas_better_core("SkylakeX", 1, 1));
    assert_null(rs_blas_better_core("Zen", 0, 1));
    assert_null(rs_blas_better_core("SapphireRapids", 1, 1));
    assert_null(rs_blas_better_core(NULL, 1, 1));
}

static void test_the_restart_took_effect(void **state)
{
    const char *set = getenv("OPENBLAS_CORETYPE");
    (void)state;
    if (set) /* set by rs_blas_fix_kernels (or by the caller): OpenBLAS obeyed */
        assert_string_equal(rs_blas_core(), set);
    else /* left alone: OpenBLAS's own choice needed no upgrade */
        assert_null(rs_blas_better_core(rs_blas_core(), 1, 1));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_era_families_are_upgraded),
        cmocka_unit_test(test_known_families_are_kept),
        cmocka_unit_test(test_the_restart_took_effect),
    };
    (void)argc;
    rs_blas_fix_kernels(argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
