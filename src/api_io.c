/* The public API's file helpers (include/dfrcl.h, 1.1): image lists, overlays, PNG, .npy,
 * atomic writes and the demo dataset, as thin checked wrappers of src/io and src/util. */
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "io/dataset.h"
#include "io/demo_data.h"
#include "io/heatmap.h"
#include "io/image.h"
#include "io/npy.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/jsonname.h"

#define CHECK_ARG DFRCL_CHECK_ARG

int dfrcl_list_images(const char *dir, int train, char ***paths, int *n)
{
    if (paths) *paths = NULL;
    if (n) *n = 0;
    CHECK_ARG(paths, "dfrcl_list_images: paths is NULL");
    CHECK_ARG(n, "dfrcl_list_images: n is NULL");
    CHECK_ARG(dir && *dir, "dfrcl_list_images: no dir (dir is NULL or empty)");
    dfr_file_list l = {0};
    int rc = train ? dfr_list_train_images(dir, &l) : dfr_list_images(dir, &l);
    if (rc) return rc;
    *paths = l.paths;
    *n = l.count;
    return DFRCL_OK;
}

void dfrcl_free_list(char **list, int n)
{
    if (!list) return;
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

/* An image as the library's outputs take it: pixels, a sane size, 1 or 3 channels. */
static int check_image(const dfrcl_image *img, const char *fn, const char *name)
{
    CHECK_ARG(img, "%s: %s is NULL", fn, name);
    int rc = dfr_image_check(img, name);
    if (rc) return dfr_error_prefix(rc, "%s", fn);
    CHECK_ARG(img->channels == 1 || img->channels == 3, "%s: %s has %d channels, not 1 or 3", fn,
              name, img->channels);
    return DFRCL_OK;
}

int dfrcl_overlay(const dfrcl_image *img, const float *map, float threshold, dfrcl_image *overlay,
                  dfrcl_image *mask)
{
    if (overlay) memset(overlay, 0, sizeof *overlay);
    if (mask) memset(mask, 0, sizeof *mask);
    CHECK_ARG(overlay, "dfrcl_overlay: overlay is NULL");
    CHECK_ARG(map, "dfrcl_overlay: map is NULL");
    CHECK_ARG(threshold == threshold, "dfrcl_overlay: threshold is NaN");
    int rc = check_image(img, "dfrcl_overlay", "img");
    if (rc) return rc;
    return dfr_anomaly_overlay(img, map, img->width, img->height, threshold, overlay, mask);
}

int dfrcl_image_save_png(const dfrcl_image *img, const char *path)
{
    CHECK_ARG(path && *path, "dfrcl_image_save_png: no path (path is NULL or empty)");
    int rc = check_image(img, "dfrcl_image_save_png", "img");
    if (rc) return rc;
    return dfr_png_write(path, img->width, img->height, img->channels, img->pixels);
}

int dfrcl_save_npy(const float *map, int width, int height, const char *path)
{
    CHECK_ARG(map, "dfrcl_save_npy: map is NULL");
    CHECK_ARG(width >= 1 && height >= 1, "dfrcl_save_npy: width x height is %d x %d, not at "
              "least 1 x 1", width, height);
    CHECK_ARG(path && *path, "dfrcl_save_npy: no path (path is NULL or empty)");
    int64_t shape[2] = {height, width};
    return dfr_npy_write_f32(path, 2, shape, map);
}

int dfrcl_write_file(const char *path, const void *data, size_t n)
{
    CHECK_ARG(path && *path, "dfrcl_write_file: no path (path is NULL or empty)");
    CHECK_ARG(data || n == 0, "dfrcl_write_file: data is NULL (n = %zu)", n);
    return dfr_write_file_atomic(path, n ? data : "", n);
}

char *dfrcl_utf8(const char *s, int *lossy)
{
    if (!s) {
        dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_utf8: s is NULL");
        return NULL;
    }
    char *u = dfr_utf8(s, lossy);
    if (!u) dfr_error(DFRCL_ERR_HOST_MEMORY, "dfrcl_utf8: out of memory");
    return u;
}

int dfrcl_demo_dataset_write(const char *dir, int size, int n_train, int n_test_good,
                             int n_test_defect, uint32_t seed)
{
#define FN "dfrcl_demo_dataset_write: "
    CHECK_ARG(dir && *dir, FN "no dir (dir is NULL or empty)");
    const int most = DFR_DEMO_MAX_COUNT;
    CHECK_ARG(size >= DFR_DEMO_MIN_SIZE && size <= DFR_DEMO_MAX_SIZE, FN "size is %d, not %d..%d",
              size, DFR_DEMO_MIN_SIZE, DFR_DEMO_MAX_SIZE);
    CHECK_ARG(n_train >= 1 && n_train <= most, FN "n_train is %d, not 1..%d", n_train, most);
    CHECK_ARG(n_test_good >= 0 && n_test_good <= most, FN "n_test_good is %d, not 0..%d",
              n_test_good, most);
    CHECK_ARG(n_test_defect >= 0 && n_test_defect <= most, FN "n_test_defect is %d, not 0..%d",
              n_test_defect, most);
#undef FN
    return dfr_demo_dataset_write(dir, size, n_train, n_test_good, n_test_defect, seed);
}
