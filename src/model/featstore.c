#include "model/featstore.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util/error.h"

#define MIB (1024.0 * 1024.0)

struct dfr_fs {
    dfr_runtime *rt;
    int n, C, P, batch;
    dfr_fs_place place;
    int prec;         /* 32 or 16 */
    size_t img_bytes; /* one image [C, P] in the store */
    /* device: images in chunks of per_chunk, each one buffer */
    cl_mem *chunks;
    int nchunks, per_chunk;
    /* host */
    unsigned char *host;
    /* disk: an unlinked file; buf holds one batch (read ahead by the worker) */
    int fd;
    char dir[4096];
    unsigned char *buf;
    /* device staging: one image in the store's precision, for fp16 and position gathers (the
     * queue is in order, so the next image's upload waits for the last gather from it) */
    cl_mem stage;
    /* read-ahead: one request at a time, into buf */
    pthread_t worker;
    int worker_on;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ra_state; /* 0 none, 1 requested, 2 reading, 3 done */
    int ra_idx[64], ra_count, ra_rc, quit;
    char ra_err[512];
};

const char *dfr_fs_place_name(dfr_fs_place p)
{
    switch (p) {
    case DFR_FS_DEVICE: return "device";
    case DFR_FS_HOST: return "host";
    case DFR_FS_DISK: return "disk";
    default: return "auto";
    }
}

dfr_fs_place dfr_fs_where(const dfr_fs *fs) { return fs->place; }
int dfr_fs_precision(const dfr_fs *fs) { return fs->prec; }
int dfr_fs_npos(const dfr_fs *fs) { return fs->P; }

double dfr_fs_need(dfr_fs_place place, int precision, int n, int channels, int npos, int batch)
{
    double img = (double)channels * npos * (precision == 16 ? 2 : 4);
    switch (place) {
    case DFR_FS_DEVICE: return n * img;
    case DFR_FS_HOST: return n * img + img;
    case DFR_FS_DISK: return batch * img + img;
    default: return 0;
    }
}

/* ---- disk I/O ---- */

static int read_image(dfr_fs *fs, int i, unsigned char *dst, char *err, size_t errn)
{
    size_t done = 0;
    off_t at = (off_t)fs->img_bytes * i;
    while (done < fs->img_bytes) {
        ssize_t r = pread(fs->fd, dst + done, fs->img_bytes - done, at + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            snprintf(err, errn, "reading the training features of image %d from the store in %.300s: %s",
                     i, fs->dir, r < 0 ? strerror(errno) : "unexpected end of file");
            return DFRCL_ERR_IO;
        }
        done += (size_t)r;
    }
    return DFRCL_OK;
}

static int write_image(dfr_fs *fs, int i, const unsigned char *src)
{
    size_t done = 0;
    off_t at = (off_t)fs->img_bytes * i;
    while (done < fs->img_bytes) {
        ssize_t w = pwrite(fs->fd, src + done, fs->img_bytes - done, at + (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return dfr_error(DFRCL_ERR_IO,
                             "writing the training features to the store in %s: %s; free some "
                             "space there or give another folder (feature_dir)",
                             fs->dir, w < 0 ? strerror(errno) : "no progress");
        done += (size_t)w;
    }
    return DFRCL_OK;
}

static void *read_ahead(void *arg)
{
    dfr_fs *fs = arg;
    pthread_mutex_lock(&fs->mu);
    for (;;) {
        while (!fs->quit && fs->ra_state != 1) pthread_cond_wait(&fs->cv, &fs->mu);
        if (fs->quit) break;
        fs->ra_state = 2;
        int count = fs->ra_count, idx[64];
        memcpy(idx, fs->ra_idx, sizeof idx);
        pthread_mutex_unlock(&fs->mu);
        char err[512] = "";
        int rc = DFRCL_OK;
        for (int j = 0; j < count && !rc; j++)
            rc = read_image(fs, idx[j], fs->buf + fs->img_bytes * j, err, sizeof err);
        pthread_mutex_lock(&fs->mu);
        fs->ra_rc = rc;
        snprintf(fs->ra_err, sizeof fs->ra_err, "%s", err);
        fs->ra_state = 3;
        pthread_cond_broadcast(&fs->cv);
    }
    pthread_mutex_unlock(&fs->mu);
    return NULL;
}

/* Waits for a read in progress; returns 1 when the finished read is of idx[0..count) (count 0:
 * only wait, so that buf is free). */
static int wait_read_ahead(dfr_fs *fs, const int *idx, int count, int *rc, char *err, size_t errn)
{
    pthread_mutex_lock(&fs->mu);
    while (fs->ra_state == 1 || fs->ra_state == 2) pthread_cond_wait(&fs->cv, &fs->mu);
    int match = count > 0 && fs->ra_state == 3 && fs->ra_count == count &&
                memcmp(fs->ra_idx, idx, (size_t)count * sizeof *idx) == 0;
    if (match) {
        *rc = fs->ra_rc;
        snprintf(err, errn, "%s", fs->ra_err);
    }
    fs->ra_state = 0;
    pthread_mutex_unlock(&fs->mu);
    return match;
}

void dfr_fs_hint(dfr_fs *fs, const int *idx, int count)
{
    if (!fs || fs->place != DFR_FS_DISK || !fs->worker_on || count < 1 || count > fs->batch)
        return;
    pthread_mutex_lock(&fs->mu);
    if (fs->ra_state == 0 || fs->ra_state == 3) {
        memcpy(fs->ra_idx, idx, (size_t)count * sizeof *idx);
        fs->ra_count = count;
        fs->ra_state = 1;
        pthread_cond_broadcast(&fs->cv);
    }
    pthread_mutex_unlock(&fs->mu);
}

static int open_disk(dfr_fs *fs, const char *dir)
{
    if (!dir || !*dir) dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/var/tmp";
    snprintf(fs->dir, sizeof fs->dir, "%s", dir);
    double total = (double)fs->img_bytes * fs->n;
    char path[4096 + 32];
    snprintf(path, sizeof path, "%s/dfrcl-features-XXXXXX", dir);
    fs->fd = mkstemp(path);
    if (fs->fd < 0)
        return dfr_error(DFRCL_ERR_IO,
                         "cannot create the training feature store in %s: %s; give a writable "
                         "folder with %.0f MiB free (feature_dir)",
                         dir, strerror(errno), total / MIB);
    /* Unlinked at once: the space is freed when the process ends, however it ends. */
    unlink(path);
    /* Reserve the whole store now, so that a full disk fails here and not after hours. */
    int err = posix_fallocate(fs->fd, 0, (off_t)total);
    if (err == EOPNOTSUPP || err == EINVAL) {
        struct statvfs sv;
        err = fstatvfs(fs->fd, &sv) == 0 && (double)sv.f_bavail * sv.f_frsize < total ? ENOSPC : 0;
    }
    if (err)
        return dfr_error(DFRCL_ERR_IO,
                         "the training feature store needs %.0f MiB in %s: %s; free some space "
                         "there or give another folder (feature_dir)",
                         total / MIB, dir, strerror(err));
    return DFRCL_OK;
}

/* ---- opening ---- */

static int device_fits(const dfr_runtime *rt, size_t img_bytes, int n)
{
    /* Half of what is left: the autoencoder, scoring and the GEMM's scratch need the rest. */
    double left = (double)rt->info.global_mem_bytes - (double)dfr_runtime_mem_used(rt);
    return img_bytes <= rt->info.max_alloc_bytes && (double)img_bytes * n <= left / 2;
}

int dfr_fs_open(dfr_fs **out, dfr_runtime *rt, int n, int channels, int npos, const dfr_fs_opts *o)
{
    *out = NULL;
    if (n < 1 || channels < 1 || npos < 1 || o->batch < 1 || o->batch > 64 ||
        (o->precision != 0 && o->precision != 16 && o->precision != 32))
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "feature store: bad shape (%d images of %d x %d, batch %d, precision %d)",
                         n, channels, npos, o->batch, o->precision);
    double budget = o->budget > 0 ? o->budget : 1e300;
    /* The candidates in order of preference: exact before compact, memory before disk. */
    static const struct { dfr_fs_place place; int prec; } order[] = {
        {DFR_FS_DEVICE, 32}, {DFR_FS_HOST, 32}, {DFR_FS_DEVICE, 16},
        {DFR_FS_HOST, 16},   {DFR_FS_DISK, 16}, {DFR_FS_DISK, 32},
    };
    dfr_fs_place place = DFR_FS_AUTO;
    int prec = 0;
    double smallest = 1e300;
    for (size_t c = 0; c < sizeof order / sizeof order[0]; c++) {
        if (o->place != DFR_FS_AUTO && order[c].place != o->place) continue;
        if (o->precision && order[c].prec != o->precision) continue;
        /* On disk, fp16 unless fp32 is asked for: half the reading, within the budget. */
        if (!o->precision && order[c].place == DFR_FS_DISK && order[c].prec == 32) continue;
        size_t img = (size_t)channels * npos * (order[c].prec == 16 ? 2 : 4);
        if (order[c].place == DFR_FS_DEVICE && !device_fits(rt, img, n)) continue;
        double need = dfr_fs_need(order[c].place, order[c].prec, n, channels, npos, o->batch);
        if (need < smallest) smallest = need;
        if (need <= budget) {
            place = order[c].place;
            prec = order[c].prec;
            break;
        }
    }
    if (place == DFR_FS_AUTO) {
        if (smallest >= 1e300)
            return dfr_error(DFRCL_ERR_DEVICE_MEMORY,
                             "the training features (%d images of %d x %d) do not fit %s's memory "
                             "(%.0f MiB, at most %.0f MiB a buffer); use another store (store)",
                             n, channels, npos, rt->info.name, rt->info.global_mem_bytes / MIB,
                             rt->info.max_alloc_bytes / MIB);
        return dfr_error(DFRCL_ERR_HOST_MEMORY,
                         "the memory budget leaves %.0f MiB for the training features, but %s%s%s "
                         "needs at least %.0f MiB; raise the memory budget (memory_mib) by %.0f "
                         "MiB or more",
                         budget / MIB, o->place == DFR_FS_AUTO ? "" : "the ",
                         o->place == DFR_FS_AUTO ? "the smallest store (disk, fp16)"
                                                 : dfr_fs_place_name(o->place),
                         o->place == DFR_FS_AUTO ? "" : " store", smallest / MIB,
                         (smallest - budget) / MIB + 1);
    }
    dfr_fs *fs = calloc(1, sizeof *fs);
    if (!fs) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    fs->rt = rt;
    fs->n = n;
    fs->C = channels;
    fs->P = npos;
    fs->batch = o->batch;
    fs->place = place;
    fs->prec = prec;
    fs->img_bytes = (size_t)channels * npos * (prec == 16 ? 2 : 4);
    fs->fd = -1;
    pthread_mutex_init(&fs->mu, NULL);
    pthread_cond_init(&fs->cv, NULL);
    double total = (double)fs->img_bytes * n;
    int rc = DFRCL_OK;
    if (place == DFR_FS_DEVICE) {
        /* Chunks of whole images, each at most the device's largest allocation. */
        size_t per = rt->info.max_alloc_bytes / fs->img_bytes;
        if (per > (size_t)n) per = (size_t)n;
        fs->per_chunk = (int)per;
        fs->nchunks = (n + fs->per_chunk - 1) / fs->per_chunk;
        fs->chunks = calloc((size_t)fs->nchunks, sizeof *fs->chunks);
        if (!fs->chunks) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        for (int c = 0; c < fs->nchunks && !rc; c++) {
            int imgs = c == fs->nchunks - 1 ? n - c * fs->per_chunk : fs->per_chunk;
            rc = dfr_buffer_new(rt, fs->img_bytes * imgs, CL_MEM_READ_WRITE,
                                "the training features", &fs->chunks[c]);
        }
    } else if (place == DFR_FS_HOST) {
        fs->host = malloc((size_t)total);
        if (!fs->host)
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY,
                           "out of host memory for %.0f MiB of training features; give a smaller "
                           "memory budget (memory_mib) to stream them from disk",
                           total / MIB);
    } else {
        rc = open_disk(fs, o->dir);
        if (!rc && !(fs->buf = malloc(fs->img_bytes * fs->batch)))
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        if (!rc) {
            if (pthread_create(&fs->worker, NULL, read_ahead, fs) == 0) fs->worker_on = 1;
            else dfr_rt_log(rt, 1, "feature store: no read-ahead thread; reading in line");
        }
    }
    if (!rc && place != DFR_FS_DEVICE)
        rc = dfr_buffer_new(rt, fs->img_bytes, CL_MEM_READ_WRITE,
                            "an image of training features", &fs->stage);
    if (rc) {
        dfr_fs_close(&fs);
        return rc;
    }
    dfr_rt_log(rt, 1, "training features: %d x %.1f MiB as %s on the %s%s%s, %.0f MiB in memory", n,
            fs->img_bytes / MIB, prec == 16 ? "fp16" : "fp32", dfr_fs_place_name(place),
            place == DFR_FS_DISK ? " in " : "", place == DFR_FS_DISK ? fs->dir : "",
            dfr_fs_need(place, prec, n, channels, npos, o->batch) / MIB);
    *out = fs;
    return DFRCL_OK;
}

void dfr_fs_close(dfr_fs **pfs)
{
    dfr_fs *fs = pfs ? *pfs : NULL;
    if (!fs) return;
    if (fs->worker_on) {
        pthread_mutex_lock(&fs->mu);
        fs->quit = 1;
        pthread_cond_broadcast(&fs->cv);
        pthread_mutex_unlock(&fs->mu);
        pthread_join(fs->worker, NULL);
    }
    dfr_finish(fs->rt);
    for (int c = 0; c < fs->nchunks; c++) dfr_buffer_release(&fs->chunks[c]);
    free(fs->chunks);
    dfr_buffer_release(&fs->stage);
    free(fs->host);
    free(fs->buf);
    if (fs->fd >= 0) close(fs->fd);
    pthread_mutex_destroy(&fs->mu);
    pthread_cond_destroy(&fs->cv);
    free(fs);
    *pfs = NULL;
}

/* ---- kernels ---- */

static int pack_half(dfr_fs *fs, cl_mem src, size_t src_off, cl_mem dst, size_t dst_off)
{
    cl_kernel k;
    cl_ulong so = src_off, dof = dst_off;
    int count = fs->C * fs->P;
    int rc = dfr_kernel_get(fs->rt, "featstore.cl", "", "fs_pack_half", &k);
    if (!rc)
        rc = dfr_set_args(k, "fs_pack_half", DFR_ARG(src), DFR_ARG(so), DFR_ARG(count), DFR_ARG(dst),
                          DFR_ARG(dof), DFR_ARGS_END);
    size_t g = (size_t)count, l = 64;
    if (!rc) rc = dfr_enqueue(fs->rt, k, 1, &g, &l, "featstore");
    return rc;
}

/* One image of src (in the store's precision, element offset src_off) -> dst at float offset
 * dst_off as [C, k]. */
static int gather_one(dfr_fs *fs, cl_mem src, size_t src_off, cl_mem pos, int k, cl_mem dst,
                      size_t dst_off)
{
    cl_kernel kr;
    cl_ulong so = src_off, dof = dst_off;
    int use_pos = pos != NULL;
    cl_mem p = pos ? pos : src; /* any valid buffer when unused */
    int rc = dfr_kernel_get(fs->rt, "featstore.cl", fs->prec == 16 ? "-DFS_HALF" : "", "fs_gather",
                            &kr);
    if (!rc)
        rc = dfr_set_args(kr, "fs_gather", DFR_ARG(src), DFR_ARG(so), DFR_ARG(fs->C), DFR_ARG(fs->P),
                          DFR_ARG(p), DFR_ARG(use_pos), DFR_ARG(k), DFR_ARG(dst), DFR_ARG(dof),
                          DFR_ARGS_END);
    size_t g[2] = {(size_t)k, (size_t)fs->C}, l[2] = {64, 1};
    if (!rc) rc = dfr_enqueue(fs->rt, kr, 2, g, l, "featstore");
    return rc;
}

/* ---- put and gather ---- */

int dfr_fs_put(dfr_fs *fs, int i, cl_mem src, int slot)
{
    if (!fs || i < 0 || i >= fs->n || !src || slot < 0)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "feature store: bad put (image %d)", i);
    size_t per = (size_t)fs->C * fs->P, fbytes = per * sizeof(float);
    if (fs->place == DFR_FS_DEVICE) {
        cl_mem chunk = fs->chunks[i / fs->per_chunk];
        size_t at = (size_t)(i % fs->per_chunk);
        if (fs->prec == 16) return pack_half(fs, src, per * slot, chunk, per * at);
        return dfr_copy(fs->rt, src, fbytes * slot, chunk, fs->img_bytes * at, fbytes,
                        "training features to the store");
    }
    unsigned char *dst = fs->place == DFR_FS_HOST ? fs->host + fs->img_bytes * i : fs->buf;
    int rc = DFRCL_OK;
    if (fs->place == DFR_FS_DISK) /* buf may be a read ahead's target: let it finish */
        wait_read_ahead(fs, NULL, 0, NULL, NULL, 0);
    if (fs->prec == 16) {
        rc = pack_half(fs, src, per * slot, fs->stage, 0);
        if (!rc) rc = dfr_read(fs->rt, fs->stage, 0, fs->img_bytes, dst, "download");
    } else {
        rc = dfr_read(fs->rt, src, fbytes * slot, fbytes, dst, "download");
    }
    if (!rc && fs->place == DFR_FS_DISK) rc = write_image(fs, i, dst);
    return rc;
}

int dfr_fs_gather(dfr_fs *fs, const int *idx, int count, cl_mem pos, int k, cl_mem dst)
{
    if (!fs || !idx || count < 1 || count > fs->batch || !dst || k < 1 ||
        (!pos && k != fs->P) || k > fs->P)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "feature store: bad gather (%d images, %d positions)",
                         count, k);
    for (int j = 0; j < count; j++)
        if (idx[j] < 0 || idx[j] >= fs->n)
            return dfr_error(DFRCL_ERR_INVALID_ARG, "feature store: no image %d", idx[j]);
    size_t per = (size_t)fs->C * fs->P, fbytes = per * sizeof(float);
    int rc = DFRCL_OK;
    if (fs->place == DFR_FS_DEVICE) {
        for (int j = 0; j < count && !rc; j++) {
            cl_mem chunk = fs->chunks[idx[j] / fs->per_chunk];
            size_t at = (size_t)(idx[j] % fs->per_chunk);
            if (fs->prec == 32 && !pos) {
                rc = dfr_copy(fs->rt, chunk, fbytes * at, dst, fbytes * j, fbytes,
                              "training features from the store");
            } else {
                rc = gather_one(fs, chunk, per * at, pos, k, dst, (size_t)fs->C * k * j);
            }
        }
        return rc;
    }
    /* host or disk: the images' bytes in host memory, one after another for disk */
    const unsigned char *src = NULL;
    if (fs->place == DFR_FS_DISK) {
        char err[512] = "";
        int ra_rc = DFRCL_OK;
        if (wait_read_ahead(fs, idx, count, &ra_rc, err, sizeof err)) {
            if (ra_rc) return dfr_error(ra_rc, "%s", err);
        } else {
            for (int j = 0; j < count && !rc; j++)
                rc = read_image(fs, idx[j], fs->buf + fs->img_bytes * j, err, sizeof err);
            if (rc) return dfr_error(rc, "%s", err);
        }
        src = fs->buf;
    }
    for (int j = 0; j < count && !rc; j++) {
        const unsigned char *img =
            src ? src + fs->img_bytes * j : fs->host + fs->img_bytes * idx[j];
        if (fs->prec == 32 && !pos) { /* straight into the batch: exact, no staging */
            rc = dfr_write(fs->rt, dst, fbytes * j, fbytes, img, "upload");
            continue;
        }
        rc = dfr_write(fs->rt, fs->stage, 0, fs->img_bytes, img, "upload");
        if (!rc) rc = gather_one(fs, fs->stage, 0, pos, k, dst, (size_t)fs->C * k * j);
    }
    return rc;
}
