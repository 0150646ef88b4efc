#!/bin/sh
# A small device gives the same numbers (issue 10, small devices): on the demo's synthetic data,
# a model trained at 8 layers (size 128) and one at 12 layers (size 256, C = 3456: 57 MB of
# features an image) are evaluated on PoCL as it is and under POCL_MEMORY_LIMIT=1 (an
# integrated GPU's 1 GiB, 256 MiB per buffer); the metrics and every score map must be the same
# bytes. The 12-layer model is trained under the limit and without it: the same model file.
# Random backbones (their results mean nothing, only their equality counts).
# Usage: test_memlimit.sh DFRCL
dfrcl="$1"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; n=0
ok() { n=$((n+1)); echo "ok: $*"; }
bad() { n=$((n+1)); fails=$((fails+1)); echo "FAIL: $*"; }
run() { # LOG CMD...: runs CMD, keeps its output in LOG; on failure shows it
  log="$1"; shift
  if "$@" > "$log" 2>&1; then return 0; fi
  echo "command failed: $*"; sed 's/^/    /' "$log" | tail -20; return 1
}
small() { env POCL_MEMORY_LIMIT=1 "$@"; }
big() { env -u POCL_MEMORY_LIMIT "$@"; } # PoCL as it is, even under meson's memlimit setup

# The dataset, and the 8-layer model (the demo's defaults: size 128).
run "$tmp/demo.log" big "$dfrcl" demo --out "$tmp/d" --train 2 --epochs 1 --random-backbone 1 -q ||
  { echo "FAIL: demo"; exit 1; }
data="$tmp/d/data"
# Three test images (good and defective) keep the 12-layer evaluation short.
mkdir -p "$tmp/t/good" "$tmp/t/scratch" "$tmp/t/hole"
cp "$(ls "$data"/test/good/* | head -1)" "$tmp/t/good/"
for d in scratch hole; do
  for f in $(ls "$data/test/$d"/* | head -1); do cp "$f" "$tmp/t/$d/"; done
done

# compare NAME MODEL BACKBONE-ARGS...: eval both ways on the same data, same metrics and maps.
compare() {
  name="$1" model="$2"; shift 2
  for way in big small; do
    if ! run "$tmp/$name-$way.log" $way "$dfrcl" eval --model "$model" "$@" \
         --json "$tmp/$name-$way.json" --out "$tmp/$name-$way"; then
      bad "$name: eval ($way device)"; return
    fi
  done
  if python3 - "$tmp/$name-big.json" "$tmp/$name-small.json" <<'PY'
import json, sys
a, b = (json.load(open(p))['metrics'] for p in sys.argv[1:])
if a != b:
    sys.exit(f"metrics differ: {a} vs {b}")
print("    " + ", ".join(f"{k} {a[k]:.6f}" for k in ('pixel_auroc', 'image_auroc', 'aupro')))
PY
  then ok "$name: same metrics on a 1 GiB device"; else bad "$name: metrics"; fi
  if [ "$(ls "$tmp/$name-big/maps"/*/*.npy | wc -l)" -gt 0 ] &&
     diff -r "$tmp/$name-big/maps" "$tmp/$name-small/maps" > /dev/null; then
    ok "$name: same score maps (bytes) on a 1 GiB device"
  else bad "$name: score maps differ or are missing"; fi
}

compare "8 layers" "$tmp/d/model.safetensors" --data "$data" --random-backbone 1

# 12 layers at size 256, trained both ways.
for way in big small; do
  if run "$tmp/train-$way.log" $way "$dfrcl" train --data "$data" --random-backbone 2 \
       --layers 12 --size 256 --epochs 1 -o "$tmp/m12-$way.safetensors"; then :
  else bad "12 layers: train ($way device)"; fi
done
if cmp -s "$tmp/m12-big.safetensors" "$tmp/m12-small.safetensors"; then
  ok "12 layers: the same model trained on a 1 GiB device"
else bad "12 layers: the models trained with and without the limit differ"; fi
compare "12 layers" "$tmp/m12-big.safetensors" --data "$data" --test "$tmp/t" --random-backbone 2

# A buffer over the device's largest allocation is refused by name, before any work: 12 layers
# at 1024 px need an 864 MiB feature buffer.
n=$((n+1))
small "$dfrcl" features --random-backbone 0 --layers 12 --size 1024 "$(ls "$tmp/t/good/"* | head -1)" \
  -o "$tmp/f.safetensors" > "$tmp/refuse.log" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "regional feature needs a buffer of 864.0 MiB.*at most 256.0 MiB per buffer" \
     "$tmp/refuse.log" && [ ! -e "$tmp/f.safetensors" ]; then
  echo "ok: a buffer over 256 MiB refused by name"
else
  echo "FAIL: a buffer over 256 MiB: exit $rc"; sed 's/^/    /' "$tmp/refuse.log" | tail -5
  fails=$((fails+1))
fi

echo "$((n - fails)) of $n passed"
[ "$fails" -eq 0 ]
