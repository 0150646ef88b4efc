/* Program build and the on-disk binary cache.
 *
 * A program is common.cl followed by one stage file, built with per-device -D options. Its
 * compiled binary is cached at <cache_dir>/<sha256>.clbin, the key hashing the sources, the
 * options, the device name, driver and platform versions and dfrcl's version. Each entry carries
 * a header (cl/cache_entry.h: length, SHA-256, key) checked before the driver sees the binary.
 * Writes are atomic. An entry that fails a check, is not a regular file, is rejected by the driver,
 * fails to build or lacks a kernel is removed with one log line and rebuilt from source: a damaged
 * or copied cache never stops a run. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl/cache_entry.h"
#include "cl/kernels.h"
#include "cl/runtime.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/hash.h"

typedef struct kernel_entry {
    char *name;
    cl_kernel kernel;
    struct kernel_entry *next;
} kernel_entry;

struct dfr_program_entry {
    char *file;
    char *options;
    cl_program program;
    kernel_entry *kernels; /* kernels handed out by dfr_kernel_get */
    char key[65];          /* cache key, "" without a cache */
    char cache_path[4096 + 80]; /* "" without a cache */
    int from_cache;        /* program came from the cache entry (not yet proven complete) */
    cl_program retired;    /* a cached program replaced by a source build */
    dfr_program_entry *next;
};

static const dfr_kernel_source *find_source(const char *name)
{
    for (const dfr_kernel_source *s = dfr_kernel_sources; s->name; s++)
        if (strcmp(s->name, name) == 0) return s;
    return NULL;
}

void dfr_program_cache_free(dfr_runtime *rt);
void dfr_program_cache_free(dfr_runtime *rt)
{
    dfr_program_entry *e = rt->programs;
    while (e) {
        dfr_program_entry *next = e->next;
        for (kernel_entry *k = e->kernels, *kn; k; k = kn) {
            kn = k->next;
            clReleaseKernel(k->kernel);
            free(k->name);
            free(k);
        }
        if (e->program) clReleaseProgram(e->program);
        if (e->retired) clReleaseProgram(e->retired);
        free(e->file);
        free(e->options);
        free(e);
        e = next;
    }
    rt->programs = NULL;
}

static int build_log_error(dfr_runtime *rt, cl_program prog, const char *file, const char *opts,
                           cl_int err)
{
    size_t n = 0;
    clGetProgramBuildInfo(prog, rt->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
    char *log = malloc(n + 1);
    if (log) {
        log[0] = 0;
        clGetProgramBuildInfo(prog, rt->device, CL_PROGRAM_BUILD_LOG, n, log, NULL);
        log[n] = 0;
    }
    /* The message buffer is bounded; keep the start of the log, where the first error is. */
    int rc = dfr_error(DFRCL_ERR_BUILD,
                       "kernel program %s failed to build for %s (%s, %d)\noptions: %s\n"
                       "build log:\n%.3000s",
                       file, rt->info.name, dfrcl_status_name(err), err, opts, log ? log : "");
    free(log);
    return rc;
}

static void cache_key(dfr_runtime *rt, const dfr_kernel_source *common,
                      const dfr_kernel_source *src, const char *opts, char hex[65])
{
    dfr_sha256 h;
    dfr_sha256_init(&h);
    dfr_sha256_update_str(&h, "dfrcl-program-cache-v2"); /* v2: entries carry a header */
    dfr_sha256_update_str(&h, DFRCL_VERSION);
    dfr_sha256_update_str(&h, common->text);
    dfr_sha256_update_str(&h, src->text);
    dfr_sha256_update_str(&h, opts);
    dfr_sha256_update_str(&h, rt->info.name);
    dfr_sha256_update_str(&h, rt->info.driver_version);
    dfr_sha256_update_str(&h, rt->info.platform_version);
    dfr_sha256_hex(&h, hex);
}

/* Removes a bad cache entry (a file, or an empty directory squatting its name) and says why. */
static void drop_entry(const dfr_runtime *rt, const char *path, const char *reason)
{
    int gone = unlink(path) == 0 || errno == ENOENT ||
               ((errno == EISDIR || errno == EPERM) && rmdir(path) == 0);
    if (gone)
        dfr_rt_log(rt, 1, "kernel cache: %s: %s; removed it, rebuilding from source", path, reason);
    else
        dfr_rt_log(rt, 1,
            "kernel cache: %s: %s; cannot remove it (%s), building from source; remove "
                   "it by hand", path, reason, strerror(errno));
}

/* Tries the cached entry at `path`; returns NULL when there is none or it is unusable (then it
 * is removed, and the caller builds from source and stores a fresh one). */
static cl_program load_cached(dfr_runtime *rt, const char *path, const char *key, const char *opts)
{
    struct stat st;
    if (lstat(path, &st) != 0) return NULL; /* a plain miss */
    unsigned char *buf = NULL;
    size_t len = 0;
    if (dfr_read_file(path, &buf, &len) != DFRCL_OK) {
        /* The message starts with the path; keep only what follows it. */
        const char *msg = dfrcl_last_error(), *why = msg;
        size_t n = strlen(path);
        if (strncmp(msg, path, n) == 0 && strncmp(msg + n, ": ", 2) == 0) why = msg + n + 2;
        char reason[512];
        snprintf(reason, sizeof reason, "%s", why);
        dfr_error_clear();
        drop_entry(rt, path, reason);
        return NULL;
    }
    const unsigned char *bin = NULL;
    size_t bin_len = 0;
    int status = dfr_cache_entry_parse(buf, len, key, &bin, &bin_len);
    if (status != DFR_CACHE_ENTRY_OK) {
        free(buf);
        drop_entry(rt, path, dfr_cache_entry_reason(status));
        return NULL;
    }
    cl_int bin_status = CL_SUCCESS, err;
    cl_program p =
        clCreateProgramWithBinary(rt->context, 1, &rt->device, &bin_len, &bin, &bin_status, &err);
    free(buf);
    char reason[128] = "";
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS)
        snprintf(reason, sizeof reason, "rejected by the driver (%s)",
                 dfrcl_status_name(err != CL_SUCCESS ? err : bin_status));
    else if ((err = clBuildProgram(p, 1, &rt->device, opts, NULL, NULL)) != CL_SUCCESS)
        snprintf(reason, sizeof reason, "did not build (%s)", dfrcl_status_name(err));
    else {
        /* Some drivers (PoCL) cannot answer this for a binary; then kernel creation checks. */
        size_t nk = 1;
        if (clGetProgramInfo(p, CL_PROGRAM_NUM_KERNELS, sizeof nk, &nk, NULL) == CL_SUCCESS &&
            nk == 0)
            snprintf(reason, sizeof reason, "holds no kernels");
    }
    if (reason[0]) {
        if (p) clReleaseProgram(p);
        drop_entry(rt, path, reason);
        return NULL;
    }
    return p;
}

static void store_cached(dfr_runtime *rt, cl_program p, const char *key, const char *path)
{
    size_t size = 0;
    if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS ||
        size == 0)
        return;
    unsigned char *bin = malloc(size);
    if (!bin) return;
    unsigned char *bins[1] = {bin};
    if (clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS) {
        unsigned char hdr[DFR_CACHE_ENTRY_HEADER];
        dfr_cache_entry_header(hdr, key, bin, size);
        dfr_atomic_file af;
        int rc = dfr_mkdir_p(rt->cache_dir);
        if (!rc) rc = dfr_atomic_open(&af, path);
        if (!rc && (fwrite(hdr, 1, sizeof hdr, af.f) != sizeof hdr ||
                    fwrite(bin, 1, size, af.f) != size)) {
            dfr_atomic_abort(&af);
            rc = dfr_error(DFRCL_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        } else if (!rc)
            rc = dfr_atomic_commit(&af);
        if (rc) {
            dfr_rt_log(rt, 2, "cache: cannot write %s: %s (continuing without)", path,
                    dfrcl_last_error());
            dfr_error_clear();
        }
    }
    free(bin);
}

/* Builds `file` from source and, when the cache is on (path != ""), stores it. */
static int build_from_source(dfr_runtime *rt, const char *file, const char *opts, const char *key,
                             const char *path, cl_program *out)
{
    const dfr_kernel_source *common = find_source("common.cl");
    const dfr_kernel_source *src = find_source(file);
    if (!common || !src)
        return dfr_error(DFRCL_ERR_INTERNAL, "kernel source %s is not embedded in this build", file);
    const char *texts[2] = {common->text, src->text};
    int rc = dfr_program_build(rt, file, 2, texts, opts, out);
    if (!rc && path[0]) store_cached(rt, *out, key, path);
    return rc;
}

int dfr_program_build(dfr_runtime *rt, const char *name, int n, const char *const *texts,
                      const char *opts, cl_program *out)
{
    cl_int err;
    *out = clCreateProgramWithSource(rt->context, (cl_uint)n, (const char **)texts, NULL, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        return dfr_cl_error(err, "clCreateProgramWithSource");
    }
    dfr_rt_log(rt, 2, "building %s %s", name, opts);
    err = clBuildProgram(*out, 1, &rt->device, opts, NULL, NULL);
    if (err != CL_SUCCESS) {
        int rc = build_log_error(rt, *out, name, opts, err);
        clReleaseProgram(*out);
        *out = NULL;
        return rc;
    }
    return DFRCL_OK;
}

static void full_options(const char *options, char *opts, size_t n)
{
    snprintf(opts, n, "-cl-std=CL1.2 %s", options);
}

int dfr_program_get(dfr_runtime *rt, const char *file, const char *options, cl_program *out)
{
    *out = NULL;
    if (!options) options = "";
    for (dfr_program_entry *e = rt->programs; e; e = e->next)
        if (strcmp(e->file, file) == 0 && strcmp(e->options, options) == 0) {
            *out = e->program;
            return DFRCL_OK;
        }
    const dfr_kernel_source *common = find_source("common.cl");
    const dfr_kernel_source *src = find_source(file);
    if (!common || !src)
        return dfr_error(DFRCL_ERR_INTERNAL, "kernel source %s is not embedded in this build", file);

    char opts[2048];
    full_options(options, opts, sizeof opts);
    dfr_program_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->file = strdup(file)) || !(e->options = strdup(options))) {
        if (e) free(e->file);
        free(e);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    cl_program prog = NULL;
    if (rt->cache_dir[0]) {
        cache_key(rt, common, src, opts, e->key);
        snprintf(e->cache_path, sizeof e->cache_path, "%s/%s.clbin", rt->cache_dir, e->key);
        prog = load_cached(rt, e->cache_path, e->key, opts);
        if (prog) dfr_rt_log(rt, 2, "cache: loaded %s for %s", e->cache_path, file);
        e->from_cache = prog != NULL;
    }
    if (!prog) {
        int rc = build_from_source(rt, file, opts, e->key, e->cache_path, &prog);
        if (rc) {
            free(e->file);
            free(e->options);
            free(e);
            return rc;
        }
    }
    e->program = prog;
    e->next = rt->programs;
    rt->programs = e;
    *out = prog;
    return DFRCL_OK;
}

/* A cached program that lacks a kernel its source has (a binary from elsewhere under a valid
 * header): drop the entry, rebuild from source. The old program is kept until the runtime
 * closes, as callers may still hold it. */
static int rebuild_uncached(dfr_runtime *rt, dfr_program_entry *e, const char *kernel, cl_int err)
{
    char reason[300];
    snprintf(reason, sizeof reason, "lacks kernel %s (%s)", kernel, dfrcl_status_name(err));
    drop_entry(rt, e->cache_path, reason);
    char opts[2048];
    full_options(e->options, opts, sizeof opts);
    cl_program prog = NULL;
    int rc = build_from_source(rt, e->file, opts, e->key, e->cache_path, &prog);
    if (rc) return rc;
    e->retired = e->program;
    e->program = prog;
    e->from_cache = 0;
    return DFRCL_OK;
}

int dfr_kernel_create(dfr_runtime *rt, const char *file, const char *options, const char *name,
                      cl_kernel *out)
{
    *out = NULL;
    cl_program p;
    int rc = dfr_program_get(rt, file, options, &p);
    if (rc) return rc;
    cl_int err;
    *out = clCreateKernel(p, name, &err);
    if (err == CL_INVALID_KERNEL_NAME || err == CL_INVALID_PROGRAM_EXECUTABLE) {
        dfr_program_entry *e = rt->programs;
        while (e && e->program != p) e = e->next;
        if (e && e->from_cache) {
            rc = rebuild_uncached(rt, e, name, err);
            if (rc) return rc;
            *out = clCreateKernel(e->program, name, &err);
        }
    }
    if (err != CL_SUCCESS) {
        *out = NULL;
        char msg[256];
        snprintf(msg, sizeof msg, "creating kernel %s from %s", name, file);
        return dfr_cl_error(err, msg);
    }
    return DFRCL_OK;
}

int dfr_kernel_get(dfr_runtime *rt, const char *file, const char *options, const char *name,
                   cl_kernel *out)
{
    *out = NULL;
    cl_program p;
    int rc = dfr_program_get(rt, file, options, &p);
    if (rc) return rc;
    dfr_program_entry *e = rt->programs;
    while (e && e->program != p) e = e->next;
    for (kernel_entry *k = e->kernels; k; k = k->next)
        if (strcmp(k->name, name) == 0) {
            *out = k->kernel;
            return DFRCL_OK;
        }
    kernel_entry *k = calloc(1, sizeof *k);
    if (!k || !(k->name = strdup(name))) {
        free(k);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    rc = dfr_kernel_create(rt, file, options, name, &k->kernel);
    if (rc) {
        free(k->name);
        free(k);
        return rc;
    }
    k->next = e->kernels;
    e->kernels = k;
    *out = k->kernel;
    return DFRCL_OK;
}
