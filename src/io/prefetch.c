/* Decoding ahead on a pool of worker threads: a ring of `depth` slots. Each worker claims the
 * next image (a shared counter), decodes it into its slot and marks it ready; the caller takes
 * slots in order. One mutex and one condition variable guard the counters and flags. */
#include "io/prefetch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/image.h"
#include "util/error.h"

#define MAX_THREADS 16

typedef struct slot {
    dfrcl_image img;
    int orig_w, orig_h, rc, ready;
    char *error; /* the worker's error message when rc != 0 */
} slot;

struct dfr_prefetch {
    const char *const *paths;
    int n, size, depth, threads;
    slot *ring;
    int claimed, consumed, stop; /* guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t worker[MAX_THREADS];
    int started;
};

int dfr_prefetch_threads(int threads)
{
    if (threads > 0) return threads < MAX_THREADS ? threads : MAX_THREADS;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    return cores < MAX_THREADS ? (int)cores : MAX_THREADS;
}

static void *work(void *arg)
{
    dfr_prefetch *pf = arg;
    for (;;) {
        pthread_mutex_lock(&pf->mu);
        /* A slot is free once the caller took the image depth places before it. */
        while (!pf->stop && pf->claimed < pf->n && pf->claimed - pf->consumed >= pf->depth)
            pthread_cond_wait(&pf->cv, &pf->mu);
        int i = pf->claimed;
        int quit = pf->stop || i >= pf->n;
        if (!quit) pf->claimed++;
        pthread_mutex_unlock(&pf->mu);
        if (quit) break;
        /* The slot is this worker's alone until it is marked ready. */
        slot *s = &pf->ring[i % pf->depth];
        slot tmp = {0};
        tmp.rc = dfr_image_load_resized(pf->paths[i], pf->size, &tmp.img, &tmp.orig_w, &tmp.orig_h);
        if (tmp.rc) tmp.error = strdup(dfrcl_last_error());
        pthread_mutex_lock(&pf->mu);
        *s = tmp;
        s->ready = 1;
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
    }
    return NULL;
}

int dfr_prefetch_open_pool(dfr_prefetch **out, const char *const *paths, int n, int size,
                           int depth, int threads)
{
    *out = NULL;
    if (n < 0 || (n > 0 && !paths) || size < 0 || depth < 1 || threads < 0)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "prefetch: bad arguments (n %d, size %d, depth %d, threads %d)", n, size,
                         depth, threads);
    threads = dfr_prefetch_threads(threads);
    if (threads > depth) threads = depth; /* more could not work at once */
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
    for (int t = 0; t < threads; t++) {
        if (pthread_create(&pf->worker[t], NULL, work, pf) != 0) {
            dfr_prefetch_close(&pf);
            return dfr_error(DFRCL_ERR_HOST_MEMORY, "prefetch: cannot start a decoding thread");
        }
        pf->started = t + 1;
    }
    *out = pf;
    return DFRCL_OK;
}

int dfr_prefetch_open(dfr_prefetch **out, const char *const *paths, int n, int size, int depth)
{
    return dfr_prefetch_open_pool(out, paths, n, size, depth, 1);
}

int dfr_prefetch_next(dfr_prefetch *pf, dfrcl_image *img, int *orig_w, int *orig_h)
{
    memset(img, 0, sizeof *img);
    if (pf->consumed >= pf->n)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "prefetch: all %d images were taken", pf->n);
    slot *s = &pf->ring[pf->consumed % pf->depth];
    pthread_mutex_lock(&pf->mu);
    while (!s->ready) pthread_cond_wait(&pf->cv, &pf->mu);
    pthread_mutex_unlock(&pf->mu);
    int rc = s->rc;
    *img = s->img;
    if (orig_w) *orig_w = s->orig_w;
    if (orig_h) *orig_h = s->orig_h;
    if (rc) dfr_error(rc, "%s", s->error ? s->error : "decoding failed");
    free(s->error);
    pthread_mutex_lock(&pf->mu);
    memset(s, 0, sizeof *s);
    pf->consumed++;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    return rc;
}

void dfr_prefetch_close(dfr_prefetch **ppf)
{
    dfr_prefetch *pf = *ppf;
    if (!pf) return;
    pthread_mutex_lock(&pf->mu);
    pf->stop = 1;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    for (int t = 0; t < pf->started; t++) pthread_join(pf->worker[t], NULL);
    for (int i = 0; i < pf->depth; i++) { /* decoded but never taken */
        slot *s = &pf->ring[i];
        if (!s->ready) continue;
        dfrcl_image_free(&s->img);
        free(s->error);
    }
    pthread_mutex_destroy(&pf->mu);
    pthread_cond_destroy(&pf->cv);
    free(pf->ring);
    free(pf);
    *ppf = NULL;
}
