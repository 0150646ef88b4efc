#include "cl/runtime.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fsutil.h"

#define NO_PLATFORM_ADVICE                                                                     \
    "install an OpenCL driver: a GPU vendor's driver with OpenCL support, or PoCL for the CPU " \
    "(Debian/Ubuntu: apt-get install pocl-opencl-icd); the ICD loader looks in "              \
    "/etc/OpenCL/vendors (or OCL_ICD_VENDORS)"

int dfr_cl_error(cl_int err, const char *what)
{
    if (err == CL_SUCCESS) return DFRCL_OK;
    if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ||
        err == CL_INVALID_BUFFER_SIZE)
        return dfr_error(DFRCL_ERR_DEVICE_MEMORY,
                         "%s: the OpenCL device ran out of memory or resources (%s, %d); try a "
                         "smaller image size (size) or batch (batch), or a device with more "
                         "memory",
                         what, dfrcl_status_name(err), err);
    if (err == CL_OUT_OF_HOST_MEMORY)
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of host memory (CL_OUT_OF_HOST_MEMORY)",
                         what);
    return dfr_error(err, "%s: OpenCL error %s (%d)", what, dfrcl_status_name(err), err);
}

static void info_str(cl_device_id d, cl_device_info p, char *buf, size_t n)
{
    buf[0] = 0;
    if (clGetDeviceInfo(d, p, n, buf, NULL) != CL_SUCCESS) buf[0] = 0;
    buf[n - 1] = 0;
}

static void fill_info(dfrcl_device_info *di, cl_platform_id p, cl_device_id d)
{
    memset(di, 0, sizeof *di);
    clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof di->platform_name, di->platform_name, NULL);
    clGetPlatformInfo(p, CL_PLATFORM_VERSION, sizeof di->platform_version, di->platform_version,
                      NULL);
    di->platform_name[sizeof di->platform_name - 1] = 0;
    di->platform_version[sizeof di->platform_version - 1] = 0;
    info_str(d, CL_DEVICE_NAME, di->name, sizeof di->name);
    info_str(d, CL_DEVICE_VENDOR, di->vendor, sizeof di->vendor);
    info_str(d, CL_DRIVER_VERSION, di->driver_version, sizeof di->driver_version);
    info_str(d, CL_DEVICE_OPENCL_C_VERSION, di->opencl_c_version, sizeof di->opencl_c_version);
    cl_device_type t = 0;
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, NULL);
    di->is_gpu = (t & CL_DEVICE_TYPE_GPU) != 0;
    di->is_cpu = (t & CL_DEVICE_TYPE_CPU) != 0;
    cl_uint cu = 0;
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    di->compute_units = cu;
    cl_ulong v = 0;
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof v, &v, NULL);
    di->global_mem_bytes = v;
    v = 0;
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof v, &v, NULL);
    di->max_alloc_bytes = v;
    v = 0;
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof v, &v, NULL);
    di->local_mem_bytes = v;
    size_t wg = 0;
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    di->max_work_group_size = wg;
}

int dfr_list_devices(dfrcl_device_info **out, int *count, cl_device_id **ids_out,
                     cl_platform_id **plats_out)
{
    *out = NULL;
    *count = 0;
    if (ids_out) *ids_out = NULL;
    if (plats_out) *plats_out = NULL;
    cl_uint np = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &np);
    if (err == CL_PLATFORM_NOT_FOUND_KHR || (err == CL_SUCCESS && np == 0))
        return dfr_error(DFRCL_ERR_NO_DEVICE, "no OpenCL platform found: " NO_PLATFORM_ADVICE);
    if (err != CL_SUCCESS) return dfr_cl_error(err, "clGetPlatformIDs");
    cl_platform_id *plats = calloc(np, sizeof *plats);
    if (!plats) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory listing platforms");
    clGetPlatformIDs(np, plats, NULL);

    int cap = 16, n = 0, rc = DFRCL_OK;
    dfrcl_device_info *infos = calloc((size_t)cap, sizeof *infos);
    cl_device_id *ids = calloc((size_t)cap, sizeof *ids);
    cl_platform_id *pl = calloc((size_t)cap, sizeof *pl);
    if (!infos || !ids || !pl) {
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory listing devices");
        goto done;
    }
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0)
            continue;
        cl_device_id *devs = calloc(nd, sizeof *devs);
        if (!devs) continue;
        clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs, NULL);
        for (cl_uint d = 0; d < nd; d++) {
            if (n == cap) {
                cap *= 2;
                void *a = realloc(infos, (size_t)cap * sizeof *infos);
                if (a) infos = a;
                void *b = realloc(ids, (size_t)cap * sizeof *ids);
                if (b) ids = b;
                void *c = realloc(pl, (size_t)cap * sizeof *pl);
                if (c) pl = c;
                if (!a || !b || !c) {
                    free(devs);
                    rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory listing devices");
                    goto done;
                }
            }
            fill_info(&infos[n], plats[p], devs[d]);
            infos[n].index = n;
            infos[n].platform_index = (int)p;
            ids[n] = devs[d];
            pl[n] = plats[p];
            n++;
        }
        free(devs);
    }
    if (n == 0) {
        rc = dfr_error(DFRCL_ERR_NO_DEVICE,
                       "OpenCL platforms were found but they have no devices: " NO_PLATFORM_ADVICE);
        goto done;
    }
    /* The default: the first GPU, else the first device. */
    int def = 0;
    for (int i = 0; i < n; i++)
        if (infos[i].is_gpu) {
            def = i;
            break;
        }
    infos[def].is_default = 1;
done:
    free(plats);
    if (rc != DFRCL_OK) {
        free(infos);
        free(ids);
        free(pl);
        return rc;
    }
    *out = infos;
    *count = n;
    if (ids_out) *ids_out = ids;
    else free(ids);
    if (plats_out) *plats_out = pl;
    else free(pl);
    return DFRCL_OK;
}

static int ci_contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return 1;
    }
    return n == 0;
}

/* "[0] name, [1] name, ..." for messages about a missing device. */
static void device_names(const dfrcl_device_info *infos, int n, char *list, size_t cap)
{
    size_t used = 0;
    list[0] = 0;
    for (int i = 0; i < n && used < cap - 1; i++) {
        int w = snprintf(list + used, cap - used, "%s[%d] %s", i ? ", " : "", i, infos[i].name);
        if (w < 0) break;
        used += (size_t)w;
    }
}

static int pick_device(const dfrcl_device_info *infos, int n, const char *sel, int *chosen)
{
    if (!sel || !*sel) {
        for (int i = 0; i < n; i++)
            if (infos[i].is_default) *chosen = i;
        return DFRCL_OK;
    }
    char list[2048];
    char *end = NULL;
    long idx = strtol(sel, &end, 10);
    if (end && *end == 0 && end != sel) {
        if (idx < 0 || idx >= n) {
            device_names(infos, n, list, sizeof list);
            return dfr_error(DFRCL_ERR_NO_DEVICE,
                             "device index %ld out of range: %d device(s): %s", idx, n, list);
        }
        *chosen = (int)idx;
        return DFRCL_OK;
    }
    for (int i = 0; i < n; i++)
        if (ci_contains(infos[i].name, sel) || ci_contains(infos[i].platform_name, sel)) {
            *chosen = i;
            return DFRCL_OK;
        }
    device_names(infos, n, list, sizeof list);
    return dfr_error(DFRCL_ERR_NO_DEVICE, "no OpenCL device matches '%s'; devices: %s", sel, list);
}

int dfr_device_select(const char *sel, int **idx_out, int *n_out)
{
    *idx_out = NULL;
    *n_out = 0;
    dfrcl_device_info *infos = NULL;
    int n = 0;
    int rc = dfr_list_devices(&infos, &n, NULL, NULL);
    if (rc) return rc;
    if (!sel || !*sel) sel = getenv("DFRCL_DEVICE");
    int *idx = calloc((size_t)n, sizeof *idx), k = 0;
    if (!idx) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    if (!rc && sel && !strcasecmp(sel, "all")) {
        for (int i = 0; i < n; i++) idx[k++] = i;
    } else if (!rc && (!sel || !*sel)) {
        rc = pick_device(infos, n, NULL, &idx[k]);
        k++;
    } else if (!rc) {
        char part[512];
        for (const char *p = sel; !rc;) {
            size_t len = strcspn(p, ",");
            if (len == 0 || len >= sizeof part) {
                char list[2048];
                device_names(infos, n, list, sizeof list);
                rc = dfr_error(DFRCL_ERR_NO_DEVICE, "device list '%s': an empty or too long entry; "
                               "give indices or names separated by commas, or 'all'; devices: %s",
                               sel, list);
                break;
            }
            memcpy(part, p, len);
            part[len] = 0;
            int c = 0;
            rc = pick_device(infos, n, part, &c);
            int dup = 0;
            for (int j = 0; j < k; j++) dup |= idx[j] == c;
            if (!rc && !dup) idx[k++] = c;
            if (!p[len]) break;
            p += len + 1;
        }
    }
    free(infos);
    if (rc) {
        free(idx);
        return rc;
    }
    *idx_out = idx;
    *n_out = k;
    return DFRCL_OK;
}

int dfr_runtime_open_list(dfr_runtime ***out, int *n_out, const char *list, const char *cache_dir,
                          int profiling)
{
    *out = NULL;
    *n_out = 0;
    int *idx = NULL, n = 0;
    int rc = dfr_device_select(list, &idx, &n);
    if (rc) return rc;
    dfr_runtime **rts = calloc((size_t)n, sizeof *rts);
    if (!rts) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        char sel[16];
        snprintf(sel, sizeof sel, "%d", idx[i]);
        rc = dfr_runtime_open(&rts[i], sel, cache_dir, profiling);
    }
    free(idx);
    if (rc) {
        for (int i = 0; rts && i < n; i++) dfr_runtime_close(&rts[i]);
        free(rts);
        return rc;
    }
    *out = rts;
    *n_out = n;
    return DFRCL_OK;
}

/* Returns where the choice came from, for messages. */
static const char *default_cache_dir(char *buf, size_t n, const char *requested)
{
    const char *env = getenv("DFRCL_CACHE_DIR");
    if (requested) snprintf(buf, n, "%s", requested);
    else if (env) snprintf(buf, n, "%s", env);
    else if (getenv("XDG_CACHE_HOME") && *getenv("XDG_CACHE_HOME"))
        snprintf(buf, n, "%s/dfrcl", getenv("XDG_CACHE_HOME"));
    else if (getenv("HOME") && *getenv("HOME")) snprintf(buf, n, "%s/.cache/dfrcl", getenv("HOME"));
    else buf[0] = 0;
    return requested ? "kernel cache folder" : env ? "DFRCL_CACHE_DIR" : "default kernel cache";
}

/* A cache folder that is a file, cannot be created or is not writable turns the cache off with
 * one warning (a run never fails for its cache); a usable one loses its stale temp files. */
static void check_cache_dir(const dfr_runtime *rt, char *dir, const char *origin)
{
    if (!dir[0]) return;
    struct stat st;
    const char *why = NULL;
    char msg[600] = "";
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        snprintf(msg, sizeof msg, "is not a folder (it is %s)", dfr_file_kind(st.st_mode));
        why = msg;
    } else if (dfr_mkdir_p(dir) != DFRCL_OK) {
        snprintf(msg, sizeof msg, "cannot be created (%s)", dfrcl_last_error());
        dfr_error_clear();
        why = msg;
    } else if (access(dir, W_OK | X_OK) != 0) {
        snprintf(msg, sizeof msg, "is not writable (%s)", strerror(errno));
        why = msg;
    }
    if (why) {
        dfr_rt_log(rt, 1, "warning: %s %s %s; running without the kernel cache, so kernels are "
                   "compiled on every run (set DFRCL_CACHE_DIR to a writable folder, or to \"\" "
                   "to turn the cache off quietly)", origin, dir, why);
        dir[0] = 0;
        return;
    }
    dfr_clean_stale_temps(dir);
}

void dfr_program_cache_free(dfr_runtime *rt); /* program.c */

/* ---- settings read at open ---- */

static const char *const dfr_env_names[] = {
    "DFRCL_GEMM",         "DFRCL_GEMM_TUNE", "DFRCL_CONV_TUNE",        "DFRCL_REGIONAL_TUNE",
    "DFRCL_SCORE_TUNE",   "DFRCL_CAE_LS",    "DFRCL_CLBLAST_DEFAULTS", "DFRCL_TUNED",
    "DFRCL_FAULT",        "DFRCL_COPY_TRANSFERS",
};
_Static_assert(sizeof dfr_env_names / sizeof dfr_env_names[0] == DFR_ENV_COUNT,
               "DFR_ENV_COUNT is the length of dfr_env_names");

const char *dfr_rt_getenv(const dfr_runtime *rt, const char *name)
{
    for (int i = 0; rt && i < DFR_ENV_COUNT; i++)
        if (!strcmp(dfr_env_names[i], name)) return rt->env[i];
    return NULL;
}

static void env_free(dfr_runtime *rt)
{
    for (int i = 0; i < DFR_ENV_COUNT; i++) {
        free(rt->env[i]);
        rt->env[i] = NULL;
    }
}

int dfr_runtime_reload_env(dfr_runtime *rt)
{
    env_free(rt);
    for (int i = 0; i < DFR_ENV_COUNT; i++) {
        const char *v = getenv(dfr_env_names[i]);
        if (v && !(rt->env[i] = strdup(v))) {
            env_free(rt);
            return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        }
    }
    return DFRCL_OK;
}

void dfr_rt_log(const dfr_runtime *rt, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (rt) dfr_vlog(rt->log, rt->log_user, rt->verbosity, level, fmt, ap);
    else dfr_vlog(NULL, NULL, DFR_VERBOSITY_GLOBAL, level, fmt, ap);
    va_end(ap);
}

int dfr_runtime_open(dfr_runtime **out, const char *selector, const char *cache_dir, int profiling)
{
    dfr_runtime_opts o = {.selector = selector, .cache_dir = cache_dir, .profiling = profiling,
                          .verbosity = DFR_VERBOSITY_GLOBAL};
    return dfr_runtime_open_opts(out, &o);
}

int dfr_runtime_open_opts(dfr_runtime **out, const dfr_runtime_opts *o)
{
    *out = NULL;
    const char *selector = o->selector, *cache_dir = o->cache_dir;
    const int profiling = o->profiling;
    dfrcl_device_info *infos = NULL;
    cl_device_id *ids = NULL;
    cl_platform_id *plats = NULL;
    int n = 0;
    int rc = dfr_list_devices(&infos, &n, &ids, &plats);
    if (rc) return rc;
    if (!selector || !*selector) selector = getenv("DFRCL_DEVICE");
    int chosen = 0;
    rc = pick_device(infos, n, selector, &chosen);
    if (rc) goto fail;

    dfr_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) {
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        goto fail;
    }
    rt->info = infos[chosen];
    rt->device = ids[chosen];
    rt->platform = plats[chosen];
    rt->profiling = profiling;
    rt->verbosity = o->verbosity;
    rt->log = o->log;
    rt->log_user = o->log_user;
    rc = dfr_runtime_reload_env(rt);
    if (rc) {
        free(rt);
        goto fail;
    }
    const char *origin = default_cache_dir(rt->cache_dir, sizeof rt->cache_dir, cache_dir);
    check_cache_dir(rt, rt->cache_dir, origin);

    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)rt->platform, 0};
    rt->context = clCreateContext(props, 1, &rt->device, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        rc = dfr_cl_error(err, "clCreateContext");
        env_free(rt);
        free(rt);
        goto fail;
    }
    cl_command_queue_properties qp = profiling ? CL_QUEUE_PROFILING_ENABLE : 0;
    rt->queue = clCreateCommandQueue(rt->context, rt->device, qp, &err);
    if (err == CL_SUCCESS) rt->up_queue = clCreateCommandQueue(rt->context, rt->device, qp, &err);
    if (err == CL_SUCCESS) rt->down_queue = clCreateCommandQueue(rt->context, rt->device, qp, &err);
    if (err != CL_SUCCESS) {
        rc = dfr_cl_error(err, "clCreateCommandQueue");
        cl_command_queue qs[] = {rt->queue, rt->up_queue, rt->down_queue};
        for (int i = 0; i < 3; i++)
            if (qs[i]) clReleaseCommandQueue(qs[i]);
        clReleaseContext(rt->context);
        env_free(rt);
        free(rt);
        goto fail;
    }
    cl_bool unified = CL_FALSE;
    if (clGetDeviceInfo(rt->device, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified,
                        NULL) == CL_SUCCESS)
        rt->unified_memory = unified == CL_TRUE;
    dfr_rt_log(rt, 1,
        "device [%d] %s (%s, %s)", rt->info.index, rt->info.name, rt->info.platform_name,
            rt->info.is_gpu ? "GPU" : rt->info.is_cpu ? "CPU" : "other");
    *out = rt;
fail:
    free(infos);
    free(ids);
    free(plats);
    return rc;
}

void dfr_runtime_close(dfr_runtime **prt)
{
    dfr_runtime *rt = *prt;
    if (!rt) return;
    if (rt->queue) clFinish(rt->queue);
    if (rt->up_queue) clFinish(rt->up_queue);
    if (rt->down_queue) clFinish(rt->down_queue);
    for (int i = 0; i < 8; i++)
        if (rt->release_hooks[i]) rt->release_hooks[i](rt);
    dfr_profile_clear(rt);
    free(rt->prof);
    dfr_program_cache_free(rt);
    if (rt->queue) clReleaseCommandQueue(rt->queue);
    if (rt->up_queue) clReleaseCommandQueue(rt->up_queue);
    if (rt->down_queue) clReleaseCommandQueue(rt->down_queue);
    if (rt->context) clReleaseContext(rt->context);
    env_free(rt);
    free(rt);
    *prt = NULL;
}

/* ---- device memory ---- */

/* What rt's buffers hold. Each buffer's destructor callback subtracts its bytes; the account
 * lives until the runtime and its last buffer are gone (buffers may outlive the runtime). */
typedef struct dfr_mem_account {
    atomic_llong bytes;
    atomic_int refs; /* the runtime's, and one per live buffer */
} dfr_mem_account;

typedef struct mem_record {
    dfr_mem_account *acct;
    size_t bytes;
} mem_record;

static void mem_unref(dfr_mem_account *a)
{
    if (atomic_fetch_sub(&a->refs, 1) == 1) free(a);
}

static void CL_CALLBACK mem_destroyed(cl_mem m, void *user)
{
    (void)m;
    mem_record *r = user;
    atomic_fetch_sub(&r->acct->bytes, (long long)r->bytes);
    mem_unref(r->acct);
    free(r);
}

static void mem_release_hook(dfr_runtime *rt)
{
    if (rt->mem) mem_unref(rt->mem);
    rt->mem = NULL;
}

size_t dfr_runtime_mem_used(const dfr_runtime *rt)
{
    long long b = rt && rt->mem ? atomic_load(&rt->mem->bytes) : 0;
    return b > 0 ? (size_t)b : 0;
}

int dfr_runtime_fits(const dfr_runtime *rt, size_t bytes)
{
    double global = (double)rt->info.global_mem_bytes;
    if (rt->info.max_alloc_bytes && bytes > rt->info.max_alloc_bytes) return 0;
    return !global || (double)dfr_runtime_mem_used(rt) + (double)bytes <= global;
}

int dfr_runtime_batch_fits(const dfr_runtime *rt, size_t fixed, size_t per_image,
                           size_t per_buffer, int cap)
{
    double n = cap, avail = (double)rt->info.global_mem_bytes * 7 / 8 -
                            (double)dfr_runtime_mem_used(rt) - (double)fixed;
    if (!rt->info.global_mem_bytes) avail = 1e300;
    if (per_image && avail / (double)per_image < n) n = avail / (double)per_image;
    if (per_buffer && rt->info.max_alloc_bytes &&
        (double)rt->info.max_alloc_bytes / (double)per_buffer < n)
        n = (double)rt->info.max_alloc_bytes / (double)per_buffer;
    return n < 1 ? 0 : (int)n;
}

static int too_big(const dfr_runtime *rt, size_t bytes, const char *what)
{
    const double mib = 1048576.0;
    if (rt->info.max_alloc_bytes && bytes > rt->info.max_alloc_bytes)
        return dfr_error(DFRCL_ERR_DEVICE_MEMORY,
                         "%s needs a buffer of %.1f MiB but %s allows at most %.1f MiB per buffer "
                         "(%.0f MiB in all); try a smaller image size (size) or batch (batch)",
                         what, bytes / mib, rt->info.name, rt->info.max_alloc_bytes / mib,
                         rt->info.global_mem_bytes / mib);
    return dfr_error(DFRCL_ERR_DEVICE_MEMORY,
                     "%s needs %.1f MiB more, but %s has %.0f MiB of memory and dfrcl holds %.1f "
                     "MiB of it already (at most %.0f MiB per buffer); try a smaller image size "
                     "(size) or batch (batch)",
                     what, bytes / mib, rt->info.name, rt->info.global_mem_bytes / mib,
                     dfr_runtime_mem_used(rt) / mib, rt->info.max_alloc_bytes / mib);
}

int dfr_buffer_new(dfr_runtime *rt, size_t bytes, cl_mem_flags flags, const char *what,
                   cl_mem *out)
{
    *out = NULL;
    if (bytes == 0) bytes = 4; /* OpenCL forbids empty buffers */
    /* Released buffers leave the count when the device is done with them: wait for that once. */
    if (!dfr_runtime_fits(rt, bytes) && rt->queue) clFinish(rt->queue);
    if (!dfr_runtime_fits(rt, bytes)) return too_big(rt, bytes, what);
    if (!rt->mem) {
        dfr_mem_account *a = calloc(1, sizeof *a);
        if (!a) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        atomic_init(&a->bytes, 0);
        atomic_init(&a->refs, 1);
        int rc = dfr_runtime_add_release_hook(rt, mem_release_hook);
        if (rc) {
            free(a);
            return rc;
        }
        rt->mem = a;
    }
    mem_record *r = malloc(sizeof *r);
    if (!r) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    cl_int err;
    *out = clCreateBuffer(rt->context, flags, bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        free(r);
        *out = NULL;
        char msg[256];
        snprintf(msg, sizeof msg, "allocating %.1f MiB for %s", bytes / 1048576.0, what);
        return dfr_cl_error(err, msg);
    }
    *r = (mem_record){rt->mem, bytes};
    atomic_fetch_add(&rt->mem->refs, 1);
    atomic_fetch_add(&rt->mem->bytes, (long long)bytes);
    if (clSetMemObjectDestructorCallback(*out, mem_destroyed, r) != CL_SUCCESS) {
        atomic_fetch_sub(&rt->mem->bytes, (long long)bytes); /* uncounted, but usable */
        mem_unref(rt->mem);
        free(r);
    }
    return DFRCL_OK;
}

int dfr_runtime_add_release_hook(dfr_runtime *rt, void (*fn)(dfr_runtime *rt))
{
    for (int i = 0; i < 8; i++) {
        if (rt->release_hooks[i] == fn) return DFRCL_OK;
        if (!rt->release_hooks[i]) {
            rt->release_hooks[i] = fn;
            return DFRCL_OK;
        }
    }
    return dfr_error(DFRCL_ERR_INTERNAL, "too many runtime release hooks");
}

void dfr_buffer_release(cl_mem *m)
{
    if (*m) clReleaseMemObject(*m);
    *m = NULL;
}

int dfr_prof_record(dfr_runtime *rt, const char *label, cl_event ev)
{
    if (rt->n_prof == rt->cap_prof) {
        size_t cap = rt->cap_prof ? rt->cap_prof * 2 : 256;
        dfr_prof_event *p = realloc(rt->prof, cap * sizeof *p);
        if (!p) {
            clReleaseEvent(ev);
            return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory recording profile");
        }
        rt->prof = p;
        rt->cap_prof = cap;
    }
    rt->prof[rt->n_prof].label = label;
    rt->prof[rt->n_prof].tag = rt->prof_tag;
    rt->prof[rt->n_prof].event = ev;
    rt->n_prof++;
    return DFRCL_OK;
}

int dfr_enqueue(dfr_runtime *rt, cl_kernel k, cl_uint dims, const size_t *global,
                const size_t *local, const char *label)
{
    size_t g[3];
    for (cl_uint i = 0; i < dims; i++) {
        g[i] = global[i];
        if (g[i] == 0) return DFRCL_OK; /* nothing to do */
        if (local && local[i]) g[i] = (g[i] + local[i] - 1) / local[i] * local[i];
    }
    cl_event ev = NULL;
    cl_int err = clEnqueueNDRangeKernel(rt->queue, k, dims, NULL, g, local, 0, NULL,
                                        rt->profiling ? &ev : NULL);
    if (err != CL_SUCCESS) {
        char msg[160];
        snprintf(msg, sizeof msg, "launching %s", label ? label : "kernel");
        return dfr_cl_error(err, msg);
    }
    return ev ? dfr_prof_record(rt, label, ev) : DFRCL_OK;
}

int dfr_write(dfr_runtime *rt, cl_mem dst, size_t offset, size_t bytes, const void *src,
              const char *label)
{
    cl_event ev = NULL;
    cl_int err = clEnqueueWriteBuffer(rt->queue, dst, CL_TRUE, offset, bytes, src, 0, NULL,
                                      rt->profiling ? &ev : NULL);
    if (err != CL_SUCCESS) return dfr_cl_error(err, label ? label : "upload");
    return ev ? dfr_prof_record(rt, label, ev) : DFRCL_OK;
}

int dfr_read(dfr_runtime *rt, cl_mem src, size_t offset, size_t bytes, void *dst,
             const char *label)
{
    cl_event ev = NULL;
    cl_int err = clEnqueueReadBuffer(rt->queue, src, CL_TRUE, offset, bytes, dst, 0, NULL,
                                     rt->profiling ? &ev : NULL);
    if (err != CL_SUCCESS) return dfr_cl_error(err, label ? label : "download");
    return ev ? dfr_prof_record(rt, label, ev) : DFRCL_OK;
}

/* After an enqueue that asked for event e (when profiling or the caller wants it): records it
 * under label (and tag) and hands it to *want, or releases it. */
static int xfer_done(dfr_runtime *rt, cl_int err, cl_event e, cl_event *want, const char *label,
                     const char *tag, const char *what)
{
    if (err != CL_SUCCESS) {
        if (want) *want = NULL;
        return dfr_cl_error(err, what);
    }
    if (want) {
        *want = e;
        if (e && rt->profiling) clRetainEvent(e); /* one for the caller, one for the profile */
    }
    if (!e || !rt->profiling) return DFRCL_OK;
    const char *saved = rt->prof_tag;
    rt->prof_tag = tag;
    int rc = dfr_prof_record(rt, label, e);
    rt->prof_tag = saved;
    return rc;
}

int dfr_copy(dfr_runtime *rt, cl_mem src, size_t src_offset, cl_mem dst, size_t dst_offset,
             size_t bytes, const char *what)
{
    if (bytes == 0) return DFRCL_OK;
    cl_event e = NULL;
    cl_int err = clEnqueueCopyBuffer(rt->queue, src, dst, src_offset, dst_offset, bytes, 0, NULL,
                                     rt->profiling ? &e : NULL);
    char msg[160];
    snprintf(msg, sizeof msg, "copying %s", what ? what : "a buffer");
    return xfer_done(rt, err, e, NULL, "copy", what, msg);
}

int dfr_fill(dfr_runtime *rt, cl_mem buf, size_t offset, size_t bytes, const void *pattern,
             size_t pattern_size, const char *what)
{
    if (bytes == 0) return DFRCL_OK;
    cl_event e = NULL;
    cl_int err = clEnqueueFillBuffer(rt->queue, buf, pattern, pattern_size, offset, bytes, 0, NULL,
                                     rt->profiling ? &e : NULL);
    char msg[160];
    snprintf(msg, sizeof msg, "clearing %s", what ? what : "a buffer");
    return xfer_done(rt, err, e, NULL, "fill", what, msg);
}

static cl_command_queue xfer_queue(const dfr_runtime *rt, const dfr_xfer *x)
{
    return x && x->queue ? x->queue : rt->queue;
}

/* Where the enqueue puts its event: wanted by the caller or by the profile, else nowhere. */
#define XFER_EV(rt, x, e) ((rt)->profiling || ((x) && (x)->ev) ? &(e) : NULL)
#define XFER_WAIT(x) (x) ? (x)->n_wait : 0, (x) && (x)->n_wait ? (x)->wait : NULL

int dfr_write_x(dfr_runtime *rt, const dfr_xfer *x, cl_mem dst, size_t offset, size_t bytes,
                const void *src, const char *label)
{
    cl_event e = NULL;
    cl_int err = clEnqueueWriteBuffer(xfer_queue(rt, x), dst, x && x->blocking ? CL_TRUE : CL_FALSE,
                                      offset, bytes, src, XFER_WAIT(x), XFER_EV(rt, x, e));
    return xfer_done(rt, err, e, x ? x->ev : NULL, label, rt->prof_tag, label ? label : "upload");
}

int dfr_read_x(dfr_runtime *rt, const dfr_xfer *x, cl_mem src, size_t offset, size_t bytes,
               void *dst, const char *label)
{
    cl_event e = NULL;
    cl_int err = clEnqueueReadBuffer(xfer_queue(rt, x), src, x && x->blocking ? CL_TRUE : CL_FALSE,
                                     offset, bytes, dst, XFER_WAIT(x), XFER_EV(rt, x, e));
    return xfer_done(rt, err, e, x ? x->ev : NULL, label, rt->prof_tag,
                     label ? label : "download");
}

int dfr_map_x(dfr_runtime *rt, const dfr_xfer *x, cl_mem buf, cl_map_flags flags, size_t offset,
              size_t bytes, void **ptr, const char *label)
{
    cl_event e = NULL;
    cl_int err = CL_SUCCESS;
    *ptr = clEnqueueMapBuffer(xfer_queue(rt, x), buf, x && x->blocking ? CL_TRUE : CL_FALSE, flags,
                              offset, bytes, XFER_WAIT(x), XFER_EV(rt, x, e), &err);
    if (err != CL_SUCCESS) *ptr = NULL;
    return xfer_done(rt, err, e, x ? x->ev : NULL, label, rt->prof_tag, "mapping a buffer");
}

int dfr_unmap_x(dfr_runtime *rt, const dfr_xfer *x, cl_mem buf, void *ptr, const char *label)
{
    cl_event e = NULL;
    cl_int err = clEnqueueUnmapMemObject(xfer_queue(rt, x), buf, ptr, XFER_WAIT(x),
                                         XFER_EV(rt, x, e));
    return xfer_done(rt, err, e, x ? x->ev : NULL, label, rt->prof_tag, "unmapping a buffer");
}

int dfr_finish(dfr_runtime *rt)
{
    return dfr_cl_error(clFinish(rt->queue), "waiting for the device (clFinish)");
}

int dfr_set_args(cl_kernel k, const char *kname, ...)
{
    va_list ap;
    va_start(ap, kname);
    cl_uint i = 0;
    int rc = DFRCL_OK;
    for (;;) {
        size_t sz = va_arg(ap, size_t);
        if (sz == 0) break;
        const void *p = va_arg(ap, const void *);
        cl_int err = clSetKernelArg(k, i, sz, p);
        if (err != CL_SUCCESS) {
            char msg[160];
            snprintf(msg, sizeof msg, "setting argument %u of kernel %s", i, kname);
            rc = dfr_cl_error(err, msg);
            break;
        }
        i++;
    }
    va_end(ap);
    return rc;
}

void dfr_profile_clear(dfr_runtime *rt)
{
    for (size_t i = 0; i < rt->n_prof; i++) clReleaseEvent(rt->prof[i].event);
    rt->n_prof = 0;
}

int dfr_profile_collect(dfr_runtime *rt, dfr_prof_sum *sums, int max_sums, int *n_sums)
{
    int n = 0, rc = dfr_finish(rt);
    for (size_t i = 0; i < rt->n_prof && rc == DFRCL_OK; i++) {
        cl_ulong t0 = 0, t1 = 0;
        cl_int e1 = clGetEventProfilingInfo(rt->prof[i].event, CL_PROFILING_COMMAND_START,
                                            sizeof t0, &t0, NULL);
        cl_int e2 = clGetEventProfilingInfo(rt->prof[i].event, CL_PROFILING_COMMAND_END,
                                            sizeof t1, &t1, NULL);
        if (e1 != CL_SUCCESS || e2 != CL_SUCCESS) {
            rc = dfr_cl_error(e1 ? e1 : e2, "reading profiling info");
            break;
        }
        const char *label = rt->prof[i].label ? rt->prof[i].label : "other";
        const char *tag = rt->prof[i].tag;
        int j = 0;
        while (j < n && !(strcmp(sums[j].label, label) == 0 &&
                          (sums[j].tag == tag || (sums[j].tag && tag && !strcmp(sums[j].tag, tag)))))
            j++;
        if (j == n) {
            if (n == max_sums) continue;
            sums[n].label = label;
            sums[n].tag = tag;
            sums[n].ms = 0;
            sums[n].count = 0;
            n++;
        }
        sums[j].ms += (double)(t1 - t0) * 1e-6;
        sums[j].count++;
    }
    dfr_profile_clear(rt);
    *n_sums = n;
    return rc;
}
