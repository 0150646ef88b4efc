#!/usr/bin/env bash
# Line coverage of the parsers reached by the fuzz corpora: builds the libFuzzer targets with
# clang's source coverage in BUILD (default build-fcov), replays every input of each target's
# corpora (the committed seeds plus the folders given, e.g. a long run's FUZZ_WORK) once, and
# prints llvm-cov's report for the parser sources.
#
#   tools/fuzz_coverage.sh [CORPUS_ROOT...]    (each holds one folder per target, as FUZZ_WORK)
#
# Needs clang-14, libclang-rt-14-dev and llvm-14 (llvm-cov, llvm-profdata).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build-fcov}
cov='-fprofile-instr-generate -fcoverage-mapping'
if [ ! -f "$build/build.ninja" ]; then
    CC=clang-14 meson setup "$build" "$root" -Dfuzzer=true -Dc_args="$cov" \
        -Dc_link_args=-fprofile-instr-generate >/dev/null
fi
ninja -C "$build" >/dev/null
prof=$build/profiles
rm -rf "$prof" && mkdir -p "$prof"
bins=()
for t in safetensors model png jpeg npy dataset options cache_entry; do
    bin=$build/tests/fuzz_$t
    dirs=("$root/tests/fuzz/corpus/$t")
    for c in "$@"; do [ -d "$c/$t" ] && dirs+=("$c/$t"); done
    # -runs=0: each input once, no fuzzing; the parsers' messages go nowhere.
    LLVM_PROFILE_FILE="$prof/$t.profraw" "$bin" -runs=0 -close_fd_mask=3 "${dirs[@]}" \
        >/dev/null 2>&1 || echo "fuzz_$t: replay failed (rc $?)" >&2
    bins+=(-object "$bin")
done
llvm-profdata-14 merge -sparse "$prof"/*.profraw -o "$prof/all.profdata"
# The parsers' rows (llvm-cov names sources relative to the build folder, so filter by name).
llvm-cov-14 report "${bins[@]:1}" -instr-profile="$prof/all.profdata" |
    grep -E '^Filename|src/(io/(safetensors|image|resize|npy|dataset)|cl/cache_entry|model/dfr|cli/(train|backbone)_opts)\.c'
