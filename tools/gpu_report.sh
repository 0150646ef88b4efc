#!/bin/sh
# GPU register report: compiles every kernel variant the GPU and iGPU default tunables select,
# in fp32 and fp16 storage,
# (from `dfrcl tune --print-variants`, i.e. src/ops/tunables.c) for AMD gfx1030 and gfx1100 and
# prints per kernel function: VGPRs, SGPRs, scratch bytes (spills or private arrays) and
# occupancy (waves per SIMD), from the assembly's metadata; checks that each variant becomes
# SPIR-V (Intel) and PTX for NVIDIA sm_80 (registers declared in the PTX: .reg .f32/.b32 counts).
#
# usage: tools/gpu_report.sh DFRCL_BINARY [SOURCE_ROOT] [CLASSES]   (CLASSES default "gpu igpu")
# Exit status: 0, 1 when a variant spills (scratch > 0) or fails to compile for AMD, 77 when
# clang-14 or libclc (Debian's libclc-14: the OpenCL builtins as bitcode) is missing.
#
# The builtins (vload, fma, get_global_id) must be linked in: left as calls, they make every
# kernel look like it needs 16 KB of scratch (the ABI's stack for unknown callees). clang-14
# does not know gfx1100; clang-15 compiles it when installed, else that column reads n/a.
dfrcl="$1"
root="${2:-$(dirname "$0")/..}"
classes="${3:-gpu igpu}"
CLANG=$(command -v clang-14 || true)
[ -n "$CLANG" ] || { echo "skip: clang-14 not installed"; exit 77; }
CLC=/usr/lib/clc
[ -f "$CLC/amdgcn--amdhsa.bc" ] || { echo "skip: libclc (libclc-14) not installed"; exit 77; }
CLANG15=$(command -v clang-15 || true)
SPIRV=$(command -v llvm-spirv-14 || true)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

"$dfrcl" tune --print-variants all > "$tmp/variants" || { echo "dfrcl tune --print-variants failed"; exit 1; }

amd() { # cc cpu src opts... -> assembly in $tmp/o.s
  cc=$1; cpu=$2; src=$3; shift 3
  "$cc" -x cl -cl-std=CL1.2 -Xclang -finclude-default-header --target=amdgcn--amdhsa -mcpu="$cpu" \
    -nogpulib -Xclang -mlink-builtin-bitcode -Xclang "$CLC/amdgcn--amdhsa.bc" -O2 -S \
    -Wno-linker-warnings "$@" -o "$tmp/o.s" "$src" 2> "$tmp/err"
}

# "kernel vgprs sgprs scratch occupancy" per function of an amdgcn assembly file.
amd_stats() {
  awk '/^[A-Za-z_][A-Za-z0-9_]*:/ { fn=$1; sub(":.*", "", fn) }
       /; NumSgprs:/ { s=$3 } /; NumVgprs:/ { v=$3 } /; ScratchSize:/ { sc=$3 }
       /; Occupancy:/ { print fn, v, s, sc, $3 }' "$1"
}

printf '%-8s %-11s %-18s %-7s %5s %5s %7s %4s   %s\n' class file kernel target VGPR SGPR scratch occ options
fail=0
# One row per distinct variant, naming the classes that select it ("gpu,igpu").
awk -v want=" $classes " 'index(want, " " $1 " ") { k=$2; for (i=3; i<=NF; i++) k=k " " $i
    if (!(k in cls)) { order[n++]=k; cls[k]=$1 } else if (index("," cls[k] ",", "," $1 ",") == 0) cls[k]=cls[k] "," $1 }
  END { for (i=0; i<n; i++) print cls[order[i]], order[i] }' "$tmp/variants" |
# Each variant again with fp16 storage (--precision fp16, the GPUs' default): the activation
# kernels' DFR_HALF, and the GEMM's operands as the autoencoder's inference uses them.
awk '{ print; h = $2 == "gemm.cl" ? " -DGEMM_B_HALF=1 -DGEMM_C_HALF=1" : " -DDFR_HALF=1"
       print $0 h }' |
while read -r cls file opts; do
  base=$(basename "$file" .cl)
  cat "$root/kernels/common.cl" "$root/kernels/$file" > "$tmp/$base.cl"
  for cpu in gfx1030 gfx1100; do
    cc=$CLANG
    if [ $cpu = gfx1100 ]; then
      [ -n "$CLANG15" ] && cc=$CLANG15 || { printf '%-8s %-11s %-18s %-7s %5s\n' "$cls" "$file" - $cpu "n/a (clang-14 lacks gfx1100, no clang-15)"; continue; }
    fi
    # shellcheck disable=SC2086
    if ! amd "$cc" $cpu "$tmp/$base.cl" $opts; then
      echo "FAIL: $file for $cpu with $opts"; cat "$tmp/err"; echo x >> "$tmp/failed"; continue
    fi
    amd_stats "$tmp/o.s" | while read -r fn v s sc occ; do
      printf '%-8s %-11s %-18s %-7s %5s %5s %7s %4s   %s\n' "$cls" "$file" "$fn" $cpu "$v" "$s" "$sc" "$occ" "$opts"
      [ "$sc" -gt 0 ] && echo x >> "$tmp/spilled"
    done
  done
  # NVIDIA sm_80: PTX, and the registers it declares (virtual; ptxas allocates the real ones).
  # shellcheck disable=SC2086
  if "$CLANG" -x cl -cl-std=CL1.2 -Xclang -finclude-default-header --target=nvptx64-nvidia-cuda \
       -march=sm_80 -Xclang -mlink-builtin-bitcode -Xclang "$CLC/nvptx64--nvidiacl.bc" -O2 -S \
       -Wno-linker-warnings $opts -o "$tmp/o.ptx" "$tmp/$base.cl" 2> "$tmp/err"; then
    awk '/^\.visible \.entry/ { fn=$3; sub(/\(.*/, "", fn) }
         /^\t\.reg \.(f32|b32)/ { n=$3; gsub(/[^0-9]/, "", n); r[fn]+=n }
         END { for (f in r) print f, r[f] }' "$tmp/o.ptx" | while read -r fn regs; do
      printf '%-8s %-11s %-18s %-7s %5s %5s %7s %4s   %s\n' "$cls" "$file" "$fn" sm_80 "$regs" - - - "$opts"
    done
  else
    echo "FAIL: $file for nvptx sm_80 with $opts"; cat "$tmp/err"; echo x >> "$tmp/failed"
  fi
  if [ -n "$SPIRV" ]; then
    # shellcheck disable=SC2086
    if "$CLANG" -x cl -cl-std=CL1.2 -Xclang -finclude-default-header --target=spir64 -O2 -emit-llvm \
         -c $opts -o "$tmp/o.bc" "$tmp/$base.cl" 2> "$tmp/err" && "$SPIRV" "$tmp/o.bc" -o "$tmp/o.spv"; then
      printf '%-8s %-11s %-18s %-7s %s\n' "$cls" "$file" "(all)" spir-v "ok, $(wc -c < "$tmp/o.spv") bytes"
    else
      echo "FAIL: $file for SPIR-V with $opts"; echo x >> "$tmp/failed"
    fi
  fi
done
# The pipe's subshell wrote its verdicts to files.
st=0
[ -f "$tmp/spilled" ] && { echo "$(wc -l < "$tmp/spilled") kernel(s) use scratch (spill) in a default GPU variant"; st=1; }
[ -f "$tmp/failed" ] && { echo "$(wc -l < "$tmp/failed") compile(s) failed"; st=1; }
[ $st = 0 ] && echo "no default GPU variant spills on gfx1030${CLANG15:+/gfx1100}"
exit $st
