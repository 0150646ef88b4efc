/* Every exported function with NULL and out-of-range arguments, through the shared library and
 * the public header only: a DFRCL_ERR_INVALID_ARG status and a message naming the function and
 * the argument, never a crash; out-pointers are reset. Also the ABI facts a program relies on:
 * the API version, the public structs' sizes (LP64) and their reserved space. */
#include "dfrcl.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <spng.h>

#include "testfs.h"

#define S 32 /* model size */
#define LAYERS 4

/* Checks the status and that the message names the function and the argument. */
static void check_bad(int rc, const char *fn, const char *arg, int line)
{
    const char *msg = dfrcl_last_error();
    if (rc != DFRCL_ERR_INVALID_ARG || !strstr(msg, fn) || !strstr(msg, arg)) {
        fprintf(stderr, "line %d: %s: status %d (%s), message \"%s\", want %s naming \"%s\"\n",
                line, fn, rc, dfrcl_status_name(rc), msg, dfrcl_status_name(DFRCL_ERR_INVALID_ARG),
                arg);
        fail();
    }
}
#define BAD(fn, arg, ...) check_bad(fn(__VA_ARGS__), #fn, arg, __LINE__)

/* Same for a function that returns a pointer: NULL and a message. */
#define BAD_PTR(fn, arg, ...)                                                                  \
    do {                                                                                       \
        assert_null(fn(__VA_ARGS__));                                                          \
        check_bad(DFRCL_ERR_INVALID_ARG, #fn, arg, __LINE__);                                  \
    } while (0)

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

/* ---- without a device ---- */

static void test_version(void **state)
{
    (void)state;
    unsigned v = dfrcl_version_api();
    assert_int_equal(DFRCL_API_MAJOR(v), DFRCL_API_VERSION_MAJOR);
    assert_true((int)DFRCL_API_MINOR(v) >= DFRCL_API_VERSION_MINOR);
    assert_int_equal(v, DFRCL_API_VERSION); /* this test is built with the library */
    assert_int_equal(DFRCL_API_VERSION_ENCODE(1, 2, 3), 0x010203);
    assert_int_equal(DFRCL_API_MAJOR(0x0a0b0c), 10);
    assert_int_equal(DFRCL_API_MINOR(0x0a0b0c), 11);
    assert_int_equal(DFRCL_API_PATCH(0x0a0b0c), 12);
    assert_true(DFRCL_API_VERSION_ENCODE(1, 10, 0) > DFRCL_API_VERSION_ENCODE(1, 9, 255));
    assert_true(dfrcl_version()[0]);
}

/* The sizes are the ABI: a new field takes slots of `reserved` and leaves them unchanged. */
static void test_struct_sizes(void **state)
{
    (void)state;
#define LAST_IS_RESERVED(T) \
    assert_int_equal(offsetof(T, reserved) + sizeof(((T *)0)->reserved), sizeof(T))
    LAST_IS_RESERVED(dfrcl_settings);
    LAST_IS_RESERVED(dfrcl_train_options);
    LAST_IS_RESERVED(dfrcl_model_info);
    LAST_IS_RESERVED(dfrcl_device_info);
    LAST_IS_RESERVED(dfrcl_score_options);
    LAST_IS_RESERVED(dfrcl_metrics);
    LAST_IS_RESERVED(dfrcl_eval_options);
    LAST_IS_RESERVED(dfrcl_published);
#undef LAST_IS_RESERVED
    if (sizeof(void *) != 8 || sizeof(long) != 8) skip(); /* sizes below are LP64's */
    assert_int_equal(sizeof(dfrcl_settings), 152);
    assert_int_equal(sizeof(dfrcl_train_options), 208);
    assert_int_equal(sizeof(dfrcl_model_info), 512);
    assert_int_equal(sizeof(dfrcl_device_info), 1088);
    assert_int_equal(sizeof(dfrcl_image), 24);
    assert_int_equal(sizeof(dfrcl_score_options), 152);
    assert_int_equal(sizeof(dfrcl_metrics), 240);
    assert_int_equal(sizeof(dfrcl_eval_options), 336);
    assert_int_equal(sizeof(dfrcl_published), 136);
}

/* 1.1's functions that need no device: NULL and out-of-range arguments. */
static void test_io_args(void **state)
{
    (void)state;
    char **l = (char **)&l;
    int n = 5;
    BAD(dfrcl_list_images, "dir", NULL, 0, &l, &n);
    assert_null(l);
    assert_int_equal(n, 0);
    BAD(dfrcl_list_images, "dir", "", 1, &l, &n);
    BAD(dfrcl_list_images, "paths", ".", 0, NULL, &n);
    BAD(dfrcl_list_images, "n", ".", 0, &l, NULL);
    dfrcl_free_list(NULL, 3);
    uint8_t px[16 * 16 * 3] = {0};
    float map[16 * 16] = {0};
    dfrcl_image img = {16, 16, 3, px}, ov, mask, two = {16, 16, 2, px}, none = {16, 16, 3, NULL};
    BAD(dfrcl_overlay, "img", NULL, map, 0.5f, &ov, &mask);
    BAD(dfrcl_overlay, "img", &none, map, 0.5f, &ov, &mask);
    BAD(dfrcl_overlay, "channels", &two, map, 0.5f, &ov, &mask);
    BAD(dfrcl_overlay, "map", &img, NULL, 0.5f, &ov, &mask);
    BAD(dfrcl_overlay, "overlay", &img, map, 0.5f, NULL, &mask);
    BAD(dfrcl_overlay, "threshold", &img, map, NAN, &ov, &mask);
    assert_int_equal(dfrcl_overlay(&img, map, 0.5f, &ov, NULL), DFRCL_OK);
    assert_int_equal(ov.width, 16);
    assert_int_equal(ov.channels, 3);
    dfrcl_image_free(&ov);
    BAD(dfrcl_image_save_png, "img", NULL, "x.png");
    BAD(dfrcl_image_save_png, "path", &img, NULL);
    BAD(dfrcl_image_save_png, "path", &img, "");
    BAD(dfrcl_save_npy, "map", NULL, 4, 4, "x.npy");
    BAD(dfrcl_save_npy, "width", map, 0, 4, "x.npy");
    BAD(dfrcl_save_npy, "height", map, 4, -1, "x.npy");
    BAD(dfrcl_save_npy, "path", map, 4, 4, NULL);
    BAD_PTR(dfrcl_utf8, "s", NULL, NULL);
    int lossy = 0;
    char *u = dfrcl_utf8("ok\xff.png", &lossy); /* a Latin-1 byte: U+FFFD in its place */
    assert_non_null(u);
    assert_string_equal(u, "ok\xef\xbf\xbd.png");
    assert_int_equal(lossy, 1);
    dfrcl_free(u);
    BAD(dfrcl_write_file, "path", NULL, "x", 1);
    BAD(dfrcl_write_file, "data", "x.txt", NULL, 1);
    BAD(dfrcl_demo_dataset_write, "dir", NULL, 32, 1, 1, 1, 0);
    BAD(dfrcl_demo_dataset_write, "size", "d", 31, 1, 1, 1, 0);
    BAD(dfrcl_demo_dataset_write, "size", "d", 4097, 1, 1, 1, 0);
    BAD(dfrcl_demo_dataset_write, "n_train", "d", 32, 0, 1, 1, 0);
    BAD(dfrcl_demo_dataset_write, "n_test_good", "d", 32, 1, -1, 1, 0);
    BAD(dfrcl_demo_dataset_write, "n_test_defect", "d", 32, 1, 1, 1001, 0);
    dfrcl_published p;
    BAD(dfrcl_published_find, "data", NULL, 12, &p);
    BAD(dfrcl_published_find, "out", "x/hazelnut", 12, NULL);
    assert_int_equal(dfrcl_published_find("/data/mvtec/hazelnut/", 12, &p), 1);
    assert_string_equal(p.category, "hazelnut");
    assert_int_equal(p.layers, 12);
    assert_int_equal(dfrcl_published_find("/data/fabric", 12, &p), 0);
    BAD(dfrcl_context_device_count, "ctx", NULL);
    BAD_PTR(dfrcl_context_device_at, "ctx", NULL, 0);
    BAD(dfrcl_evaluate, "m", NULL, NULL, NULL);
    dfrcl_score_options so;
    dfrcl_default_score_options(&so);
    assert_true(all_zero(&so, sizeof so));
    dfrcl_eval_options eo;
    dfrcl_default_eval_options(&eo);
    assert_true(all_zero(&eo, sizeof eo));
}

static void test_defaults_and_frees(void **state)
{
    (void)state;
    dfrcl_settings s;
    memset(&s, 0x5a, sizeof s);
    dfrcl_default_settings(&s);
    assert_true(all_zero(s.reserved, sizeof s.reserved));
    assert_null(s.device);
    assert_null(s.cache_dir);
    dfrcl_train_options o;
    memset(&o, 0x5a, sizeof o);
    dfrcl_default_train_options(&o);
    assert_true(all_zero(o.reserved, sizeof o.reserved));
    /* Void functions: NULL does nothing. */
    dfrcl_default_settings(NULL);
    dfrcl_default_train_options(NULL);
    dfrcl_free(NULL);
    dfrcl_image_free(NULL);
    dfrcl_image img = {0};
    dfrcl_image_free(&img);
    dfrcl_close(NULL);
    dfrcl_backbone_close(NULL);
    dfrcl_model_close(NULL);
    dfrcl_context *c = NULL;
    dfrcl_backbone *b = NULL;
    dfrcl_model *m = NULL;
    dfrcl_close(&c);
    dfrcl_backbone_close(&b);
    dfrcl_model_close(&m);
    /* Names exist for any status. */
    assert_true(dfrcl_last_error() != NULL);
    int codes[] = {0, -1, -30, DFRCL_ERR_INVALID_ARG, -2011, -99999, 1, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        assert_true(dfrcl_status_name(codes[i]) && dfrcl_status_name(codes[i])[0]);
}

static void test_null_args(void **state)
{
    (void)state;
    dfrcl_device_info *list = (dfrcl_device_info *)&list; /* garbage the call must reset */
    int count = 7;
    BAD(dfrcl_list_devices, "out", NULL, &count);
    assert_int_equal(count, 0);
    BAD(dfrcl_list_devices, "count", &list, NULL);
    assert_null(list);

    dfrcl_context *c = (dfrcl_context *)&c;
    BAD(dfrcl_open, "ctx", NULL, NULL);
    dfrcl_settings s;
    dfrcl_default_settings(&s);
    s.reserved[3] = 1; /* an uninitialised struct, or a field from a newer header */
    BAD(dfrcl_open, "reserved", &c, &s);
    assert_null(c);
    assert_non_null(strstr(dfrcl_last_error(), "dfrcl_default_settings"));
    dfrcl_default_settings(&s);
    s.verbosity = -1;
    BAD(dfrcl_open, "verbosity", &c, &s);
    dfrcl_default_settings(&s);
    s.precision = 8;
    BAD(dfrcl_open, "precision", &c, &s);
    BAD_PTR(dfrcl_context_device, "ctx", NULL);

    BAD_PTR(dfrcl_layer_name, "layer", -1);
    BAD_PTR(dfrcl_layer_name, "layer", DFRCL_VGG19_MAX_LAYERS);
    BAD_PTR(dfrcl_layer_name, "layer", INT_MIN);
    assert_string_equal(dfrcl_layer_name(0), "relu1_1");
    assert_string_equal(dfrcl_layer_name(DFRCL_VGG19_MAX_LAYERS - 1), "relu5_4");

    dfrcl_backbone *b = (dfrcl_backbone *)&b;
    BAD(dfrcl_backbone_load, "bb", NULL, NULL, "w.safetensors", LAYERS);
    BAD(dfrcl_backbone_load, "ctx", &b, NULL, "w.safetensors", LAYERS);
    assert_null(b);
    b = (dfrcl_backbone *)&b;
    BAD(dfrcl_backbone_load, "path", &b, NULL, NULL, LAYERS);
    assert_null(b);
    BAD(dfrcl_backbone_random, "bb", NULL, NULL, LAYERS, 0);
    b = (dfrcl_backbone *)&b;
    BAD(dfrcl_backbone_random, "ctx", &b, NULL, LAYERS, 0);
    assert_null(b);
    BAD(dfrcl_backbone_channels, "bb", NULL);
    BAD(dfrcl_backbone_layers, "bb", NULL);

    uint8_t px[12] = {0};
    dfrcl_image img = {2, 2, 3, px}, out = {0};
    BAD(dfrcl_image_load, "img", NULL, "x.png");
    BAD(dfrcl_image_load, "path", &out, NULL);
    BAD(dfrcl_image_resize, "dst", NULL, &img, 4, 4);
    BAD(dfrcl_image_resize, "src", &out, NULL, 4, 4);
    BAD(dfrcl_image_resize, "width", &out, &img, 0, 4);
    BAD(dfrcl_image_resize, "height", &out, &img, 4, -1);
    BAD(dfrcl_image_resize, "width", &out, &img, INT_MAX, INT_MAX);
    dfrcl_image bad[] = {{2, 2, 3, NULL}, {-2, 2, 3, px}, {2, 0, 3, px}, {2, 2, 0, px},
                         {2, 2, 17, px}, {INT_MAX, INT_MAX, 3, px}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        BAD(dfrcl_image_resize, "src", &out, &bad[i], 4, 4);
    assert_null(out.pixels);

    float f[16], score;
    BAD(dfrcl_features, "bb", NULL, &img, S, f);

    dfrcl_model *m = (dfrcl_model *)&m;
    const char *paths[1] = {"x.png"};
    BAD(dfrcl_model_train, "m", NULL, NULL, paths, 1, S, NULL);
    BAD(dfrcl_model_train, "bb", &m, NULL, paths, 1, S, NULL);
    assert_null(m);
    BAD(dfrcl_model_save, "m", NULL, "x.safetensors");
    m = (dfrcl_model *)&m;
    BAD(dfrcl_model_load, "m", NULL, NULL, "x.safetensors");
    BAD(dfrcl_model_load, "bb", &m, NULL, "x.safetensors");
    assert_null(m);
    dfrcl_model_info info;
    BAD(dfrcl_model_peek, "info", NULL, "x.safetensors");
    BAD(dfrcl_model_peek, "path", &info, NULL);
    BAD(dfrcl_model_peek, "path", &info, "");
    BAD(dfrcl_model_get_info, "m", NULL, &info);
    BAD(dfrcl_model_score, "m", NULL, &img, f, &score);
    BAD(dfrcl_model_score_file, "m", NULL, "x.png", f, &score);
    BAD(dfrcl_model_score_batch, "m", NULL, &img, 1, 0, f, &score);
}

/* ---- on a device ---- */

static dfrcl_context *ctx;
static dfrcl_backbone *bb;
static dfrcl_model *model;
static char dir[256], png[320], model_path[320];
static uint8_t rgb[S * S * 3];

static int write_png(const char *path, int w, int h, const uint8_t *px)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    spng_ctx *c = spng_ctx_new(SPNG_CTX_ENCODER);
    struct spng_ihdr ih = {(uint32_t)w, (uint32_t)h, 8, SPNG_COLOR_TYPE_TRUECOLOR, 0, 0, 0};
    int e = c ? spng_set_png_file(c, f) : -1;
    if (!e) e = spng_set_ihdr(c, &ih);
    if (!e) e = spng_encode_image(c, px, (size_t)w * h * 3, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    spng_ctx_free(c);
    if (fclose(f)) e = -1;
    return e ? -1 : 0;
}

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 37 % 251);
    if (dfr_test_mkdtemp(dir, sizeof dir, "api-args")) return -1;
    snprintf(png, sizeof png, "%s/a.png", dir);
    snprintf(model_path, sizeof model_path, "%s/m.safetensors", dir);
    if (write_png(png, S, S, rgb)) return -1;
    int rc = dfrcl_backbone_random(&bb, ctx, LAYERS, 0);
    dfrcl_train_options o;
    dfrcl_default_train_options(&o);
    o.epochs = 1;
    o.latent = 8; /* no PCA: quick */
    const char *paths[1] = {png};
    if (!rc) rc = dfrcl_model_train(&model, bb, paths, 1, S, &o);
    if (rc) fprintf(stderr, "setup: %s\n", dfrcl_last_error());
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    dfrcl_model_close(&model);
    dfrcl_backbone_close(&bb);
    dfrcl_backbone_close(&bb); /* twice: the pointer is NULL now */
    if (dir[0]) dfr_test_rmdir_flat(dir);
    return 0;
}

static void test_context_and_backbone(void **state)
{
    (void)state;
    dfrcl_device_info *list = NULL;
    int count = 0;
    assert_int_equal(dfrcl_list_devices(&list, &count), DFRCL_OK);
    assert_true(count >= 1);
    for (int i = 0; i < count; i++) assert_true(all_zero(list[i].reserved, sizeof list[i].reserved));
    dfrcl_free(list);
    const dfrcl_device_info *d = dfrcl_context_device(ctx);
    assert_non_null(d);
    assert_true(all_zero(d->reserved, sizeof d->reserved));

    dfrcl_backbone *b = (dfrcl_backbone *)&b;
    int layers[] = {0, -1, DFRCL_VGG19_MAX_LAYERS + 1, INT_MIN};
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
        BAD(dfrcl_backbone_random, "layers", &b, ctx, layers[i], 0);
        assert_null(b);
        if (layers[i]) /* 0: all the file holds (1.1) */
            BAD(dfrcl_backbone_load, "layers", &b, ctx, "w.safetensors", layers[i]);
    }
    BAD(dfrcl_backbone_load, "path", &b, ctx, "", LAYERS);
    assert_int_equal(dfrcl_backbone_layers(bb), LAYERS);
    assert_int_equal(dfrcl_backbone_channels(bb), 64 + 64 + 128 + 128);

    size_t n = (size_t)dfrcl_backbone_channels(bb) * (S / 4) * (S / 4);
    float *out = malloc(n * sizeof *out);
    assert_non_null(out);
    dfrcl_image img = {S, S, 3, rgb}, small = {S - 4, S - 4, 3, rgb};
    BAD(dfrcl_features, "img", bb, NULL, S, out);
    BAD(dfrcl_features, "out", bb, &img, S, NULL);
    BAD(dfrcl_features, "img", bb, &small, S, out); /* not size x size */
    int sizes[] = {0, -S, S - 2, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        BAD(dfrcl_features, "size", bb, &img, sizes[i], out);
    dfrcl_image two = {S, S, 2, rgb};
    assert_int_equal(dfrcl_features(bb, &two, S, out), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfrcl_features(bb, &img, S, out), DFRCL_OK);
    free(out);
}

static void test_train_args(void **state)
{
    (void)state;
    dfrcl_model *m = (dfrcl_model *)&m;
    const char *paths[2] = {png, NULL};
    dfrcl_train_options o;
    dfrcl_default_train_options(&o);
    BAD(dfrcl_model_train, "n", &m, bb, paths, 0, S, &o);
    assert_null(m);
    BAD(dfrcl_model_train, "n", &m, bb, paths, -1, S, &o);
    BAD(dfrcl_model_train, "image_paths", &m, bb, NULL, 1, S, &o);
    BAD(dfrcl_model_train, "image_paths[1]", &m, bb, paths, 2, S, &o);
    int sizes[] = {0, -S, S + 2, 2, 1 << 20, INT_MIN};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        BAD(dfrcl_model_train, "size", &m, bb, paths, 1, sizes[i], &o);

    /* Each option out of range, named as the caller wrote it. */
#define BAD_NAMED(field, name, value)                                                          \
    do {                                                                                       \
        dfrcl_default_train_options(&o);                                                       \
        o.field = value;                                                                       \
        BAD(dfrcl_model_train, name, &m, bb, paths, 1, S, &o);                                 \
        assert_null(m);                                                                        \
    } while (0)
#define BAD_OPTION(field, value) BAD_NAMED(field, "o->" #field, value)
    BAD_NAMED(reserved[0], "o->reserved", 1);
    BAD_NAMED(reserved[7], "o->reserved", UINT64_MAX);
    BAD_OPTION(recipe, 2);
    BAD_OPTION(recipe, -1);
    BAD_OPTION(epochs, -1);
    BAD_OPTION(batch, 0);
    BAD_OPTION(batch, 65);
    BAD_OPTION(lr, -1e-3f);
    BAD_OPTION(lr, NAN);
    BAD_OPTION(lr, INFINITY);
    BAD_OPTION(latent, -1);
    BAD_OPTION(pca_keep, 0);
    BAD_OPTION(pca_keep, 1.5);
    BAD_OPTION(pca_keep, NAN);
    BAD_OPTION(pca_images, 0);
    BAD_OPTION(fpr, 0);
    BAD_OPTION(fpr, 1);
    BAD_OPTION(fpr, NAN);
    BAD_OPTION(memory_mib, -1);
    BAD_OPTION(memory_mib, INFINITY);
    BAD_OPTION(positions, -1);
    BAD_OPTION(patience, -2);
    BAD_OPTION(store, 4);
    BAD_OPTION(store, -1);
    BAD_OPTION(store_precision, 8);
    BAD_OPTION(checkpoint_s, -1);
    BAD_OPTION(checkpoint_s, NAN);
    BAD_OPTION(checkpoint, "");
    BAD_OPTION(resume, 1); /* without a checkpoint */
    BAD_OPTION(eval_every, -1);
    BAD_OPTION(eval_every, 1); /* without on_eval */
#undef BAD_OPTION
#undef BAD_NAMED
    /* A latent size larger than the feature: the trainer's check. */
    dfrcl_default_train_options(&o);
    o.latent = 100000;
    assert_int_equal(dfrcl_model_train(&m, bb, paths, 1, S, &o), DFRCL_ERR_INVALID_ARG);
    assert_null(m);
}

static void test_model_args(void **state)
{
    (void)state;
    assert_non_null(model);
    BAD(dfrcl_model_save, "path", model, NULL);
    BAD(dfrcl_model_save, "path", model, "");
    assert_int_equal(dfrcl_model_save(model, model_path), DFRCL_OK);
    dfrcl_model *m = (dfrcl_model *)&m;
    BAD(dfrcl_model_load, "path", &m, bb, NULL);
    assert_null(m);
    BAD(dfrcl_model_load, "path", &m, bb, "");
    dfrcl_model_info info;
    memset(&info, 0x5a, sizeof info);
    assert_int_equal(dfrcl_model_peek(&info, model_path), DFRCL_OK);
    assert_true(all_zero(info.reserved, sizeof info.reserved));
    memset(&info, 0x5a, sizeof info);
    BAD(dfrcl_model_get_info, "info", model, NULL);
    assert_int_equal(dfrcl_model_get_info(model, &info), DFRCL_OK);
    assert_true(all_zero(info.reserved, sizeof info.reserved));
    assert_int_equal(info.size, S);

    float *map = malloc(3 * S * S * sizeof *map), score, scores[3];
    assert_non_null(map);
    dfrcl_image img = {S, S, 3, rgb}, big = {S + 4, S + 4, 3, rgb}, none = {S, S, 3, NULL};
    BAD(dfrcl_model_score, "img", model, NULL, map, &score);
    BAD(dfrcl_model_score, "img", model, &none, map, &score);
    BAD(dfrcl_model_score, "map", model, &img, NULL, &score);
    BAD(dfrcl_model_score, "resize", model, &big, map, &score);
    BAD(dfrcl_model_score_file, "path", model, NULL, map, &score);
    BAD(dfrcl_model_score_file, "path", model, "", map, &score);
    BAD(dfrcl_model_score_file, "map", model, png, NULL, &score);
    dfrcl_image imgs[3] = {img, img, none};
    BAD(dfrcl_model_score_batch, "n", model, imgs, -1, 0, map, scores);
    BAD(dfrcl_model_score_batch, "n", model, imgs, INT_MIN, 0, map, scores);
    BAD(dfrcl_model_score_batch, "imgs", model, NULL, 2, 0, map, scores);
    BAD(dfrcl_model_score_batch, "maps", model, imgs, 2, 0, NULL, scores);
    BAD(dfrcl_model_score_batch, "batch", model, imgs, 2, -1, map, scores);
    BAD(dfrcl_model_score_batch, "batch", model, imgs, 2, 1000, map, scores);
    BAD(dfrcl_model_score_batch, "imgs", model, imgs, 3, 2, map, scores); /* imgs[2] */
    BAD(dfrcl_model_score_batch, "image 2", model, imgs, 3, 2, map, scores);
    imgs[2] = big;
    BAD(dfrcl_model_score_batch, "image 2", model, imgs, 3, 2, map, scores);
    /* 1.1: scoring files and evaluating. */
    const char *paths[2] = {png, NULL};
    dfrcl_score_options so;
    dfrcl_default_score_options(&so);
    BAD(dfrcl_model_score_files, "m", NULL, paths, 1, &so, NULL, NULL);
    BAD(dfrcl_model_score_files, "n", model, paths, -1, &so, NULL, NULL);
    BAD(dfrcl_model_score_files, "paths", model, NULL, 1, &so, NULL, NULL);
    BAD(dfrcl_model_score_files, "paths[1]", model, paths, 2, &so, NULL, NULL);
    so.batch = -1;
    BAD(dfrcl_model_score_files, "o->batch", model, paths, 1, &so, NULL, NULL);
    dfrcl_default_score_options(&so);
    so.threads = -1;
    BAD(dfrcl_model_score_files, "o->threads", model, paths, 1, &so, NULL, NULL);
    dfrcl_default_score_options(&so);
    so.reserved[15] = 1;
    BAD(dfrcl_model_score_files, "o->reserved", model, paths, 1, &so, NULL, NULL);
    assert_int_equal(dfrcl_model_score_files(model, paths, 1, NULL, NULL, NULL), DFRCL_OK);
    dfrcl_eval_options eo;
    dfrcl_default_eval_options(&eo);
    BAD(dfrcl_evaluate, "o", model, NULL, NULL);
    BAD(dfrcl_evaluate, "o->data", model, &eo, NULL);
    eo.data = dir;
    eo.reserved[0] = 1;
    BAD(dfrcl_evaluate, "o->reserved", model, &eo, NULL);
    dfrcl_default_eval_options(&eo);
    eo.data = dir;
    eo.score.reserved[3] = 1;
    BAD(dfrcl_evaluate, "o->score->reserved", model, &eo, NULL);
    dfrcl_default_eval_options(&eo);
    eo.data = dir;
    eo.score.batch = 1000;
    BAD(dfrcl_evaluate, "o->score->batch", model, &eo, NULL);
    dfrcl_default_eval_options(&eo);
    eo.data = dir;
    eo.json_path = "";
    BAD(dfrcl_evaluate, "o->json_path", model, &eo, NULL);
    /* Nothing to score is not an error; score may be NULL. */
    assert_int_equal(dfrcl_model_score_batch(model, NULL, 0, 0, NULL, NULL), DFRCL_OK);
    assert_int_equal(dfrcl_model_score(model, &img, map, NULL), DFRCL_OK);
    free(map);
}

int main(void)
{
    const struct CMUnitTest host[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_struct_sizes),
        cmocka_unit_test(test_defaults_and_frees),
        cmocka_unit_test(test_null_args),
        cmocka_unit_test(test_io_args),
    };
    int failed = cmocka_run_group_tests_name("host", host, NULL, NULL);

    dfrcl_settings s;
    dfrcl_default_settings(&s);
    s.verbosity = 0;
    int rc = dfrcl_open(&ctx, &s);
    if (rc == DFRCL_ERR_NO_DEVICE) {
        fprintf(stderr, "skip the device part: %s\n", dfrcl_last_error());
        return failed ? 1 : DFR_TEST_SKIP;
    }
    if (rc) {
        fprintf(stderr, "%s\n", dfrcl_last_error());
        return 1;
    }
    const struct CMUnitTest device[] = {
        cmocka_unit_test(test_context_and_backbone),
        cmocka_unit_test(test_train_args),
        cmocka_unit_test(test_model_args),
    };
    failed += cmocka_run_group_tests_name("device", device, setup, teardown);
    dfrcl_close(&ctx);
    dfrcl_close(&ctx); /* twice: the pointer is NULL now */
    return failed;
}
