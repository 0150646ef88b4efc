/* The kernels' tunables (see tunables.h) and the per-device tuning database. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "ops/tunables.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/hash.h"

#define SEARCH(...) .search = {__VA_ARGS__}, .nsearch = (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int))

/* Local sizes: all 0 (the driver picks) or all positive, within the device's work-group. */
static int local_ok(const int *l, int dims, size_t max_wg, char *why, size_t n)
{
    size_t prod = 1;
    int zeros = 0;
    for (int i = 0; i < dims; i++) {
        zeros += l[i] == 0;
        prod *= (size_t)(l[i] ? l[i] : 1);
    }
    if (zeros && zeros != dims) {
        snprintf(why, n, "local sizes must be all 0 or all positive");
        return 0;
    }
    if (max_wg && prod > max_wg) {
        snprintf(why, n, "a work-group of %zu exceeds the device's %zu", prod, max_wg);
        return 0;
    }
    return 1;
}

static int conv_check(const int *v, size_t max_wg, char *why, size_t n)
{
    return local_ok(v + CONV_LX, 3, max_wg, why, n);
}

static int regional_check(const int *v, size_t max_wg, char *why, size_t n)
{
    return local_ok(v + REG_LX_, 3, max_wg, why, n);
}

static int gemm_check(const int *v, size_t max_wg, char *why, size_t n)
{
    int tm = v[GEMM_TM_], tn = v[GEMM_TN_], tk = v[GEMM_TK_], wm = v[GEMM_WM_], wn = v[GEMM_WN_];
    if (tm % wm || tn % wn) {
        snprintf(why, n, "tm (%d) and tn (%d) must be multiples of wm (%d) and wn (%d)", tm, tn,
                 wm, wn);
        return 0;
    }
    int nwi = (tm / wm) * (tn / wn);
    if ((tm * tk) % nwi || (tn * tk) % nwi) {
        snprintf(why, n, "tm*tk and tn*tk must be multiples of the %d work-items", nwi);
        return 0;
    }
    /* Both staged slices, in bytes, within the 32 KB of local memory every GPU has. */
    if ((tm + tn) * tk * 4 > 32768) {
        snprintf(why, n, "(tm + tn) * tk = %d floats exceed 32 KB of local memory",
                 (tm + tn) * tk);
        return 0;
    }
    size_t reg_wg = (size_t)v[GEMM_LX_] * (size_t)(v[GEMM_LY_] ? v[GEMM_LY_] : 1);
    if (max_wg && ((size_t)nwi > max_wg || reg_wg > max_wg)) {
        snprintf(why, n, "work-groups of %d (lds) or %zu (reg) exceed the device's %zu", nwi,
                 reg_wg, max_wg);
        return 0;
    }
    return 1;
}

static int score_check(const int *v, size_t max_wg, char *why, size_t n)
{
    return local_ok(v + SQ_LX_, 1, max_wg, why, n);
}

/* The table. Defaults per class {CPU, GPU, iGPU}.
 * CPU (PoCL, measured on a 2-core Zen 3 with tests/bench_conv, bench_gemm and dfrcl bench):
 * conv's 8 x 12 register tile fills AVX2's 16 registers, input channels in chunks of 16 between
 * barriers so a work-group (8 rows) reuses the chunk's weights from L1; GEMM's 6 x 16 tile as
 * OpenBLAS' Haswell kernel, work-groups of 1 x 32 tiles so one B panel stays in L2; regional's
 * 8-wide vectors x 4 rows x 8 channels, one work-item per group. These equal the kernels' own
 * #ifndef defaults (tests/test_tunables checks).
 * GPU and iGPU (not measured: no GPU here): tiles chosen to compile without spills for AMD
 * gfx1030/gfx1100 (tools/gpu_report.sh, tests/test_gpu_regs.sh): conv 4 x 4 in 8 x 8 groups
 * sharing a channel block (uniform weight loads); GEMM's local-memory kernel with 64 x 64 tiles
 * of 4 x 4 per work-item; regional one output per work-item (coalesced columns). */
const dfr_tune_kernel dfr_tune_kernels[DFR_NTK] = {
    [DFR_TK_CONV] = {
        .name = "conv", .file = "conv.cl", .env = "DFRCL_CONV_TUNE", .nparams = CONV_NP,
        .npos = 3, .check = conv_check,
        .p = {
            {"tco", "CONV_TCO", 2, 16, 1, NULL, {8, 4, 4}, SEARCH(4, 8, 16)},
            {"tx", "CONV_TX", 1, 32, 0, NULL, {12, 4, 4}, SEARCH(4, 6, 8, 12, 16)},
            {"cb", "CONV_CB", 0, 4096, 0, NULL, {16, 0, 0}, SEARCH(0, 8, 16, 32)},
            {"lx", NULL, 0, 1024, 0, NULL, {1, 8, 8}, SEARCH(1, 4, 8, 16)},
            {"ly", NULL, 0, 1024, 0, NULL, {8, 8, 8}, SEARCH(1, 4, 8, 16)},
            {"lz", NULL, 0, 64, 0, NULL, {1, 1, 1}, SEARCH(1)},
        },
        .test_variants = {"tco=8,tx=7,cb=2,lx=2,ly=4,lz=1", "tco=16,tx=5,cb=11,lx=4,ly=2,lz=2"},
    },
    [DFR_TK_GEMM] = {
        .name = "gemm", .file = "gemm.cl", .env = "DFRCL_GEMM_TUNE", .nparams = GEMM_NP,
        .npos = GEMM_NP, .check = gemm_check,
        .p = {
            {"rm", "GEMM_RM", 1, 32, 0, "reg", {6, 4, 4}, SEARCH(4, 6, 8)},
            {"vw", "GEMM_VW", 2, 16, 1, "reg", {8, 4, 4}, SEARCH(4, 8, 16)},
            {"nv", "GEMM_NV", 1, 8, 0, "reg", {2, 1, 1}, SEARCH(1, 2, 3)},
            {"lx", NULL, 0, 1024, 0, "reg", {1, 0, 0}, SEARCH(0, 1)},
            {"ly", NULL, 0, 1024, 0, "reg", {32, 0, 0}, SEARCH(8, 16, 32, 64)},
            {"kc", NULL, 0, 1 << 20, 0, "reg", {0, 0, 0}, SEARCH(0)},
            {"pk", NULL, 1, 1 << 20, 0, "reg", {32768, 32768, 32768}, SEARCH(32768)},
            {"pkb", "GEMM_PKB", 1, 64, 1, "reg", {16, 16, 16}, SEARCH(16)},
            {"tm", "GEMM_TM", 1, 256, 0, "lds", {64, 64, 64}, SEARCH(32, 64, 128)},
            {"tn", "GEMM_TN", 1, 256, 0, "lds", {64, 64, 64}, SEARCH(32, 64, 128)},
            {"tk", "GEMM_TK", 1, 64, 0, "lds", {16, 16, 16}, SEARCH(8, 16, 32)},
            {"wm", "GEMM_WM", 1, 16, 0, "lds", {4, 4, 4}, SEARCH(2, 4, 8)},
            {"wn", "GEMM_WN", 1, 16, 0, "lds", {4, 4, 4}, SEARCH(2, 4, 8)},
        },
        .test_variants = {"tm=32,tn=32,tk=8,wm=4,wn=4", "tm=64,tn=32,tk=8,wm=8,wn=2",
                          "rm=4,vw=4,nv=3,lx=0,ly=0,pkb=4"},
    },
    [DFR_TK_REGIONAL] = {
        .name = "regional", .file = "regional.cl", .env = "DFRCL_REGIONAL_TUNE",
        .nparams = REG_NP, .npos = 3, .check = regional_check,
        .p = {
            {"vw", "REG_VW", 1, 16, 1, NULL, {8, 1, 1}, SEARCH(1, 4, 8, 16)},
            {"ty", "REG_TY", 1, 16, 0, NULL, {4, 1, 1}, SEARCH(1, 2, 4, 8)},
            {"cpw", "REG_CPW", 1, 256, 0, NULL, {8, 1, 1}, SEARCH(1, 4, 8, 16)},
            {"lx", NULL, 0, 1024, 0, NULL, {1, 0, 0}, SEARCH(0, 1, 16, 64)},
            {"ly", NULL, 0, 1024, 0, NULL, {1, 0, 0}, SEARCH(0, 1, 4)},
            {"lz", NULL, 0, 64, 0, NULL, {1, 0, 0}, SEARCH(0, 1)},
        },
        .test_variants = {"vw=16,ty=3,cpw=5", "vw=4,ty=2,cpw=3,lx=2,ly=2,lz=1",
                          "vw=2,ty=16,cpw=256"},
    },
    [DFR_TK_SCORE] = {
        .name = "score", .file = "score.cl", .env = "DFRCL_SCORE_TUNE", .nparams = SQ_NP,
        .npos = 1, .check = score_check,
        .p = {
            {"vec", "SQ_VEC", 2, 16, 1, NULL, {8, 8, 8}, SEARCH(2, 4, 8, 16)},
            {"lx", NULL, 0, 1024, 0, NULL, {0, 0, 0}, SEARCH(0, 16, 64, 256)},
        },
        .test_variants = {"vec=2,lx=0", "vec=16,lx=16"},
    },
    [DFR_TK_CAE] = {
        .name = "cae", .file = "cae.cl", .env = "DFRCL_CAE_LS", .nparams = CAE_NP, .npos = 1,
        .p = {
            {"ls", "CAE_LS", 1, 1024, 1, NULL, {256, 256, 256}, SEARCH(64, 128, 256)},
        },
        .test_variants = {"ls=64", "ls=1"},
    },
};

const dfr_tune_kernel *dfr_tune_find(const char *name)
{
    for (int i = 0; i < DFR_NTK; i++)
        if (name && !strcmp(dfr_tune_kernels[i].name, name)) return &dfr_tune_kernels[i];
    return NULL;
}

static const char *const class_names[DFR_NCLASS] = {"cpu", "gpu", "igpu"};

const char *dfr_class_name(dfr_dev_class c)
{
    return c >= 0 && c < DFR_NCLASS ? class_names[c] : "?";
}

int dfr_class_from_name(const char *name)
{
    for (int c = 0; c < DFR_NCLASS; c++)
        if (name && !strcmp(name, class_names[c])) return c;
    return -1;
}

dfr_dev_class dfr_class_of(const dfr_runtime *rt)
{
    if (rt->info.is_cpu && !rt->info.is_gpu) return DFR_CLASS_CPU;
    cl_bool unified = CL_FALSE;
    if (rt->device && clGetDeviceInfo(rt->device, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified,
                                      &unified, NULL) != CL_SUCCESS)
        unified = CL_FALSE;
    return rt->info.is_gpu && unified ? DFR_CLASS_IGPU : DFR_CLASS_GPU;
}

void dfr_tune_class_defaults(const dfr_tune_kernel *k, dfr_dev_class c, int *v)
{
    for (int i = 0; i < k->nparams; i++) v[i] = k->p[i].def[c];
}

void dfr_tune_device_defaults(const dfr_runtime *rt, const dfr_tune_kernel *k, int *v)
{
    dfr_dev_class c = dfr_class_of(rt);
    dfr_tune_class_defaults(k, c, v);
    if (c != DFR_CLASS_CPU || !rt->device) return;
    /* PoCL reports the SIMD width: 8 floats with AVX2, 16 with AVX-512 (whose 32 registers
     * hold a twice wider channel tile; not measured), 4 with SSE or NEON. */
    cl_uint nat = 0, pref = 0;
    clGetDeviceInfo(rt->device, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, sizeof nat, &nat, NULL);
    clGetDeviceInfo(rt->device, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof pref, &pref, NULL);
    if (k == &dfr_tune_kernels[DFR_TK_CONV] && nat >= 16) v[CONV_TCO] = 16;
    if (k == &dfr_tune_kernels[DFR_TK_GEMM]) v[GEMM_VW_] = pref >= 16 ? 16 : pref >= 8 ? 8 : 4;
}

int dfr_tune_legal(const dfr_tune_kernel *k, const int *v, size_t max_wg, char *why, size_t n)
{
    for (int i = 0; i < k->nparams; i++) {
        const dfr_tune_param *p = &k->p[i];
        int x = v[i];
        if (x < p->lo || x > p->hi || (p->pow2 && x && (x & (x - 1)))) {
            snprintf(why, n, "%s=%d is not %s %d..%d", p->key, x,
                     p->pow2 ? "a power of two in" : "in", p->lo, p->hi);
            return 0;
        }
    }
    return !k->check || k->check(v, max_wg, why, n);
}

static int param_index(const dfr_tune_kernel *k, const char *key)
{
    for (int i = 0; i < k->nparams; i++)
        if (!strcmp(k->p[i].key, key)) return i;
    return -1;
}

int dfr_tune_parse(const dfr_tune_kernel *k, const char *s, int *v, char *why, size_t n)
{
    int t[DFR_TUNE_MAX_PARAMS];
    memcpy(t, v, sizeof(int) * (size_t)k->nparams);
    char buf[512];
    if (strlen(s) >= sizeof buf) {
        snprintf(why, n, "too long");
        return 0;
    }
    snprintf(buf, sizeof buf, "%s", s);
    int keyed = strchr(buf, '=') != NULL, count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save), count++) {
        while (*tok == ' ') tok++;
        char *val = tok;
        int i = count;
        if (keyed) {
            char *eq = strchr(tok, '=');
            if (!eq) {
                snprintf(why, n, "'%s' is not key=value", tok);
                return 0;
            }
            *eq = 0;
            val = eq + 1;
            i = param_index(k, tok);
            if (i < 0) {
                snprintf(why, n, "unknown tunable '%s'", tok);
                return 0;
            }
        } else if (i >= k->nparams) {
            snprintf(why, n, "more than %d values", k->nparams);
            return 0;
        }
        char *end = NULL;
        errno = 0;
        long x = strtol(val, &end, 10);
        if (end == val || *end || errno || x < -1000000 || x > 1000000) {
            snprintf(why, n, "'%s' is not an integer", val);
            return 0;
        }
        t[i] = (int)x;
    }
    if (!keyed && count != k->npos && count != k->nparams) {
        if (k->npos == k->nparams) snprintf(why, n, "expected %d values", k->nparams);
        else snprintf(why, n, "expected %d or %d values", k->npos, k->nparams);
        return 0;
    }
    if (count == 0) {
        snprintf(why, n, "empty");
        return 0;
    }
    memcpy(v, t, sizeof(int) * (size_t)k->nparams);
    return 1;
}

void dfr_tune_format(const dfr_tune_kernel *k, const int *v, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < k->nparams && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s=%d", i ? "," : "", k->p[i].key, v[i]);
}

int dfr_tune_test_variants(const dfr_tune_kernel *k, char (*out)[DFR_TUNE_STR], int cap)
{
    int n = 0;
    for (int c = 0; c < DFR_NCLASS && n < cap; c++) {
        int v[DFR_TUNE_MAX_PARAMS], dup = 0;
        dfr_tune_class_defaults(k, (dfr_dev_class)c, v);
        dfr_tune_format(k, v, out[n], DFR_TUNE_STR);
        for (int d = 0; d < n; d++) dup |= !strcmp(out[d], out[n]);
        n += !dup;
    }
    for (int i = 0; i < (int)(sizeof k->test_variants / sizeof k->test_variants[0]) &&
                    k->test_variants[i] && n < cap; i++)
        snprintf(out[n++], DFR_TUNE_STR, "%s", k->test_variants[i]);
    return n;
}

void dfr_tune_defines(const dfr_tune_kernel *k, const int *v, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < k->nparams && used < n; i++)
        if (k->p[i].define)
            used += (size_t)snprintf(buf + used, n - used, "%s-D%s=%d", used ? " " : "",
                                     k->p[i].define, v[i]);
}

/* ---- the database, read once per runtime ---- */

/* rt->tune: made at first use, freed with the runtime. */
struct dfr_tune_state {
    int loaded, off, set_off;
    dfr_tune_db db;
};

static void tune_state_free(dfr_runtime *rt)
{
    free(rt->tune);
    rt->tune = NULL;
}

static struct dfr_tune_state *tune_state(dfr_runtime *rt)
{
    if (!rt->tune && !dfr_runtime_add_release_hook(rt, tune_state_free))
        rt->tune = calloc(1, sizeof *rt->tune);
    return rt->tune;
}

void dfr_tune_use_db(dfr_runtime *rt, int on)
{
    struct dfr_tune_state *t = tune_state(rt);
    if (!t) return;
    t->off = !on;
    t->set_off = 1;
}

void dfr_tune_db_reload(dfr_runtime *rt)
{
    if (rt->tune) rt->tune->loaded = 0;
}

/* rt's database entry for kernel `which` into e (have = 0 when none or disabled). */
static void db_lookup(dfr_runtime *rt, dfr_tk which, dfr_tune_entry *e)
{
    memset(e, 0, sizeof *e);
    if (!rt->cache_dir[0]) return;
    struct dfr_tune_state *t = tune_state(rt);
    if (!t) return; /* out of memory: the defaults */
    if (!t->set_off) {
        const char *env = dfr_rt_getenv(rt, "DFRCL_TUNED");
        t->off = env && !strcmp(env, "0");
        t->set_off = 1;
    }
    if (!t->off && !t->loaded) {
        dfr_tune_db_read(rt, &t->db, NULL);
        t->loaded = 1;
    }
    if (!t->off) *e = t->db.e[which];
}

int dfr_tune_resolve(dfr_runtime *rt, dfr_tk which, int *v, dfr_tune_source *from)
{
    const dfr_tune_kernel *k = &dfr_tune_kernels[which];
    dfr_tune_source src = DFR_TUNE_FROM_DEFAULT;
    dfr_tune_device_defaults(rt, k, v);
    dfr_tune_entry e;
    db_lookup(rt, which, &e);
    char why[160];
    if (e.have) {
        /* Legal when read; the device's work-group limit is checked here too. */
        if (dfr_tune_legal(k, e.v, rt->info.max_work_group_size, why, sizeof why)) {
            memcpy(v, e.v, sizeof(int) * (size_t)k->nparams);
            src = DFR_TUNE_FROM_DB;
        }
    }
    const char *env = dfr_rt_getenv(rt, k->env); /* as it was when rt opened */
    if (env && *env) {
        int t[DFR_TUNE_MAX_PARAMS];
        memcpy(t, v, sizeof t);
        if (!dfr_tune_parse(k, env, t, why, sizeof why) ||
            !dfr_tune_legal(k, t, rt->info.max_work_group_size, why, sizeof why)) {
            char keys[128];
            size_t used = 0;
            for (int i = 0; i < k->nparams; i++)
                used += (size_t)snprintf(keys + used, sizeof keys - used, "%s%s", i ? "," : "",
                                         k->p[i].key);
            return dfr_error(DFRCL_ERR_INVALID_ARG,
                             "%s=\"%s\": %s tunables rejected: %s (give \"%s\" values in order, "
                             "or key=value pairs; legal values: dfrcl tune --print-table)",
                             k->env, env, k->name, why, keys);
        }
        memcpy(v, t, sizeof(int) * (size_t)k->nparams);
        src = DFR_TUNE_FROM_ENV;
    }
    if (from) *from = src;
    return DFRCL_OK;
}

int dfr_tune_db_path(const dfr_runtime *rt, char *path, size_t n)
{
    path[0] = 0;
    if (!rt->cache_dir[0]) return 0;
    dfr_sha256 h;
    char hex[65];
    dfr_sha256_init(&h);
    dfr_sha256_update_str(&h, rt->info.name);
    dfr_sha256_update_str(&h, rt->info.driver_version);
    dfr_sha256_update_str(&h, rt->info.platform_version);
    dfr_sha256_hex(&h, hex);
    hex[16] = 0;
    snprintf(path, n, "%s/tune-%s.json", rt->cache_dir, hex);
    return 1;
}

static void db_warn(const dfr_runtime *rt, int *warned, const char *path, const char *what)
{
    dfr_rt_log(rt, 0, "warning: tuning database %s %s; using the built-in defaults there (run "
               "'dfrcl tune' to remake it)", path, what);
    if (warned) (*warned)++;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

/* One kernel's entry from JSON; 0 (with why) when incomplete or illegal. */
static int entry_from_json(const dfr_tune_kernel *k, const cJSON *j, size_t max_wg,
                           dfr_tune_entry *e, char *why, size_t n)
{
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(j, "values");
    if (!cJSON_IsObject(vals)) {
        snprintf(why, n, "has no values");
        return 0;
    }
    for (int i = 0; i < k->nparams; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(vals, k->p[i].key);
        if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int)x->valuedouble) {
            snprintf(why, n, "lacks an integer '%s'", k->p[i].key);
            return 0;
        }
        e->v[i] = (int)x->valuedouble;
    }
    if (!dfr_tune_legal(k, e->v, max_wg, why, n)) return 0;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "default_ms");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tuned_ms");
    e->default_ms = cJSON_IsNumber(d) ? d->valuedouble : 0;
    e->tuned_ms = cJSON_IsNumber(t) ? t->valuedouble : 0;
    const char *shape = json_str(j, "shape");
    snprintf(e->shape, sizeof e->shape, "%s", shape ? shape : "");
    e->have = 1;
    return 1;
}

int dfr_tune_db_read(const dfr_runtime *rt, dfr_tune_db *db, int *warned)
{
    memset(db, 0, sizeof *db);
    char path[4200];
    if (!dfr_tune_db_path(rt, path, sizeof path)) return DFRCL_OK;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) return DFRCL_OK;
    unsigned char *data = NULL;
    size_t len = 0;
    if (dfr_read_file(path, &data, &len) != DFRCL_OK) {
        char what[512];
        snprintf(what, sizeof what, "cannot be read (%s)", dfrcl_last_error());
        db_warn(rt, warned, path, what);
        return DFRCL_OK;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)data, len);
    free(data);
    const char *fmt = root ? json_str(root, "format") : NULL;
    if (!root || !fmt || strcmp(fmt, "dfrcl-tune 1") != 0) {
        db_warn(rt, warned, path, "is not a dfrcl tuning database (corrupt?)");
        cJSON_Delete(root);
        return DFRCL_OK;
    }
    const char *dev = json_str(root, "device"), *drv = json_str(root, "driver_version");
    const char *plat = json_str(root, "platform_version");
    if (!dev || !drv || !plat || strcmp(dev, rt->info.name) || strcmp(drv, rt->info.driver_version) ||
        strcmp(plat, rt->info.platform_version)) {
        char what[600];
        snprintf(what, sizeof what, "belongs to another device or driver (%s, %s)",
                 dev ? dev : "?", drv ? drv : "?");
        db_warn(rt, warned, path, what);
        cJSON_Delete(root);
        return DFRCL_OK;
    }
    const cJSON *kernels = cJSON_GetObjectItemCaseSensitive(root, "kernels");
    for (int i = 0; i < DFR_NTK && cJSON_IsObject(kernels); i++) {
        const dfr_tune_kernel *k = &dfr_tune_kernels[i];
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(kernels, k->name);
        if (!j) continue;
        char why[160], what[256];
        if (!entry_from_json(k, j, rt->info.max_work_group_size, &db->e[i], why, sizeof why)) {
            memset(&db->e[i], 0, sizeof db->e[i]);
            snprintf(what, sizeof what, "has an unusable entry for %s (%s)", k->name, why);
            db_warn(rt, warned, path, what);
        }
    }
    cJSON_Delete(root);
    return DFRCL_OK;
}

int dfr_tune_db_write(const dfr_runtime *rt, const dfr_tune_db *db)
{
    char path[4200];
    if (!dfr_tune_db_path(rt, path, sizeof path))
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "no cache folder to keep the tuning database in (set DFRCL_CACHE_DIR)");
    cJSON *root = cJSON_CreateObject(), *kernels = cJSON_CreateObject();
    int ok = root && kernels;
    if (ok) {
        cJSON_AddStringToObject(root, "format", "dfrcl-tune 1");
        cJSON_AddStringToObject(root, "device", rt->info.name);
        cJSON_AddStringToObject(root, "driver_version", rt->info.driver_version);
        cJSON_AddStringToObject(root, "platform_version", rt->info.platform_version);
        cJSON_AddStringToObject(root, "dfrcl_version", dfrcl_version());
        cJSON_AddItemToObject(root, "kernels", kernels);
    } else cJSON_Delete(kernels);
    for (int i = 0; i < DFR_NTK && ok; i++) {
        const dfr_tune_entry *e = &db->e[i];
        if (!e->have) continue;
        const dfr_tune_kernel *k = &dfr_tune_kernels[i];
        cJSON *j = cJSON_AddObjectToObject(kernels, k->name);
        cJSON *vals = j ? cJSON_AddObjectToObject(j, "values") : NULL;
        ok = vals != NULL;
        for (int p = 0; p < k->nparams && ok; p++)
            ok = cJSON_AddNumberToObject(vals, k->p[p].key, e->v[p]) != NULL;
        if (ok && e->default_ms > 0) cJSON_AddNumberToObject(j, "default_ms", e->default_ms);
        if (ok && e->tuned_ms > 0) cJSON_AddNumberToObject(j, "tuned_ms", e->tuned_ms);
        if (ok && e->shape[0]) cJSON_AddStringToObject(j, "shape", e->shape);
    }
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return dfr_error(DFRCL_ERR_HOST_MEMORY, "tuning database: out of memory");
    int rc = dfr_mkdir_p(rt->cache_dir);
    if (!rc) rc = dfr_write_file_atomic(path, text, strlen(text));
    free(text);
    return rc;
}
