/* The public header compiles with no other header of the project before it, and its API links
 * against the shared library (so its symbols are exported). The model API (train, save, load,
 * peek, score) is exercised end to end through the shared library only: no internal header, no
 * internal helper (its PNGs are written with libspng directly). */
#include "dfrcl.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>
#include <spng.h>

#include "testfs.h"

#define S 32    /* model size */
#define LAYERS 4
#define N_TRAIN 4

/* ---- PNG files for the test, written with libspng (the library's own writer is internal) ---- */

/* 8-bit grey (channels 1) or RGB (3), rows packed. Returns 0 on success. */
static int write_png(const char *path, int w, int h, int channels, const uint8_t *px)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    spng_ctx *c = spng_ctx_new(SPNG_CTX_ENCODER);
    struct spng_ihdr ih = {(uint32_t)w, (uint32_t)h, 8,
                           (uint8_t)(channels == 3 ? SPNG_COLOR_TYPE_TRUECOLOR : SPNG_COLOR_TYPE_GRAYSCALE),
                           0, 0, 0};
    int e = c ? spng_set_png_file(c, f) : -1;
    if (!e) e = spng_set_ihdr(c, &ih);
    if (!e) e = spng_encode_image(c, px, (size_t)w * h * channels, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    spng_ctx_free(c);
    if (fclose(f)) e = -1;
    return e ? -1 : 0;
}

/* A woven-looking texture with a little seeded noise: the kind of normal image DFR learns. */
static uint8_t *texture(int w, int h, int channels, uint32_t seed)
{
    uint8_t *px = malloc((size_t)w * h * channels);
    uint32_t r = seed * 2654435761u + 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++) {
                r = r * 1664525u + 1013904223u;
                int v = 110 + 50 * ((x / 3 + y / 3) % 2) + 20 * c + (int)(r >> 28);
                px[((size_t)y * w + x) * channels + c] = (uint8_t)v;
            }
    return px;
}

/* ---- shared state ---- */

static dfrcl_context *ctx;
static dfrcl_backbone *bb;
static dfrcl_model *trained, *loaded;
static char dir[256], model_path[320], same_png[320], big_png[320], train_png[N_TRAIN][320];
static uint8_t *same_px; /* the S x S RGB image also written to same_png */
static int progress_calls[3];

static void on_progress(void *user, const char *phase, int done, int total, double loss)
{
    (void)done;
    (void)total;
    (void)loss;
    int *calls = user;
    if (!strcmp(phase, "features")) calls[0]++;
    else if (!strcmp(phase, "train")) calls[1]++;
    else if (!strcmp(phase, "threshold")) calls[2]++;
}

static int fail_setup(const char *what, int rc)
{
    fprintf(stderr, "%s: %s (%s)\n", what, dfrcl_last_error(), dfrcl_status_name(rc));
    return -1;
}

static int teardown(void **state);

static int setup_files_and_model(void)
{
    if (dfr_test_mkdtemp(dir, sizeof dir, "public")) {
        dir[0] = 0;
        return -1;
    }
    for (int i = 0; i < N_TRAIN; i++) {
        /* Not S x S, so training resizes them. */
        snprintf(train_png[i], sizeof train_png[i], "%s/train%d.png", dir, i);
        uint8_t *px = texture(40, 36, 3, (uint32_t)i);
        int rc = write_png(train_png[i], 40, 36, 3, px);
        free(px);
        if (rc) return -1;
    }
    same_px = texture(S, S, 3, 100);
    uint8_t *big = texture(48, 40, 3, 101);
    snprintf(same_png, sizeof same_png, "%s/same.png", dir);
    snprintf(big_png, sizeof big_png, "%s/big.png", dir);
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", dir);
    int wrc = write_png(same_png, S, S, 3, same_px) || write_png(big_png, 48, 40, 3, big);
    free(big);
    if (wrc) return -1;

    int rc = dfrcl_backbone_random(&bb, ctx, LAYERS, 0);
    if (rc) return fail_setup("dfrcl_backbone_random", rc);
    dfrcl_train_options o;
    dfrcl_default_train_options(&o);
    o.epochs = 1;
    o.progress = on_progress;
    o.user = progress_calls;
    const char *paths[N_TRAIN];
    for (int i = 0; i < N_TRAIN; i++) paths[i] = train_png[i];
    rc = dfrcl_model_train(&trained, bb, paths, N_TRAIN, S, &o);
    if (rc) return fail_setup("dfrcl_model_train", rc);
    return 0;
}

/* cmocka skips the group teardown when the setup fails: clean up here then. */
static int setup(void **state)
{
    if (setup_files_and_model() == 0) return 0;
    teardown(state);
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    dfrcl_model_close(&loaded);
    dfrcl_model_close(&trained);
    dfrcl_backbone_close(&bb);
    free(same_px);
    if (dir[0]) dfr_test_rmdir_flat(dir);
    return 0;
}

/* ---- tests without a device ---- */

static void test_basics(void **state)
{
    (void)state;
    dfrcl_settings s;
    dfrcl_default_settings(&s);
    /* Status names are fixed strings; an unknown code still gets one. */
    assert_true(dfrcl_status_name(DFRCL_OK)[0] && dfrcl_status_name(-99999)[0]);
    assert_true(dfrcl_version()[0]);
    assert_null(s.device);

    dfrcl_train_options o;
    memset(&o, 0x5a, sizeof o);
    dfrcl_default_train_options(&o);
    assert_int_equal(o.recipe, 0); /* fast */
    assert_int_equal(o.epochs, 0); /* the recipe's */
    assert_int_equal(o.batch, 4);
    assert_true(o.lr == 0.0f);
    assert_true(o.memory_mib == 0.0);
    assert_int_equal(o.latent, 0);
    assert_true(o.pca_keep == 0.9);
    assert_int_equal(o.pca_images, 10);
    assert_true(o.fpr == 0.005);
    assert_int_equal(o.seed, 0);
    assert_null(o.progress);
    assert_null(o.user);
    dfrcl_default_train_options(NULL); /* no crash */
}

#define ASSERT_BAD_ARG(call)                                                                   \
    do {                                                                                       \
        assert_int_equal((call), DFRCL_ERR_INVALID_ARG);                                       \
        assert_true(dfrcl_last_error()[0]);                                                    \
    } while (0)

static void test_null_args(void **state)
{
    (void)state;
    dfrcl_model *m = (dfrcl_model *)&m; /* garbage the calls must overwrite with NULL */
    dfrcl_backbone *b = (dfrcl_backbone *)&b;
    dfrcl_model_info info;
    float map[4], score;
    const char *p[1] = {"x.png"};
    ASSERT_BAD_ARG(dfrcl_backbone_random(NULL, NULL, LAYERS, 0));
    ASSERT_BAD_ARG(dfrcl_backbone_random(&b, NULL, LAYERS, 0));
    assert_null(b);
    assert_non_null(strstr(dfrcl_last_error(), "ctx"));
    b = (dfrcl_backbone *)&b;
    ASSERT_BAD_ARG(dfrcl_backbone_load(&b, NULL, NULL, LAYERS));
    ASSERT_BAD_ARG(dfrcl_model_train(NULL, NULL, p, 1, S, NULL));
    ASSERT_BAD_ARG(dfrcl_model_train(&m, NULL, p, 1, S, NULL));
    assert_null(m);
    assert_non_null(strstr(dfrcl_last_error(), "bb"));
    m = (dfrcl_model *)&m;
    ASSERT_BAD_ARG(dfrcl_model_load(&m, NULL, "x"));
    assert_null(m);
    ASSERT_BAD_ARG(dfrcl_model_load(NULL, NULL, "x"));
    ASSERT_BAD_ARG(dfrcl_model_save(NULL, "x"));
    ASSERT_BAD_ARG(dfrcl_model_get_info(NULL, &info));
    ASSERT_BAD_ARG(dfrcl_model_peek(NULL, "x"));
    ASSERT_BAD_ARG(dfrcl_model_peek(&info, NULL));
    ASSERT_BAD_ARG(dfrcl_model_score(NULL, NULL, map, &score));
    ASSERT_BAD_ARG(dfrcl_model_score_file(NULL, "x", map, &score));
    dfrcl_model_close(NULL);
    m = NULL;
    dfrcl_model_close(&m);

    /* A missing model file: an I/O error naming the file. */
    const char *missing = "/nonexistent-dfrcl-dir/model.safetensors";
    int rc = dfrcl_model_peek(&info, missing);
    assert_int_not_equal(rc, DFRCL_OK);
    assert_non_null(strstr(dfrcl_last_error(), missing));
}

/* ---- tests on the device ---- */

static void test_train_args(void **state)
{
    (void)state;
    dfrcl_model *m = NULL;
    const char *p[2] = {train_png[0], NULL};
    dfrcl_train_options o;
    dfrcl_default_train_options(&o);
    o.epochs = 1;
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, p, 0, S, &o));
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, NULL, 1, S, &o));
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, p, 2, S, &o)); /* p[1] is NULL */
    assert_non_null(strstr(dfrcl_last_error(), "image_paths[1]"));
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, p, 1, 30, &o)); /* not a multiple of 4 */
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, p, 1, 0, &o));
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, p, 1, -32, &o));
    o.latent = -1;
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, p, 1, S, &o));
    o.latent = 100000;
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, p, 1, S, &o));
    dfrcl_default_train_options(&o);
    o.epochs = -1;
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, p, 1, S, &o));
    dfrcl_default_train_options(&o);
    o.recipe = 2;
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, p, 1, S, &o));
    dfrcl_default_train_options(&o);
    o.fpr = NAN;
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, p, 1, S, &o));
    dfrcl_default_train_options(&o);
    o.pca_images = 0;
    ASSERT_BAD_ARG(dfrcl_model_train(&m, bb, p, 1, S, &o));
    assert_null(m);

    /* A training image that does not exist: the message names it. */
    char missing[400];
    snprintf(missing, sizeof missing, "%s/missing.png", dir);
    p[0] = missing;
    dfrcl_default_train_options(&o);
    o.epochs = 1;
    assert_int_not_equal(dfrcl_model_train(&m, bb, p, 1, S, &o), DFRCL_OK);
    assert_non_null(strstr(dfrcl_last_error(), missing));
    assert_null(m);
}

static void check_info(const dfrcl_model_info *a)
{
    assert_int_equal(a->layers, LAYERS);
    assert_int_equal(a->size, S);
    assert_int_equal(a->channels, dfrcl_backbone_channels(bb));
    assert_int_equal(a->channels, 64 + 64 + 128 + 128);
    assert_true(a->latent >= 1 && a->latent <= a->channels);
    assert_true(isfinite(a->threshold) && a->threshold > 0);
    assert_true(a->fpr == 0.005);
    assert_int_equal(a->epochs, 1);
    assert_int_equal(a->batch, 4);
    assert_int_equal(a->train_images, N_TRAIN);
    assert_true(a->lr == 3e-4f); /* the fast recipe's */
    assert_true(isfinite(a->final_loss) && a->final_loss > 0);
    assert_int_equal(a->seed, 0);
    assert_int_equal(strlen(a->backbone_sha256), 64);
    assert_int_equal(strspn(a->backbone_sha256, "0123456789abcdef"), 64);
    assert_string_equal(a->backbone_desc, "random seed 0");
    assert_int_equal(a->recipe, 0);
    assert_int_equal(a->positions, (S / 4) * (S / 4) / 8); /* the fast recipe's 1/8 */
    assert_int_equal(a->steps, (N_TRAIN + 3) / 4);          /* one epoch of batches of 4 */
}

static void assert_info_equal(const dfrcl_model_info *a, const dfrcl_model_info *b)
{
    assert_int_equal(a->layers, b->layers);
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->channels, b->channels);
    assert_int_equal(a->latent, b->latent);
    assert_true(a->threshold == b->threshold);
    assert_true(a->fpr == b->fpr);
    assert_int_equal(a->epochs, b->epochs);
    assert_int_equal(a->batch, b->batch);
    assert_int_equal(a->train_images, b->train_images);
    assert_true(a->lr == b->lr);
    assert_true(fabs(a->final_loss - b->final_loss) <= 1e-8 * fabs(a->final_loss));
    assert_int_equal(a->seed, b->seed);
    assert_string_equal(a->backbone_sha256, b->backbone_sha256);
    assert_string_equal(a->backbone_desc, b->backbone_desc);
    assert_int_equal(a->recipe, b->recipe);
    assert_int_equal(a->positions, b->positions);
    assert_int_equal(a->steps, b->steps);
}

static void test_train_save_load(void **state)
{
    (void)state;
    /* The progress callback saw every phase: one call per image, per epoch. */
    assert_int_equal(progress_calls[0], N_TRAIN);
    assert_int_equal(progress_calls[1], 1);
    assert_true(progress_calls[2] >= 1);

    dfrcl_model_info a, b, c;
    assert_int_equal(dfrcl_model_get_info(trained, &a), DFRCL_OK);
    check_info(&a);
    ASSERT_BAD_ARG(dfrcl_model_get_info(trained, NULL));
    ASSERT_BAD_ARG(dfrcl_model_save(trained, NULL));
    ASSERT_BAD_ARG(dfrcl_model_save(trained, ""));

    int rc = dfrcl_model_save(trained, model_path);
    if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
    assert_int_equal(rc, DFRCL_OK);
    rc = dfrcl_model_load(&loaded, bb, model_path);
    if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
    assert_int_equal(rc, DFRCL_OK);
    assert_non_null(loaded);
    assert_int_equal(dfrcl_model_get_info(loaded, &b), DFRCL_OK);
    assert_info_equal(&a, &b);
    assert_int_equal(dfrcl_model_peek(&c, model_path), DFRCL_OK);
    assert_info_equal(&a, &c);
}

static void test_load_errors(void **state)
{
    (void)state;
    dfrcl_model *m = (dfrcl_model *)&m;
    char missing[400];
    snprintf(missing, sizeof missing, "%s/no-such-model.safetensors", dir);
    int rc = dfrcl_model_load(&m, bb, missing);
    assert_int_not_equal(rc, DFRCL_OK);
    assert_null(m);
    assert_non_null(strstr(dfrcl_last_error(), missing));

    /* Not a model file. */
    rc = dfrcl_model_load(&m, bb, same_png);
    assert_int_not_equal(rc, DFRCL_OK);
    assert_null(m);
    assert_non_null(strstr(dfrcl_last_error(), same_png));

    /* Another backbone than the one it was trained with. */
    dfrcl_backbone *other = NULL;
    assert_int_equal(dfrcl_backbone_random(&other, ctx, LAYERS, 1), DFRCL_OK);
    assert_int_equal(dfrcl_model_load(&m, other, model_path), DFRCL_ERR_MISMATCH);
    assert_null(m);
    dfrcl_backbone_close(&other);
    assert_int_equal(dfrcl_backbone_random(&other, ctx, LAYERS + 1, 0), DFRCL_OK);
    assert_int_equal(dfrcl_model_load(&m, other, model_path), DFRCL_ERR_MISMATCH);
    dfrcl_backbone_close(&other);

    /* Closing sets the caller's pointer to NULL; a second close is harmless. */
    assert_int_equal(dfrcl_model_load(&m, bb, model_path), DFRCL_OK);
    assert_non_null(m);
    dfrcl_model_close(&m);
    assert_null(m);
    dfrcl_model_close(&m);
}

static void poison(float *map, size_t n)
{
    for (size_t i = 0; i < n; i++) map[i] = NAN;
}

/* Every element finite, and the score is the maximum of the map. */
static void check_map(const float *map, float score)
{
    float mx = -INFINITY;
    for (size_t i = 0; i < (size_t)S * S; i++) {
        if (!isfinite(map[i])) fail_msg("map[%zu] = %g is not finite", i, map[i]);
        if (map[i] > mx) mx = map[i];
    }
    assert_true(isfinite(score));
    assert_true(score == mx);
    assert_true(score >= 0);
}

static void test_score(void **state)
{
    (void)state;
    assert_non_null(loaded);
    size_t n = (size_t)S * S;
    float *m1 = malloc(n * sizeof *m1), *m2 = malloc(n * sizeof *m2), *m3 = malloc(n * sizeof *m3);
    assert_true(m1 && m2 && m3);
    float s1 = NAN, s2 = NAN, s3 = NAN;
    dfrcl_image img = {S, S, 3, same_px};

    poison(m1, n);
    int rc = dfrcl_model_score(trained, &img, m1, &s1);
    if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
    assert_int_equal(rc, DFRCL_OK);
    check_map(m1, s1);

    /* The re-loaded model scores identically. */
    poison(m2, n);
    assert_int_equal(dfrcl_model_score(loaded, &img, m2, &s2), DFRCL_OK);
    check_map(m2, s2);
    assert_true(s1 == s2);
    assert_memory_equal(m1, m2, n * sizeof *m1);

    /* The same pixels from a file (S x S, lossless: nothing resized) give the same map. */
    poison(m3, n);
    rc = dfrcl_model_score_file(loaded, same_png, m3, &s3);
    if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
    assert_int_equal(rc, DFRCL_OK);
    assert_true(s3 == s1);
    assert_memory_equal(m1, m3, n * sizeof *m1);

    /* A file of another size is resized; score may be NULL. */
    poison(m3, n);
    assert_int_equal(dfrcl_model_score_file(trained, big_png, m3, &s3), DFRCL_OK);
    check_map(m3, s3);
    poison(m3, n);
    assert_int_equal(dfrcl_model_score_file(trained, big_png, m3, NULL), DFRCL_OK);
    check_map(m3, s3);

    /* A grey image. */
    uint8_t *grey = texture(S, S, 1, 7);
    dfrcl_image g = {S, S, 1, grey};
    poison(m3, n);
    assert_int_equal(dfrcl_model_score(trained, &g, m3, &s3), DFRCL_OK);
    check_map(m3, s3);

    /* Batches of 2 over 3 images (colour, grey, colour): the maps of one at a time. */
    dfrcl_image three[3] = {img, g, img};
    float *mb = malloc(3 * n * sizeof *mb), sb[3];
    assert_non_null(mb);
    poison(mb, 3 * n);
    poison(sb, 3);
    rc = dfrcl_model_score_batch(loaded, three, 3, 2, mb, sb);
    if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
    assert_int_equal(rc, DFRCL_OK);
    assert_memory_equal(mb, m1, n * sizeof *m1);
    assert_memory_equal(mb + n, m3, n * sizeof *m3);
    assert_memory_equal(mb + 2 * n, m1, n * sizeof *m1);
    assert_true(sb[0] == s1 && sb[1] == s3 && sb[2] == s1);
    poison(mb, 3 * n);
    assert_int_equal(dfrcl_model_score_batch(trained, three, 3, 0, mb, NULL), DFRCL_OK);
    assert_memory_equal(mb + n, m3, n * sizeof *m3);
    ASSERT_BAD_ARG(dfrcl_model_score_batch(loaded, three, 3, 2, NULL, sb));
    dfrcl_image wrong3[2] = {img, {S + 4, S + 4, 3, grey}};
    ASSERT_BAD_ARG(dfrcl_model_score_batch(loaded, wrong3, 2, 2, mb, sb));
    free(mb);
    free(grey);
    free(m1);
    free(m2);
    free(m3);
}

static void test_score_args(void **state)
{
    (void)state;
    float *map = malloc((size_t)S * S * sizeof *map), score = 0;
    assert_non_null(map);
    uint8_t *px = texture(S + 8, S + 8, 3, 3);
    dfrcl_image wrong = {S + 8, S + 8, 3, px};
    ASSERT_BAD_ARG(dfrcl_model_score(trained, &wrong, map, &score));
    assert_non_null(strstr(dfrcl_last_error(), "resize"));
    wrong.width = wrong.height = S - 4;
    ASSERT_BAD_ARG(dfrcl_model_score(loaded, &wrong, map, &score));
    dfrcl_image two = {S, S, 2, px};
    ASSERT_BAD_ARG(dfrcl_model_score(trained, &two, map, &score));
    dfrcl_image none = {S, S, 3, NULL};
    ASSERT_BAD_ARG(dfrcl_model_score(trained, &none, map, &score));
    dfrcl_image ok = {S, S, 3, px};
    ASSERT_BAD_ARG(dfrcl_model_score(trained, NULL, map, &score));
    ASSERT_BAD_ARG(dfrcl_model_score(trained, &ok, NULL, &score));
    ASSERT_BAD_ARG(dfrcl_model_score_file(trained, NULL, map, &score));
    ASSERT_BAD_ARG(dfrcl_model_score_file(trained, same_png, NULL, &score));

    char missing[400];
    snprintf(missing, sizeof missing, "%s/missing.png", dir);
    assert_int_not_equal(dfrcl_model_score_file(trained, missing, map, &score), DFRCL_OK);
    assert_non_null(strstr(dfrcl_last_error(), missing));
    free(px);
    free(map);
}

int main(void)
{
    const struct CMUnitTest host_tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_null_args),
    };
    int failed = cmocka_run_group_tests_name("host", host_tests, NULL, NULL);

    dfrcl_settings s;
    dfrcl_default_settings(&s);
    s.verbosity = 0;
    int rc = dfrcl_open(&ctx, &s);
    if (rc == DFRCL_ERR_NO_DEVICE) {
        fprintf(stderr, "skip: %s\n", dfrcl_last_error());
        return failed ? 1 : DFR_TEST_SKIP;
    }
    if (rc) {
        fprintf(stderr, "%s\n", dfrcl_last_error());
        return 1;
    }
    const struct CMUnitTest device_tests[] = {
        cmocka_unit_test(test_train_args),      cmocka_unit_test(test_train_save_load),
        cmocka_unit_test(test_load_errors),     cmocka_unit_test(test_score),
        cmocka_unit_test(test_score_args),
    };
    failed += cmocka_run_group_tests_name("model", device_tests, setup, teardown);
    dfrcl_close(&ctx);
    return failed;
}
