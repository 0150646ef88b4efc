/* DFR's latent size: PCA of regional feature vectors, the fewest components that keep 90% of
 * the variance (by default). */
#ifndef DFRCL_MODEL_PCA_H
#define DFRCL_MODEL_PCA_H

#include "cl/runtime.h"

/* Latent size from the eigenvalues of the covariance of the feature vectors of `n_images` images
 * stored in feat as [n_images, channels, npos] (each position of each image is one sample of
 * `channels` dims): the fewest components whose explained-variance ratio sums to more than `keep`
 * (scikit-learn's PCA(n_components=keep) rule). The covariance is a GEMM on the device; the
 * eigenvalues come from LAPACK (dsyevd, eigenvalues only). `ratio_kept`, if not NULL, receives the
 * variance fraction the chosen components keep. */
int dfr_pca_latent(dfr_runtime *rt, cl_mem feat, int n_images, int channels, int npos,
                   double keep, int *latent, double *ratio_kept);

/* The same, with image i of n_images loaded by load(user, i, dst) into dst ([channels, npos]
 * fp32 on the device) when needed (twice each): memory does not grow with n_images. */
int dfr_pca_latent_each(dfr_runtime *rt, int n_images, int channels, int npos,
                        int (*load)(void *user, int i, cl_mem dst), void *user, double keep,
                        int *latent, double *ratio_kept);

/* The rule on given eigenvalues (any order): exposed for tests. */
int dfr_pca_latent_from_eigenvalues(const double *eig, int n, double keep, double *ratio_kept);
#endif
