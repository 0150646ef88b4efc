#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cl/runtime.h"
#include "cli/cli.h"
#include "util/error.h"

int cmd_devices(int argc, char **argv)
{
    static const struct option opts[] = {{"device", required_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    const char *sel = NULL;
    while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
        if (c == 'd') {
            sel = optarg;
            continue;
        }
        if (c == 'h') {
            printf("usage: dfrcl devices [--device LIST]\n\nLists every OpenCL platform and device "
                   "with its type, compute units, memory,\nmax work-group size and OpenCL C "
                   "version. '*' marks the devices a command would use:\nthe default device (the "
                   "first GPU, else the first device), or those --device\n(or DFRCL_DEVICE) "
                   "names: an index from this list, a name substring, a list of\nthem separated "
                   "by commas ('0,2'), or 'all'.\n");
            return 0;
        }
        return 2;
    }
    int *used = NULL, n_used = 0;
    if (dfr_device_select(sel, &used, &n_used) != DFRCL_OK) return cli_fail(NULL);
    dfrcl_device_info *d = NULL;
    int n = 0;
    if (dfrcl_list_devices(&d, &n) != DFRCL_OK) return cli_fail(NULL);
    int last_platform = -1;
    for (int i = 0; i < n; i++) {
        if (d[i].platform_index != last_platform) {
            printf("platform %d: %s (%s)\n", d[i].platform_index, d[i].platform_name,
                   d[i].platform_version);
            last_platform = d[i].platform_index;
        }
        int mark = 0;
        for (int j = 0; j < n_used; j++) mark |= used[j] == i;
        printf("  %c [%d] %s%s\n", mark ? '*' : ' ', d[i].index, d[i].name,
               d[i].is_default ? " (default)" : "");
        printf("        type %s, %u compute units, %.0f MiB global memory (%.0f MiB per buffer), "
               "%.0f KiB local\n",
               d[i].is_gpu ? "GPU" : d[i].is_cpu ? "CPU" : "other", d[i].compute_units,
               d[i].global_mem_bytes / 1048576.0, d[i].max_alloc_bytes / 1048576.0,
               d[i].local_mem_bytes / 1024.0);
        printf("        max work-group %zu, %s, driver %s, vendor %s\n", d[i].max_work_group_size,
               d[i].opencl_c_version, d[i].driver_version, d[i].vendor);
    }
    free(d);
    free(used);
    return 0;
}
