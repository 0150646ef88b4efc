/* The public API (include/dfrcl.h) over the internal runtime and model. */
#include <stdlib.h>
#include <string.h>

#include "cl/runtime.h"
#include "model/vgg19.h"
#include "util/error.h"

struct dfrcl_context {
    dfr_runtime *rt;
};

struct dfrcl_backbone {
    dfrcl_context *ctx;
    dfr_vgg19 *vgg;
    cl_mem feat; /* [C, size/4, size/4] for one image */
    int feat_size;
};

int dfrcl_list_devices(dfrcl_device_info **out, int *count)
{
    return dfr_list_devices(out, count, NULL, NULL);
}

void dfrcl_default_settings(dfrcl_settings *s)
{
    memset(s, 0, sizeof *s);
    s->verbosity = 1;
}

int dfrcl_open(dfrcl_context **out, const dfrcl_settings *s)
{
    dfrcl_settings def;
    if (!s) {
        dfrcl_default_settings(&def);
        s = &def;
    }
    *out = NULL;
    dfr_verbosity = s->verbosity;
    dfrcl_context *c = calloc(1, sizeof *c);
    if (!c) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    int rc = dfr_runtime_open(&c->rt, s->device, s->cache_dir, 0);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return DFRCL_OK;
}

void dfrcl_close(dfrcl_context **pc)
{
    if (!*pc) return;
    dfr_runtime_close(&(*pc)->rt);
    free(*pc);
    *pc = NULL;
}

const dfrcl_device_info *dfrcl_context_device(const dfrcl_context *c) { return &c->rt->info; }

const char *dfrcl_layer_name(int layer) { return dfr_vgg19_layer_name(layer); }

int dfrcl_backbone_load(dfrcl_backbone **out, dfrcl_context *ctx, const char *path, int layers)
{
    *out = NULL;
    dfrcl_backbone *bb = calloc(1, sizeof *bb);
    if (!bb) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    bb->ctx = ctx;
    int rc = dfr_vgg19_load(&bb->vgg, ctx->rt, path, layers);
    if (rc) {
        free(bb);
        return rc;
    }
    *out = bb;
    return DFRCL_OK;
}

void dfrcl_backbone_close(dfrcl_backbone **pb)
{
    dfrcl_backbone *bb = *pb;
    if (!bb) return;
    dfr_buffer_release(&bb->feat);
    dfr_vgg19_free(&bb->vgg);
    free(bb);
    *pb = NULL;
}

int dfrcl_backbone_channels(const dfrcl_backbone *bb) { return bb->vgg->channels; }
int dfrcl_backbone_layers(const dfrcl_backbone *bb) { return bb->vgg->layers; }

int dfrcl_features(dfrcl_backbone *bb, const dfrcl_image *img, int size, float *out)
{
    if (!img || !img->pixels || img->width != size || img->height != size)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "features: the image must be %dx%d (resize it first)",
                         size, size);
    size_t n = (size_t)bb->vgg->channels * (size / 4) * (size / 4);
    if (bb->feat_size != size) {
        dfr_buffer_release(&bb->feat);
        bb->feat_size = 0;
        int rc = dfr_buffer_new(bb->ctx->rt, n * sizeof(float), CL_MEM_READ_WRITE,
                                "the regional feature", &bb->feat);
        if (rc) return rc;
        bb->feat_size = size;
    }
    int rc = dfr_vgg19_features(bb->vgg, img->pixels, img->channels, size, bb->feat, 0);
    if (!rc) rc = dfr_read(bb->ctx->rt, bb->feat, 0, n * sizeof(float), out, "download");
    return rc;
}
