/* libFuzzer target for the host side of the model loader: a model file's metadata
 * (dfr_model_peek: format, version, layers, size, channels, latent, threshold, training record,
 * backbone identity) and a weights file's layer discovery (dfr_vgg19_file_layers). Loading the
 * tensors onto a device is the safetensors reader's job (fuzz_safetensors) plus OpenCL uploads,
 * so this target needs no OpenCL device. Any input must be accepted with values inside the
 * documented limits, or refused with a message naming the file; never crash. */
#include <math.h>

#include "fuzz_common.h"
#include "model/dfr.h"
#include "model/vgg19.h"

static void check_info(const dfr_model_info *in)
{
    int ok = in->layers >= 1 && in->layers <= DFR_VGG19_LAYERS && in->size >= 4 &&
             in->size <= DFR_MODEL_MAX_SIZE && in->size % 4 == 0 &&
             in->channels == dfr_vgg19_channels(in->layers) && in->latent >= 1 &&
             in->latent <= in->channels && strlen(in->backbone_sha256) == 64 &&
             isfinite(in->threshold) && isfinite(in->fpr);
    if (!ok) {
        fprintf(stderr, "accepted model metadata out of range: layers %d size %d channels %d "
                        "latent %d threshold %g fpr %g\n",
                in->layers, in->size, in->channels, in->latent, (double)in->threshold, in->fpr);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_as_file(data, size);
    dfr_model_info info;
    int rc = dfr_model_peek(path, &info);
    if (rc == DFRCL_OK) check_info(&info);
    else if (rc == DFRCL_ERR_FORMAT || rc == DFRCL_ERR_MISMATCH || rc == DFRCL_ERR_HOST_MEMORY)
        fuzz_check_message(path);
    else abort();

    int layers = -1;
    rc = dfr_vgg19_file_layers(path, &layers);
    if (rc == DFRCL_OK ? layers < 1 || layers > DFR_VGG19_LAYERS : layers != 0) abort();
    if (rc) fuzz_check_message(path);
    return 0;
}
