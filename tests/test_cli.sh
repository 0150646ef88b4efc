#!/bin/sh
# The dfrcl command end to end: help, errors on bad input (exit codes, messages naming the file,
# nothing half-written), and small real runs. Usage: test_cli.sh DFRCL REPO_ROOT
dfrcl="$1"; root="$2"
shared="${DFRCL_SHARED:-$root/../shared}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/clitest.sh" # expect, $n, $fails

expect 0 "usage: dfrcl" "$dfrcl" --help
expect 2 "unknown command" "$dfrcl" frobnicate
expect 0 "usage: dfrcl features" "$dfrcl" features --help
expect 0 "usage: dfrcl devices" "$dfrcl" devices --help
expect 0 "usage: dfrcl bench" "$dfrcl" bench --help
expect 0 '\* \[[0-9]+\]' "$dfrcl" devices

# No OpenCL platform at all: say how to get one.
mkdir -p "$tmp/novendors"
expect 1 "pocl-opencl-icd" env OCL_ICD_VENDORS="$tmp/novendors" "$dfrcl" devices
expect 1 "no OpenCL platform" env OCL_ICD_VENDORS="$tmp/novendors" "$dfrcl" features --random-backbone 0 "$root/data/demo/woven_scratch.png" -o "$tmp/x.safetensors"

img="$root/data/demo/woven_scratch.png"
expect 2 "need exactly one IMAGE" "$dfrcl" features --random-backbone 0 "$img"
expect 0 "features \[384, 8, 8\]" "$dfrcl" features --random-backbone 0 --layers relu2_2 --size 32 "$img" -o "$tmp/l.safetensors"
expect 2 "or a layer name" "$dfrcl" features --random-backbone 0 --layers relu9 "$img" -o "$tmp/x.safetensors"
expect 2 "--size expects an integer" "$dfrcl" features --random-backbone 0 --size abc "$img" -o "$tmp/x.safetensors"
expect 1 "no backbone weights" env DFRCL_WEIGHTS= "$dfrcl" features "$img" -o "$tmp/x.safetensors"
expect 1 "device index 99 out of range" "$dfrcl" features --device 99 --random-backbone 0 "$img" -o "$tmp/x.safetensors"
expect 1 "no-such-image.png" "$dfrcl" features --random-backbone 0 "$tmp/no-such-image.png" -o "$tmp/x.safetensors"
head -c 3000 "$img" > "$tmp/truncated.png"
expect 1 "truncated.png" "$dfrcl" features --random-backbone 0 "$tmp/truncated.png" -o "$tmp/x.safetensors"
printf 'not an image at all' > "$tmp/text.jpg"
expect 1 "text.jpg" "$dfrcl" features --random-backbone 0 "$tmp/text.jpg" -o "$tmp/x.safetensors"
head -c 5000 /dev/urandom > "$tmp/garbage.safetensors"
expect 1 "garbage.safetensors" "$dfrcl" features --weights "$tmp/garbage.safetensors" "$img" -o "$tmp/x.safetensors"
expect 1 "size 30 does not fit" "$dfrcl" features --random-backbone 0 --size 30 "$img" -o "$tmp/x.safetensors"
expect 1 "no-such-dir" "$dfrcl" features --random-backbone 0 --size 32 --layers 4 "$img" -o "$tmp/no-such-dir/x.safetensors"
n=$((n+1)); if ls "$tmp"/x.safetensors* >/dev/null 2>&1; then echo "FAIL: a failed run left an output file"; fails=$((fails+1)); fi

# A real run on the shipped image, random backbone, small: the file holds [1408, 16, 16].
expect 0 "wrote .*features \[1408, 16, 16\]" "$dfrcl" features --random-backbone 0 --size 64 --layers 8 "$img" -o "$tmp/f.safetensors"
n=$((n+1))
if ! python3 - "$tmp/f.safetensors" <<'PY'
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
t = h['features']; assert t['dtype'] == 'F32' and t['shape'] == [1408, 16, 16], t
assert t['data_offsets'][1] - t['data_offsets'][0] == 1408 * 256 * 4
assert len(b) == 8 + n + 1408 * 256 * 4
assert h['__metadata__']['layers'] == '8' and h['__metadata__']['size'] == '64'
PY
then echo "FAIL: features file content"; fails=$((fails+1)); else echo "ok: features file content"; fi

expect 0 "all 3x3 convolutions: .* GFLOP/s" "$dfrcl" bench --size 32 --layers 4 --reps 1 --warmup 0

# train and infer on a tiny dataset made from the shipped image (random backbone, small size).
ds="$tmp/ds"; mkdir -p "$ds/train/good" "$tmp/empty/train/good" "$tmp/nogood"
for i in 1 2 3 4 5; do cp "$img" "$ds/train/good/$i.png"; done
cp "$tmp/truncated.png" "$tmp/empty/train/good/bad.png"
tr="--random-backbone 0 --layers 4 --size 32"
expect 1 "no train/good folder" "$dfrcl" train --data "$tmp/nogood" $tr -o "$tmp/m.safetensors"
expect 1 "no such folder" "$dfrcl" train --data "$tmp/missing" $tr -o "$tmp/m.safetensors"
expect 1 "bad.png" "$dfrcl" train --data "$tmp/empty" $tr -o "$tmp/m.safetensors"
expect 1 "cannot write the model" "$dfrcl" train --data "$ds" $tr -o "$tmp/no-such-dir/m.safetensors"
expect 1 "latent size \(latent 9999\) is larger than .*\(command-line option: --latent\)" "$dfrcl" train --data "$ds" $tr --latent 9999 -o "$tmp/m.safetensors"
expect 2 "--fpr expects" "$dfrcl" train --data "$ds" $tr --fpr 2 -o "$tmp/m.safetensors"
n=$((n+1)); if ls "$tmp"/m.safetensors* >/dev/null 2>&1; then echo "FAIL: a failed training left a model file"; fails=$((fails+1)); fi
expect 0 "wrote .*latent [0-9]+, size 32, 2 epochs" "$dfrcl" train --data "$ds" $tr --epochs 2 -o "$tmp/m.safetensors"
expect 0 "wrote .*size 32, 1 epochs" "$dfrcl" train --train "$ds/train/good" $tr --epochs 1 -o "$tmp/m2.safetensors"
expect 1 "no images" "$dfrcl" train --train "$tmp/nogood" $tr -o "$tmp/m3.safetensors"
# Training options, budgets, checkpoints.
expect 2 "--memory expects a size" "$dfrcl" train --data "$ds" $tr --memory 12X -o "$tmp/m3.safetensors"
expect 2 "--recipe expects fast or published" "$dfrcl" train --data "$ds" $tr --recipe slow -o "$tmp/m3.safetensors"
expect 2 "--store expects" "$dfrcl" train --data "$ds" $tr --store cloud -o "$tmp/m3.safetensors"
expect 1 "below the minimum .*memory budget \(memory_mib\) of [0-9]+ MiB or more \(command-line option: --memory\)" "$dfrcl" train --data "$ds" $tr --memory 1M -o "$tmp/m3.safetensors"
expect 1 "no-such-dir.*\(feature_dir\).*\(command-line option: --feature-dir\)" "$dfrcl" train --data "$ds" $tr --store disk --feature-dir "$tmp/no-such-dir" -o "$tmp/m3.safetensors"
expect 0 "as fp16 on the disk" "$dfrcl" train --data "$ds" $tr --store disk --feature-dir "$tmp" --epochs 2 -o "$tmp/m3.safetensors"
n=$((n+1)); if ls "$tmp"/dfrcl-features-* >/dev/null 2>&1; then echo "FAIL: the disk store left a file"; fails=$((fails+1)); else echo "ok: the disk store leaves nothing"; fi
# Ctrl-C in the middle of training writes a checkpoint; --resume continues to the very model an
# uninterrupted run writes.
rt="$dfrcl train --data $ds $tr --recipe published --epochs 800"
$rt -o "$tmp/r.safetensors" > "$tmp/rlog" 2>&1 &
pid=$!
for i in $(seq 100); do grep -q "recipe published" "$tmp/rlog" && break; sleep 0.1; done
sleep 0.3; kill -INT $pid; wait $pid; rc=$?
n=$((n+1)); if [ $rc -eq 130 ] && [ -f "$tmp/r.safetensors.checkpoint" ] && [ ! -f "$tmp/r.safetensors" ] && grep -q "interrupted after" "$tmp/rlog"; then echo "ok: interrupted training"; else echo "FAIL: interrupted training (exit $rc)"; sed 's/^/    /' "$tmp/rlog" | tail -5; fails=$((fails+1)); fi
expect 0 "resuming from .*r.safetensors.checkpoint" $rt -o "$tmp/r.safetensors" --resume
expect 0 "wrote" $rt -o "$tmp/r2.safetensors"
n=$((n+1)); if cmp -s "$tmp/r.safetensors" "$tmp/r2.safetensors" && [ ! -f "$tmp/r.safetensors.checkpoint" ]; then echo "ok: resumed to the same model"; else echo "FAIL: the resumed model differs"; fails=$((fails+1)); fi
expect 0 "1 image\(s\): 1 anomalous|1 image\(s\): 0 anomalous" "$dfrcl" infer --model "$tmp/m.safetensors" --random-backbone 0 "$img" --out "$tmp/inferout"
n=$((n+1)); if [ -f "$tmp/inferout/demo/woven_scratch.npy" ] && [ -f "$tmp/inferout/demo/woven_scratch_overlay.png" ] && [ -f "$tmp/inferout/demo/woven_scratch_mask.png" ]; then echo "ok: infer outputs"; else echo "FAIL: infer outputs missing"; ls -R "$tmp/inferout"; fails=$((fails+1)); fi
expect 0 '"anomalous_pixel_fraction"' "$dfrcl" infer --model "$tmp/m.safetensors" --random-backbone 0 "$img" --json
expect 1 "trained with another backbone" "$dfrcl" infer --model "$tmp/m.safetensors" --random-backbone 1 "$img"
head -c 20000 "$tmp/m.safetensors" > "$tmp/cut.safetensors"
expect 1 "cut.safetensors" "$dfrcl" infer --model "$tmp/cut.safetensors" --random-backbone 0 "$img"
expect 1 "not a dfrcl model" "$dfrcl" infer --model "$tmp/f.safetensors" --random-backbone 0 "$img"
expect 1 "missing.png" "$dfrcl" infer --model "$tmp/m.safetensors" --random-backbone 0 "$tmp/missing.png"

# demo and eval: the whole job on the generated dataset, small.
expect 0 "report: .*report.html" "$dfrcl" demo --out "$tmp/demo" --epochs 2 --train 4 --size 64 --layers 4
n=$((n+1)); if [ -f "$tmp/demo/eval/report.html" ] && [ -f "$tmp/demo/metrics.json" ] && [ -f "$tmp/demo/eval/maps/scratch/000.npy" ]; then echo "ok: demo outputs"; else echo "FAIL: demo outputs missing"; fails=$((fails+1)); fi
n=$((n+1)); if grep -q "https\?://" "$tmp/demo/eval/report.html"; then echo "FAIL: report refers to the network"; fails=$((fails+1)); else echo "ok: report self-contained"; fi
expect 1 "already exists" "$dfrcl" demo --out "$tmp/demo"
dm="$tmp/demo/model.safetensors"
expect 0 "pixel AUROC +[01]\.[0-9]{4}" "$dfrcl" eval --model "$dm" --random-backbone 0 --data "$tmp/demo/data" --json "$tmp/e.json"
n=$((n+1)); if grep -q '"pixel_auroc"' "$tmp/e.json" && grep -q '"settings"' "$tmp/e.json"; then echo "ok: eval json"; else echo "FAIL: eval json"; fails=$((fails+1)); fi
expect 1 "already exists" "$dfrcl" eval --model "$dm" --random-backbone 0 --data "$tmp/demo/data" --out "$tmp/demo/eval"
# train --eval-every: the accuracy curve through the public dfrcl_evaluate, one point per epoch.
expect 0 "epoch 2, .*pixel AUROC [01]\.[0-9]{4}" "$dfrcl" train --data "$tmp/demo/data" $tr --epochs 2 --patience off --eval-every 1 -o "$tmp/ee.safetensors"
n=$((n+1)); if [ "$(grep -c '"epoch"' "$tmp/ee.safetensors.curve.json")" = 2 ] && grep -q '"losses"' "$tmp/ee.safetensors.curve.json"; then echo "ok: train --eval-every curve"; else echo "FAIL: train --eval-every curve"; fails=$((fails+1)); fi
expect 1 "--eval-every needs the dataset's test set" "$dfrcl" train --train "$tmp/demo/data/train/good" $tr --eval-every 1 -o "$tmp/ee2.safetensors"
# The scheduler: batches, decoding threads and several devices give the same metrics; a missing
# device is an error listing the devices; a failing device (DFRCL_FAULT, a test hook) hands its
# images to the other one, or with one device fails naming it and the images.
same_metrics() { # same_metrics NAME JSON: its metrics equal e.json's
  n=$((n+1)); keys='"(pixel_auroc|image_auroc|aupro|best_f1|best_f1_threshold|precision|recall|f1|iou)"'
  grep -E "$keys" "$tmp/e.json" > "$tmp/m_a"; grep -E "$keys" "$2" > "$tmp/m_b"
  if [ -s "$tmp/m_a" ] && cmp -s "$tmp/m_a" "$tmp/m_b"; then echo "ok: $1: same metrics"
  else echo "FAIL: $1: metrics differ"; diff "$tmp/m_a" "$tmp/m_b" | head; fails=$((fails+1)); fi
}
expect 0 "pixel AUROC" "$dfrcl" eval --model "$dm" --random-backbone 0 --data "$tmp/demo/data" --batch 1 --threads 1 --json "$tmp/e1.json"
same_metrics "batch 1" "$tmp/e1.json"
expect 0 "pixel AUROC" "$dfrcl" eval --model "$dm" --random-backbone 0 --data "$tmp/demo/data" --batch 3 --threads 2 --json "$tmp/e3.json"
same_metrics "batch 3" "$tmp/e3.json"
expect 0 "pixel AUROC" env POCL_DEVICES="pthread pthread" "$dfrcl" eval --model "$dm" --random-backbone 0 --data "$tmp/demo/data" --device all --batch 2 --json "$tmp/e2d.json"
same_metrics "--device all" "$tmp/e2d.json"
expect 0 "device \[1\].*failed on .* image.*DFRCL_FAULT.*the other device" env POCL_DEVICES="pthread pthread" DFRCL_FAULT=device:1:after:0 "$dfrcl" eval --model "$dm" --random-backbone 0 --data "$tmp/demo/data" --device 0,1 --batch 2 --json "$tmp/ef.json"
same_metrics "a failing device" "$tmp/ef.json"
expect 1 "device \[0\] .*failed on 1 image.*woven_scratch.png.*DFRCL_FAULT" env DFRCL_FAULT=device:0:after:0 "$dfrcl" infer --model "$dm" --random-backbone 0 "$img"
expect 1 "device index 9 out of range.*\[0\] " "$dfrcl" infer --model "$dm" --random-backbone 0 --device 9 "$img"
expect 1 "device index 9 out of range.*\[0\] " "$dfrcl" eval --model "$dm" --random-backbone 0 --data "$tmp/demo/data" --device 0,9
expect 1 "no OpenCL device matches 'nosuchdevice'; devices: \[0\]" "$dfrcl" devices --device nosuchdevice
expect 0 "\* \[0\].*" "$dfrcl" devices --device all
expect 0 "2 image\(s\)" "$dfrcl" infer --model "$dm" --random-backbone 0 --device all --batch 4 "$img" "$img"
expect 2 "--batch" "$dfrcl" infer --model "$dm" --random-backbone 0 --batch 0 "$img"
expect 2 "--threads" "$dfrcl" eval --model "$dm" --random-backbone 0 --data "$tmp/demo/data" --threads x
expect 1 "no such folder" "$dfrcl" eval --model "$dm" --random-backbone 0 --data "$tmp/ds"
mkdir -p "$tmp/nomask/test/scratch" "$tmp/nomask/test/good"
cp "$tmp/demo/data/test/scratch/000.png" "$tmp/nomask/test/scratch/"; cp "$tmp/demo/data/test/good/000.png" "$tmp/nomask/test/good/"
expect 0 "no ground-truth mask.*image AUROC only" "$dfrcl" eval --model "$dm" --random-backbone 0 --data "$tmp/nomask"

# run: a campaign over a root of categories, resumable.
mkdir -p "$tmp/root"; ln -s "$tmp/demo/data" "$tmp/root/fabric"; ln -s "$ds" "$tmp/root/plain"
expect 1 "has no categories" "$dfrcl" run --data "$tmp/nogood" --out "$tmp/camp" $tr
expect 1 "category 'nope' not found|has no categories" "$dfrcl" run --data "$tmp/root" --categories nope --out "$tmp/camp" $tr
expect 0 "fabric +[01]\.[0-9]{4}" "$dfrcl" run --data "$tmp/root" --categories fabric --out "$tmp/camp" $tr --epochs 1
expect 0 "fabric .*\(done\)" "$dfrcl" run --data "$tmp/root" --categories fabric --out "$tmp/camp" $tr --epochs 1
# A campaign stopped inside a category resumes inside it.
"$dfrcl" run --data "$tmp/root" --categories fabric --out "$tmp/camp2" $tr --recipe published --epochs 600 > "$tmp/rlog" 2>&1 &
pid=$!
for i in $(seq 100); do grep -q "recipe published" "$tmp/rlog" && break; sleep 0.1; done
sleep 0.3; kill -TERM $pid; wait $pid; rc=$?
n=$((n+1)); if [ $rc -eq 143 ] && [ -f "$tmp/camp2/fabric/train.checkpoint" ]; then echo "ok: interrupted campaign"; else echo "FAIL: interrupted campaign (exit $rc)"; tail -3 "$tmp/rlog"; fails=$((fails+1)); fi
expect 0 "resuming from .*fabric/train.checkpoint" "$dfrcl" run --data "$tmp/root" --categories fabric --out "$tmp/camp2" $tr --recipe published --epochs 600 -v
n=$((n+1)); if [ ! -f "$tmp/camp2/fabric/train.checkpoint" ] && [ -f "$tmp/camp2/fabric/model.safetensors" ]; then echo "ok: campaign resumed"; else echo "FAIL: campaign resumed"; fails=$((fails+1)); fi
n=$((n+1)); if grep -q "^fabric," "$tmp/camp/summary.csv" && grep -q '"mean"' "$tmp/camp/summary.json"; then echo "ok: run summary files"; else echo "FAIL: run summary files"; fails=$((fails+1)); fi
# A category with an MVTec AD name is shown beside the paper's figures (hazelnut: 0.98, 0.97).
ln -s "$tmp/demo/data" "$tmp/root/hazelnut"
expect 0 "hazelnut +[01]\.[0-9]{4} +0\.98 .* 0\.97" "$dfrcl" run --data "$tmp/root" --categories fabric,hazelnut --out "$tmp/camp" $tr --epochs 1
n=$((n+1)); if grep -q "paper: it reports 1 of these 2" "$tmp/out" && grep -q "^hazelnut,.*,0.9800,0.9700,ok$" "$tmp/camp/summary.csv" && grep -q '"mean_over_published_categories"' "$tmp/camp/summary.json" && grep -q 'href="hazelnut/eval/report.html"' "$tmp/camp/summary.html" && grep -q '<td class="num">0.98</td>' "$tmp/camp/summary.html"; then echo "ok: run beside the published figures (text, csv, json, html)"; else echo "FAIL: run beside the published figures"; fails=$((fails+1)); fi

# eval on a folder named after an MVTec AD category prints the paper's figures and puts them in the JSON.
expect 0 "published DFR for hazelnut .*pixel AUROC 0\.98, AUPRO 0\.97" "$dfrcl" eval --model "$dm" --random-backbone 0 --data "$tmp/root/hazelnut/" --json "$tmp/e2.json"
n=$((n+1)); if grep -q '"published"' "$tmp/e2.json"; then echo "ok: eval json published"; else echo "FAIL: eval json published"; fails=$((fails+1)); fi

# A category that fails (an unreadable training image) is reported, the others go on; its row
# says so, with no metric (not zeros), and the campaign exits 1.
# (Its name has a quote: the CSV field is quoted.)
ln -s "$tmp/empty" "$tmp/root/bro\"ken"
expect 1 "bro\"ken +FAILED" "$dfrcl" run --data "$tmp/root" --categories "bro\"ken,fabric" --out "$tmp/camp" $tr --epochs 1
n=$((n+1)); if grep -q '^"bro""ken",n/a,n/a,n/a,n/a,n/a,n/a,failed$' "$tmp/camp/summary.csv"; then echo "ok: a failed category in the summary"; else echo "FAIL: a failed category in the summary"; sed 's/^/    /' "$tmp/camp/summary.csv"; fails=$((fails+1)); fi

if [ -f "$shared/weights/vgg19-imagenet-conv1_1-conv3_4.safetensors" ]; then
  w="$shared/weights/vgg19-imagenet-conv1_1-conv3_4.safetensors"
  expect 1 "has no relu4_1.*relu3_4" "$dfrcl" features --weights "$w" --layers 12 --size 32 "$img" -o "$tmp/x.safetensors"
  expect 0 "features \[1408, 8, 8\]" "$dfrcl" features --weights "$w" --size 32 "$img" -o "$tmp/g.safetensors"
else
  echo "note: $shared absent, skipping the checks that need the shared weights"
fi

# --- outputs, campaigns, interruption (issue 9) ---
# check NAME CONDITION...: one more test, passing when the condition (a command) holds.
check() { name="$1"; shift; n=$((n+1)); if "$@"; then echo "ok: $name"; else echo "FAIL: $name"; fails=$((fails+1)); fi; }
no_temps() { [ -z "$(find "$tmp" -name '*.tmp.*' -o -name '.dfrcl-tmp.*' | head -1)" ]; }
# --precision fp16: fp16 activations score within 0.2% of fp32; a bad value is refused.
"$dfrcl" infer --model "$tmp/m.safetensors" --random-backbone 0 "$img" --json > "$tmp/p32.json" 2>/dev/null
"$dfrcl" infer --model "$tmp/m.safetensors" --random-backbone 0 "$img" --json --precision fp16 > "$tmp/p16.json" 2>/dev/null
check "infer --precision fp16 scores as fp32 does (within 0.2%)" python3 -c 'import json,sys; a,b=(json.load(open(f))["images"][0]["score"] for f in sys.argv[1:]); assert abs(a-b) <= 2e-3*abs(a), (a,b)' "$tmp/p32.json" "$tmp/p16.json"
expect 2 "--precision expects fp32 or fp16" "$dfrcl" infer --model "$tmp/m.safetensors" --random-backbone 0 --precision fp8 "$img"
expect 2 "unrecognized option|unknown option" "$dfrcl" features --random-backbone 0 --precision fp16 "$img" -o "$tmp/x.safetensors"
i9="$tmp/i9"; mkdir -p "$i9/sub" "$i9/w/a"
cp "$img" "$i9/img.png"; cp "$img" "$i9/w/a/x.png"; cp "$img" "$i9/w/a/x.jpg"
case "$dfrcl" in /*) dfrcl_abs="$dfrcl" ;; *) dfrcl_abs="$PWD/$dfrcl" ;; esac
inf="$dfrcl_abs infer --model $tmp/m.safetensors --random-backbone 0"
# infer --out: '../img.png' stays inside --out (as _/img), and two inputs sharing folder name and
# stem get distinct outputs, with a note.
expect 0 "x\.jpg would share its outputs .*a/x-2" sh -c "cd '$i9/sub' && $inf --out out ../img.png ../w/a/x.png ../w/a/x.jpg"
check "infer --out stays inside its folder" test -f "$i9/sub/out/_/img.npy" -a ! -e "$i9/sub/img.npy"
check "infer --out names never collide" test -f "$i9/sub/out/a/x.npy" -a -f "$i9/sub/out/a/x-2.npy" -a -f "$i9/sub/out/a/x-2_mask.png"
# infer --json with a file name that is not UTF-8: still valid JSON, with the exact bytes in hex.
cp "$img" "$i9/bad$(printf '\377').png"
$inf --json "$i9/bad$(printf '\377').png" > "$i9/inf.json" 2>/dev/null
check "infer --json with a non-UTF-8 name is valid JSON" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["images"][0]["path_hex"].endswith("626164ff2e706e67")' "$i9/inf.json"
# infer skips unreadable images (documented) and lists them by name at the end.
expect 0 "cannot be read is skipped" $inf --help
expect 1 "skipped 1 unreadable image\(s\): .*truncated\.png" $inf "$img" "$tmp/truncated.png"
# eval: one rule (stop) for unreadable images, documented; a --masks folder that is missing is an
# error; destinations are checked before any scoring.
ev="$dfrcl eval --model $dm --random-backbone 0 --data $tmp/demo/data"
expect 0 "unreadable test image or mask stops" $ev --help
expect 1 "no-such-masks: no such folder \(--masks\)" $ev --masks "$tmp/no-such-masks"
expect 1 "--json: .*no-such-dir does not exist" $ev --json "$tmp/no-such-dir/e.json"
check "eval --json: refused before scoring" sh -c "! grep -q 'eval [0-9]' '$tmp/out'"
: > "$i9/afile"
expect 1 "--out: .*afile: exists and is not a folder" $ev --out "$i9/afile" --force
# train -o: a folder, an empty name, a disk without room: refused before training.
expect 1 "cannot write the model: .*is a folder" "$dfrcl" train --data "$ds" $tr --epochs 1 -o "$i9"
check "train -o FOLDER: refused before training" sh -c "! grep -q 'training on' '$tmp/out'"
expect 1 "cannot write the model: the output file name is empty" "$dfrcl" train --data "$ds" $tr --epochs 1 -o ""
expect 1 "cannot write the model: .*no room for" sh -c "ulimit -f 64; DFRCL_CACHE_DIR= exec $dfrcl train --data $ds $tr --epochs 1 -o $i9/full.safetensors"
check "train on a full disk: refused before training, nothing left" sh -c "! grep -q 'training on' '$tmp/out' && ! ls '$i9'/full.safetensors* >/dev/null 2>&1"
# Dataset listings say which entries they skip: dangling and looping symbolic links.
cp -r "$tmp/demo/data" "$i9/links"
ln -s no-such-target.png "$i9/links/test/good/dangling.png"; ln -s loop.png "$i9/links/test/good/loop.png"
expect 0 "dangling\.png: skipped: dangling symbolic link" $dfrcl eval --model $dm --random-backbone 0 --data "$i9/links"
check "a looping link is reported" grep -q "loop.png: skipped: symbolic link loop" "$tmp/out"
# run keeps each category's settings: other settings are refused (naming them), --force redoes.
expect 0 "fabric: training" "$dfrcl" run --data "$tmp/root" --categories fabric --out "$i9/camp" $tr --epochs 1
expect 1 "other settings: .*epochs 1 -> 2" "$dfrcl" run --data "$tmp/root" --categories fabric --out "$i9/camp" $tr --epochs 2
expect 0 "epochs 1 -> 2\): redoing it" "$dfrcl" run --data "$tmp/root" --categories fabric --out "$i9/camp" $tr --epochs 2 --force
expect 0 "fabric: done before" "$dfrcl" run --data "$tmp/root" --categories fabric --out "$i9/camp" $tr --epochs 2
# One run per --out: a second is refused at once, naming the lock and the holder's pid.
"$dfrcl" run --data "$tmp/root" --categories fabric --out "$i9/camp2" $tr --recipe published --epochs 600 > "$i9/runlog" 2>&1 &
pid=$!
for i in $(seq 300); do grep -q "fabric: training" "$i9/runlog" && break; sleep 0.1; done
expect 1 "in use by another 'dfrcl run' \(pid $pid, lock .*dfrcl-run\.lock\)" "$dfrcl" run --data "$tmp/root" --categories fabric --out "$i9/camp2" $tr --epochs 1
kill -INT $pid; wait $pid; rc=$?
check "an interrupted run exits 130 and says so" sh -c "[ $rc -eq 130 ] && grep -q 'run stopped by SIGINT' '$i9/runlog'"
# eval and infer stop at a safe point on a signal: exit 128+signal, no temp file, no partial --out.
mkdir -p "$i9/many/test/good"
for i in $(seq 60); do ln -s "$tmp/demo/data/test/good/000.png" "$i9/many/test/good/$i.png"; done
$dfrcl eval --model $dm --random-backbone 0 --data "$i9/many" --out "$i9/eo" > "$i9/evlog" 2>&1 &
pid=$!
for i in $(seq 600); do [ -d "$i9/eo/maps/good" ] && break; sleep 0.05; done
kill -INT $pid; wait $pid; rc=$?
check "interrupted eval: exit 130, message, no partial --out, no temp file" sh -c "[ $rc -eq 130 ] && grep -q 'eval stopped by SIGINT' '$i9/evlog' && [ ! -e '$i9/eo' ]" 
check "no temp files after the interrupted eval" no_temps
expect 0 "report: .*eo/report.html" $dfrcl eval --model $dm --random-backbone 0 --data "$i9/many" --out "$i9/eo" -q
$inf --out "$i9/io" "$i9"/many/test/good/*.png > "$i9/inflog" 2>&1 &
pid=$!
for i in $(seq 600); do grep -q "normal\|ANOMALOUS" "$i9/inflog" && break; sleep 0.05; done
kill -TERM $pid; wait $pid; rc=$?
check "interrupted infer: exit 143, message, its outputs removed" sh -c "[ $rc -eq 143 ] && grep -q 'infer stopped by SIGTERM' '$i9/inflog' && [ ! -e '$i9/io' ]"
check "no temp files after the interrupted infer" no_temps

# --- non-finite values and model metadata (issue 9) ---
# A learning rate that makes training diverge is refused, naming it; no model, no checkpoint.
expect 1 "training diverged.*\(lr 9\.9\).*\(command-line option: --lr\)" "$dfrcl" train --data "$ds" $tr --lr 9.9 --epochs 2 -o "$tmp/nf.safetensors"
# Backbone weights (2 layers, random) with a NaN, an Inf, or values so large the features overflow.
cat > "$tmp/weights.py" <<'PY'
import json, random, struct, sys
out, plant = sys.argv[1], sys.argv[2]
rnd = random.Random(1)
shapes = [("features.0.weight", [64, 3, 3, 3]), ("features.0.bias", [64]),
          ("features.2.weight", [64, 64, 3, 3]), ("features.2.bias", [64])]
header, blobs, off = {}, [], 0
for name, shape in shapes:
    n = 1
    for d in shape: n *= d
    vals = [rnd.uniform(-0.1, 0.1) * (1e30 if plant == "huge" else 1) for _ in range(n)]
    if plant in ("nan", "inf") and name == "features.2.weight": vals[7] = float(plant)
    blob = struct.pack("<%df" % n, *vals)
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(blob)]}
    blobs.append(blob); off += len(blob)
h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
open(out, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
for v in nan inf huge; do python3 "$tmp/weights.py" "$tmp/w_$v.safetensors" $v; done
expect 1 "w_nan\.safetensors: tensor features\.2\.weight: element 7 is nan" "$dfrcl" features --weights "$tmp/w_nan.safetensors" --size 16 "$img" -o "$tmp/nf.safetensors"
expect 1 "w_inf\.safetensors: tensor features\.2\.weight: element 7 is inf" "$dfrcl" train --data "$ds" --weights "$tmp/w_inf.safetensors" --size 16 --epochs 2 -o "$tmp/nf.safetensors"
expect 1 "PCA: the features of training image 1: a non-finite value" "$dfrcl" train --data "$ds" --weights "$tmp/w_huge.safetensors" --size 16 --epochs 2 -o "$tmp/nf.safetensors"
expect 1 "the loss became -?nan in epoch 1.*--lr" "$dfrcl" train --data "$ds" --weights "$tmp/w_huge.safetensors" --size 16 --epochs 2 --latent 8 -o "$tmp/nf.safetensors"
n=$((n+1)); if ls "$tmp"/nf.safetensors* >/dev/null 2>&1; then echo "FAIL: a diverged training left a file"; ls "$tmp"/nf.safetensors*; fails=$((fails+1)); else echo "ok: diverged trainings leave no model and no checkpoint"; fi
# Model files edited after training: the size (scored against a threshold set at another size),
# a NaN in a tensor, and an older model without the content checksum (loads, with a note).
python3 - "$tmp/m.safetensors" "$tmp" <<'PY'
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
h, data = json.loads(b[8:8 + n]), b[8 + n:]
assert b.count(b'"size":"32"') == 1
open(sys.argv[2] + '/edited-size.safetensors', 'wb').write(b.replace(b'"size":"32"', b'"size":"64"'))
o = h['enc.0.bias']['data_offsets'][0]
open(sys.argv[2] + '/nan-model.safetensors', 'wb').write(b[:8 + n + o] + struct.pack('<f', float('nan')) + b[8 + n + o + 4:])
del h['__metadata__']['content_sha256']
j = json.dumps(h).encode(); j += b' ' * (-len(j) % 8)
open(sys.argv[2] + '/old-model.safetensors', 'wb').write(struct.pack('<Q', len(j)) + j + data)
PY
expect 1 "edited-size\.safetensors: .*do not match its checksum" "$dfrcl" infer --model "$tmp/edited-size.safetensors" --random-backbone 0 "$img"
expect 1 "edited-size\.safetensors: .*do not match its checksum" "$dfrcl" eval --model "$tmp/edited-size.safetensors" --random-backbone 0 --data "$tmp/demo/data" --out "$tmp/nf-eval"
expect 1 "nan-model\.safetensors: CAE: tensor enc\.0\.bias: element 0 is -?nan" "$dfrcl" infer --model "$tmp/nan-model.safetensors" --random-backbone 0 "$img"
expect 0 "old-model\.safetensors: an older model without a content checksum" "$dfrcl" infer --model "$tmp/old-model.safetensors" --random-backbone 0 "$img" --json

echo "test_cli: $((n - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
