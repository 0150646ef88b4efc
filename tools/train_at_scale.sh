#!/bin/sh
# Training at the paper's scale on this machine: 12 layers (C = 3456, a seeded random VGG19: the
# timings and memory do not depend on the weights), S = 256, N training images (default 391, the
# largest MVTec AD category), made by repeating the images of the folders given.
#
#   tools/train_at_scale.sh BUILD_DIR OUT_DIR IMAGE_DIR... [-- extra dfrcl train options]
#
# Runs, each under /usr/bin/time -v (peak RSS):
#   fast       the default recipe, 2 epochs, then the threshold: seconds per epoch from the log
#   published  the published recipe, stopped with SIGTERM after PUBLISHED_SECONDS (default 300)
#              of training (it writes its checkpoint and exits): seconds per epoch from the steps
#              it made, and the checkpoint at this size
# and prints a table. Environment: N, PUBLISHED_SECONDS, MEMORY (passed as --memory).
set -eu
build=$1 out=$2
shift 2
dirs=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do dirs="$dirs $1"; shift; done
[ "${1:-}" = "--" ] && shift
n=${N:-391}
mkdir -p "$out/data/train/good"
# N images: the given ones, over and over (links; each keeps its own extension)
i=0
while [ $i -lt "$n" ]; do
    for d in $dirs; do
        for f in "$d"/*.png "$d"/*.jpg "$d"/*.jpeg; do
            [ -f "$f" ] || continue
            [ $i -lt "$n" ] || break
            ext=${f##*.}
            ln -sf "$(realpath "$f")" "$out/data/train/good/$(printf %04d $i).$ext"
            i=$((i + 1))
        done
    done
    [ $i -gt 0 ] || { echo "no images in:$dirs" >&2; exit 2; }
done
mem=${MEMORY:+--memory $MEMORY}
common="--train $out/data/train/good --random-backbone 3 --layers 12 --size 256 $mem"

echo "== fast recipe: 2 epochs and the threshold"
/usr/bin/time -v "$build/dfrcl" train $common --epochs 2 --patience off -o "$out/fast.safetensors" "$@" \
    > "$out/fast.log" 2>&1 || { tail -5 "$out/fast.log"; exit 1; }

echo "== published recipe: ${PUBLISHED_SECONDS:-300} s of training, then SIGTERM"
/usr/bin/time -v -o "$out/published.time" "$build/dfrcl" train $common --recipe published \
    -o "$out/published.safetensors" "$@" > "$out/published.log" 2>&1 &
timer=$!
sleep 1
pid=$(pgrep -P $timer)
# wait for training to start, then let it run
while ! grep -q "recipe published" "$out/published.log" 2>/dev/null; do
    kill -0 $pid 2>/dev/null || { tail -5 "$out/published.log"; exit 1; }
    sleep 2
done
sleep "${PUBLISHED_SECONDS:-300}"
kill -TERM $pid
wait $timer || true

rss() { awk '/Maximum resident/ {printf "%.0f MiB", $6 / 1024}' "$1"; }
fast_ep=$(awk '/trained [0-9]+ epochs/ {for (i = 1; i <= NF; i++) if ($i == "in") s = $(i + 1); e = $3; printf "%.0f", s / e}' "$out/fast.log")
pub=$(awk '/interrupted after/ {for (i = 1; i <= NF; i++) { if ($i == "steps") st = $(i - 1); if ($i == "in") s = $(i + 1) } printf "%s %s", st, s}' "$out/published.log")
steps=${pub% *} secs=${pub#* }
per_epoch=$(( (n + 3) / 4 ))
echo
echo "| recipe | seconds per epoch ($n images, 12 layers, S=256) | peak RSS |"
echo "|---|---|---|"
echo "| fast (default) | $fast_ep | $(rss "$out/fast.log") (whole run: features, PCA, 2 epochs, threshold) |"
awk -v st="$steps" -v s="$secs" -v pe="$per_epoch" 'BEGIN { if (st > 0) printf "| published | %.0f (%d steps in %.0f s; %d steps an epoch) |", s / st * pe, st, s, pe; else printf "| published | ? |" }'
echo " $(rss "$out/published.time") (features, PCA, training until stopped) |"
grep -E "training features|memory budget|latent" "$out/fast.log" | sed 's/^/  /'
