/* libFuzzer target for the .npy reader: any input must read back as a float32 array whose
 * elements are the file's last 4 x (product of the shape) bytes, or be refused with a message
 * naming the file; never crash. */
#include "fuzz_common.h"
#include "io/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_as_file(data, size);
    int ndim = -1;
    int64_t shape[DFR_NPY_MAX_DIMS];
    float *arr = NULL;
    int rc = dfr_npy_read_f32(path, &ndim, shape, &arr);
    if (rc) {
        if (arr || ndim != 0 || (rc != DFRCL_ERR_FORMAT && rc != DFRCL_ERR_HOST_MEMORY)) abort();
        fuzz_check_message(path);
        return 0;
    }
    if (!arr || ndim < 0 || ndim > DFR_NPY_MAX_DIMS) abort();
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) abort();
        n *= (uint64_t)shape[i];
    }
    /* the data is the tail of the file, exactly n floats */
    if (n * 4 > size || memcmp(arr, data + size - n * 4, n * 4) != 0) abort();
    free(arr);
    return 0;
}
