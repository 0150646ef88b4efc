/* The OpenCL runtime: device discovery and choice, program build with an on-disk binary cache,
 * buffers, and the in-order queue on which every stage of a pipeline is chained.
 *
 * Chaining: all stages of one image are enqueued back to back on one in-order queue; the host
 * waits only when it reads a result back. Each enqueue can record a profiling event under a
 * stage label, which `dfrcl bench` sums per stage. */
#ifndef DFRCL_CL_RUNTIME_H
#define DFRCL_CL_RUNTIME_H

#include <stddef.h>

#include "cl/clinc.h"
#include "dfrcl.h"
#include "util/error.h"

typedef struct dfr_program_entry dfr_program_entry;

/* The environment variables dfrcl's library reads (tuning overrides, backend choices, test
 * hooks), captured once when a runtime opens: the ops read the runtime's copy
 * (dfr_rt_getenv), so a runtime keeps the settings it opened with whatever another thread or a
 * later setenv does, and no op calls getenv. Listed in runtime.c (dfr_env_names). */
#define DFR_ENV_COUNT 10

/* A profiling record: one kernel launch or transfer under a stage label. */
typedef struct dfr_prof_event {
    const char *label; /* static string: the stage ("conv", "regional", ...) */
    const char *tag;   /* static string or NULL: which instance (the layer, ...) */
    cl_event event;
} dfr_prof_event;

typedef struct dfr_runtime {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    /* Transfer queues (in order, same device): uploads and read-backs run on them beside the
     * compute queue, chained to it by events (the scheduler, src/sched). */
    cl_command_queue up_queue, down_queue;
    int unified_memory; /* CL_DEVICE_HOST_UNIFIED_MEMORY: device memory is host memory */
    dfrcl_device_info info;
    char cache_dir[4096];  /* "" = binary cache disabled */
    dfr_program_entry *programs; /* programs built in this process, by (files, options) */
    /* Profiling (only when opened with profiling = 1). */
    int profiling;
    const char *prof_tag; /* attached to the events recorded while it is set */
    dfr_prof_event *prof;
    size_t n_prof, cap_prof;
    /* Modules that keep per-runtime state (the GEMM's scratch buffers) release it here. */
    void (*release_hooks[8])(struct dfr_runtime *rt);
    /* Per-runtime state of modules (src/ops/gemm.c, src/ops/tunables.c), made at first use and
     * freed by their release hooks. A runtime is used by one thread at a time, so they need no
     * lock; process-wide state lives only where a library keeps it (CLBlast), under a mutex. */
    struct dfr_gemm_state *gemm;
    struct dfr_tune_state *tune;
    char *env[DFR_ENV_COUNT]; /* values at open (malloc'd; NULL: unset) */
    /* Messages of library code working on this runtime (dfr_rt_log): shown up to `verbosity`
     * (0 quiet, 1 info, 2 debug; DFR_VERBOSITY_GLOBAL follows dfr_verbosity, the default), on
     * stderr, or handed to `log` when set. */
    int verbosity;
    dfr_log_fn log;
    void *log_user;
    struct dfr_mem_account *mem; /* bytes held by dfr_buffer_new's buffers (NULL: none yet) */
    /* Storage precision of activations in inference (--precision): 0 fp32, 1 fp16. Which buffers
     * it covers: kernels/common.cl. Set it before making buffers; training ignores it (fp32). */
    int half;
} dfr_runtime;

/* Bytes of one activation element (4, or 2 with rt->half), for sizing and checking buffers. */
static inline size_t dfr_act_bytes(const dfr_runtime *rt)
{
    return rt && rt->half ? 2 : 4;
}
/* The kernel build option that selects that storage (" -DDFR_HALF=1" or ""). */
static inline const char *dfr_act_opts(const dfr_runtime *rt)
{
    return rt && rt->half ? " -DDFR_HALF=1" : "";
}

/* rt's value of environment variable `name` when it opened (NULL when unset or rt is NULL).
 * `name` must be one of runtime.c's dfr_env_names. */
const char *dfr_rt_getenv(const dfr_runtime *rt, const char *name);
/* Reads the environment again into rt (tests and tools that change a variable between runs);
 * module state that depends on it (the GEMM backend) is recomputed at its next use. Call it
 * while no other thread uses rt. */
int dfr_runtime_reload_env(dfr_runtime *rt);

/* Logging for code that works on a runtime: rt's verbosity and logger (see dfr_runtime);
 * rt NULL: the process-wide dfr_log. */
void dfr_rt_log(const dfr_runtime *rt, int level, const char *fmt, ...) DFR_PRINTF(3, 4);

/* Registers fn to run when rt is closed (once per fn; at most 8). */
int dfr_runtime_add_release_hook(dfr_runtime *rt, void (*fn)(dfr_runtime *rt));
/* Records a profiling event taken elsewhere (a library's launch) under `label`; takes ownership. */
int dfr_prof_record(dfr_runtime *rt, const char *label, cl_event ev);

/* Lists all devices of all platforms. *out (malloc'd, caller frees) may be NULL when *count is 0.
 * ids, if not NULL, receives a malloc'd array of the device ids and platforms in the same order. */
int dfr_list_devices(dfrcl_device_info **out, int *count, cl_device_id **ids,
                     cl_platform_id **platforms);

/* Opens a context and queue on the device chosen by `selector` (index or case-insensitive name
 * substring; NULL or "" = DFRCL_DEVICE, else the first GPU, else the first device).
 * cache_dir: NULL = DFRCL_CACHE_DIR / XDG default; "" = no cache. */
int dfr_runtime_open(dfr_runtime **rt, const char *selector, const char *cache_dir, int profiling);

/* dfr_runtime_open with the runtime's logging set from the start (the device line and cache
 * warnings of the open itself go through it). */
typedef struct dfr_runtime_opts {
    const char *selector, *cache_dir; /* as dfr_runtime_open's */
    int profiling;
    int verbosity; /* 0, 1, 2, or DFR_VERBOSITY_GLOBAL */
    dfr_log_fn log; /* NULL: stderr */
    void *log_user;
} dfr_runtime_opts;
int dfr_runtime_open_opts(dfr_runtime **rt, const dfr_runtime_opts *o);
void dfr_runtime_close(dfr_runtime **rt);

/* The devices a selector list names: "all", or comma-separated entries each an index or a name
 * substring ("0,2", "pthread"); NULL or "" = the one dfr_runtime_open picks. *idx (malloc'd,
 * caller frees) receives the device indices in the order given, duplicates dropped. A missing
 * device is DFRCL_ERR_NO_DEVICE with the list of devices in the message. */
int dfr_device_select(const char *list, int **idx, int *n);
/* Opens one runtime per device the list names (dfr_device_select); *rts malloc'd, caller closes
 * each and frees the array. */
int dfr_runtime_open_list(dfr_runtime ***rts, int *n, const char *list, const char *cache_dir,
                          int profiling);

/* Returns the program built from common.cl followed by `file` (e.g. "conv.cl") with `options`
 * (-D tunables), building it (or loading it from the binary cache) on first use. The runtime owns
 * the program. */
int dfr_program_get(dfr_runtime *rt, const char *file, const char *options, cl_program *out);
/* Builds a program from source texts (no cache); a failure returns DFRCL_ERR_BUILD with the build
 * log and options in the message. */
int dfr_program_build(dfr_runtime *rt, const char *name, int n, const char *const *texts,
                      const char *opts, cl_program *out);
/* Creates a kernel (owned by the caller: clReleaseKernel) from such a program. */
int dfr_kernel_create(dfr_runtime *rt, const char *file, const char *options, const char *name,
                      cl_kernel *out);

/* Like dfr_kernel_create, but the kernel is cached and owned by the runtime (one per name and
 * options): set its arguments and enqueue it right away, as the next call may reuse it. */
int dfr_kernel_get(dfr_runtime *rt, const char *file, const char *options, const char *name,
                   cl_kernel *out);

/* clCreateBuffer with a clear error (naming `what` and the size) when the device lacks memory.
 * The runtime counts the bytes its buffers hold (until each is destroyed) and refuses, with
 * DFRCL_ERR_DEVICE_MEMORY, a buffer over CL_DEVICE_MAX_MEM_ALLOC_SIZE or one that would take the
 * total over CL_DEVICE_GLOBAL_MEM_SIZE: some drivers (PoCL) would allocate it anyway, others
 * fail only at its first use. */
int dfr_buffer_new(dfr_runtime *rt, size_t bytes, cl_mem_flags flags, const char *what,
                   cl_mem *out);
void dfr_buffer_release(cl_mem *m);

/* Device bytes held by the buffers dfr_buffer_new made on rt and not yet destroyed. */
size_t dfr_runtime_mem_used(const dfr_runtime *rt);
/* 1 when `bytes` more in one buffer would fit now: within the device's largest allocation and,
 * with what rt holds, within its global memory; else 0. */
int dfr_runtime_fits(const dfr_runtime *rt, size_t bytes);
/* The largest batch n <= cap whose buffers fit the device besides what rt holds now: n *
 * per_buffer bytes (the largest buffer, per image) within the largest allocation, and fixed +
 * n * per_image bytes (all the batch allocates) within 7/8 of the global memory less what rt
 * holds (1/8 stays for the driver, kernels, libraries' temporaries). 0: not even one fits. */
int dfr_runtime_batch_fits(const dfr_runtime *rt, size_t fixed, size_t per_image,
                           size_t per_buffer, int cap);

/* Launches a kernel on the queue; records a profiling event under `label` when profiling.
 * global sizes are rounded up to multiples of local sizes (local may be NULL). */
int dfr_enqueue(dfr_runtime *rt, cl_kernel k, cl_uint dims, const size_t *global,
                const size_t *local, const char *label);
/* Blocking upload / download of a whole region. */
int dfr_write(dfr_runtime *rt, cl_mem dst, size_t offset, size_t bytes, const void *src,
              const char *label);
int dfr_read(dfr_runtime *rt, cl_mem src, size_t offset, size_t bytes, void *dst,
             const char *label);
int dfr_finish(dfr_runtime *rt);

/* Device-side copy and fill on the compute queue, recorded when profiling under the stage labels
 * "copy" and "fill", tagged `what` (a static string, e.g. "CAE weights"; errors say "copying
 * <what>" / "clearing <what>"). Every copy or fill of the library goes through these, so the
 * profile (`dfrcl bench`) accounts for all the device's work. */
int dfr_copy(dfr_runtime *rt, cl_mem src, size_t src_offset, cl_mem dst, size_t dst_offset,
             size_t bytes, const char *what);
/* Fills `bytes` from `offset` with the `pattern_size`-byte pattern (offset and bytes multiples of
 * it). */
int dfr_fill(dfr_runtime *rt, cl_mem buf, size_t offset, size_t bytes, const void *pattern,
             size_t pattern_size, const char *what);

/* Transfers beside the compute queue (the scheduler's uploads and read-backs): on `queue` (NULL:
 * rt->queue), after the n_wait events of `wait`, blocking or not; `ev` (when not NULL) receives
 * the command's event, which the caller releases. Recorded when profiling under `label` ("upload",
 * "download"); errors name the label. */
typedef struct dfr_xfer {
    cl_command_queue queue;
    int blocking;
    cl_uint n_wait;
    const cl_event *wait;
    cl_event *ev;
} dfr_xfer;
int dfr_write_x(dfr_runtime *rt, const dfr_xfer *x, cl_mem dst, size_t offset, size_t bytes,
                const void *src, const char *label);
int dfr_read_x(dfr_runtime *rt, const dfr_xfer *x, cl_mem src, size_t offset, size_t bytes,
               void *dst, const char *label);
/* Maps `bytes` of buf from `offset` into *ptr (NULL on failure). */
int dfr_map_x(dfr_runtime *rt, const dfr_xfer *x, cl_mem buf, cl_map_flags flags, size_t offset,
              size_t bytes, void **ptr, const char *label);
int dfr_unmap_x(dfr_runtime *rt, const dfr_xfer *x, cl_mem buf, void *ptr, const char *label);

/* Turns a failed OpenCL call into a dfrcl error: "<what>: CL_NAME (code)"; memory failures become
 * DFRCL_ERR_DEVICE_MEMORY with advice. Returns DFRCL_OK when err == CL_SUCCESS. */
int dfr_cl_error(cl_int err, const char *what);

/* Sets kernel arguments in order; each pair is (size, pointer). Stops at size 0. */
int dfr_set_args(cl_kernel k, const char *kname, ...);
#define DFR_ARG(x) sizeof(x), (const void *)&(x)
#define DFR_ARGS_END ((size_t)0)

/* Profiling: sums of device time per label in ms, in first-seen order; clears the records. */
typedef struct dfr_prof_sum {
    const char *label, *tag; /* sums are per (label, tag) */
    double ms;
    int count;
} dfr_prof_sum;
int dfr_profile_collect(dfr_runtime *rt, dfr_prof_sum *sums, int max_sums, int *n_sums);
void dfr_profile_clear(dfr_runtime *rt);

#endif
