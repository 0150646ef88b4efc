/* The scoring scheduler (src/sched): batches, several devices and a failing device give the maps
 * of scoring one image at a time, bit for bit. A small random backbone and an untrained
 * autoencoder (its seed-0 weights) keep it quick; tests/meson.build runs it with
 * POCL_DEVICES="pthread pthread" for two devices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "cl/runtime.h"
#include "dfrcl.h"
#include "io/image.h"
#include "model/dfr.h"
#include "sched/scorer.h"
#include "testutil.h"
#include "util/error.h"

#define DFR_TEST_SKIP 77
#define S 32
#define LAYERS 3
#define N_IMG 7

typedef struct lane_fix {
    dfr_runtime *rt;
    dfr_vgg19 *vgg;
    dfr_model *m;
} lane_fix;

static int n_devices;
static dfrcl_image imgs[N_IMG];
static char dir[4096], *paths[N_IMG + 1];
static float *ref_maps; /* [N_IMG, S, S] by dfr_model_score, one image at a time */
static float ref_scores[N_IMG];

static int lane_open(lane_fix *f, int device)
{
    char sel[16];
    snprintf(sel, sizeof sel, "%d", device);
    int rc = dfr_runtime_open(&f->rt, sel, NULL, 0);
    if (!rc) rc = dfr_vgg19_random(&f->vgg, f->rt, LAYERS, 7);
    if (rc) return rc;
    dfr_model *m = calloc(1, sizeof *m);
    m->rt = f->rt;
    m->vgg = f->vgg;
    m->info.layers = LAYERS;
    m->info.size = S;
    m->info.channels = f->vgg->channels;
    m->info.latent = 12;
    snprintf(m->info.backbone_sha256, sizeof m->info.backbone_sha256, "%s", f->vgg->identity);
    m->cae_batch = 1;
    m->cae_resizable = 1;
    rc = dfr_cae_new_scorer(&m->cae, f->rt, m->info.channels, m->info.latent, 1, (S / 4) * (S / 4));
    f->m = m;
    return rc;
}

static void lane_close(lane_fix *f)
{
    dfr_model_free(&f->m);
    dfr_vgg19_free(&f->vgg);
    dfr_runtime_close(&f->rt);
}

typedef struct got {
    float maps[N_IMG + 1][S * S];
    float scores[N_IMG + 1];
    int status[N_IMG + 1], device[N_IMG + 1], calls, in_order;
} got;

static int collect(void *user, const dfr_sched_result *r)
{
    got *g = user;
    if (r->index != g->calls) g->in_order = 0;
    g->calls++;
    g->status[r->index] = r->status;
    g->device[r->index] = r->device;
    if (!r->status) {
        memcpy(g->maps[r->index], r->map, sizeof g->maps[0]);
        g->scores[r->index] = r->score;
    }
    return 0;
}

/* Same bits as the one-image path, every element written (the scheduler poisons with NaN). */
static void check_same(const got *g, int n)
{
    assert_int_equal(g->calls, n);
    assert_true(g->in_order);
    for (int i = 0; i < n; i++) {
        assert_int_equal(g->status[i], 0);
        for (int j = 0; j < S * S; j++) assert_false(isnan(g->maps[i][j]));
        assert_memory_equal(g->maps[i], ref_maps + (size_t)i * S * S, sizeof g->maps[0]);
        assert_true(g->scores[i] == ref_scores[i]);
    }
}

static got *run_files(dfr_model **models, int k, int batch, int *rc_out)
{
    got *g = calloc(1, sizeof *g);
    g->in_order = 1;
    dfr_scorer *s = NULL;
    dfr_sched_opts o = {batch, 2};
    int rc = dfr_scorer_open(&s, models, k, &o);
    if (!rc) rc = dfr_scorer_run(s, (const char *const *)paths, N_IMG, collect, g, NULL);
    if (rc) fprintf(stderr, "(expected or not) %s\n", dfrcl_last_error());
    dfr_scorer_close(&s);
    *rc_out = rc;
    return g;
}

static void test_batches_equal_one_by_one(void **state)
{
    (void)state;
    lane_fix f = {0};
    assert_int_equal(lane_open(&f, 0), 0);
    for (int b = 1; b <= 4; b++) { /* 7 images: batches 3 and 4 end with a short one */
        int rc;
        got *g = run_files(&f.m, 1, b, &rc);
        assert_int_equal(rc, 0);
        check_same(g, N_IMG);
        free(g);
    }
    /* The copying transfers (discrete GPUs) as well as the mapped ones (PoCL is host-unified). */
    dfr_test_setenv(f.rt, "DFRCL_COPY_TRANSFERS", "1");
    for (int b = 1; b <= 3; b += 2) {
        int rc;
        got *g = run_files(&f.m, 1, b, &rc);
        assert_int_equal(rc, 0);
        check_same(g, N_IMG);
        free(g);
    }
    dfr_test_setenv(f.rt, "DFRCL_COPY_TRANSFERS", NULL);
    /* In-memory images (the C API's path) too. */
    got *g = calloc(1, sizeof *g);
    g->in_order = 1;
    dfr_scorer *s = NULL;
    dfr_sched_opts o = {3, 1};
    assert_int_equal(dfr_scorer_open(&s, &f.m, 1, &o), 0);
    assert_int_equal(dfr_scorer_batch(s, 0), 3);
    assert_int_equal(dfr_scorer_run_images(s, imgs, N_IMG, collect, g, NULL), 0);
    check_same(g, N_IMG);
    dfr_scorer_close(&s);
    free(g);
    lane_close(&f);
}

static void test_unreadable_file_is_reported(void **state)
{
    (void)state;
    lane_fix f = {0};
    assert_int_equal(lane_open(&f, 0), 0);
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/broken.png", dir);
    FILE *fp = fopen(bad, "wb");
    fputs("not a png", fp);
    fclose(fp);
    char *saved = paths[2];
    paths[2] = bad;
    int rc;
    got *g = run_files(&f.m, 1, 2, &rc);
    paths[2] = saved;
    assert_int_equal(rc, 0);
    assert_int_equal(g->calls, N_IMG);
    assert_int_not_equal(g->status[2], 0);
    assert_int_equal(g->device[2], -1);
    for (int i = 0; i < N_IMG; i++)
        if (i != 2) assert_memory_equal(g->maps[i], ref_maps + (size_t)i * S * S, sizeof g->maps[0]);
    free(g);
    lane_close(&f);
}

static void test_two_devices_equal_one(void **state)
{
    (void)state;
    if (n_devices < 2) skip();
    lane_fix f[2] = {0};
    assert_int_equal(lane_open(&f[0], 0), 0);
    assert_int_equal(lane_open(&f[1], 1), 0);
    dfr_model *ms[2] = {f[0].m, f[1].m};
    int rc;
    got *g = run_files(ms, 2, 2, &rc);
    assert_int_equal(rc, 0);
    check_same(g, N_IMG);
    free(g);
    lane_close(&f[0]);
    lane_close(&f[1]);
}

static void test_failing_device_hands_over(void **state)
{
    (void)state;
    if (n_devices < 2) skip();
    setenv("DFRCL_FAULT", "device:1:after:0", 1); /* device 1 fails its first batch */
    lane_fix f[2] = {0};
    assert_int_equal(lane_open(&f[0], 0), 0);
    assert_int_equal(lane_open(&f[1], 1), 0);
    dfr_model *ms[2] = {f[0].m, f[1].m};
    dfr_scorer *s = NULL;
    dfr_sched_opts o = {2, 2};
    got *g = calloc(1, sizeof *g);
    g->in_order = 1;
    assert_int_equal(dfr_scorer_open(&s, ms, 2, &o), 0);
    int rc = dfr_scorer_run(s, (const char *const *)paths, N_IMG, collect, g, NULL);
    unsetenv("DFRCL_FAULT");
    assert_int_equal(rc, 0);
    check_same(g, N_IMG);
    /* Device 0 scored everything, including what device 1 took and handed on. */
    assert_int_equal(dfr_scorer_lane_images(s, 1), 0);
    assert_int_equal(dfr_scorer_lane_images(s, 0), N_IMG);
    fprintf(stderr, "device 1 handed on %d image(s)\n", dfr_scorer_lane_failed(s, 1));
    for (int i = 0; i < N_IMG; i++) assert_int_equal(g->device[i], 0);
    dfr_scorer_close(&s);
    free(g);
    lane_close(&f[0]);
    lane_close(&f[1]);
}

static void test_failing_only_device_is_an_error(void **state)
{
    (void)state;
    setenv("DFRCL_FAULT", "device:0:after:1", 1);
    lane_fix f = {0};
    assert_int_equal(lane_open(&f, 0), 0);
    int rc;
    got *g = run_files(&f.m, 1, 3, &rc);
    unsetenv("DFRCL_FAULT");
    assert_int_not_equal(rc, 0);
    const char *msg = dfrcl_last_error();
    assert_non_null(strstr(msg, "device [0]"));
    assert_non_null(strstr(msg, f.rt->info.name));
    assert_non_null(strstr(msg, "img3.png")); /* the second batch: images 3, 4, 5 */
    assert_non_null(strstr(msg, "DFRCL_FAULT"));
    assert_int_equal(g->calls, 3); /* the first batch was delivered before */
    free(g);
    lane_close(&f);
}

static void test_device_list(void **state)
{
    (void)state;
    int *idx = NULL, n = 0;
    assert_int_equal(dfr_device_select("all", &idx, &n), 0);
    assert_int_equal(n, n_devices);
    free(idx);
    assert_int_equal(dfr_device_select("0,0", &idx, &n), 0);
    assert_int_equal(n, 1);
    free(idx);
    assert_int_not_equal(dfr_device_select("0,9", &idx, &n), 0);
    assert_non_null(strstr(dfrcl_last_error(), "[0] "));
    assert_int_not_equal(dfr_device_select("0,", &idx, &n), 0);
}

static void test_api_batch(void **state)
{
    (void)state;
    /* dfrcl_model_score_batch writes every map and score the caller's poisoned buffers hold. */
    lane_fix f = {0};
    assert_int_equal(lane_open(&f, 0), 0);
    float *maps = malloc(sizeof(float) * S * S * N_IMG), scores[N_IMG];
    dfr_test_poison(maps, (size_t)S * S * N_IMG);
    dfr_test_poison(scores, N_IMG);
    assert_int_equal(dfr_sched_score_images(f.m, imgs, N_IMG, 3, maps, scores), 0);
    assert_memory_equal(maps, ref_maps, sizeof(float) * S * S * N_IMG);
    assert_memory_equal(scores, ref_scores, sizeof scores);
    free(maps);
    lane_close(&f);
}

int main(void)
{
    dfr_verbosity = 0;
    dfrcl_device_info *infos = NULL;
    int rc = dfr_list_devices(&infos, &n_devices, NULL, NULL);
    free(infos);
    if (rc) {
        fprintf(stderr, "skip: %s\n", dfrcl_last_error());
        return DFR_TEST_SKIP;
    }
    /* Images of several sizes and channel counts, written as PNG (files are resized to S). */
    snprintf(dir, sizeof dir, "/tmp/dfrcl_test_sched_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    lane_fix f = {0};
    if (lane_open(&f, 0)) {
        fprintf(stderr, "%s\n", dfrcl_last_error());
        return 1;
    }
    ref_maps = malloc(sizeof(float) * S * S * N_IMG);
    for (int i = 0; i < N_IMG; i++) {
        int w = S + 8 * (i % 3), h = S + 4 * (i % 2), c = i % 4 == 3 ? 1 : 3;
        uint8_t *px = malloc((size_t)w * h * c);
        for (int j = 0; j < w * h * c; j++) px[j] = (uint8_t)(dfr_test_hash((uint32_t)i, (uint32_t)j) >> 24);
        char p[4200];
        snprintf(p, sizeof p, "%s/img%d.png", dir, i);
        if (dfr_png_write(p, w, h, c, px)) return 1;
        free(px);
        paths[i] = strdup(p);
        if (dfr_image_load_resized(p, S, &imgs[i], NULL, NULL)) return 1;
        if (dfr_model_score(f.m, imgs[i].pixels, imgs[i].channels, ref_maps + (size_t)i * S * S,
                            &ref_scores[i])) {
            fprintf(stderr, "%s\n", dfrcl_last_error());
            return 1;
        }
    }
    lane_close(&f);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_equal_one_by_one),
        cmocka_unit_test(test_unreadable_file_is_reported),
        cmocka_unit_test(test_two_devices_equal_one),
        cmocka_unit_test(test_failing_device_hands_over),
        cmocka_unit_test(test_failing_only_device_is_an_error),
        cmocka_unit_test(test_device_list),
        cmocka_unit_test(test_api_batch),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < N_IMG; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/img%d.png", dir, i);
        unlink(p);
        free(paths[i]);
        dfrcl_image_free(&imgs[i]);
    }
    char p[4200];
    snprintf(p, sizeof p, "%s/broken.png", dir);
    unlink(p);
    rmdir(dir);
    free(ref_maps);
    return rc;
}
