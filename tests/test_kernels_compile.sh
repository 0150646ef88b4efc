#!/bin/sh
# Compiles every kernel for GPU targets we cannot run here, because PoCL accepts code that other
# OpenCL compilers reject: AMD (amdgcn gfx1030), NVIDIA (nvptx sm_80) and, through SPIR-V,
# Intel. A kernel file may list extra option sets, one per line, as
#   /* compile-variant: -DNAME=VALUE ... */
# (e.g. the tunables a GPU gets); each is compiled too. Skips (77) without clang-14.
root="$1"
CLANG=$(command -v clang-14 || true)
[ -n "$CLANG" ] || { echo "skip: clang-14 not installed"; exit 77; }
SPIRV=$(command -v llvm-spirv-14 || true)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0; n=0
for f in "$root"/kernels/*.cl; do
  base=$(basename "$f" .cl)
  [ "$base" = common ] && continue
  cat "$root/kernels/common.cl" "$f" > "$tmp/$base.cl"
  variants=$(sed -n 's|.*/\* compile-variant: \(.*\) \*/.*|\1|p' "$f")
  { echo; [ -n "$variants" ] && printf '%s\n' "$variants"; } | while IFS= read -r opts; do
    set -- -x cl -cl-std=CL1.2 -Xclang -finclude-default-header -O2 $opts
    for target in amdgcn nvptx spirv; do
      case $target in
        amdgcn) "$CLANG" "$@" --target=amdgcn-amd-amdhsa -mcpu=gfx1030 -nogpulib -c -o "$tmp/o" "$tmp/$base.cl" ;;
        nvptx)  "$CLANG" "$@" --target=nvptx64-nvidia-cuda -march=sm_80 -S -o "$tmp/o" "$tmp/$base.cl" ;;
        spirv)  [ -n "$SPIRV" ] || continue
                "$CLANG" "$@" --target=spir64 -emit-llvm -c -o "$tmp/o.bc" "$tmp/$base.cl" &&
                "$SPIRV" "$tmp/o.bc" -o "$tmp/o.spv" ;;
      esac
      if [ $? -ne 0 ]; then echo "FAIL: $base.cl for $target ${opts:+with $opts}"; echo x >> "$tmp/failed";
      else echo "ok: $base.cl for $target ${opts:+with $opts}"; fi
    done
  done
done
[ -f "$tmp/failed" ] && { echo "$(wc -l < "$tmp/failed") kernel compile(s) failed"; exit 1; }
echo "all kernels compile for amdgcn, nvptx${SPIRV:+ and spir-v}"
exit 0
