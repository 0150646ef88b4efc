/* The tunables of every kernel, in one table per kernel: names, legal values, constraints, the
 * built-in defaults per device class and the tuner's search space. The host defaults, the -D
 * compile options, `dfrcl tune`'s search, `dfrcl tune --print-variants` (the GPU register
 * report) and the tests' variants all come from here.
 *
 * A kernel's values for a device: the class defaults, then the device's tuning database (written
 * by `dfrcl tune` into the cache folder, keyed by device name, driver and platform version), then
 * the kernel's environment variable (DFRCL_CONV_TUNE, ...), which wins. A bad environment value
 * is an error; a bad or foreign database is a warning and the defaults. */
#ifndef DFRCL_OPS_TUNABLES_H
#define DFRCL_OPS_TUNABLES_H

#include <stddef.h>

#include "cl/runtime.h"

typedef enum { DFR_CLASS_CPU, DFR_CLASS_GPU, DFR_CLASS_IGPU, DFR_NCLASS } dfr_dev_class;

#define DFR_TUNE_MAX_PARAMS 16
#define DFR_TUNE_MAX_SEARCH 8

typedef struct dfr_tune_param {
    const char *key;    /* "tco": in environment strings, the database and reports */
    const char *define; /* "CONV_TCO": the -D name; NULL for host-only values (work-groups) */
    int lo, hi;         /* legal range */
    int pow2;           /* 1: legal values are powers of two (0 too, when lo is 0) */
    const char *only;   /* NULL, or the variant this value matters for ("reg", "lds") */
    int def[DFR_NCLASS];
    int search[DFR_TUNE_MAX_SEARCH]; /* the tuner's candidates */
    int nsearch;
} dfr_tune_param;

typedef struct dfr_tune_kernel {
    const char *name; /* "conv": the database key */
    const char *file; /* "conv.cl" */
    const char *env;  /* "DFRCL_CONV_TUNE" */
    int nparams;
    int npos; /* positional environment strings give the first npos values, or all */
    dfr_tune_param p[DFR_TUNE_MAX_PARAMS];
    /* Constraints across values; writes why into why[n] and returns 0 when violated. max_wg is
     * the device's largest work-group (0: not checked). */
    int (*check)(const int *v, size_t max_wg, char *why, size_t n);
    /* Legal variants besides the class defaults that the kernel's tests run (key=value). */
    const char *test_variants[6];
} dfr_tune_kernel;

/* Value indices, in table order. */
enum { CONV_TCO, CONV_TX, CONV_CB, CONV_LX, CONV_LY, CONV_LZ, CONV_NP };
enum {
    GEMM_RM_, GEMM_VW_, GEMM_NV_, GEMM_LX_, GEMM_LY_, GEMM_KC_, GEMM_PK_, GEMM_PKB_,
    GEMM_TM_, GEMM_TN_, GEMM_TK_, GEMM_WM_, GEMM_WN_, GEMM_NP
};
enum { REG_VW_, REG_TY_, REG_CPW_, REG_LX_, REG_LY_, REG_LZ_, REG_NP };
enum { SQ_VEC_, SQ_LX_, SQ_NP };
enum { CAE_LS_, CAE_NP };

typedef enum { DFR_TK_CONV, DFR_TK_GEMM, DFR_TK_REGIONAL, DFR_TK_SCORE, DFR_TK_CAE, DFR_NTK } dfr_tk;

extern const dfr_tune_kernel dfr_tune_kernels[DFR_NTK];
/* NULL when unknown. */
const dfr_tune_kernel *dfr_tune_find(const char *name);

const char *dfr_class_name(dfr_dev_class c); /* "cpu", "gpu", "igpu" */
/* -1 when unknown. */
int dfr_class_from_name(const char *name);
/* CPU (PoCL & co), GPU (discrete; also accelerators), iGPU (a GPU sharing host memory). */
dfr_dev_class dfr_class_of(const dfr_runtime *rt);

/* The class's built-in defaults into v[k->nparams]. */
void dfr_tune_class_defaults(const dfr_tune_kernel *k, dfr_dev_class c, int *v);
/* The defaults for this device: its class's, adapted to a CPU's SIMD width (AVX-512: wider
 * channel tiles and vectors; 4-wide SIMD: narrower vectors). */
void dfr_tune_device_defaults(const dfr_runtime *rt, const dfr_tune_kernel *k, int *v);

/* Legal range of each value and the constraints. Returns 1 when legal, else 0 with why. */
int dfr_tune_legal(const dfr_tune_kernel *k, const int *v, size_t max_wg, char *why, size_t n);

/* Parses "a,b,c" (the first npos values, or all, in table order) or "key=value,..." over v.
 * Returns 1 when read (v updated), 0 with why when malformed (v unchanged). */
int dfr_tune_parse(const dfr_tune_kernel *k, const char *s, int *v, char *why, size_t n);
/* "tco=4,tx=4,cb=0,lx=8,ly=8,lz=1" */
void dfr_tune_format(const dfr_tune_kernel *k, const int *v, char *buf, size_t n);
/* The variants the tests run: each device class's defaults (once each, in class order), then the
 * table's test variants, as "key=value,..." strings into out[0..cap-1]. Returns the count. */
#define DFR_TUNE_STR 256
int dfr_tune_test_variants(const dfr_tune_kernel *k, char (*out)[DFR_TUNE_STR], int cap);
/* "-DCONV_TCO=4 -DCONV_TX=4 -DCONV_CB=0" (host-only values left out) */
void dfr_tune_defines(const dfr_tune_kernel *k, const int *v, char *buf, size_t n);

/* Where a value set came from. */
typedef enum { DFR_TUNE_FROM_DEFAULT, DFR_TUNE_FROM_DB, DFR_TUNE_FROM_ENV } dfr_tune_source;

/* The values for kernel `which` on rt: device defaults, then the tuning database (unless
 * disabled), then the environment. DFRCL_ERR_INVALID_ARG naming the variable when the
 * environment's value is malformed or illegal on this device. */
int dfr_tune_resolve(dfr_runtime *rt, dfr_tk which, int *v, dfr_tune_source *from);

/* ---- the per-device database ---- */

/* One kernel's entry: the chosen values and, for reports, the timings that chose them. */
typedef struct dfr_tune_entry {
    int have;
    int v[DFR_TUNE_MAX_PARAMS];
    double default_ms, tuned_ms; /* at the shapes of `shape` (0: not measured) */
    char shape[64];
} dfr_tune_entry;

typedef struct dfr_tune_db {
    dfr_tune_entry e[DFR_NTK];
} dfr_tune_db;

/* <cache folder>/tune-<hash of device name, driver and platform versions>.json; "" (and 0)
 * when the runtime has no cache folder. */
int dfr_tune_db_path(const dfr_runtime *rt, char *path, size_t n);
/* Reads rt's database into db (empty when there is none). A corrupt or foreign file, or an
 * illegal entry: a warning on stderr, that part left out, and DFRCL_OK; *warned (may be NULL)
 * counts the warnings. */
int dfr_tune_db_read(const dfr_runtime *rt, dfr_tune_db *db, int *warned);
/* Writes db atomically (temp file + rename) for rt's device. */
int dfr_tune_db_write(const dfr_runtime *rt, const dfr_tune_db *db);
/* Whether dfr_tune_resolve uses the database on rt (default 1, or 0 when DFRCL_TUNED=0 at the
 * runtime's open); the database is read once per runtime (kept in rt->tune), at first use:
 * dfr_tune_db_reload forgets it. */
void dfr_tune_use_db(dfr_runtime *rt, int on);
void dfr_tune_db_reload(dfr_runtime *rt);

#endif
