#!/bin/sh
# Fails when a kernel variant that the GPU or iGPU default tunables select (src/ops/tunables.c,
# through `dfrcl tune --print-variants`) uses scratch memory (register spills) on AMD gfx1030 or
# gfx1100, or does not compile for AMD, NVIDIA (PTX) or Intel (SPIR-V). The table it prints is
# tools/gpu_report.sh's. Skips (77) without clang-14 or libclc-14.
# usage: test_gpu_regs.sh DFRCL_BINARY SOURCE_ROOT
exec sh "$2/tools/gpu_report.sh" "$1" "$2" "gpu igpu"
