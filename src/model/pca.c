#include "model/pca.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/gemm.h"
#include "util/error.h"
#include "util/finite.h"

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int dfr_pca_latent_from_eigenvalues(const double *eig, int n, double keep, double *ratio_kept)
{
    double *e = malloc((size_t)n * sizeof *e);
    if (!e || n < 1) {
        free(e);
        return 1;
    }
    double total = 0;
    for (int i = 0; i < n; i++) {
        e[i] = eig[i] > 0 ? eig[i] : 0; /* rounding can make null directions slightly negative */
        total += e[i];
    }
    qsort(e, (size_t)n, sizeof *e, cmp_desc);
    /* sklearn: searchsorted(cumsum(ratio), keep, side='right') + 1, i.e. the first component at
     * which the cumulative ratio exceeds `keep`, counted from 1. */
    int d = n;
    double cum = 0;
    for (int i = 0; i < n; i++) {
        cum += total > 0 ? e[i] / total : 0;
        if (cum > keep) {
            d = i + 1;
            break;
        }
    }
    if (ratio_kept) {
        double kept = 0;
        for (int i = 0; i < d; i++) kept += total > 0 ? e[i] / total : 0;
        *ratio_kept = kept;
    }
    free(e);
    return d;
}

/* Copies image i of a [n, channels, npos] buffer (dfr_pca_latent's source). */
typedef struct pca_buffer_src {
    dfr_runtime *rt;
    cl_mem feat;
    size_t bytes; /* one image */
} pca_buffer_src;

static int load_from_buffer(void *user, int i, cl_mem dst)
{
    const pca_buffer_src *b = user;
    return dfr_copy(b->rt, b->feat, b->bytes * i, dst, 0, b->bytes, "features for the PCA");
}

/* LAPACK only says "info -5" of a NaN: say what is wrong instead. Finite features can still
 * overflow the covariance when they are huge. `image` > 0 is printed after `what`. */
static int check_finite(const float *x, size_t n, const char *what, int image)
{
    size_t i = dfr_first_nonfinite(x, n);
    if (i < n)
        return dfr_error(DFRCL_ERR_FORMAT,
                         "PCA: %s%.0d: a non-finite value (%g); the backbone weights or the "
                         "images give features that are not finite or too large (check the "
                         "weights file)",
                         what, image, (double)x[i]);
    return DFRCL_OK;
}

int dfr_pca_latent(dfr_runtime *rt, cl_mem feat, int n_images, int channels, int npos,
                   double keep, int *latent, double *ratio_kept)
{
    pca_buffer_src b = {rt, feat, (size_t)channels * npos * sizeof(float)};
    return dfr_pca_latent_each(rt, n_images, channels, npos, load_from_buffer, &b, keep, latent,
                               ratio_kept);
}

int dfr_pca_latent_each(dfr_runtime *rt, int n_images, int channels, int npos,
                        int (*load)(void *user, int i, cl_mem dst), void *user, double keep,
                        int *latent, double *ratio_kept)
{
    *latent = 0;
    if (n_images < 1 || channels < 1 || npos < 1 || !(keep > 0 && keep < 1))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "PCA: bad arguments");
    size_t per = (size_t)channels * npos;
    double n = (double)npos * n_images;
    float *x = malloc(per * sizeof(float));
    double *mean = calloc((size_t)channels, sizeof *mean);
    float *cov = malloc((size_t)channels * channels * sizeof(float));
    double *cd = malloc((size_t)channels * channels * sizeof(double));
    double *eig = malloc((size_t)channels * sizeof(double));
    cl_mem img = NULL, centred = NULL, dcov = NULL;
    int rc = DFRCL_OK;
    if (!x || !mean || !cov || !cd || !eig) {
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "PCA: out of memory (channels %d)", channels);
        goto done;
    }
    rc = dfr_buffer_new(rt, per * sizeof(float), CL_MEM_READ_WRITE, "PCA features", &img);
    if (!rc) rc = dfr_buffer_new(rt, per * sizeof(float), CL_MEM_READ_ONLY, "PCA samples", &centred);
    if (!rc) rc = dfr_buffer_new(rt, (size_t)channels * channels * sizeof(float),
                                 CL_MEM_READ_WRITE, "PCA covariance", &dcov);
    /* Centre on the host in double: the covariance of uncentred ReLU features would lose the
     * small eigenvalues to cancellation. Image by image, so memory does not grow with n: a first
     * pass for the mean, a second that centres each image and adds X_i X_i^T / (n - 1). */
    for (int i = 0; i < n_images && !rc; i++) {
        rc = load(user, i, img);
        if (!rc) rc = dfr_read(rt, img, 0, per * sizeof(float), x, "pca download");
        if (!rc) rc = check_finite(x, per, "the features of training image ", i + 1);
        for (int c = 0; c < channels && !rc; c++) {
            const float *row = x + (size_t)c * npos;
            double s = 0;
            for (int p = 0; p < npos; p++) s += row[p];
            mean[c] += s;
        }
    }
    for (int c = 0; c < channels; c++) mean[c] /= n;
    for (int i = 0; i < n_images && !rc; i++) {
        rc = load(user, i, img);
        if (!rc) rc = dfr_read(rt, img, 0, per * sizeof(float), x, "pca download");
        if (rc) break;
        for (int c = 0; c < channels; c++) {
            float *row = x + (size_t)c * npos;
            for (int p = 0; p < npos; p++) row[p] = (float)(row[p] - mean[c]);
        }
        rc = dfr_write(rt, centred, 0, per * sizeof(float), x, "pca upload");
        dfr_gemm_desc g = {
            .trans_a = 0, .trans_b = 1, .m = channels, .n = channels, .k = npos,
            .alpha = (float)(1.0 / (n - 1)), .beta = i ? 1.0f : 0.0f,
            .a = centred, .a_offset = 0, .lda = (size_t)npos, .a_stride = 0,
            .b = centred, .b_offset = 0, .ldb = (size_t)npos, .b_stride = 0,
            .c = dcov, .c_offset = 0, .ldc = (size_t)channels, .c_stride = 0,
            .batch = 1,
        };
        if (!rc) rc = dfr_gemm(rt, &g, "pca");
    }
    if (!rc) rc = dfr_read(rt, dcov, 0, (size_t)channels * channels * sizeof(float), cov,
                           "pca download");
    if (rc) goto done;
    rc = check_finite(cov, (size_t)channels * channels, "the features' covariance", 0);
    if (rc) goto done;
    for (size_t i = 0; i < (size_t)channels * channels; i++) cd[i] = cov[i];
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', channels, cd, channels, eig);
    if (info != 0) {
        rc = dfr_error(DFRCL_ERR_INTERNAL, "PCA: LAPACK dsyevd failed (info %d)", (int)info);
        goto done;
    }
    *latent = dfr_pca_latent_from_eigenvalues(eig, channels, keep, ratio_kept);
done:
    dfr_buffer_release(&img);
    dfr_buffer_release(&centred);
    dfr_buffer_release(&dcov);
    free(x);
    free(mean);
    free(cov);
    free(cd);
    free(eig);
    return rc;
}
