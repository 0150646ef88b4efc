/* The synthetic demo dataset: layout, masks that are exactly the changed pixels, determinism. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

#include "testutil.h"
#include "dfrcl.h"
#include "io/dataset.h"
#include "io/demo_data.h"
#include "io/image.h"
#include "util/error.h"
#include "util/fsutil.h"

#define SEED 1234u
#define SIZE 96 /* small, to keep the test quick; the default 256 is timed separately */
#define N_TRAIN 5
#define N_GOOD 2
#define N_DEFECT 3

static char tmpdir[256];

static const char *path_in(const char *root, const char *rel)
{
    static char buf[8][4096];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, 4096, "%s/%s", root, rel);
    return b;
}

/* Removes a directory tree made by the tests (plain files and folders only). */
static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Names in a folder, sorted, as one "a,b,c" string (so a layout check reads in one line). */
static void listing(const char *dir, char *out, size_t cap)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    out[0] = 0;
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            if (out[0]) strncat(out, ",", cap - strlen(out) - 1);
            strncat(out, names[i]->d_name, cap - strlen(out) - 1);
        }
        free(names[i]);
    }
    free(names);
}

static void load(dfrcl_image *img, const char *path, int channels)
{
    int rc = dfrcl_image_load(img, path);
    if (rc) fail_msg("%s: %s", path, dfrcl_last_error());
    assert_int_equal(img->width, SIZE);
    assert_int_equal(img->height, SIZE);
    assert_int_equal(img->channels, channels);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    unsigned char *d = NULL;
    if (dfr_read_file(path, &d, len)) fail_msg("cannot read %s", path);
    return d;
}

static const char *make_dataset(const char *name, uint32_t seed)
{
    static char buf[4][512];
    static int next;
    char *root = buf[next++ % 4];
    snprintf(root, 512, "%s/%s", tmpdir, name);
    int rc = dfr_demo_dataset_write(root, SIZE, N_TRAIN, N_GOOD, N_DEFECT, seed);
    if (rc) fail_msg("dfr_demo_dataset_write: %s", dfrcl_last_error());
    return root;
}

static void test_kinds(void **state)
{
    (void)state;
    int n = 0;
    const char *const *k = dfr_demo_defect_kinds(&n);
    assert_true(n >= 2 && n <= 3);
    for (int i = 0; i < n; i++) {
        assert_non_null(k[i]);
        assert_true(strlen(k[i]) > 0 && !strchr(k[i], '/'));
        for (int j = 0; j < i; j++) assert_string_not_equal(k[i], k[j]);
    }
    assert_non_null(dfr_demo_defect_kinds(NULL));
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_layout(void **state)
{
    (void)state;
    const char *root = make_dataset("layout", SEED);
    int nk;
    const char *const *kinds = dfr_demo_defect_kinds(&nk);
    char got[4096], want[4096];

    listing(root, got, sizeof got);
    assert_string_equal(got, "ground_truth,test,train");
    listing(path_in(root, "train"), got, sizeof got);
    assert_string_equal(got, "good");
    listing(path_in(root, "train/good"), got, sizeof got);
    assert_string_equal(got, "000.png,001.png,002.png,003.png,004.png");
    listing(path_in(root, "test/good"), got, sizeof got);
    assert_string_equal(got, "000.png,001.png");

    /* test/ holds good plus every kind (alphabetical), ground_truth/ every kind. */
    char sorted[8][64];
    int ns = 0;
    snprintf(sorted[ns++], 64, "good");
    for (int k = 0; k < nk; k++) snprintf(sorted[ns++], 64, "%s", kinds[k]);
    qsort(sorted, (size_t)ns, 64, cmp_name);
    want[0] = 0;
    for (int i = 0; i < ns; i++) {
        if (i) strcat(want, ",");
        strcat(want, sorted[i]);
    }
    listing(path_in(root, "test"), got, sizeof got);
    assert_string_equal(got, want);

    for (int k = 0; k < nk; k++) {
        char rel[256];
        snprintf(rel, sizeof rel, "test/%s", kinds[k]);
        listing(path_in(root, rel), got, sizeof got);
        assert_string_equal(got, "000.png,001.png,002.png");
        snprintf(rel, sizeof rel, "ground_truth/%s", kinds[k]);
        listing(path_in(root, rel), got, sizeof got);
        assert_string_equal(got, "000_mask.png,001_mask.png,002_mask.png");
    }
    /* The dataset lister of the real pipeline finds the train images. */
    dfr_file_list l;
    assert_int_equal(dfr_list_train_images(root, &l), DFRCL_OK);
    assert_int_equal(l.count, N_TRAIN);
    dfr_file_list_free(&l);
}

/* Every written image decodes at the right size; good images equal dfr_demo_render's output. */
static void test_good_images(void **state)
{
    (void)state;
    const char *root = make_dataset("good", SEED);
    uint8_t *ref = malloc(3 * SIZE * SIZE);
    assert_non_null(ref);
    for (int i = 0; i < N_TRAIN + N_GOOD; i++) {
        char rel[64];
        uint32_t id = i < N_TRAIN ? DFR_DEMO_ID_TRAIN(i) : DFR_DEMO_ID_TEST_GOOD(i - N_TRAIN);
        snprintf(rel, sizeof rel, i < N_TRAIN ? "train/good/%03d.png" : "test/good/%03d.png",
                 i < N_TRAIN ? i : i - N_TRAIN);
        dfrcl_image img;
        load(&img, path_in(root, rel), 3);
        assert_int_equal(dfr_demo_render(ref, NULL, SIZE, SEED, id, DFR_DEMO_NO_DEFECT), 0);
        assert_memory_equal(img.pixels, ref, 3 * SIZE * SIZE);
        dfrcl_image_free(&img);
    }
    free(ref);
}

/* The claim of demo_data.h: mask == exactly the pixels that differ from the same image without
 * the defect, each by >= DFR_DEMO_MIN_CHANGE in some channel; masks are 0/255 and non-empty, and
 * a defect is neither a speck nor most of the image. */
static void check_defect(const uint8_t *img, const uint8_t *mask, const uint8_t *clean, int size,
                         const char *what)
{
    size_t n = (size_t)size * (size_t)size, on = 0;
    for (size_t p = 0; p < n; p++) {
        if (mask[p] != 0 && mask[p] != 255) fail_msg("%s: mask value %d at %zu", what, mask[p], p);
        int d = 0;
        for (int c = 0; c < 3; c++) {
            int e = abs((int)img[3 * p + c] - (int)clean[3 * p + c]);
            if (e > d) d = e;
        }
        if (mask[p]) {
            on++;
            if (d < DFR_DEMO_MIN_CHANGE)
                fail_msg("%s: masked pixel (%zu,%zu) changed by only %d", what, p % (size_t)size,
                         p / (size_t)size, d);
        } else if (d != 0) {
            fail_msg("%s: pixel (%zu,%zu) changed by %d outside the mask", what, p % (size_t)size,
                     p / (size_t)size, d);
        }
    }
    if (on < 12 || on > n / 4) fail_msg("%s: %zu of %zu pixels masked", what, on, n);
}

static void test_defect_files(void **state)
{
    (void)state;
    const char *root = make_dataset("defects", SEED);
    int nk;
    const char *const *kinds = dfr_demo_defect_kinds(&nk);
    uint8_t *clean = malloc(3 * SIZE * SIZE), *rgb = malloc(3 * SIZE * SIZE),
            *mask = malloc(SIZE * SIZE);
    assert_true(clean && rgb && mask);
    for (int k = 0; k < nk; k++) {
        for (int i = 0; i < N_DEFECT; i++) {
            char rel[256], what[300];
            dfrcl_image img, gt;
            snprintf(rel, sizeof rel, "test/%s/%03d.png", kinds[k], i);
            load(&img, path_in(root, rel), 3);
            snprintf(what, sizeof what, "%s", rel);
            snprintf(rel, sizeof rel, "ground_truth/%s/%03d_mask.png", kinds[k], i);
            load(&gt, path_in(root, rel), 1);
            uint32_t id = DFR_DEMO_ID_DEFECT(k, i);
            assert_int_equal(dfr_demo_render(clean, NULL, SIZE, SEED, id, DFR_DEMO_NO_DEFECT), 0);
            check_defect(img.pixels, gt.pixels, clean, SIZE, what);
            /* The files are what the renderer makes. */
            assert_int_equal(dfr_demo_render(rgb, mask, SIZE, SEED, id, k), 0);
            assert_memory_equal(img.pixels, rgb, 3 * SIZE * SIZE);
            assert_memory_equal(gt.pixels, mask, SIZE * SIZE);
            dfrcl_image_free(&img);
            dfrcl_image_free(&gt);
        }
    }
    free(clean);
    free(rgb);
    free(mask);
}

/* The mask guarantee over many random defects and several sizes, in memory (no files). */
static void test_defects_many(void **state)
{
    (void)state;
    static const int sizes[] = {32, 64, 256, 301};
    int nk;
    dfr_demo_defect_kinds(&nk);
    uint8_t *clean = malloc(3 * 301 * 301), *rgb = malloc(3 * 301 * 301), *mask = malloc(301 * 301);
    assert_true(clean && rgb && mask);
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int size = sizes[si], reps = size > 100 ? 10 : 40;
        for (int k = 0; k < nk; k++) {
            for (int r = 0; r < reps; r++) {
                uint32_t seed = 77u + (uint32_t)r, id = DFR_DEMO_ID_DEFECT(k, r);
                char what[96];
                snprintf(what, sizeof what, "size %d kind %d seed %u", size, k, seed);
                assert_int_equal(dfr_demo_render(clean, NULL, size, seed, id, DFR_DEMO_NO_DEFECT), 0);
                assert_int_equal(dfr_demo_render(rgb, mask, size, seed, id, k), 0);
                check_defect(rgb, mask, clean, size, what);
            }
        }
    }
    free(clean);
    free(rgb);
    free(mask);
}

/* The fabric looks like fabric: a texture with contrast, not flat, not saturated. */
static void test_texture_stats(void **state)
{
    (void)state;
    uint8_t *rgb = malloc(3 * 256 * 256);
    assert_non_null(rgb);
    assert_int_equal(dfr_demo_render(rgb, NULL, 256, SEED, 0, DFR_DEMO_NO_DEFECT), 0);
    double sum = 0, sum2 = 0;
    int lo = 255, hi = 0;
    for (int p = 0; p < 256 * 256; p++) {
        int v = rgb[3 * p];
        sum += v;
        sum2 += (double)v * v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        /* tan: red > green > blue everywhere */
        assert_true(rgb[3 * p] >= rgb[3 * p + 1] && rgb[3 * p + 1] >= rgb[3 * p + 2]);
    }
    double mean = sum / 65536, sd = sqrt(sum2 / 65536 - mean * mean);
    assert_true(mean > 120 && mean < 220);
    assert_true(sd > 10);
    assert_true(lo > 60 && hi < 255);
    free(rgb);
}

static int files_equal(const char *a, const char *b)
{
    size_t la, lb;
    unsigned char *da = slurp(a, &la), *db = slurp(b, &lb);
    int eq = la == lb && !memcmp(da, db, la);
    free(da);
    free(db);
    return eq;
}

static void test_determinism(void **state)
{
    (void)state;
    const char *a = make_dataset("det_a", SEED);
    const char *b = make_dataset("det_b", SEED);
    const char *c = make_dataset("det_c", SEED + 1);
    int nk;
    const char *const *kinds = dfr_demo_defect_kinds(&nk);
    char rel[256];
    for (int i = 0; i < N_TRAIN; i++) {
        snprintf(rel, sizeof rel, "train/good/%03d.png", i);
        assert_true(files_equal(path_in(a, rel), path_in(b, rel)));
        assert_false(files_equal(path_in(a, rel), path_in(c, rel)));
    }
    for (int k = 0; k < nk; k++) {
        for (int i = 0; i < N_DEFECT; i++) {
            snprintf(rel, sizeof rel, "test/%s/%03d.png", kinds[k], i);
            assert_true(files_equal(path_in(a, rel), path_in(b, rel)));
            assert_false(files_equal(path_in(a, rel), path_in(c, rel)));
            snprintf(rel, sizeof rel, "ground_truth/%s/%03d_mask.png", kinds[k], i);
            assert_true(files_equal(path_in(a, rel), path_in(b, rel)));
            assert_false(files_equal(path_in(a, rel), path_in(c, rel)));
        }
    }
    /* Train images differ from each other, and not just by noise: they differ in many pixels
     * by a lot (phase, jitter, lighting), and so do defect positions between images. */
    dfrcl_image im[N_TRAIN];
    for (int i = 0; i < N_TRAIN; i++) {
        snprintf(rel, sizeof rel, "train/good/%03d.png", i);
        load(&im[i], path_in(a, rel), 3);
    }
    for (int i = 0; i < N_TRAIN; i++) {
        for (int j = 0; j < i; j++) {
            size_t big = 0;
            for (size_t p = 0; p < 3 * SIZE * SIZE; p++)
                big += abs((int)im[i].pixels[p] - (int)im[j].pixels[p]) > 20;
            if (big < 3 * SIZE * SIZE / 10) fail_msg("train %d and %d nearly equal (%zu)", i, j, big);
        }
    }
    for (int i = 0; i < N_TRAIN; i++) dfrcl_image_free(&im[i]);
    dfrcl_image m0, m1;
    snprintf(rel, sizeof rel, "ground_truth/%s/000_mask.png", kinds[0]);
    load(&m0, path_in(a, rel), 1);
    snprintf(rel, sizeof rel, "ground_truth/%s/001_mask.png", kinds[0]);
    load(&m1, path_in(a, rel), 1);
    assert_memory_not_equal(m0.pixels, m1.pixels, SIZE * SIZE);
    dfrcl_image_free(&m0);
    dfrcl_image_free(&m1);
}

/* An image does not depend on how many others are written. */
static void test_counts_independent(void **state)
{
    (void)state;
    char root[512];
    snprintf(root, sizeof root, "%s/counts", tmpdir);
    assert_int_equal(dfr_demo_dataset_write(root, SIZE, 2, 0, 1, SEED), 0);
    const char *full = make_dataset("counts_full", SEED);
    assert_true(files_equal(path_in(root, "train/good/001.png"), path_in(full, "train/good/001.png")));
    int nk;
    const char *const *kinds = dfr_demo_defect_kinds(&nk);
    char rel[256];
    snprintf(rel, sizeof rel, "test/%s/000.png", kinds[nk - 1]);
    assert_true(files_equal(path_in(root, rel), path_in(full, rel)));
    /* n_test_good = 0 leaves test/good empty but present. */
    char got[64];
    listing(path_in(root, "test/good"), got, sizeof got);
    assert_string_equal(got, "");
}

static void test_errors(void **state)
{
    (void)state;
    char root[600], file[512];
    /* A root below a regular file cannot be made, for root users too. */
    snprintf(file, sizeof file, "%s/plainfile", tmpdir);
    assert_int_equal(dfr_write_file_atomic(file, "x", 1), 0);
    snprintf(root, sizeof root, "%s/sub/demo", file);
    assert_int_equal(dfr_demo_dataset_write(root, 64, 2, 1, 1, 1), DFRCL_ERR_IO);
    assert_non_null(strstr(dfrcl_last_error(), root));
    /* The root itself a file. */
    assert_int_not_equal(dfr_demo_dataset_write(file, 64, 2, 1, 1, 1), DFRCL_OK);
    assert_non_null(strstr(dfrcl_last_error(), file));

    snprintf(root, sizeof root, "%s/bad", tmpdir);
    assert_int_equal(dfr_demo_dataset_write(root, 16, 2, 1, 1, 1), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_demo_dataset_write(root, 100000, 2, 1, 1, 1), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_demo_dataset_write(root, 64, 0, 1, 1, 1), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_demo_dataset_write(root, 64, 2, -1, 1, 1), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_demo_dataset_write(root, 64, 2, 1, 1001, 1), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_demo_dataset_write(NULL, 64, 2, 1, 1, 1), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_demo_dataset_write("", 64, 2, 1, 1, 1), DFRCL_ERR_INVALID_ARG);
    struct stat st;
    assert_int_not_equal(stat(root, &st), 0); /* nothing made on bad arguments */

    uint8_t px[3 * 64 * 64], m[64 * 64];
    assert_int_equal(dfr_demo_render(px, NULL, 64, 1, 0, 0), DFRCL_ERR_INVALID_ARG); /* no mask */
    assert_int_equal(dfr_demo_render(px, m, 64, 1, 0, 99), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_demo_render(px, m, 64, 1, 0, -2), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_demo_render(NULL, m, 64, 1, 0, 0), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_demo_render(px, m, 8, 1, 0, 0), DFRCL_ERR_INVALID_ARG);
}

/* The README demo must start quickly: the default dataset in well under a second. */
static void test_default_speed(void **state)
{
    (void)state;
    char root[512];
    snprintf(root, sizeof root, "%s/default", tmpdir);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(dfr_demo_dataset_write(root, DFR_DEMO_DEFAULT_SIZE, DFR_DEMO_DEFAULT_TRAIN,
                                            DFR_DEMO_DEFAULT_TEST_GOOD,
                                            DFR_DEMO_DEFAULT_TEST_DEFECT, 0),
                     0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "default demo dataset written in %.3f s\n", s);
    /* Generous bound (shared, slow test machines); the target is < 1 s. */
    assert_true(s < 5.0);
    dfrcl_image img;
    int rc = dfrcl_image_load(&img, path_in(root, "train/good/015.png"));
    assert_int_equal(rc, 0);
    assert_int_equal(img.width, 256);
    dfrcl_image_free(&img);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfrcl-test-demo-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rm_tree(tmpdir);
    return 0;
}

int main(void)
{
    dfr_verbosity = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_good_images),
        cmocka_unit_test(test_defect_files),
        cmocka_unit_test(test_defects_many),
        cmocka_unit_test(test_texture_stats),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_counts_independent),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_default_speed),
    };
    return cmocka_run_group_tests_name("demo_data", tests, setup, teardown);
}
