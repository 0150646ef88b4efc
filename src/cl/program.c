/* Program build and the on-disk binary cache.
 *
 * A program is common.cl followed by one stage file, built with per-device -D options. Its
 * compiled binary is cached at <cache_dir>/<sha256>.clbin, the key hashing the sources, the
 * options, the device name, driver and platform versions and dfrcl's version. Writes are atomic;
 * any cache problem (unreadable, stale, rejected binary) falls back to a build from source. */
#include <stdlib.h>
#include <string.h>

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
    dfr_sha256_update_str(&h, "dfrcl-program-cache-v1");
    dfr_sha256_update_str(&h, DFRCL_VERSION);
    dfr_sha256_update_str(&h, common->text);
    dfr_sha256_update_str(&h, src->text);
    dfr_sha256_update_str(&h, opts);
    dfr_sha256_update_str(&h, rt->info.name);
    dfr_sha256_update_str(&h, rt->info.driver_version);
    dfr_sha256_update_str(&h, rt->info.platform_version);
    dfr_sha256_hex(&h, hex);
}

/* Tries the cached binary; returns NULL on any problem (the caller builds from source). */
static cl_program load_cached(dfr_runtime *rt, const char *path, const char *opts)
{
    unsigned char *bin = NULL;
    size_t len = 0;
    if (dfr_read_file(path, &bin, &len) != DFRCL_OK || len == 0) {
        free(bin);
        dfr_error_clear();
        return NULL;
    }
    cl_int status = CL_SUCCESS, err;
    const unsigned char *bins[1] = {bin};
    cl_program p =
        clCreateProgramWithBinary(rt->context, 1, &rt->device, &len, bins, &status, &err);
    free(bin);
    if (err != CL_SUCCESS || status != CL_SUCCESS) {
        if (p) clReleaseProgram(p);
        dfr_log(2, "cache: %s rejected by the driver; rebuilding", path);
        return NULL;
    }
    if (clBuildProgram(p, 1, &rt->device, opts, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(p);
        dfr_log(2, "cache: %s did not build; rebuilding", path);
        return NULL;
    }
    return p;
}

static void store_cached(dfr_runtime *rt, cl_program p, const char *path)
{
    size_t size = 0;
    if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS ||
        size == 0)
        return;
    unsigned char *bin = malloc(size);
    if (!bin) return;
    unsigned char *bins[1] = {bin};
    if (clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS) {
        if (dfr_mkdir_p(rt->cache_dir) != DFRCL_OK ||
            dfr_write_file_atomic(path, bin, size) != DFRCL_OK) {
            dfr_log(2, "cache: cannot write %s: %s (continuing without)", path,
                    dfrcl_last_error());
            dfr_error_clear();
        }
    }
    free(bin);
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
    dfr_log(2, "building %s %s", name, opts);
    err = clBuildProgram(*out, 1, &rt->device, opts, NULL, NULL);
    if (err != CL_SUCCESS) {
        int rc = build_log_error(rt, *out, name, opts, err);
        clReleaseProgram(*out);
        *out = NULL;
        return rc;
    }
    return DFRCL_OK;
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
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 %s", options);

    char path[4096 + 80] = "";
    cl_program prog = NULL;
    if (rt->cache_dir[0]) {
        char hex[65];
        cache_key(rt, common, src, opts, hex);
        snprintf(path, sizeof path, "%s/%s.clbin", rt->cache_dir, hex);
        prog = load_cached(rt, path, opts);
        if (prog) dfr_log(2, "cache: loaded %s for %s", path, file);
    }
    if (!prog) {
        const char *texts[2] = {common->text, src->text};
        int rc = dfr_program_build(rt, file, 2, texts, opts, &prog);
        if (rc) return rc;
        if (path[0]) store_cached(rt, prog, path);
    }
    dfr_program_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->file = strdup(file)) || !(e->options = strdup(options))) {
        if (e) free(e->file);
        free(e);
        clReleaseProgram(prog);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    e->program = prog;
    e->next = rt->programs;
    rt->programs = e;
    *out = prog;
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
