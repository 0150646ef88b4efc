/* dfr_gemm: argument checks, the choice of implementation, and the launches.
 *
 * Two implementations:
 * - own kernels (kernels/gemm.cl): gemm_reg, a register-tiled kernel for CPUs (PoCL), and
 *   gemm_lds, a local-memory tiled kernel for GPUs. Tunables come from src/ops/tunables.c (per
 *   device class, the tuning database of `dfrcl tune`) and can be overridden with
 *   DFRCL_GEMM_TUNE="rm=6,vw=8,nv=2,lx=0,ly=0,kc=0,pk=32768,pkb=16,tm=64,tn=64,tk=16,wm=4,wn=4"
 *   (any subset).
 * - CLBlast, on the runtime's queue. On CPUs its Xgemm parameters are overridden with ones
 *   measured faster on PoCL (its defaults are slower there); DFRCL_CLBLAST_DEFAULTS=1
 *   keeps its own.
 *
 * AUTO picks the own kernel on CPUs: on the 2-core PoCL machine it is several times faster than
 * CLBlast, even with those parameters (tests/bench_gemm.c). On GPUs it picks CLBlast: its
 * database holds tuned parameters for many GPU families, while gemm_lds is one generic, untuned
 * tile that has never run on a GPU (none here; it is tested on PoCL and compiled for amdgcn,
 * nvptx and SPIR-V); DFRCL_GEMM=own switches once a GPU shows it faster.
 *
 * gemm_reg first packs op(A) and op(B) into zero-padded panels (gemm_pack), whatever their
 * transposes, strides and offsets: one pass over each operand, which for DFR's shapes costs a
 * few percent of the product and makes the product several times faster (its reads become
 * sequential streams; reading B in place, 16 KB apart along k, thrashes cache sets and TLB). */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl/clinc.h"
#include <clblast_c.h>

#include "ops/gemm.h"
#include "ops/tunables.h"
#include "util/error.h"

/* ---- per-runtime state ---- */

/* What dfr_gemm keeps for one runtime (rt->gemm), made at first use, freed with the runtime. */
struct dfr_gemm_state {
    dfr_gemm_backend b; /* set by dfr_gemm_set_backend; AUTO: DFRCL_GEMM or the device's */
    int warned;         /* a bad DFRCL_GEMM was reported */
    /* The packed operands of gemm_reg, kept between calls: allocating and first-touching
     * ~100 MB for every product costs more than the packing itself. Reuse is safe because the
     * queue is in order: the next product's packing runs after the last one's kernel. */
    cl_mem buf[2];
    size_t bytes[2];
};

void dfr_gemm_release(dfr_runtime *rt)
{
    if (!rt || !rt->gemm) return;
    for (int i = 0; i < 2; i++) {
        dfr_buffer_release(&rt->gemm->buf[i]);
        rt->gemm->bytes[i] = 0;
    }
}

/* The release hook: all of it, when rt closes. */
static void state_free(dfr_runtime *rt)
{
    dfr_gemm_release(rt);
    free(rt->gemm);
    rt->gemm = NULL;
}

static int state_get(dfr_runtime *rt, struct dfr_gemm_state **out)
{
    if (!rt->gemm) {
        int rc = dfr_runtime_add_release_hook(rt, state_free);
        if (rc) return rc;
        rt->gemm = calloc(1, sizeof *rt->gemm);
        if (!rt->gemm) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    *out = rt->gemm;
    return DFRCL_OK;
}

/* ---- backend choice ---- */

void dfr_gemm_set_backend(dfr_runtime *rt, dfr_gemm_backend b)
{
    struct dfr_gemm_state *st = NULL;
    if (rt && !state_get(rt, &st)) st->b = b;
}

const char *dfr_gemm_backend_name(dfr_gemm_backend b)
{
    switch (b) {
    case DFR_GEMM_AUTO: return "auto";
    case DFR_GEMM_OWN: return "own";
    case DFR_GEMM_CLBLAST: return "clblast";
    case DFR_GEMM_OWN_REG: return "own-reg";
    case DFR_GEMM_OWN_LDS: return "own-lds";
    }
    return "?";
}

static dfr_gemm_backend own_for_device(const dfr_runtime *rt)
{
    return rt->info.is_cpu ? DFR_GEMM_OWN_REG : DFR_GEMM_OWN_LDS;
}

dfr_gemm_backend dfr_gemm_backend_in_use(dfr_runtime *rt)
{
    dfr_gemm_backend b = rt->gemm ? rt->gemm->b : DFR_GEMM_AUTO;
    const char *env = dfr_rt_getenv(rt, "DFRCL_GEMM"); /* as it was when rt opened */
    if (b == DFR_GEMM_AUTO && env && *env) {
        if (strcmp(env, "own") == 0) b = DFR_GEMM_OWN;
        else if (strcmp(env, "clblast") == 0) b = DFR_GEMM_CLBLAST;
        else if (strcmp(env, "own-reg") == 0) b = DFR_GEMM_OWN_REG;
        else if (strcmp(env, "own-lds") == 0) b = DFR_GEMM_OWN_LDS;
        else if (rt->gemm && !rt->gemm->warned++)
            dfr_rt_log(rt, 1, "DFRCL_GEMM=%s is not one of own, clblast, own-reg, own-lds; "
                              "ignoring it", env);
    }
    if (b == DFR_GEMM_AUTO) b = rt->info.is_cpu ? DFR_GEMM_OWN : DFR_GEMM_CLBLAST;
    if (b == DFR_GEMM_OWN) b = own_for_device(rt);
    return b;
}

/* ---- tunables ---- */

typedef struct gemm_tune {
    int rm, vw, nv, lx, ly;    /* gemm_reg; lx, ly = 0: the driver picks the work-group */
    int kc;                    /* gemm_reg: deepest pass (0: as deep as the packing budget) */
    int pk;                    /* gemm_reg: packing budget, in Ki floats of packed A + B */
    int pkb;                   /* gemm_pack: depths per work-item */
    int tm, tn, tk, wm, wn;    /* gemm_lds */
} gemm_tune;

/* The device's values (tunables.c: class defaults, tuning database, DFRCL_GEMM_TUNE
 * "key=value,..."), checked there, and the -D options. */
static int tune_get(dfr_runtime *rt, gemm_tune *t, char *opts, size_t n)
{
    int v[DFR_TUNE_MAX_PARAMS];
    int rc = dfr_tune_resolve(rt, DFR_TK_GEMM, v, NULL);
    if (rc) return rc;
    *t = (gemm_tune){.rm = v[GEMM_RM_], .vw = v[GEMM_VW_], .nv = v[GEMM_NV_], .lx = v[GEMM_LX_],
                     .ly = v[GEMM_LY_], .kc = v[GEMM_KC_], .pk = v[GEMM_PK_], .pkb = v[GEMM_PKB_],
                     .tm = v[GEMM_TM_], .tn = v[GEMM_TN_], .tk = v[GEMM_TK_], .wm = v[GEMM_WM_],
                     .wn = v[GEMM_WN_]};
    /* fma() where the device has it in hardware; elsewhere it is a slow library call. */
    cl_device_fp_config fp = 0;
    clGetDeviceInfo(rt->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    char defs[200];
    dfr_tune_defines(&dfr_tune_kernels[DFR_TK_GEMM], v, defs, sizeof defs);
    snprintf(opts, n, "%s -DGEMM_FMA=%d", defs, (fp & CL_FP_FMA) ? 1 : 0);
    return DFRCL_OK;
}

/* ---- argument checks ---- */

static int mul_ok(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

static int add_ok(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

/* One past the last element a batch of rows x cols matrices touches. */
static int extent(size_t off, size_t rows, size_t cols, size_t ld, size_t stride, int batch,
                  size_t *end)
{
    size_t a, b;
    return mul_ok((size_t)(batch - 1), stride, &a) && mul_ok(rows - 1, ld, &b) &&
           add_ok(off, a, end) && add_ok(*end, b, end) && add_ok(*end, cols, end);
}

static int check_operand(const char *name, cl_mem buf, size_t off, size_t rows, size_t cols,
                         size_t ld, size_t stride, int batch, int half, size_t *end)
{
    const size_t eb = half ? 2 : sizeof(float); /* element bytes */
    if (!buf) return dfr_error(DFRCL_ERR_INVALID_ARG, "gemm: buffer %s is NULL", name);
    if (ld < cols || ld < 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "gemm: ld%s = %zu is less than the %zu columns %s is stored with", name,
                         ld, cols, name);
    size_t bytes = 0;
    cl_int err = clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof bytes, &bytes, NULL);
    if (err != CL_SUCCESS) return dfr_cl_error(err, "gemm: querying the size of a buffer");
    if (!extent(off, rows, cols, ld, stride, batch, end) || *end > bytes / eb)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "gemm: %s (%d x [%zu x %zu], ld %zu, offset %zu, stride %zu) reaches "
                         "past its buffer of %zu %s elements",
                         name, batch, rows, cols, ld, off, stride, bytes / eb,
                         half ? "fp16" : "fp32");
    return DFRCL_OK;
}

static int check_desc(const dfr_gemm_desc *g)
{
    if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 1 || g->m > INT_MAX / 2 ||
        g->n > INT_MAX / 2 || g->k > INT_MAX / 2)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "gemm: bad shape m=%d n=%d k=%d batch=%d", g->m,
                         g->n, g->k, g->batch);
    if (g->m == 0 || g->n == 0) return DFRCL_OK;
    size_t c_end, a_end = 0, b_end = 0;
    int rc = check_operand("C", g->c, g->c_offset, (size_t)g->m, (size_t)g->n, g->ldc,
                           g->c_stride, g->batch, g->half_c, &c_end);
    if (rc || g->k == 0) return rc;
    size_t m = (size_t)g->m, n = (size_t)g->n, k = (size_t)g->k;
    rc = check_operand("A", g->a, g->a_offset, g->trans_a ? k : m, g->trans_a ? m : k, g->lda,
                       g->a_stride, g->batch, g->half_a, &a_end);
    if (!rc)
        rc = check_operand("B", g->b, g->b_offset, g->trans_b ? n : k, g->trans_b ? k : n,
                           g->ldb, g->b_stride, g->batch, g->half_b, &b_end);
    if (rc) return rc;
    /* Byte ranges (first to one past the last) of C against A and B in the same buffer. */
    const size_t ea = g->half_a ? 2 : 4, eb = g->half_b ? 2 : 4, ec = g->half_c ? 2 : 4;
    const int a_hit = g->a == g->c && g->c_offset * ec < a_end * ea && g->a_offset * ea < c_end * ec;
    const int b_hit = g->b == g->c && g->c_offset * ec < b_end * eb && g->b_offset * eb < c_end * ec;
    if (a_hit || b_hit)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "gemm: C shares elements with %s in one buffer; the result would "
                         "depend on the order of the work",
                         a_hit ? "A" : "B");
    return DFRCL_OK;
}

/* ---- own kernels ---- */

/* An operand as the kernels see it: element (r, c) of item t at off + t*sb + r*sr + c*sc. */
typedef struct gemm_mat {
    cl_mem buf;
    cl_ulong off, sr, sc, sb;
} gemm_mat;

/* The problem in strided form: C (m x n) = alpha * sum over nsum items of A (m x k) B (k x n)
 * + beta C, for `items` independent items. */
typedef struct gemm_prob {
    int m, n, k, nsum, items;
    float alpha, beta;
    gemm_mat a, b, c;
    int ha, hb, hc; /* operand stored as fp16 */
} gemm_prob;

static int launch_lds(dfr_runtime *rt, const gemm_prob *p, const gemm_tune *t, const char *opts,
                      const char *label)
{
    cl_kernel kern;
    int rc = dfr_kernel_get(rt, "gemm.cl", opts, "gemm_lds", &kern);
    if (rc) return rc;
    size_t rx = (size_t)(t->tn / t->wn), ry = (size_t)(t->tm / t->wm), wg = 0;
    cl_int err = clGetKernelWorkGroupInfo(kern, rt->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg,
                                          &wg, NULL);
    if (err == CL_SUCCESS && wg < rx * ry)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "gemm_lds with %s needs work-groups of %zu but %s allows %zu", opts,
                         rx * ry, rt->info.name, wg);
    rc = dfr_set_args(kern, "gemm_lds", DFR_ARG(p->m), DFR_ARG(p->n), DFR_ARG(p->k),
                      DFR_ARG(p->nsum), DFR_ARG(p->alpha), DFR_ARG(p->beta), DFR_ARG(p->a.buf),
                      DFR_ARG(p->a.off), DFR_ARG(p->a.sr), DFR_ARG(p->a.sc), DFR_ARG(p->a.sb),
                      DFR_ARG(p->b.buf), DFR_ARG(p->b.off), DFR_ARG(p->b.sr), DFR_ARG(p->b.sc),
                      DFR_ARG(p->b.sb), DFR_ARG(p->c.buf), DFR_ARG(p->c.off), DFR_ARG(p->c.sr),
                      DFR_ARG(p->c.sc), DFR_ARG(p->c.sb), DFR_ARGS_END);
    if (rc) return rc;
    size_t g[3] = {(size_t)((p->n + t->tn - 1) / t->tn) * rx,
                   (size_t)((p->m + t->tm - 1) / t->tm) * ry, (size_t)p->items};
    size_t l[3] = {rx, ry, 1};
    return dfr_enqueue(rt, kern, 3, g, l, label);
}

/* Build options of a product's kernels: packing A, packing B (their source's storage), and the
 * product (C's storage; gemm_lds also A's and B's). */
typedef struct gemm_opts {
    char pa[320], pb[320], mul[320];
} gemm_opts;

/* ---- packing scratch of gemm_reg ---- */

/* Buffer `which` (0: A, 1: B) of rt's scratch, at least `bytes` long. */
static int scratch_get(dfr_runtime *rt, int which, size_t bytes, cl_mem *out)
{
    struct dfr_gemm_state *st = NULL;
    int rc = state_get(rt, &st);
    if (rc) return rc;
    if (st->bytes[which] < bytes) {
        dfr_buffer_release(&st->buf[which]);
        st->bytes[which] = 0;
        rc = dfr_buffer_new(rt, bytes, CL_MEM_READ_WRITE, "gemm: packed operand",
                            &st->buf[which]);
        if (!rc) st->bytes[which] = bytes;
    }
    *out = st->buf[which];
    return rc;
}

/* Packs depths [kbeg, kbeg + klen) of operand X (x_len x k per item; x stride sx, k stride sk)
 * for `items` items into panels of width w (see gemm_pack in gemm.cl). */
static int launch_pack(dfr_runtime *rt, const gemm_tune *t, const char *opts, const char *label,
                       int x_len, int w,
                       int k, int nsum, cl_long kbeg, int klen, cl_ulong s_off, cl_ulong sx,
                       cl_ulong sk, cl_ulong sb, cl_mem src, int items, cl_mem dst)
{
    cl_kernel kern;
    int rc = dfr_kernel_get(rt, "gemm.cl", opts, "gemm_pack", &kern);
    if (rc) return rc;
    int panels = (x_len + w - 1) / w, x_fast = sx == 1;
    cl_ulong d_sb = (cl_ulong)panels * (cl_ulong)w * (cl_ulong)klen;
    rc = dfr_set_args(kern, "gemm_pack", DFR_ARG(x_len), DFR_ARG(w), DFR_ARG(k), DFR_ARG(nsum),
                      DFR_ARG(kbeg), DFR_ARG(klen), DFR_ARG(x_fast), DFR_ARG(src), DFR_ARG(s_off),
                      DFR_ARG(sx), DFR_ARG(sk), DFR_ARG(sb), DFR_ARG(dst), DFR_ARG(d_sb),
                      DFR_ARGS_END);
    if (rc) return rc;
    /* A fixed work-group: PoCL compiles a kernel again for every new work-group size. */
    size_t g[3] = {(size_t)panels, (size_t)((klen + t->pkb - 1) / t->pkb), (size_t)items};
    size_t l[3] = {8, 1, 1};
    return dfr_enqueue(rt, kern, 3, g, l, label);
}

static int launch_reg(dfr_runtime *rt, const gemm_tune *t, const char *opts, const char *label,
                      int m, int n, int kp, float alpha, float beta, cl_mem ap, cl_ulong ap_sb,
                      cl_mem bp, cl_ulong bp_sb, const gemm_mat *c, cl_ulong c_off, int items)
{
    cl_kernel kern;
    int rc = dfr_kernel_get(rt, "gemm.cl", opts, "gemm_reg", &kern);
    if (rc) return rc;
    rc = dfr_set_args(kern, "gemm_reg", DFR_ARG(m), DFR_ARG(n), DFR_ARG(kp), DFR_ARG(alpha),
                      DFR_ARG(beta), DFR_ARG(ap), DFR_ARG(ap_sb), DFR_ARG(bp), DFR_ARG(bp_sb),
                      DFR_ARG(c->buf), DFR_ARG(c_off), DFR_ARG(c->sr), DFR_ARG(c->sc),
                      DFR_ARG(c->sb), DFR_ARGS_END);
    if (rc) return rc;
    int nt = t->vw * t->nv;
    size_t g[3] = {(size_t)((n + nt - 1) / nt), (size_t)((m + t->rm - 1) / t->rm), (size_t)items};
    size_t l[3] = {(size_t)t->lx, (size_t)(t->ly ? t->ly : 1), 1};
    return dfr_enqueue(rt, kern, 3, g, t->lx ? l : NULL, label);
}

/* gemm_reg: pack op(A) and op(B) into panels, then multiply. A sum over the batch is one product
 * of depth nsum*k. When the packed operands would exceed the budget (tunable pk, 128 MB; less on
 * a device with under 1 GiB or smaller buffers), items go in groups, then the depth in chunks
 * (accumulating into C with beta = 1 after the first). */
static int own_reg(dfr_runtime *rt, const gemm_prob *p, const gemm_tune *t, const gemm_opts *o,
                   const char *label)
{
    const char *opts = o->mul;
    const int nt = t->vw * t->nv, rm = t->rm;
    const size_t ma = (size_t)((p->m + rm - 1) / rm) * (size_t)rm;
    const size_t nb = (size_t)((p->n + nt - 1) / nt) * (size_t)nt;
    const cl_long K = (cl_long)p->nsum * p->k;
    if (K == 0) /* C = beta*C; nothing is read but C */
        return launch_reg(rt, t, opts, label, p->m, p->n, 0, p->alpha, p->beta, p->c.buf, 0,
                          p->c.buf, 0, &p->c, p->c.off, p->items);
    /* An operand shared by all items (stride 0, no sum) is packed once. */
    const int shared_a = p->a.sb == 0 && p->nsum == 1, shared_b = p->b.sb == 0 && p->nsum == 1;
    const double fixed = (double)(shared_a ? ma : 0) + (double)(shared_b ? nb : 0);
    const double per_item = (double)(shared_a ? 0 : ma) + (double)(shared_b ? 0 : nb);
    /* In floats; on a small device also within one allocation and 1/8 of its memory. */
    double budget = (double)t->pk * 1024.0;
    if (rt->info.max_alloc_bytes && budget > rt->info.max_alloc_bytes / 4.0)
        budget = rt->info.max_alloc_bytes / 4.0;
    if (rt->info.global_mem_bytes && budget > rt->info.global_mem_bytes / 32.0)
        budget = rt->info.global_mem_bytes / 32.0;
    int group = p->items;
    cl_long kc = K;
    if ((double)K * (fixed + per_item * p->items) > budget) {
        double g = per_item > 0 ? (budget / (double)K - fixed) / per_item : 0;
        if (g >= 1) {
            group = g < p->items ? (int)g : p->items;
        } else {
            group = 1;
            double d = budget / (fixed + per_item);
            kc = d < 1 ? 1 : d > (double)K ? K : (cl_long)d;
            if (kc > 256) kc = kc / 256 * 256;
        }
    }
    if (t->kc > 0 && kc > t->kc) kc = t->kc;
    for (int g0 = 0; g0 < p->items; g0 += group) {
        const int gi = p->items - g0 < group ? p->items - g0 : group;
        for (cl_long k0 = 0; k0 < K; k0 += kc) {
            const int klen = (int)(K - k0 < kc ? K - k0 : kc);
            const int na = shared_a ? 1 : gi, nbi = shared_b ? 1 : gi;
            const int one_pass = kc == K; /* a shared operand packed once stays valid */
            cl_mem ap, bp;
            int rc = scratch_get(rt, 0, ma * (size_t)klen * (size_t)na * sizeof(float), &ap);
            if (!rc) rc = scratch_get(rt, 1, nb * (size_t)klen * (size_t)nbi * sizeof(float), &bp);
            if (!rc && !(shared_a && one_pass && g0 > 0))
                rc = launch_pack(rt, t, o->pa, label, p->m, rm, p->k, p->nsum, k0, klen,
                                 p->a.off + (cl_ulong)g0 * (cl_ulong)p->nsum * p->a.sb, p->a.sr,
                                 p->a.sc, p->a.sb, p->a.buf, na, ap);
            if (!rc && !(shared_b && one_pass && g0 > 0))
                rc = launch_pack(rt, t, o->pb, label, p->n, nt, p->k, p->nsum, k0, klen,
                                 p->b.off + (cl_ulong)g0 * (cl_ulong)p->nsum * p->b.sb, p->b.sc,
                                 p->b.sr, p->b.sb, p->b.buf, nbi, bp);
            if (!rc)
                rc = launch_reg(rt, t, opts, label, p->m, p->n, klen, p->alpha,
                                k0 == 0 ? p->beta : 1.0f, ap,
                                shared_a ? 0 : (cl_ulong)ma * (cl_ulong)klen, bp,
                                shared_b ? 0 : (cl_ulong)nb * (cl_ulong)klen, &p->c,
                                p->c.off + (cl_ulong)g0 * p->c.sb, gi);
            if (rc) return rc;
        }
    }
    return DFRCL_OK;
}

static void prob_from_desc(const dfr_gemm_desc *g, gemm_prob *p)
{
    int sum = g->batch > 1 && g->c_stride == 0;
    *p = (gemm_prob){
        .m = g->m, .n = g->n, .k = g->k, .nsum = sum ? g->batch : 1,
        .items = sum ? 1 : g->batch, .alpha = g->alpha, .beta = g->beta,
        .a = {g->a, g->a_offset, g->trans_a ? 1 : g->lda, g->trans_a ? g->lda : 1, g->a_stride},
        .b = {g->b, g->b_offset, g->trans_b ? 1 : g->ldb, g->trans_b ? g->ldb : 1, g->b_stride},
        .c = {g->c, g->c_offset, g->ldc, 1, g->c_stride},
        .ha = g->half_a, .hb = g->half_b, .hc = g->half_c,
    };
    /* Nothing to multiply: C = beta*C without reading A or B. */
    if (p->k == 0 || p->alpha == 0.0f) {
        p->k = 0;
        p->nsum = 1;
        p->a = p->b = p->c;
        p->ha = p->hb = p->hc;
    }
}

/* opts plus the operands' storage (gemm.cl's GEMM_*_HALF) for one kernel of a product. */
static void storage_opts(char *out, size_t n, const char *opts, int pack, int a, int b, int c)
{
    snprintf(out, n, "%s%s%s%s%s", opts, pack ? " -DGEMM_PACK_HALF=1" : "",
             a ? " -DGEMM_A_HALF=1" : "", b ? " -DGEMM_B_HALF=1" : "", c ? " -DGEMM_C_HALF=1" : "");
}

static int own_gemm(dfr_runtime *rt, const dfr_gemm_desc *g, int lds, const char *label)
{
    gemm_tune t;
    char opts[256];
    int rc = tune_get(rt, &t, opts, sizeof opts);
    if (rc) return rc;
    gemm_prob p;
    prob_from_desc(g, &p);
    gemm_opts o;
    storage_opts(o.pa, sizeof o.pa, opts, p.ha, 0, 0, 0);
    storage_opts(o.pb, sizeof o.pb, opts, p.hb, 0, 0, 0);
    storage_opts(o.mul, sizeof o.mul, opts, 0, lds && p.ha, lds && p.hb, p.hc);
    return lds ? launch_lds(rt, &p, &t, o.mul, label) : own_reg(rt, &p, &t, &o, label);
}

/* ---- CLBlast ---- */

static int clblast_status(CLBlastStatusCode s, const char *what)
{
    if (s == CLBlastSuccess) return DFRCL_OK;
    /* CLBlast passes OpenCL's codes through (-1 .. -999) and adds its own below. */
    if (s > -1000) return dfr_cl_error((cl_int)s, what);
    return dfr_error(DFRCL_ERR_INTERNAL, "%s: CLBlast status %d", what, (int)s);
}

/* On CPUs, CLBlast's default Xgemm parameters are ~3x slower than these (measured on the
 * 2-core PoCL machine: an 8 x 16 register tile per work-item, no local memory). Set once per
 * device: the override is CLBlast's own process-wide state, keyed by device, so the devices done
 * are too, under a lock (runtimes on several threads). A runtime opened with
 * DFRCL_CLBLAST_DEFAULTS sets nothing, but a device's parameters once set stay for the process. */
#define CLBLAST_MAX_DEVICES 64
static pthread_mutex_t clblast_lock = PTHREAD_MUTEX_INITIALIZER;
static cl_device_id clblast_done[CLBLAST_MAX_DEVICES];

static void clblast_override(dfr_runtime *rt)
{
    static const char *names[] = {"GEMMK", "KREG", "KWG",  "KWI", "MDIMA", "MDIMC",
                                  "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                  "STRM",  "STRN", "VWM",  "VWN"};
    static const size_t values[] = {0, 1, 32, 2, 4, 4, 32, 4, 4, 64, 0, 0, 0, 0, 8, 16};
    CLBlastStatusCode s = CLBlastOverrideParameters(rt->device, "Xgemm", CLBlastPrecisionSingle,
                                                    sizeof names / sizeof names[0], names, values);
    if (s != CLBlastSuccess)
        dfr_rt_log(rt, 1, "CLBlast rejected dfrcl's Xgemm parameters for %s (status %d); using its "
                   "defaults", rt->info.name, (int)s);
}

static void clblast_tune_cpu(dfr_runtime *rt)
{
    if (dfr_rt_getenv(rt, "DFRCL_CLBLAST_DEFAULTS")) return;
    pthread_mutex_lock(&clblast_lock);
    int i = 0;
    while (i < CLBLAST_MAX_DEVICES && clblast_done[i] && clblast_done[i] != rt->device) i++;
    if (i == CLBLAST_MAX_DEVICES || !clblast_done[i]) { /* full: set again, harmless */
        clblast_override(rt);
        if (i < CLBLAST_MAX_DEVICES) clblast_done[i] = rt->device;
    }
    pthread_mutex_unlock(&clblast_lock);
}

static int clblast_gemm(dfr_runtime *rt, const dfr_gemm_desc *g, const char *label)
{
    cl_event ev = NULL, *evp = rt->profiling ? &ev : NULL;
    int rc;
    if (rt->info.is_cpu) clblast_tune_cpu(rt);
    CLBlastTranspose ta = g->trans_a ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose tb = g->trans_b ? CLBlastTransposeYes : CLBlastTransposeNo;
    cl_command_queue q = rt->queue;
    size_t m = (size_t)g->m, n = (size_t)g->n, k = (size_t)g->k;
    if (g->batch > 1 && g->c_stride != 0) {
        rc = clblast_status(
            CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, m, n, k, g->alpha, g->a,
                                       g->a_offset, g->lda, g->a_stride, g->b, g->b_offset,
                                       g->ldb, g->b_stride, g->beta, g->c, g->c_offset, g->ldc,
                                       g->c_stride, (size_t)g->batch, &q, evp),
            "CLBlastSgemmStridedBatched");
        return !rc && ev ? dfr_prof_record(rt, label, ev) : rc;
    }
    /* One product, or a sum over the batch: accumulate with beta = 1 after the first. */
    for (int i = 0; i < g->batch; i++) {
        rc = clblast_status(
            CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, m, n, k, g->alpha, g->a,
                         g->a_offset + (size_t)i * g->a_stride, g->lda, g->b,
                         g->b_offset + (size_t)i * g->b_stride, g->ldb, i ? 1.0f : g->beta, g->c,
                         g->c_offset, g->ldc, &q, evp),
            "CLBlastSgemm");
        if (!rc && ev) rc = dfr_prof_record(rt, label, ev);
        ev = NULL;
        if (rc) return rc;
    }
    return DFRCL_OK;
}

/* ---- entry ---- */

int dfr_gemm(dfr_runtime *rt, const dfr_gemm_desc *g, const char *label)
{
    if (!rt || !g) return dfr_error(DFRCL_ERR_INVALID_ARG, "gemm: NULL runtime or descriptor");
    int rc = check_desc(g);
    if (rc || g->m == 0 || g->n == 0) return rc;
    if (!label) label = "gemm";
    struct dfr_gemm_state *st = NULL; /* made now, so a bad DFRCL_GEMM is reported */
    rc = state_get(rt, &st);
    if (rc) return rc;
    dfr_gemm_backend b = dfr_gemm_backend_in_use(rt);
    /* Products with nothing to multiply are a scaling of C: the own kernel does it. So are those
     * with fp16 operands: CLBlast has no mixed precision, and its Hgemm sums in half. */
    if (b == DFR_GEMM_CLBLAST && (g->k == 0 || g->alpha == 0.0f || g->half_a || g->half_b ||
                                  g->half_c))
        b = own_for_device(rt);
    if (b == DFR_GEMM_CLBLAST) rc = clblast_gemm(rt, g, label);
    else rc = own_gemm(rt, g, b == DFR_GEMM_OWN_LDS, label);
    if (rc)
        return dfr_error_prefix(rc, "gemm %s (%s, %dx%dx%d, batch %d)", label,
                                dfr_gemm_backend_name(b), g->m, g->n, g->k, g->batch);
    return DFRCL_OK;
}
