/* Decoding ahead on a worker thread: a ring of `depth` slots between one producer (the worker)
 * and one consumer (the caller), guarded by one mutex and one condition variable. */
#include "io/prefetch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "util/error.h"

typedef struct slot {
    dfrcl_image img;
    int orig_w, orig_h, rc;
    char *error; /* the worker's error message when rc != 0 */
} slot;

struct dfr_prefetch {
    const char *const *paths;
    int n, size, depth;
    slot *ring;
    int produced, consumed, stop; /* guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t worker;
    int started;
};

static void *work(void *arg)
{
    dfr_prefetch *pf = arg;
    for (int i = 0; i < pf->n; i++) {
        pthread_mutex_lock(&pf->mu);
        while (!pf->stop && pf->produced - pf->consumed >= pf->depth) pthread_cond_wait(&pf->cv, &pf->mu);
        int stop = pf->stop;
        pthread_mutex_unlock(&pf->mu);
        if (stop) break;
        /* The slot is the worker's alone until `produced` moves past it. */
        slot *s = &pf->ring[i % pf->depth];
        memset(s, 0, sizeof *s);
        s->rc = dfr_image_load_resized(pf->paths[i], pf->size, &s->img, &s->orig_w, &s->orig_h);
        if (s->rc) s->error = strdup(dfrcl_last_error());
        pthread_mutex_lock(&pf->mu);
        pf->produced++;
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
    }
    return NULL;
}

int dfr_prefetch_open(dfr_prefetch **out, const char *const *paths, int n, int size, int depth)
{
    *out = NULL;
    if (n < 0 || (n > 0 && !paths) || size < 0 || depth < 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "prefetch: bad arguments (n %d, size %d, depth %d)",
                         n, size, depth);
    dfr_prefetch *pf = calloc(1, sizeof *pf);
    if (pf) pf->ring = calloc((size_t)depth, sizeof *pf->ring);
    if (!pf || !pf->ring) {
        free(pf);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    pf->paths = paths;
    pf->n = n;
    pf->size = size;
    pf->depth = depth;
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->cv, NULL);
    if (pthread_create(&pf->worker, NULL, work, pf) != 0) {
        dfr_prefetch_close(&pf);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "prefetch: cannot start a decoding thread");
    }
    pf->started = 1;
    *out = pf;
    return DFRCL_OK;
}

int dfr_prefetch_next(dfr_prefetch *pf, dfrcl_image *img, int *orig_w, int *orig_h)
{
    memset(img, 0, sizeof *img);
    if (pf->consumed >= pf->n)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "prefetch: all %d images were taken", pf->n);
    pthread_mutex_lock(&pf->mu);
    while (pf->produced <= pf->consumed) pthread_cond_wait(&pf->cv, &pf->mu);
    pthread_mutex_unlock(&pf->mu);
    slot *s = &pf->ring[pf->consumed % pf->depth];
    int rc = s->rc;
    *img = s->img;
    if (orig_w) *orig_w = s->orig_w;
    if (orig_h) *orig_h = s->orig_h;
    if (rc) dfr_error(rc, "%s", s->error ? s->error : "decoding failed");
    free(s->error);
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&pf->mu);
    pf->consumed++;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    return rc;
}

void dfr_prefetch_close(dfr_prefetch **ppf)
{
    dfr_prefetch *pf = *ppf;
    if (!pf) return;
    if (pf->started) {
        pthread_mutex_lock(&pf->mu);
        pf->stop = 1;
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
        pthread_join(pf->worker, NULL);
    }
    for (int i = pf->consumed; i < pf->produced; i++) { /* decoded but never taken */
        slot *s = &pf->ring[i % pf->depth];
        dfrcl_image_free(&s->img);
        free(s->error);
    }
    pthread_mutex_destroy(&pf->mu);
    pthread_cond_destroy(&pf->cv);
    free(pf->ring);
    free(pf);
    *ppf = NULL;
}
