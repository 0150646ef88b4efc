#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/backbone_opts.h"
#include "cli/cli.h"
#include "cli/internal_backbone.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "util/error.h"

static void help(void)
{
    printf("usage: dfrcl features [options] IMAGE -o OUT.safetensors\n\n"
           "Computes DFR's multi-scale regional feature of one image: the image is resized to\n"
           "S x S (PIL-style antialiased bilinear; an S x S image is used as it is), passed\n"
           "through VGG19, and each ReLU map is resized to S x S and averaged over 4x4 windows.\n"
           "Writes one float32 tensor 'features' of shape [C, S/4, S/4] (C = 1408 for 8 layers,\n"
           "3456 for 12) to a safetensors file.\n\noptions:\n"
           "  -o, --output FILE         where to write (required)\n" CLI_BACKBONE_HELP
           "  -h, --help\n");
}

int cmd_features(int argc, char **argv)
{
    static const struct option opts[] = {CLI_BACKBONE_LONGOPTS,
                                         {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cli_backbone_opts bo;
    cli_backbone_defaults(&bo);
    const char *out_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "d:w:l:s:vqo:h", opts, NULL)) != -1) {
        int r = cli_backbone_option(&bo, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (c == 'o') out_path = optarg;
        else if (c == 'h') {
            help();
            return 0;
        } else return 2;
    }
    if (optind != argc - 1 || !out_path) {
        fprintf(stderr, "dfrcl features: need exactly one IMAGE and -o OUT.safetensors "
                        "(see --help)\n");
        return 2;
    }
    const char *image_path = argv[optind];

    dfrcl_image img = {0}, sized = {0};
    if (dfrcl_image_load(&img, image_path) != DFRCL_OK) return cli_fail(NULL);
    dfrcl_image *use = &img;
    if (img.width != bo.size || img.height != bo.size) {
        if (dfrcl_image_resize(&sized, &img, bo.size, bo.size) != DFRCL_OK) {
            dfrcl_image_free(&img);
            return cli_fail(image_path);
        }
        use = &sized;
    }

    dfr_runtime *rt = NULL;
    dfr_vgg19 *vgg = NULL;
    float *feat = NULL;
    cl_mem dfeat = NULL;
    dfr_st_writer *w = NULL;
    int rc = cli_backbone_open(&bo, 0, &rt, &vgg);
    int q = bo.size / 4;
    size_t n = 0;
    if (!rc) {
        n = (size_t)vgg->channels * q * q;
        feat = malloc(n * sizeof(float));
        if (!feat) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    if (!rc) rc = dfr_buffer_new(rt, n * sizeof(float), CL_MEM_READ_WRITE, "the regional feature",
                                 &dfeat);
    if (!rc) rc = dfr_vgg19_features(vgg, use->pixels, use->channels, bo.size, dfeat, 0);
    if (!rc) rc = dfr_read(rt, dfeat, 0, n * sizeof(float), feat, "download");
    if (!rc) rc = dfr_st_writer_new(&w);
    if (!rc) {
        int64_t shape[3] = {vgg->channels, q, q};
        char num[32];
        rc = dfr_st_writer_add_f32(w, "features", 3, shape, feat);
        snprintf(num, sizeof num, "%d", vgg->layers);
        if (!rc) rc = dfr_st_writer_meta(w, "layers", num);
        snprintf(num, sizeof num, "%d", bo.size);
        if (!rc) rc = dfr_st_writer_meta(w, "size", num);
        if (!rc) rc = dfr_st_writer_meta(w, "image", image_path);
        if (!rc) rc = dfr_st_writer_meta(w, "backbone_sha256", vgg->identity);
        if (!rc) rc = dfr_st_writer_meta(w, "producer", "dfrcl features " DFRCL_VERSION);
        if (!rc) rc = dfr_st_writer_write(w, out_path);
    }
    if (!rc)
        dfr_log(1, "wrote %s: features [%d, %d, %d] (%d layers, size %d)", out_path, vgg->channels,
                q, q, vgg->layers, bo.size);
    int ret = rc ? cli_fail(NULL) : 0;
    dfr_st_writer_free(&w);
    dfr_buffer_release(&dfeat);
    free(feat);
    dfr_vgg19_free(&vgg);
    dfr_runtime_close(&rt);
    dfrcl_image_free(&sized);
    dfrcl_image_free(&img);
    return ret;
}
