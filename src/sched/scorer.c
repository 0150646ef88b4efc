/* The scoring scheduler (see scorer.h). One mutex and one condition variable guard the run's
 * shared state: the source's next image, the retry list, the finished items and the lanes'
 * in-flight counts. Device work happens outside the lock, each lane on its own runtime. */
#include "sched/scorer.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "io/prefetch.h"
#include "util/error.h"

typedef struct item {
    int index, status, device;
    char *message;
    dfrcl_image img;
    int own_img; /* img is the item's (decoded), else borrowed from the caller */
    int ow, oh;
    float *map;
    float score;
} item;

/* One batch in flight on a lane, with its own device buffers (double buffering). */
typedef struct slot {
    int n;
    item *it[DFR_SCHED_MAX_BATCH];
    cl_mem px, maps;
    cl_event up, comp, down;
    void *mapped; /* unified memory: the mapped maps while being read */
} slot;

typedef struct lane {
    struct dfr_scorer *s;
    dfr_model *m;
    int batch, device, alive, inflight;
    int zero_copy; /* map/unmap of host-unified buffers instead of copies */
    int scored, handed_on;
    int fault_after, batches; /* DFRCL_FAULT: fail the batch after `fault_after` (-1: never) */
    slot sl[2];
    pthread_t th;
} lane;

struct dfr_scorer {
    lane *lanes;
    int k, S, threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* the run */
    const char *const *paths;
    const dfrcl_image *imgs;
    dfr_prefetch *pf;
    int n, next_src, taking, taken, delivered, limit, running, stop;
    item **retry;
    int n_retry;
    item **done;
    char report[4096]; /* device failures */
    int fail_rc;       /* the first failure's status */
};

/* ---- items ---- */

static void item_free(item *it)
{
    if (!it) return;
    if (it->own_img) dfrcl_image_free(&it->img);
    free(it->map);
    free(it->message);
    free(it);
}

/* The next image of the source as an item; a decode failure is an item with its status. */
static item *item_take(struct dfr_scorer *s, int index)
{
    item *it = calloc(1, sizeof *it);
    if (!it) return NULL;
    it->index = index;
    it->device = -1;
    size_t SS = (size_t)s->S * s->S;
    if (s->pf) {
        it->own_img = 1;
        it->status = dfr_prefetch_next(s->pf, &it->img, &it->ow, &it->oh);
    } else {
        const dfrcl_image *src = &s->imgs[index];
        it->img = *src;
        it->ow = src->width;
        it->oh = src->height;
        if (src->width != s->S || src->height != s->S || (src->channels != 1 && src->channels != 3))
            it->status = dfr_error(DFRCL_ERR_INVALID_ARG,
                                   "image %d is %dx%d with %d channel(s); the model scores %dx%d "
                                   "images with 1 or 3 channels", index, src->width, src->height,
                                   src->channels, s->S, s->S);
    }
    if (it->status) {
        it->message = strdup(dfrcl_last_error());
        return it;
    }
    it->map = malloc(SS * sizeof(float));
    if (!it->map) {
        it->status = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        it->message = strdup(dfrcl_last_error());
        return it;
    }
    /* Poisoned: an element the device never wrote cannot pass for a score. */
    for (size_t i = 0; i < SS; i++) it->map[i] = NAN;
    return it;
}

/* ---- taking work ---- */

static int others_busy(const struct dfr_scorer *s, const lane *me)
{
    for (int i = 0; i < s->k; i++)
        if (&s->lanes[i] != me && s->lanes[i].alive && s->lanes[i].inflight > 0) return 1;
    return 0;
}

/* Fills sl with up to L->batch images: failed lanes' images first, then the source's next ones
 * (in order: one lane takes from the source at a time). Returns the count; 0 = nothing now
 * (may_block 0) or nothing left (may_block 1). Called without the lock. */
static int take_batch(lane *L, slot *sl, int may_block)
{
    struct dfr_scorer *s = L->s;
    sl->n = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->stop) break;
        if (s->n_retry > 0) {
            while (sl->n < L->batch && s->n_retry > 0) sl->it[sl->n++] = s->retry[--s->n_retry];
            break;
        }
        if (s->next_src < s->n && !s->taking && s->taken - s->delivered < s->limit) {
            int first = s->next_src, cnt = s->n - first < L->batch ? s->n - first : L->batch;
            s->next_src += cnt;
            s->taken += cnt;
            s->taking = 1;
            pthread_mutex_unlock(&s->mu);
            item *got[DFR_SCHED_MAX_BATCH];
            for (int j = 0; j < cnt; j++) got[j] = item_take(s, first + j);
            pthread_mutex_lock(&s->mu);
            s->taking = 0;
            for (int j = 0; j < cnt; j++) {
                if (!got[j]) { /* no memory even for the item: stop the run */
                    s->stop = 1;
                    snprintf(s->report, sizeof s->report, "out of memory");
                } else if (got[j]->status) s->done[got[j]->index] = got[j]; /* delivered as is */
                else sl->it[sl->n++] = got[j];
            }
            pthread_cond_broadcast(&s->cv);
            if (sl->n > 0) break;
            continue;
        }
        if (!may_block) break;
        int more = s->next_src < s->n || s->taking || others_busy(s, L);
        if (!more) break;
        pthread_cond_wait(&s->cv, &s->mu);
    }
    L->inflight += sl->n;
    pthread_mutex_unlock(&s->mu);
    return sl->n;
}

/* ---- one batch on a lane ---- */

static void release_event(cl_event *e)
{
    if (*e) clReleaseEvent(*e);
    *e = NULL;
}

static int upload(lane *L, slot *sl)
{
    dfr_runtime *rt = L->m->rt;
    size_t SS = (size_t)L->s->S * L->s->S, per = SS * 3;
    int rc = DFRCL_OK;
    if (L->zero_copy) { /* write into the buffer's own host memory */
        void *p = NULL;
        dfr_xfer map = {.queue = rt->up_queue, .blocking = 1};
        rc = dfr_map_x(rt, &map, sl->px, CL_MAP_WRITE_INVALIDATE_REGION, 0, per * sl->n, &p,
                       "upload");
        if (rc) return dfr_error_prefix(rc, "a batch's pixel buffer");
        for (int i = 0; i < sl->n; i++)
            memcpy((uint8_t *)p + i * per, sl->it[i]->img.pixels, SS * sl->it[i]->img.channels);
        dfr_xfer unmap = {.queue = rt->up_queue, .ev = &sl->up};
        rc = dfr_unmap_x(rt, &unmap, sl->px, p, "upload");
        return rc ? dfr_error_prefix(rc, "a batch's pixel buffer") : DFRCL_OK;
    }
    for (int i = 0; i < sl->n && !rc; i++) {
        cl_event ev = NULL;
        dfr_xfer w = {.queue = rt->up_queue, .ev = &ev};
        rc = dfr_write_x(rt, &w, sl->px, i * per, SS * sl->it[i]->img.channels,
                         sl->it[i]->img.pixels, "upload");
        if (i == sl->n - 1) sl->up = ev;
        else if (ev) clReleaseEvent(ev);
    }
    return rc ? dfr_error_prefix(rc, "uploading a batch of images") : DFRCL_OK;
}

static int compute(lane *L, slot *sl)
{
    dfr_model *m = L->m;
    dfr_runtime *rt = m->rt;
    size_t per = (size_t)L->s->S * L->s->S * 3;
    int rc = dfr_cl_error(clEnqueueBarrierWithWaitList(rt->queue, 1, &sl->up, NULL),
                          "waiting for a batch's upload");
    for (int i = 0; i < sl->n && !rc; i++)
        rc = dfr_vgg19_features_dev(m->vgg, sl->px, i * per, sl->it[i]->img.channels, L->s->S,
                                    m->feat, i);
    if (!rc) rc = dfr_model_score_features_into(m, sl->n, sl->maps);
    if (!rc) rc = dfr_cl_error(clEnqueueMarkerWithWaitList(rt->queue, 0, NULL, &sl->comp),
                               "marking a batch's end");
    if (!rc) rc = dfr_cl_error(clFlush(rt->queue), "submitting a batch");
    return rc;
}

static int download(lane *L, slot *sl)
{
    dfr_runtime *rt = L->m->rt;
    size_t SS = (size_t)L->s->S * L->s->S;
    int rc = DFRCL_OK;
    if (L->zero_copy) {
        void *p = NULL;
        dfr_xfer map = {.queue = rt->down_queue, .n_wait = 1, .wait = &sl->comp, .ev = &sl->down};
        rc = dfr_map_x(rt, &map, sl->maps, CL_MAP_READ, 0, SS * sizeof(float) * sl->n, &p,
                       "download");
        sl->mapped = p;
    } else {
        for (int i = 0; i < sl->n && !rc; i++) {
            cl_event ev = NULL;
            dfr_xfer r = {.queue = rt->down_queue, .n_wait = i == 0, .wait = &sl->comp, .ev = &ev};
            rc = dfr_read_x(rt, &r, sl->maps, i * SS * sizeof(float), SS * sizeof(float),
                            sl->it[i]->map, "download");
            if (i == sl->n - 1) sl->down = ev;
            else if (ev) clReleaseEvent(ev);
        }
    }
    if (!rc) rc = dfr_cl_error(clFlush(rt->down_queue), "download");
    return rc ? dfr_error_prefix(rc, "reading back a batch's score maps") : DFRCL_OK;
}

/* Test hook: DFRCL_FAULT=device:D:after:N makes the lane on device D fail (as with an OpenCL
 * error) when it submits its batch after N finished ones. Read at the runtime's open. */
static int fault_after(const dfr_runtime *rt, int device)
{
    const char *f = dfr_rt_getenv(rt, "DFRCL_FAULT");
    int d = -1, after = -1;
    if (f && sscanf(f, "device:%d:after:%d", &d, &after) == 2 && d == device && after >= 0)
        return after;
    return -1;
}

static int submit(lane *L, slot *sl)
{
    if (L->fault_after >= 0 && L->batches >= L->fault_after)
        return dfr_cl_error(CL_OUT_OF_RESOURCES, "scoring a batch (fault injected by DFRCL_FAULT)");
    dfr_runtime *rt = L->m->rt;
    int rc = upload(L, sl);
    if (!rc) rc = dfr_cl_error(clFlush(rt->up_queue), "submitting an upload");
    if (!rc) rc = compute(L, sl);
    if (!rc) rc = download(L, sl);
    return rc;
}

static void slot_reset(slot *sl)
{
    release_event(&sl->up);
    release_event(&sl->comp);
    release_event(&sl->down);
    sl->mapped = NULL;
    sl->n = 0;
}

/* Waits for a batch's maps and hands its items over for delivery. */
static int complete(lane *L, slot *sl)
{
    dfr_runtime *rt = L->m->rt;
    size_t SS = (size_t)L->s->S * L->s->S;
    cl_int err = clWaitForEvents(1, &sl->down);
    if (err != CL_SUCCESS) return dfr_cl_error(err, "waiting for a batch's score maps");
    if (sl->mapped) {
        for (int i = 0; i < sl->n; i++)
            memcpy(sl->it[i]->map, (const float *)sl->mapped + i * SS, SS * sizeof(float));
        cl_event ev = NULL;
        dfr_xfer unmap = {.queue = rt->down_queue, .ev = &ev};
        int rc = dfr_unmap_x(rt, &unmap, sl->maps, sl->mapped, "download");
        sl->mapped = NULL;
        if (!rc) rc = dfr_cl_error(clWaitForEvents(1, &ev), "download");
        if (ev) clReleaseEvent(ev);
        if (rc) return dfr_error_prefix(rc, "unmapping a batch's score maps");
    }
    for (int i = 0; i < sl->n; i++) {
        item *it = sl->it[i];
        float mx = -INFINITY;
        for (size_t j = 0; j < SS; j++)
            if (it->map[j] > mx) mx = it->map[j];
        it->score = mx;
        it->device = rt->info.index;
    }
    struct dfr_scorer *s = L->s;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < sl->n; i++) s->done[sl->it[i]->index] = sl->it[i];
    L->inflight -= sl->n;
    L->scored += sl->n;
    L->batches++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    slot_reset(sl);
    return DFRCL_OK;
}

/* The lane's device failed: its images go back for the other lanes, with a report. */
static void fail_lane(lane *L, int rc, const char *why)
{
    struct dfr_scorer *s = L->s;
    dfr_runtime *rt = L->m->rt;
    clFinish(rt->up_queue); /* errors are already known: wait only so buffers are free */
    clFinish(rt->queue);
    clFinish(rt->down_queue);
    char imgs[1024] = "";
    size_t used = 0;
    int cnt = 0;
    item *lost[2 * DFR_SCHED_MAX_BATCH];
    pthread_mutex_lock(&s->mu);
    for (int k = 0; k < 2; k++) {
        slot *sl = &L->sl[k];
        if (sl->mapped) /* errors are already reported */
            dfr_unmap_x(rt, &(dfr_xfer){.queue = rt->down_queue}, sl->maps, sl->mapped, "download");
        for (int i = 0; i < sl->n; i++) lost[cnt++] = sl->it[i];
        slot_reset(sl);
    }
    for (int i = 1; i < cnt; i++) /* in input order, for the report */
        for (int j = i; j > 0 && lost[j - 1]->index > lost[j]->index; j--) {
            item *t = lost[j];
            lost[j] = lost[j - 1];
            lost[j - 1] = t;
        }
    for (int i = 0; i < cnt; i++) {
        const char *name = s->paths ? s->paths[lost[i]->index] : NULL;
        if (used < sizeof imgs - 1) {
            int w = name ? snprintf(imgs + used, sizeof imgs - used, "%s%s", i ? ", " : "", name)
                         : snprintf(imgs + used, sizeof imgs - used, "%s%d", i ? ", " : "",
                                    lost[i]->index);
            if (w > 0) used += (size_t)w;
        }
    }
    /* Reversed onto the retry stack, so that the next lane takes them in input order. */
    for (int i = cnt - 1; i >= 0; i--) s->retry[s->n_retry++] = lost[i];
    L->alive = 0;
    L->inflight = 0;
    if (!s->fail_rc) s->fail_rc = rc;
    L->handed_on += cnt;
    int left = 0;
    for (int i = 0; i < s->k; i++) left += s->lanes[i].alive;
    size_t r = strlen(s->report);
    snprintf(s->report + r, sizeof s->report - r, "%sdevice [%d] %s failed on %d image(s) (%s%s): %s",
             r ? "; " : "", rt->info.index, rt->info.name, cnt, s->paths ? "" : "indices ", imgs,
             why);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (left)
        dfr_rt_log(rt, 1,
            "warning: device [%d] %s failed on %d image(s) (%s): %s; the other device(s) "
                   "score them", rt->info.index, rt->info.name, cnt, imgs, why);
}

static void *lane_main(void *arg)
{
    lane *L = arg;
    int cur = 0, rc = DFRCL_OK;
    for (;;) {
        int other_busy = L->sl[cur ^ 1].n > 0;
        int got = take_batch(L, &L->sl[cur], !other_busy);
        if (got > 0 && (rc = submit(L, &L->sl[cur]))) break;
        if (other_busy && (rc = complete(L, &L->sl[cur ^ 1]))) break;
        if (got > 0) cur ^= 1;
        else if (!other_busy) break;
    }
    if (rc) {
        char why[1024];
        snprintf(why, sizeof why, "%s", dfrcl_last_error());
        fail_lane(L, rc, why);
    }
    pthread_mutex_lock(&L->s->mu);
    L->s->running--;
    pthread_cond_broadcast(&L->s->cv);
    pthread_mutex_unlock(&L->s->mu);
    return NULL;
}

/* ---- the run ---- */

/* Delivers finished items in order on the caller's thread until all are or the run stops. */
static int deliver(struct dfr_scorer *s, dfr_sched_cb cb, void *user, volatile int *stop)
{
    int rc = DFRCL_OK;
    pthread_mutex_lock(&s->mu);
    while (s->delivered < s->n) {
        item *it = s->done[s->delivered];
        if (!it) {
            if (s->running == 0) break;
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        s->done[s->delivered] = NULL;
        pthread_mutex_unlock(&s->mu);
        dfr_sched_result r = {it->index, it->status, it->message, &it->img, it->ow, it->oh,
                              it->status ? NULL : it->map, it->score, it->device};
        rc = cb ? cb(user, &r) : DFRCL_OK;
        item_free(it);
        if (!rc && stop && *stop)
            rc = dfr_error(DFRCL_ERR_INTERRUPTED, "interrupted after %d of %d images",
                           s->delivered + 1, s->n);
        pthread_mutex_lock(&s->mu);
        s->delivered++;
        pthread_cond_broadcast(&s->cv);
        if (rc) break;
    }
    if (rc || s->delivered < s->n) s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int run(struct dfr_scorer *s, const char *const *paths, const dfrcl_image *imgs, int n,
               dfr_sched_cb cb, void *user, volatile int *stop)
{
    if (n < 0 || (n > 0 && !paths && !imgs))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "scoring: bad image list (n %d)", n);
    if (n == 0) return DFRCL_OK;
    int maxb = 0, sumb = 0;
    for (int i = 0; i < s->k; i++) {
        lane *L = &s->lanes[i];
        L->alive = 1;
        L->inflight = L->scored = L->handed_on = L->batches = 0;
        maxb = L->batch > maxb ? L->batch : maxb;
        sumb += L->batch;
    }
    s->paths = paths;
    s->imgs = imgs;
    s->n = n;
    s->next_src = s->taking = s->taken = s->delivered = s->stop = s->n_retry = 0;
    s->report[0] = 0;
    s->fail_rc = 0;
    s->limit = 2 * sumb + maxb + s->threads;
    s->retry = malloc((size_t)n * sizeof *s->retry);
    s->done = calloc((size_t)n, sizeof *s->done);
    int rc = s->retry && s->done ? DFRCL_OK : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    if (!rc && paths)
        rc = dfr_prefetch_open_pool(&s->pf, paths, n, s->S, maxb + 2 * s->threads, s->threads);
    s->running = 0;
    for (int i = 0; i < s->k && !rc; i++) {
        if (pthread_create(&s->lanes[i].th, NULL, lane_main, &s->lanes[i]) != 0) {
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "cannot start a device thread");
            break;
        }
        pthread_mutex_lock(&s->mu);
        s->running++;
        pthread_mutex_unlock(&s->mu);
    }
    int started = s->running;
    if (!rc) rc = deliver(s, cb, user, stop);
    else {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    for (int i = 0; i < started; i++) pthread_join(s->lanes[i].th, NULL);
    if (!rc && s->delivered < n) {
        int first = s->delivered;
        rc = s->report[0]
                 ? dfr_error(s->fail_rc ? s->fail_rc : DFRCL_ERR_INTERNAL,
                             "no device left to score %d image(s) (from %s): %s", n - first,
                             paths ? paths[first] : "the first not scored", s->report)
                 : dfr_error(DFRCL_ERR_INTERNAL, "scoring stopped after %d of %d images%s%s",
                             first, n, s->report[0] ? ": " : "", s->report);
    }
    /* Whatever was not delivered is freed: lanes are joined, so nothing else holds it. */
    for (int i = 0; s->done && i < n; i++) item_free(s->done[i]);
    for (int i = 0; s->retry && i < s->n_retry; i++) item_free(s->retry[i]);
    for (int i = 0; i < s->k; i++)
        for (int j = 0; j < 2; j++) {
            slot *sl = &s->lanes[i].sl[j];
            for (int t = 0; t < sl->n; t++) item_free(sl->it[t]);
            slot_reset(sl);
        }
    dfr_prefetch_close(&s->pf);
    free(s->retry);
    free(s->done);
    s->retry = NULL;
    s->done = NULL;
    s->n_retry = 0;
    return rc;
}

int dfr_scorer_run(dfr_scorer *s, const char *const *paths, int n, dfr_sched_cb cb, void *user,
                   volatile int *stop)
{
    return run(s, paths, NULL, n, cb, user, stop);
}

int dfr_scorer_run_images(dfr_scorer *s, const dfrcl_image *imgs, int n, dfr_sched_cb cb,
                          void *user, volatile int *stop)
{
    return run(s, NULL, imgs, n, cb, user, stop);
}

/* ---- open / close ---- */

static int lane_open(lane *L, dfr_model *m, const dfr_sched_opts *o)
{
    L->m = m;
    L->device = m->rt->info.index;
    L->fault_after = fault_after(L->m->rt, L->device);
    /* CPU devices gain nothing from batches (dfrcl bench --pipeline on PoCL: batch 1 is the
     * fastest, the larger working set costs cache), GPUs need them to fill the device. */
    int b = o->batch > 0 ? o->batch
            : m->rt->info.is_cpu ? 1 : dfr_model_auto_batch(m, DFR_SCHED_AUTO_BATCH);
    if (b > DFR_SCHED_MAX_BATCH) b = DFR_SCHED_MAX_BATCH;
    if (!m->cae_resizable) { /* training's model: its autoencoder's batch is what there is */
        int have = m->cae_batch > 0 ? m->cae_batch : 1;
        if (b > have) b = have;
    }
    L->batch = b;
    int rc = dfr_model_reserve_batch(m, b);
    size_t SS = (size_t)m->info.size * m->info.size;
    /* DFRCL_COPY_TRANSFERS=1 (a test hook) takes the copying path on a unified device too. */
    const char *copy = dfr_rt_getenv(m->rt, "DFRCL_COPY_TRANSFERS");
    L->zero_copy = m->rt->unified_memory && !(copy && *copy == '1');
    cl_mem_flags f = L->zero_copy ? CL_MEM_ALLOC_HOST_PTR : 0;
    for (int j = 0; j < 2 && !rc; j++) {
        rc = dfr_buffer_new(m->rt, SS * 3 * b, CL_MEM_READ_ONLY | f, "a batch of images",
                            &L->sl[j].px);
        if (!rc) rc = dfr_buffer_new(m->rt, SS * sizeof(float) * b, CL_MEM_WRITE_ONLY | f,
                                     "a batch's score maps", &L->sl[j].maps);
    }
    if (rc == DFRCL_ERR_DEVICE_MEMORY)
        rc = dfr_error_prefix(rc, "batches of %d images on device [%d] %s (give a smaller batch "
                              "(batch))", b, L->device, m->rt->info.name);
    return rc;
}

int dfr_scorer_open(dfr_scorer **out, dfr_model *const *models, int k, const dfr_sched_opts *o)
{
    *out = NULL;
    dfr_sched_opts def = {0, 0};
    if (!o) o = &def;
    if (k < 1 || !models)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "scoring: no models (devices) to score on");
    if (o->batch < 0 || o->batch > DFR_SCHED_MAX_BATCH || o->threads < 0)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "scoring: batch %d (0..%d) or threads %d (>= 0)",
                         o->batch, DFR_SCHED_MAX_BATCH, o->threads);
    for (int i = 1; i < k; i++)
        if (models[i]->info.size != models[0]->info.size ||
            strcmp(models[i]->info.backbone_sha256, models[0]->info.backbone_sha256) != 0 ||
            models[i]->info.channels != models[0]->info.channels)
            return dfr_error(DFRCL_ERR_MISMATCH, "scoring: the devices' models differ");
    dfr_scorer *s = calloc(1, sizeof *s);
    if (s) s->lanes = calloc((size_t)k, sizeof *s->lanes);
    if (!s || !s->lanes) {
        free(s);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    s->k = k;
    s->S = models[0]->info.size;
    s->threads = dfr_prefetch_threads(o->threads);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = DFRCL_OK;
    for (int i = 0; i < k && !rc; i++) {
        s->lanes[i].s = s;
        rc = lane_open(&s->lanes[i], models[i], o);
    }
    if (rc) {
        dfr_scorer_close(&s);
        return rc;
    }
    for (int i = 0; i < k; i++)
        dfr_rt_log(models[i]->rt, 2,
            "device [%d] %s: batches of %d image(s), %s transfers", s->lanes[i].device,
                models[i]->rt->info.name, s->lanes[i].batch,
                s->lanes[i].zero_copy ? "zero-copy (mapped)" : "copied");
    *out = s;
    return DFRCL_OK;
}

void dfr_scorer_close(dfr_scorer **ps)
{
    dfr_scorer *s = *ps;
    if (!s) return;
    for (int i = 0; i < s->k; i++)
        for (int j = 0; j < 2; j++) {
            dfr_buffer_release(&s->lanes[i].sl[j].px);
            dfr_buffer_release(&s->lanes[i].sl[j].maps);
        }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->lanes);
    free(s);
    *ps = NULL;
}

int dfr_scorer_batch(const dfr_scorer *s, int lane)
{
    return s && lane >= 0 && lane < s->k ? s->lanes[lane].batch : 0;
}

int dfr_scorer_lane_images(const dfr_scorer *s, int lane)
{
    return s && lane >= 0 && lane < s->k ? s->lanes[lane].scored : 0;
}

int dfr_scorer_lane_failed(const dfr_scorer *s, int lane)
{
    return s && lane >= 0 && lane < s->k ? s->lanes[lane].handed_on : 0;
}

typedef struct into_arrays {
    float *maps, *scores;
    size_t SS;
} into_arrays;

static int to_arrays(void *user, const dfr_sched_result *r)
{
    into_arrays *a = user;
    if (r->status) return dfr_error(r->status, "%s", r->message ? r->message : "image not scored");
    memcpy(a->maps + (size_t)r->index * a->SS, r->map, a->SS * sizeof(float));
    if (a->scores) a->scores[r->index] = r->score;
    return DFRCL_OK;
}

int dfr_sched_score_images(dfr_model *m, const dfrcl_image *imgs, int n, int batch, float *maps,
                           float *scores)
{
    if (n < 0 || (n > 0 && (!imgs || !maps)))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "scoring %d images: no images or no maps", n);
    if (n == 0) return DFRCL_OK;
    dfr_sched_opts o = {batch, 1};
    dfr_scorer *s = NULL;
    into_arrays a = {maps, scores, (size_t)m->info.size * m->info.size};
    int rc = dfr_scorer_open(&s, &m, 1, &o);
    if (!rc) rc = dfr_scorer_run_images(s, imgs, n, to_arrays, &a, NULL);
    dfr_scorer_close(&s);
    return rc;
}
