#!/usr/bin/env bash
# Runs libFuzzer targets for a while each and says what they did.
#   tests/fuzz/run.sh SECONDS [TARGET...]     (targets: safetensors model png jpeg npy dataset
#                                              options cache_entry; default: all that are built)
# Needs a build made with  CC=clang-14 meson setup build-fuzz -Dfuzzer=true && ninja -C build-fuzz
# (FUZZ_BUILD names another build folder). Each target starts from its committed seeds
# (tests/fuzz/corpus/TARGET, never written) plus what earlier runs found (FUZZ_WORK, default
# BUILD/fuzz-work/TARGET), where crash inputs land too. Prints, per target, the executions, the
# coverage (cov: edges, ft: features), the corpus size and crashes, then a closing
# "fuzz: N passed, N failed, N skipped" line; exits 1 if any target crashed, hung or leaked.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:?usage: run.sh SECONDS [TARGET...]}
shift
build=${FUZZ_BUILD:-$root/build-fuzz}
work=${FUZZ_WORK:-$build/fuzz-work}
all=(safetensors model png jpeg npy dataset options cache_entry)
explicit=$#
targets=("$@")
[ "$explicit" -gt 0 ] || targets=("${all[@]}")

passed=0 failed=0 skipped=0
for t in "${targets[@]}"; do
    t=${t#fuzz_}
    bin=$build/tests/fuzz_$t
    seeds=$here/corpus/$t
    if [ ! -x "$bin" ]; then
        echo "fuzz $t: not built ($bin)"
        if [ "$explicit" -gt 0 ]; then failed=$((failed + 1)); else skipped=$((skipped + 1)); fi
        continue
    fi
    mkdir -p "$work/$t"
    log=$work/$t.log
    # -close_fd_mask=2: the parsers' refusals go nowhere; libFuzzer and sanitizer reports stay.
    # -timeout: one input taking longer is a hang; -rss_limit_mb: more memory is a failure.
    "$bin" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2560 -close_fd_mask=2 \
        -print_final_stats=1 -artifact_prefix="$work/$t/" "$work/$t" "$seeds" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$log" | tail -1)
    secs_run=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz $t: ${execs:-?} executions in ${secs_run:-$secs} s, ${cov:-no coverage line}, crashes 0"
        passed=$((passed + 1))
    else
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} executions, ${cov:-no coverage line}, crashes 1"
        echo "  input: ${artifact:-none written}; log: $log"
        grep -E '^==[0-9]+==(ERROR|WARNING)|SUMMARY|deadly signal|#[0-9]+ 0x' "$log" | head -20 | sed 's/^/  /'
        if [ -n "$artifact" ] && [ -f "$artifact" ]; then
            # The same input again with stderr open: the target's own message, if it printed one.
            echo "  rerun on the input:"
            "$bin" -timeout=30 "$artifact" 2>&1 | grep -v '^INFO\|^Running\|^Executed' | tail -15 | sed 's/^/    /'
        fi
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
