/* The synthetic woven-fabric dataset of `dfrcl demo` (see demo_data.h). */
#include "io/demo_data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/image.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/rand.h"

#define DFR_PI 3.14159265f

static const char *const kinds[] = {"scratch", "stain", "hole"};
enum { KIND_SCRATCH, KIND_STAIN, KIND_HOLE, N_KINDS };

const char *const *dfr_demo_defect_kinds(int *n)
{
    if (n) *n = N_KINDS;
    return kinds;
}

/* Indices of the per-image parameters in the image's random stream. */
enum {
    P_PERIOD, P_ROT, P_OX, P_OY, P_WOB1, P_WOB2, P_WOBP1, P_WOBP2, P_WOBPH1, P_WOBPH2,
    P_BRIGHT, P_GX, P_GY, P_VIG, P_TR, P_TG, P_TB,
    S_NOISE = 1000, S_CELL, S_DEFECT
};

/* Values of one image's texture; lighting and tint included. */
typedef struct texture {
    float c, period, cs, sn, ox, oy;
    float wob1, wob2, wobp1, wobp2, wobph1, wobph2;
    float bright, gx, gy, vig;
    float tint[3];
    uint32_t s_noise, s_cell;
} texture;

static uint32_t image_stream(uint32_t seed, uint32_t image_id)
{
    /* Hash the seed first so (seed, id) pairs do not alias through the linear pre-mix. */
    return dfr_rand_u32(dfr_rand_u32(seed, 0x64656D6Fu), image_id);
}

static float rnd(uint32_t s, uint32_t k, float lo, float hi)
{
    return dfr_rand_uniform(s, k, lo, hi);
}

static void texture_init(texture *t, int size, uint32_t s)
{
    float sc = (float)size / 256.0f;
    t->c = 0.5f * (float)size;
    /* Small variations only: the "good" class must stay one consistent fabric. */
    t->period = 12.0f * sc * rnd(s, P_PERIOD, 0.97f, 1.03f);
    float rot = rnd(s, P_ROT, -2.0f, 2.0f) * DFR_PI / 180.0f;
    t->cs = cosf(rot);
    t->sn = sinf(rot);
    t->ox = rnd(s, P_OX, 0.0f, 2.0f * t->period);
    t->oy = rnd(s, P_OY, 0.0f, 2.0f * t->period);
    t->wob1 = rnd(s, P_WOB1, 0.45f, 0.75f);
    t->wob2 = rnd(s, P_WOB2, 0.45f, 0.75f);
    t->wobp1 = 48.0f * sc * rnd(s, P_WOBP1, 0.85f, 1.15f);
    t->wobp2 = 52.0f * sc * rnd(s, P_WOBP2, 0.85f, 1.15f);
    t->wobph1 = rnd(s, P_WOBPH1, 0.0f, 2.0f * DFR_PI);
    t->wobph2 = rnd(s, P_WOBPH2, 0.0f, 2.0f * DFR_PI);
    t->bright = rnd(s, P_BRIGHT, 0.90f, 1.08f);
    t->gx = rnd(s, P_GX, -0.06f, 0.06f);
    t->gy = rnd(s, P_GY, -0.06f, 0.06f);
    t->vig = rnd(s, P_VIG, 0.0f, 0.12f);
    t->tint[0] = rnd(s, P_TR, 0.98f, 1.02f);
    t->tint[1] = rnd(s, P_TG, 0.98f, 1.02f);
    t->tint[2] = rnd(s, P_TB, 0.98f, 1.02f);
    t->s_noise = dfr_rand_u32(s, S_NOISE);
    t->s_cell = dfr_rand_u32(s, S_CELL);
}

static uint8_t to_u8(float v)
{
    if (!(v > 0.0f)) return 0;
    if (v >= 255.0f) return 255;
    return (uint8_t)(v + 0.5f);
}

/* Two thread directions crossing in a checkerboard of over/under cells, each thread wobbling a
 * little, per-cell brightness, pixel noise, then a tan palette under uneven lighting. The darkest
 * channel value this can give is about 0.30*0.98*0.74*255 = 55, the red channel at least ~100:
 * the defect strengths below rely on that to change every defect pixel visibly. */
static void render_texture(uint8_t *rgb, int size, const texture *t)
{
    const float two_pi = 2.0f * DFR_PI;
    const float inv_r2 = 1.0f / (2.0f * t->c * t->c);
    for (int y = 0; y < size; y++) {
        for (int x = 0; x < size; x++) {
            float px = (float)x + 0.5f - t->c, py = (float)y + 0.5f - t->c;
            float u = t->cs * px + t->sn * py + t->c + t->ox;
            float v = -t->sn * px + t->cs * py + t->c + t->oy;
            float warp = 0.5f + 0.5f * sinf(two_pi * u / t->period +
                                             t->wob1 * sinf(two_pi * v / t->wobp1 + t->wobph1));
            float weft = 0.5f + 0.5f * sinf(two_pi * v / t->period +
                                             t->wob2 * sinf(two_pi * u / t->wobp2 + t->wobph2));
            int cx = (int)floorf(u / t->period), cy = (int)floorf(v / t->period);
            float b = ((cx + cy) & 1) ? warp : weft;
            uint32_t cell = (uint32_t)cx * 65599u + (uint32_t)cy;
            b *= 1.0f + 0.08f * ((float)(dfr_rand_u32(t->s_cell, cell) >> 8) / 16777216.0f - 0.5f);
            /* Sum of three 10-bit uniforms: a cheap bell-shaped noise, sd ~0.04. */
            uint32_t h = dfr_rand_u32(t->s_noise, (uint32_t)y * (uint32_t)size + (uint32_t)x);
            float n = (float)((h & 1023u) + ((h >> 10) & 1023u) + ((h >> 20) & 1023u)) / 1023.0f;
            b += (n - 1.5f) * 0.08f;
            b = b < 0.0f ? 0.0f : (b > 1.0f ? 1.0f : b);
            float light = t->bright * (1.0f + t->gx * px / (float)size + t->gy * py / (float)size) *
                          (1.0f - t->vig * (px * px + py * py) * inv_r2);
            uint8_t *o = rgb + 3 * ((size_t)y * (size_t)size + (size_t)x);
            o[0] = to_u8(255.0f * light * t->tint[0] * (0.55f + 0.35f * b));
            o[1] = to_u8(255.0f * light * t->tint[1] * (0.45f + 0.30f * b));
            o[2] = to_u8(255.0f * light * t->tint[2] * (0.30f + 0.20f * b));
        }
    }
}

/* Pixel box [x0,x1) x [y0,y1) around a centre, clipped to the image. */
typedef struct box {
    int x0, y0, x1, y1;
} box;

static box make_box(int size, float xmin, float ymin, float xmax, float ymax)
{
    box b;
    b.x0 = xmin < 0.0f ? 0 : (int)xmin;
    b.y0 = ymin < 0.0f ? 0 : (int)ymin;
    b.x1 = xmax >= (float)size ? size : (int)xmax + 1;
    b.y1 = ymax >= (float)size ? size : (int)ymax + 1;
    return b;
}

/* A thin dark curve, tapered at the ends: a bent line sampled as a polyline, each pixel covered
 * by how far it is from the nearest segment. Every touched pixel is darkened by at least
 * 0.45 * 0.55 = 25% (>= 25 levels in red), so none is changed invisibly. */
#define SCRATCH_SEGS 48
static void draw_scratch(uint8_t *rgb, uint8_t *mask, int size, uint32_t s)
{
    float sc = (float)size / 256.0f;
    float cx = rnd(s, 0, 0.25f, 0.75f) * (float)size, cy = rnd(s, 1, 0.25f, 0.75f) * (float)size;
    float len = rnd(s, 2, 0.30f, 0.60f) * (float)size;
    float ang = rnd(s, 3, 0.0f, DFR_PI);
    float bend = rnd(s, 4, -0.08f, 0.08f) * (float)size;
    float nb = rnd(s, 5, 0.8f, 2.0f), bph = rnd(s, 6, 0.0f, DFR_PI);
    float w0 = fmaxf(1.2f, rnd(s, 7, 1.6f, 3.2f) * sc);
    float keep = rnd(s, 8, 0.30f, 0.45f); /* fraction of the colour the scratch keeps */
    float dx = cosf(ang), dy = sinf(ang);
    float ptx[SCRATCH_SEGS + 1], pty[SCRATCH_SEGS + 1], hw[SCRATCH_SEGS + 1];
    float xmin = 1e30f, ymin = 1e30f, xmax = -1e30f, ymax = -1e30f;
    for (int i = 0; i <= SCRATCH_SEGS; i++) {
        float tt = (float)i / SCRATCH_SEGS;
        float off = bend * sinf(DFR_PI * nb * tt + bph);
        ptx[i] = cx + (tt - 0.5f) * len * dx - off * dy;
        pty[i] = cy + (tt - 0.5f) * len * dy + off * dx;
        hw[i] = 0.5f * w0 * (0.3f + 0.7f * sinf(DFR_PI * tt));
        xmin = fminf(xmin, ptx[i]);
        xmax = fmaxf(xmax, ptx[i]);
        ymin = fminf(ymin, pty[i]);
        ymax = fmaxf(ymax, pty[i]);
    }
    float pad = w0 + 2.0f;
    box b = make_box(size, xmin - pad, ymin - pad, xmax + pad, ymax + pad);
    for (int y = b.y0; y < b.y1; y++) {
        for (int x = b.x0; x < b.x1; x++) {
            float qx = (float)x + 0.5f, qy = (float)y + 0.5f, cov = 0.0f;
            for (int i = 0; i < SCRATCH_SEGS; i++) {
                float ex = ptx[i + 1] - ptx[i], ey = pty[i + 1] - pty[i];
                float l2 = ex * ex + ey * ey;
                float f = l2 > 0.0f ? ((qx - ptx[i]) * ex + (qy - pty[i]) * ey) / l2 : 0.0f;
                f = f < 0.0f ? 0.0f : (f > 1.0f ? 1.0f : f);
                float ddx = qx - (ptx[i] + f * ex), ddy = qy - (pty[i] + f * ey);
                float d = sqrtf(ddx * ddx + ddy * ddy);
                float c = hw[i] + f * (hw[i + 1] - hw[i]) + 0.5f - d;
                if (c > cov) cov = c;
            }
            if (cov <= 0.0f) continue;
            if (cov > 1.0f) cov = 1.0f;
            float alpha = 0.45f + 0.55f * cov;
            size_t p = (size_t)y * (size_t)size + (size_t)x;
            for (int ch = 0; ch < 3; ch++)
                rgb[3 * p + ch] = to_u8((float)rgb[3 * p + ch] * (1.0f - alpha * (1.0f - keep)));
            mask[p] = 255;
        }
    }
}

/* An irregular blob whose colour is shifted (oil, rust or a grey smear), stronger at its
 * rim like a dried stain. alpha >= 0.55 and the largest shift >= 0.8*45 levels, so every pixel
 * inside moves by >= ~20 levels in some channel, never clipped (all shifts darken). */
static void draw_stain(uint8_t *rgb, uint8_t *mask, int size, uint32_t s)
{
    static const float shifts[3][3] = {{-70, -62, -40}, {-8, -48, -52}, {-55, -38, -34}};
    float cx = rnd(s, 0, 0.2f, 0.8f) * (float)size, cy = rnd(s, 1, 0.2f, 0.8f) * (float)size;
    float r0 = fmaxf(3.0f, rnd(s, 2, 0.07f, 0.13f) * (float)size);
    float a1 = rnd(s, 3, 0.10f, 0.25f), a2 = rnd(s, 4, 0.05f, 0.12f), a3 = rnd(s, 5, 0.02f, 0.06f);
    float p1 = rnd(s, 6, 0, 2 * DFR_PI), p2 = rnd(s, 7, 0, 2 * DFR_PI), p3 = rnd(s, 8, 0, 2 * DFR_PI);
    const float *shift = shifts[dfr_rand_u32(s, 9) % 3];
    float gain = rnd(s, 10, 0.8f, 1.2f);
    float fx = rnd(s, 11, 3.0f, 7.0f), fy = rnd(s, 12, 3.0f, 7.0f), fph = rnd(s, 13, 0, 6.0f);
    float rmax = r0 * (1.0f + a1 + a2 + a3) + 1.0f;
    box b = make_box(size, cx - rmax, cy - rmax, cx + rmax, cy + rmax);
    for (int y = b.y0; y < b.y1; y++) {
        for (int x = b.x0; x < b.x1; x++) {
            float qx = (float)x + 0.5f - cx, qy = (float)y + 0.5f - cy;
            float d = sqrtf(qx * qx + qy * qy), th = atan2f(qy, qx);
            float r = r0 * (1.0f + a1 * sinf(3 * th + p1) + a2 * sinf(5 * th + p2) +
                            a3 * sinf(9 * th + p3));
            if (d >= r) continue;
            float rn = d / r, rn3 = rn * rn * rn;
            /* Rim plus a slow mottle inside; 0.55..1. */
            float mott = 0.5f + 0.5f * sinf((float)x / fx + fph) * sinf((float)y / fy - fph);
            float alpha = 0.55f + 0.33f * rn3 * rn3 + 0.12f * mott;
            if (alpha > 1.0f) alpha = 1.0f;
            size_t p = (size_t)y * (size_t)size + (size_t)x;
            for (int ch = 0; ch < 3; ch++)
                rgb[3 * p + ch] = to_u8((float)rgb[3 * p + ch] + alpha * gain * shift[ch]);
            mask[p] = 255;
        }
    }
}

/* A torn patch: the fabric is gone and a dark backing shows through, with a frayed (jagged) edge
 * and a ring of shadowed threads around it. The ring keeps <= 75% of the colour (>= 25 levels in
 * red) and the backing is at most ~62 against a red channel >= ~100. */
static void draw_hole(uint8_t *rgb, uint8_t *mask, int size, uint32_t s)
{
    float sc = (float)size / 256.0f;
    float cx = rnd(s, 0, 0.2f, 0.8f) * (float)size, cy = rnd(s, 1, 0.2f, 0.8f) * (float)size;
    float r0 = fmaxf(3.0f, rnd(s, 2, 0.04f, 0.08f) * (float)size);
    float b1 = rnd(s, 3, 0.10f, 0.30f), b2 = rnd(s, 4, 0.04f, 0.10f);
    float p1 = rnd(s, 5, 0, 2 * DFR_PI), p2 = rnd(s, 6, 0, 2 * DFR_PI);
    float rim = fmaxf(1.5f, rnd(s, 7, 2.0f, 3.5f) * sc);
    float bl = rnd(s, 8, 30.0f, 48.0f); /* a neutral, slightly warm dark backing */
    float back[3] = {bl, 0.94f * bl, 0.88f * bl};
    uint32_t s_fray = dfr_rand_u32(s, 11), s_noise = dfr_rand_u32(s, 12);
    float rmax = r0 * (1.0f + b1 + b2 + 0.06f) + rim + 1.0f;
    box b = make_box(size, cx - rmax, cy - rmax, cx + rmax, cy + rmax);
    for (int y = b.y0; y < b.y1; y++) {
        for (int x = b.x0; x < b.x1; x++) {
            float qx = (float)x + 0.5f - cx, qy = (float)y + 0.5f - cy;
            float d = sqrtf(qx * qx + qy * qy), th = atan2f(qy, qx);
            /* Frayed edge: each of 72 angular sectors gets its own small radius offset. */
            uint32_t sector = (uint32_t)((th + DFR_PI) * (72.0f / (2.0f * DFR_PI))) % 72u;
            float fray = 0.12f * ((float)(dfr_rand_u32(s_fray, sector) >> 8) / 16777216.0f - 0.5f);
            float r = r0 * (1.0f + b1 * sinf(2 * th + p1) + b2 * sinf(5 * th + p2) + fray);
            if (d >= r + rim) continue;
            size_t p = (size_t)y * (size_t)size + (size_t)x;
            if (d < r) {
                /* Backing, a little lighter towards the middle, with noise. */
                uint32_t h = dfr_rand_u32(s_noise, (uint32_t)p);
                float shade = 1.25f - 0.35f * d / r + 0.1f * ((float)(h & 255u) / 255.0f - 0.5f);
                for (int ch = 0; ch < 3; ch++) rgb[3 * p + ch] = to_u8(back[ch] * shade);
            } else {
                float keep = 0.5f + 0.25f * (d - r) / rim;
                for (int ch = 0; ch < 3; ch++)
                    rgb[3 * p + ch] = to_u8((float)rgb[3 * p + ch] * keep);
            }
            mask[p] = 255;
        }
    }
}

int dfr_demo_render(uint8_t *rgb, uint8_t *mask, int size, uint32_t seed, uint32_t image_id,
                    int kind)
{
    if (!rgb || size < DFR_DEMO_MIN_SIZE || size > DFR_DEMO_MAX_SIZE)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "demo image: size %d out of range %d..%d", size,
                         DFR_DEMO_MIN_SIZE, DFR_DEMO_MAX_SIZE);
    if (kind < DFR_DEMO_NO_DEFECT || kind >= N_KINDS || (kind >= 0 && !mask))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "demo image: bad defect kind %d or no mask", kind);
    uint32_t s = image_stream(seed, image_id);
    texture t;
    texture_init(&t, size, s);
    render_texture(rgb, size, &t);
    if (mask) memset(mask, 0, (size_t)size * (size_t)size);
    uint32_t sd = dfr_rand_u32(s, S_DEFECT);
    switch (kind) {
    case KIND_SCRATCH: draw_scratch(rgb, mask, size, sd); break;
    case KIND_STAIN: draw_stain(rgb, mask, size, sd); break;
    case KIND_HOLE: draw_hole(rgb, mask, size, sd); break;
    default: break;
    }
    return DFRCL_OK;
}

/* Formats root/rel into buf; a path that does not fit is an error naming root. */
static int join(char *buf, size_t cap, const char *root, const char *fmt_rel, const char *a, int n)
{
    char rel[256];
    int k = snprintf(rel, sizeof rel, fmt_rel, a, n);
    if (k < 0 || (size_t)k >= sizeof rel) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: bad path", root);
    k = snprintf(buf, cap, "%s/%s", root, rel);
    if (k < 0 || (size_t)k >= cap)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: demo dataset folder path too long", root);
    return DFRCL_OK;
}

static int make_dir(const char *root, const char *fmt_rel, const char *a)
{
    char path[4096];
    int rc = join(path, sizeof path, root, fmt_rel, a, 0);
    if (!rc) rc = dfr_mkdir_p(path);
    if (rc) return dfr_error_prefix(rc, "cannot write the demo dataset to %s", root);
    return DFRCL_OK;
}

/* Renders and writes `count` images of one folder; kind < 0 for good ones. */
static int write_split(const char *root, const char *img_fmt, const char *kind_name, int kind,
                       uint32_t id0, int count, int size, uint32_t seed, uint8_t *rgb,
                       uint8_t *mask)
{
    char path[4096];
    for (int i = 0; i < count; i++) {
        int rc = dfr_demo_render(rgb, mask, size, seed, id0 + (uint32_t)i, kind);
        if (!rc) rc = join(path, sizeof path, root, img_fmt, kind_name, i);
        if (!rc) rc = dfr_png_write(path, size, size, 3, rgb);
        if (!rc && kind >= 0) {
            rc = join(path, sizeof path, root, "ground_truth/%s/%03d_mask.png", kind_name, i);
            if (!rc) rc = dfr_png_write(path, size, size, 1, mask);
        }
        if (rc) return dfr_error_prefix(rc, "cannot write the demo dataset to %s", root);
    }
    return DFRCL_OK;
}

int dfr_demo_dataset_write(const char *root, int size, int n_train, int n_test_good,
                           int n_test_defect, uint32_t seed)
{
    if (!root || !*root) return dfr_error(DFRCL_ERR_INVALID_ARG, "demo dataset: no folder given");
    if (size < DFR_DEMO_MIN_SIZE || size > DFR_DEMO_MAX_SIZE)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: demo image size %d is out of range %d..%d",
                         root, size, DFR_DEMO_MIN_SIZE, DFR_DEMO_MAX_SIZE);
    if (n_train < 1 || n_train > DFR_DEMO_MAX_COUNT || n_test_good < 0 ||
        n_test_good > DFR_DEMO_MAX_COUNT || n_test_defect < 0 || n_test_defect > DFR_DEMO_MAX_COUNT)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "%s: demo image counts %d train, %d good test, %d per defect: need "
                         "1..%d train and 0..%d of the others",
                         root, n_train, n_test_good, n_test_defect, DFR_DEMO_MAX_COUNT,
                         DFR_DEMO_MAX_COUNT);
    int rc = dfr_mkdir_p(root);
    if (rc) return dfr_error_prefix(rc, "cannot write the demo dataset to %s", root);
    if (access(root, W_OK) != 0)
        return dfr_error(DFRCL_ERR_IO, "%s: cannot write the demo dataset there: %s", root,
                         strerror(errno));
    if ((rc = make_dir(root, "train/good%s", "")) || (rc = make_dir(root, "test/good%s", "")))
        return rc;
    for (int k = 0; k < N_KINDS && n_test_defect > 0; k++)
        if ((rc = make_dir(root, "test/%s", kinds[k])) ||
            (rc = make_dir(root, "ground_truth/%s", kinds[k])))
            return rc;

    size_t npx = (size_t)size * (size_t)size;
    uint8_t *rgb = malloc(3 * npx), *mask = malloc(npx);
    if (!rgb || !mask) {
        free(rgb);
        free(mask);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: no memory for a %dx%d demo image", root, size,
                         size);
    }
    rc = write_split(root, "train/%s/%03d.png", "good", DFR_DEMO_NO_DEFECT, DFR_DEMO_ID_TRAIN(0),
                     n_train, size, seed, rgb, mask);
    if (!rc)
        rc = write_split(root, "test/%s/%03d.png", "good", DFR_DEMO_NO_DEFECT,
                         DFR_DEMO_ID_TEST_GOOD(0), n_test_good, size, seed, rgb, mask);
    for (int k = 0; k < N_KINDS && !rc; k++)
        rc = write_split(root, "test/%s/%03d.png", kinds[k], k, DFR_DEMO_ID_DEFECT(k, 0),
                         n_test_defect, size, seed, rgb, mask);
    free(rgb);
    free(mask);
    return rc;
}
