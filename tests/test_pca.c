/* Latent size by PCA: the 90% rule as scikit-learn applies it, and the device covariance against
 * a covariance computed in double on the host, on features with a planted spectrum. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <lapacke.h>

#include "model/pca.h"
#include "testutil.h"
#include "util/error.h"

static dfr_runtime *rt;

static void test_rule(void **state)
{
    (void)state;
    double kept;
    /* ratios .5 .3 .125 .075: cumulative .5 .8 .925 -> 3 components exceed 0.9 */
    double e1[4] = {0.075, 0.5, 0.125, 0.3};
    assert_int_equal(dfr_pca_latent_from_eigenvalues(e1, 4, 0.9, &kept), 3);
    assert_true(fabs(kept - 0.925) < 1e-12);
    /* cumulative exactly reaching the fraction is not enough: it must exceed it (side='right') */
    double e2[4] = {0.5, 0.25, 0.25, 0.0};
    assert_int_equal(dfr_pca_latent_from_eigenvalues(e2, 4, 0.75, NULL), 3);
    /* negative rounding noise counts as zero; a single direction */
    double e3[3] = {2.0, -1e-9, 0.0};
    assert_int_equal(dfr_pca_latent_from_eigenvalues(e3, 3, 0.9, NULL), 1);
}

static void test_device_covariance(void **state)
{
    (void)state;
    /* 3 images of 40 channels x 37 positions; channel c carries factor c % 6 with a decaying
     * scale plus noise and a large offset (as ReLU features have), so the spectrum is known. */
    int n = 3, C = 40, P = 37;
    size_t per = (size_t)C * P, total = per * n;
    float *x = malloc(total * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int p = 0; p < P; p++) {
            float f[6];
            for (int k = 0; k < 6; k++) f[k] = dfr_test_uniform(100 + k, (uint32_t)(i * P + p), -1, 1) * (float)(8 >> (k / 2));
            for (int c = 0; c < C; c++)
                x[i * per + (size_t)c * P + p] = 50.0f + f[c % 6] + dfr_test_uniform(7, (uint32_t)(i * per + c * P + p), -0.05f, 0.05f);
        }
    /* host reference in double */
    double *mean = calloc((size_t)C, sizeof(double)), *cov = calloc((size_t)C * C, sizeof(double));
    double N = (double)n * P;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++) mean[c] += x[i * per + (size_t)c * P + p] / N;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < P; p++)
            for (int a = 0; a < C; a++)
                for (int b = 0; b < C; b++)
                    cov[a * C + b] += (x[i * per + (size_t)a * P + p] - mean[a]) * (x[i * per + (size_t)b * P + p] - mean[b]) / (N - 1);
    double *eig = malloc((size_t)C * sizeof(double));
    assert_int_equal(LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', C, cov, C, eig), 0);
    for (int k = 1; k < 20; k++) {
        double keep = k / 20.0, want_kept, got_kept;
        int want = dfr_pca_latent_from_eigenvalues(eig, C, keep, &want_kept);
        cl_mem feat;
        assert_int_equal(dfr_buffer_new(rt, total * sizeof(float), CL_MEM_READ_WRITE, "t", &feat), DFRCL_OK);
        assert_int_equal(dfr_write(rt, feat, 0, total * sizeof(float), x, "t"), DFRCL_OK);
        int got = -1;
        assert_int_equal(dfr_pca_latent(rt, feat, n, C, P, keep, &got, &got_kept), DFRCL_OK);
        assert_int_equal(got, want);
        assert_true(fabs(got_kept - want_kept) < 1e-5);
        dfr_buffer_release(&feat);
    }
    /* the planted spectrum: 6 factors, scales 8,8,4,4,2,2 -> 90% needs more than 2 */
    int d = dfr_pca_latent_from_eigenvalues(eig, C, 0.9, NULL);
    assert_true(d >= 3 && d <= 6);
    cl_mem dummy = NULL;
    int got;
    assert_int_equal(dfr_pca_latent(rt, dummy, 0, C, P, 0.9, &got, NULL), DFRCL_ERR_INVALID_ARG);
    free(x);
    free(mean);
    free(cov);
    free(eig);
}

int main(void)
{
    DFR_TEST_OPEN_RUNTIME(&rt);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rule), cmocka_unit_test(test_device_covariance)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dfr_runtime_close(&rt);
    return failed;
}
