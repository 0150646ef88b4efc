/* libFuzzer target for the safetensors reader: any input must either open and read back every
 * tensor it lists, or fail with an error message naming the buffer; never crash, leak or read out
 * of bounds (build with -fsanitize=fuzzer,address,undefined).
 *   ./fuzz_safetensors -max_total_time=60 corpus/ */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.safetensors"

static void check_message(void)
{
    if (!strstr(dfrcl_last_error(), NAME)) {
        fprintf(stderr, "error message does not name the input: '%s'\n", dfrcl_last_error());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dfr_safetensors *st = NULL;
    int rc = dfr_st_open_memory(&st, data, size, NAME);
    if (rc) {
        if (st || (rc != DFRCL_ERR_FORMAT && rc != DFRCL_ERR_HOST_MEMORY)) abort();
        check_message();
        return 0;
    }
    for (int i = 0; i < dfr_st_count(st); i++) {
        const dfr_st_tensor *t = dfr_st_tensor_at(st, i);
        /* validation promises these; the sanitizers check the reads themselves */
        if (dfr_st_find(st, t->name) != t || t->end < t->begin || t->end > size) abort();
        uint64_t n = dfr_st_numel(t), bytes = t->end - t->begin;
        if (n * dfr_dtype_size(t->dtype) != bytes) abort();
        unsigned char *raw = malloc(bytes ? bytes : 1);
        float *f = malloc((n ? n : 1) * sizeof(float));
        if (raw && f) {
            if (dfr_st_read_raw(st, t, raw, bytes) || memcmp(raw, data + t->begin, bytes)) abort();
            rc = dfr_st_read_f32(st, t->name, t->ndim, t->shape, f, n);
            int floaty = t->dtype == DFR_DT_F32 || t->dtype == DFR_DT_F16 ||
                         t->dtype == DFR_DT_BF16 || t->dtype == DFR_DT_F64;
            if (floaty ? rc != DFRCL_OK : rc != DFRCL_ERR_FORMAT) abort();
            if (rc) check_message();
            /* a buffer one element short is refused */
            if (n && dfr_st_read_f32(st, t->name, 0, NULL, f, n - 1) == DFRCL_OK) abort();
        }
        free(raw);
        free(f);
    }
    (void)dfr_st_metadata(st, "format");
    (void)dfr_st_find(st, "");
    dfr_st_close(&st);
    return 0;
}
