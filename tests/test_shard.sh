#!/bin/sh
# dfrcl run split into shards (--shard I/N, --shard auto from Slurm's or Kubernetes' variables)
# and merged (--merge DIR): the merged summary equals an unsharded run's; bad shard specs, shards
# of other settings, missing shards and missing categories are refused by name.
# Usage: test_shard.sh DFRCL
dfrcl="$1"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/clitest.sh" # expect, $n, $fails
check() { n=$((n+1)); if sh -c "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails+1)); fi; }

# The summary table and page hold each category's time, which no two runs share: blank it.
notime() {
  sed -e 's#<td class="num[^"]*">[0-9]*</td><td>\(ok\|done before\)</td>#<td>T</td><td>\1</td>#' "$1"
}
table() { sed -n '/^category /,/^summary:/p' "$1" | grep -v '^summary:' | sed -E 's/ +[0-9]+$/ T/'; }
same_summary() { # DIR_A LOG_A DIR_B LOG_B
  cmp "$1/summary.json" "$3/summary.json" && cmp "$1/summary.csv" "$3/summary.csv" &&
    notime "$1/summary.html" > "$tmp/a.html" && notime "$3/summary.html" > "$tmp/b.html" &&
    cmp "$tmp/a.html" "$tmp/b.html" && table "$2" > "$tmp/a.txt" && table "$4" > "$tmp/b.txt" &&
    cmp "$tmp/a.txt" "$tmp/b.txt" && [ -s "$tmp/a.txt" ]
}

# Three categories that differ (other training images), small and fast.
for t in 3 4 5; do
  "$dfrcl" demo --out "$tmp/demo$t" --epochs 1 --train $t --size 32 --layers 4 --random-backbone 0 -q \
    > "$tmp/demo.log" 2>&1 || { cat "$tmp/demo.log"; exit 1; }
done
mkdir -p "$tmp/root"
ln -s "$tmp/demo3/data" "$tmp/root/carpet"; ln -s "$tmp/demo4/data" "$tmp/root/fabric"
ln -s "$tmp/demo5/data" "$tmp/root/hazelnut"
tr="--data $tmp/root --random-backbone 0 --layers 4 --size 32 --epochs 1 -q"

# Unsharded: the reference.
expect 0 "hazelnut +[01]\.[0-9]{4}" "$dfrcl" run $tr --out "$tmp/u"; cp "$tmp/out" "$tmp/u.log"

# Shard 1 of 2 takes categories 1 and 3 (sorted), writes no summary; a merge without shard 2 is refused.
s="$tmp/s"
expect 0 "shard 1/2: 2 of 3 categories" "$dfrcl" run $tr --out "$s" --shard 1/2
check "shard 1/2 wrote carpet and hazelnut only, and no summary" "[ -f '$s/carpet/metrics.json' ] && [ -f '$s/hazelnut/metrics.json' ] && [ ! -e '$s/fabric' ] && [ ! -e '$s/summary.json' ] && grep -q '\"complete\":	true' '$s/shards/1-of-2.json'"
expect 1 "missing shard 2/2.*--shard I/2" "$dfrcl" run --merge "$s"
check "a refused merge writes no summary" "[ ! -e '$s/summary.json' ] && [ ! -e '$s/summary.html' ]"
# Another count into the same folder would overlap shard 1/2's categories.
expect 1 "shard 1/2's record: the shards of a campaign share one count" "$dfrcl" run $tr --out "$s" --shard 1/3
# Slurm array --array=4-5: task 5 is shard 2 of 2.
expect 0 "shard 2/2: 1 of 3" env SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_MIN=4 SLURM_ARRAY_TASK_COUNT=2 "$dfrcl" run $tr --out "$s" --shard auto
expect 0 "merging 2 shards" "$dfrcl" run --merge "$s"; cp "$tmp/out" "$tmp/s.log"
n=$((n+1)); if same_summary "$tmp/u" "$tmp/u.log" "$s" "$tmp/s.log"; then echo "ok: merge = unsharded"; else
  echo "FAIL: merged summary differs from the unsharded one"; diff "$tmp/u/summary.csv" "$s/summary.csv"; diff "$tmp/a.html" "$tmp/b.html" | head; diff "$tmp/a.txt" "$tmp/b.txt"; fails=$((fails+1)); fi
expect 0 "summary:" "$dfrcl" run --merge "$s" # a merge again: the same

# Kubernetes Indexed Job: both shards at once into one folder (the locks let them), then merged.
k="$tmp/k"
env JOB_COMPLETION_INDEX=0 DFRCL_SHARD_COUNT=2 "$dfrcl" run $tr --out "$k" --shard auto > "$tmp/k0.log" 2>&1 &
p0=$!
env JOB_COMPLETION_INDEX=1 DFRCL_SHARD_COUNT=2 "$dfrcl" run $tr --out "$k" --shard auto > "$tmp/k1.log" 2>&1 &
p1=$!
wait $p0; r0=$?; wait $p1; r1=$?
check "two shards at once into one folder" "[ $r0 -eq 0 ] && [ $r1 -eq 0 ] && grep -q 'shard 1/2' '$tmp/k0.log' && grep -q 'shard 2/2' '$tmp/k1.log'"
[ $r0 -eq 0 ] && [ $r1 -eq 0 ] || cat "$tmp/k0.log" "$tmp/k1.log"
expect 0 "merging 2 shards" "$dfrcl" run --merge "$k"; cp "$tmp/out" "$tmp/k.log"
n=$((n+1)); if same_summary "$tmp/u" "$tmp/u.log" "$k" "$tmp/k.log"; then echo "ok: concurrent shards' merge = unsharded"; else
  echo "FAIL: concurrent shards' merged summary differs"; fails=$((fails+1)); fi
# A finished shard rerun skips its categories; the merge then shows them "done before", as a rerun would.
expect 0 "done before, skipped" "$dfrcl" run $tr --out "$k" --shard 2/2
expect 0 "fabric .*\(done\)" "$dfrcl" run --merge "$k"

# hold -x|-s FILE: holds an flock on FILE (as another dfrcl would) until killed (the sleep is the
# process that holds it, so killing $! releases it).
hold() { exec sh -c 'exec 9>>"$2"; flock '"$1"' 9; exec sleep 30' hold "$@"; }
# Locks: a shard already running, an unsharded run or merge beside shards, a shard beside a run.
hold -x "$k/shards/1-of-2.lock" & lp=$!; sleep 0.5
expect 1 "shard 1/2 of .* is already running.*1-of-2\.lock" "$dfrcl" run $tr --out "$k" --shard 1/2
expect 0 "shard 2/2" "$dfrcl" run $tr --out "$k" --shard 2/2
kill $lp; wait $lp 2>/dev/null
hold -s "$k/dfrcl-run.lock" & lp=$!; sleep 0.5
expect 1 "in use by shards of a 'dfrcl run --shard'" "$dfrcl" run --merge "$k"
expect 1 "in use by shards" "$dfrcl" run $tr --out "$k"
kill $lp; wait $lp 2>/dev/null
hold -x "$k/dfrcl-run.lock" & lp=$!; sleep 0.5
expect 1 "in use by another 'dfrcl run' or merge" "$dfrcl" run $tr --out "$k" --shard 1/2
kill $lp; wait $lp 2>/dev/null

# Bad shard specs: exit 2, nothing written.
for bad in 0/2 3/2 1/0 1/ /2 a/b 1/2x -1/2 "" 1-2 99999999999/2; do
  expect 2 "shard|want I/N" "$dfrcl" run $tr --out "$tmp/bad" --shard "$bad"
done
expect 2 "shard 3 is outside 1\.\.2" "$dfrcl" run $tr --out "$tmp/bad" --shard 3/2
expect 2 "at least 1" "$dfrcl" run $tr --out "$tmp/bad" --shard 1/0
expect 2 "neither SLURM_ARRAY_TASK_ID .* nor JOB_COMPLETION_INDEX" env -u SLURM_ARRAY_TASK_ID -u JOB_COMPLETION_INDEX "$dfrcl" run $tr --out "$tmp/bad" --shard auto
expect 2 "not DFRCL_SHARD_COUNT" env -u SLURM_ARRAY_TASK_ID -u DFRCL_SHARD_COUNT JOB_COMPLETION_INDEX=0 "$dfrcl" run $tr --out "$tmp/bad" --shard auto
expect 2 "shard 3 is outside 1\.\.2" env -u SLURM_ARRAY_TASK_ID JOB_COMPLETION_INDEX=2 DFRCL_SHARD_COUNT=2 "$dfrcl" run $tr --out "$tmp/bad" --shard auto
expect 2 "shard 3 is outside 1\.\.2" env SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=2 "$dfrcl" run $tr --out "$tmp/bad" --shard auto
expect 2 "SLURM_ARRAY_TASK_ID='x' is not a whole number" env SLURM_ARRAY_TASK_ID=x SLURM_ARRAY_TASK_COUNT=2 "$dfrcl" run $tr --out "$tmp/bad" --shard auto
expect 2 "SLURM_ARRAY_TASK_COUNT is not" env -u SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_ID=1 "$dfrcl" run $tr --out "$tmp/bad" --shard auto
expect 2 "takes no --data" "$dfrcl" run --merge "$s" --data "$tmp/root"
expect 2 "takes no --data" "$dfrcl" run --merge "$s" --shard 1/2
check "bad shard specs wrote nothing" "[ ! -e '$tmp/bad' ]"
expect 1 "no shard records" "$dfrcl" run --merge "$tmp/u"

# Shards run with other settings: the merge names the shard and the setting.
d="$tmp/d"
expect 0 "shard 1/2" "$dfrcl" run $tr --out "$d" --shard 1/2
expect 0 "shard 2/2" "$dfrcl" run $tr --out "$d" --shard 2/2 --epochs 2
expect 1 "shard 2/2 ran with other settings than shard 1/2: epochs 1 -> 2" "$dfrcl" run --merge "$d"
expect 1 "ran over other categories" sh -c "'$dfrcl' run $tr --out '$d' --shard 2/2 --epochs 1 --categories fabric >/dev/null; '$dfrcl' run --merge '$d'"

# A missing category: its metrics gone, or its shard stopped before it, or its settings changed.
cp -r "$s" "$tmp/m1"; rm "$tmp/m1/fabric/metrics.json"; rm -f "$tmp/m1/summary."*
expect 1 "category fabric \(shard 2/2\): .*fabric/metrics.json is missing" "$dfrcl" run --merge "$tmp/m1"
check "no summary from a refused merge" "[ ! -e '$tmp/m1/summary.csv' ]"
cp -r "$s" "$tmp/m2"; sed -i 's/"ok"/"pending"/' "$tmp/m2/shards/1-of-2.json"
expect 1 "category hazelnut of shard 1/2 has not finished" "$dfrcl" run --merge "$tmp/m2"
check "the merge names every unfinished category" "grep -q 'category carpet of shard 1/2 has not finished' '$tmp/out' && grep -q 'refused: 2 problems' '$tmp/out'"
cp -r "$s" "$tmp/m3"; sed -i 's/"category":	"fabric",//' "$tmp/m3/shards/2-of-2.json"
expect 1 "category fabric is missing from shard 2/2's record" "$dfrcl" run --merge "$tmp/m3"
cp -r "$s" "$tmp/m4"; sed -i 's/"epochs":	1/"epochs":	3/' "$tmp/m4/hazelnut/settings.json"
expect 1 "category hazelnut: .*settings.json differs from shard 1/2's settings: epochs 3 -> 1" "$dfrcl" run --merge "$tmp/m4"
cp -r "$s" "$tmp/m5"; echo '{' > "$tmp/m5/shards/2-of-2.json"
expect 1 "2-of-2.json: not a JSON object" "$dfrcl" run --merge "$tmp/m5"

echo "$((n-fails))/$n passed"
[ "$fails" -eq 0 ]
