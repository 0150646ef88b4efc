#!/bin/sh
# dfrcl tune end to end on small shapes: option errors, a short tuning run that writes the
# device's database, later runs using it (tune --show, bench's default-versus-tuned table), and a
# corrupt or foreign database read as a warning and the defaults, never a failure.
# usage: test_tune_cli.sh DFRCL
dfrcl="$1"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/clitest.sh" # expect, $n, $fails
# A cache folder of its own (the database would change every other test's kernels), seeded with
# the compiled kernels the other tests left, to save PoCL's build time.
cache="$tmp/cache"; mkdir -p "$cache"
[ -n "$DFRCL_CACHE_DIR" ] && cp "$DFRCL_CACHE_DIR"/*.clbin "$cache/" 2>/dev/null
export DFRCL_CACHE_DIR="$cache"
unset DFRCL_CONV_TUNE DFRCL_GEMM_TUNE DFRCL_REGIONAL_TUNE DFRCL_SCORE_TUNE DFRCL_CAE_LS DFRCL_TUNED

expect 0 "usage: dfrcl tune" "$dfrcl" tune --help
expect 0 "tune *time kernel variants" "$dfrcl" --help
expect 2 "cpu, gpu, igpu or all" "$dfrcl" tune --print-variants tpu
expect 0 "^gpu conv.cl -DCONV_TCO=[0-9]+ -DCONV_TX=[0-9]+" "$dfrcl" tune --print-variants gpu
expect 0 "CONV_TCO" "$dfrcl" tune --print-table
expect 2 "--budget-s expects" "$dfrcl" tune --budget-s 0
expect 2 "not one of conv, gemm, regional, score" "$dfrcl" tune --kernels conv,fft
expect 2 "DFRCL_CACHE_DIR" env DFRCL_CACHE_DIR= "$dfrcl" tune --budget-s 5
expect 0 "no tuned kernels" "$dfrcl" tune --show

# A short run at small shapes: the defaults and a few variants of two kernels.
expect 0 "^score .*vec=" "$dfrcl" tune -q --layers 2 --size 64 --reps 1 --budget-s 20 --kernels score,regional
db=$(ls "$cache"/tune-*.json 2>/dev/null | head -1)
if [ -z "$db" ]; then echo "FAIL: no tune-*.json in the cache folder"; fails=$((fails+1)); fi
ls -a "$cache" | grep -q '^\.dfrcl-tmp' && { echo "FAIL: a temp file was left"; fails=$((fails+1)); }
expect 0 "score +vec=[0-9]+,lx=[0-9]+" "$dfrcl" tune --show
expect 0 "default versus tuned" "$dfrcl" bench --random-backbone 0 --layers 2 --size 64 --reps 1 --warmup 0 --latent 0
# The kernels' variables still win over the database: an illegal one is an error.
expect 1 "DFRCL_SCORE_TUNE" env DFRCL_SCORE_TUNE=3 "$dfrcl" bench --random-backbone 0 --layers 2 --size 64 --reps 1 --warmup 0 --latent 4

# Corrupt, foreign and illegal databases: a warning naming the file, the defaults, exit 0.
if [ -n "$db" ]; then
  cp "$db" "$tmp/good.json"
  printf '{"format": "dfrcl-tune 1", "kern' > "$db"
  expect 0 "warning: tuning database .*tune-.*json is not a dfrcl tuning database" "$dfrcl" tune --show
  expect 0 "warning: tuning database" "$dfrcl" bench --random-backbone 0 --layers 2 --size 64 --reps 1 --warmup 0 --latent 4
  sed 's/"device":[[:space:]]*"[^"]*"/"device": "Another GPU"/' "$tmp/good.json" > "$db"
  expect 0 "belongs to another device" "$dfrcl" tune --show
  sed 's/"vec":[[:space:]]*[0-9]*/"vec": 3/' "$tmp/good.json" > "$db"
  expect 0 "unusable entry for score" "$dfrcl" tune --show
  head -c 0 /dev/null > "$db"
  expect 0 "not a dfrcl tuning database" "$dfrcl" tune --show
fi
[ $fails -eq 0 ] && echo "all passed" || echo "$fails failed"
exit $([ $fails -eq 0 ] && echo 0 || echo 1)
