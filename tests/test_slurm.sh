#!/bin/sh
# The Slurm script for real: a one-node Slurm (slurmctld, slurmd, munged) on localhost, from a
# slurm.conf generated in a temp folder, runs tools/cluster/slurm_array.sbatch over three small
# demo categories (a 2-task array and its dependent merge); the merged summary must equal an
# unsharded run's. Skipped (77) without Slurm and munge, or when not root (slurmd needs it).
# Usage: test_slurm.sh DFRCL REPO_ROOT
root="$2"
for p in slurmctld slurmd munged sbatch squeue; do
  command -v "$p" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
  command -v "$p" >/dev/null 2>&1 || { echo "skip: $p not installed (Debian: slurm-wlm munge)"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "skip: slurmd needs root"; exit 77; }
dfrcl=$(readlink -f "$1")
t0=$(date +%s)
tmp=$(mktemp -d); chmod 755 "$tmp"
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null; done
  for p in $pids; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/log/*; do echo "== $f"; tail -15 "$f"; done; exit 1; }

# munge: its own key, socket and files, so nothing of the machine's is used.
mkdir -p "$tmp/munge" "$tmp/log" "$tmp/state" "$tmp/spool"; chmod 700 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/key" bs=1024 count=1 2>/dev/null; chmod 400 "$tmp/munge/key"
munged -F --key-file="$tmp/munge/key" --socket="$tmp/munge/sock" --pid-file="$tmp/munge/pid" \
  --seed-file="$tmp/munge/seed" --log-file="$tmp/log/munged.log" -f > "$tmp/log/munged.out" 2>&1 &
pids="$pids $!"

host=$(hostname -s)
port=$((20000 + $$ % 20000))
cat > "$tmp/slurm.conf" <<EOF
ClusterName=dfrcltest
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$tmp/slurm.conf"
i=0; while [ ! -S "$tmp/munge/sock" ]; do i=$((i+1)); [ $i -gt 50 ] && fail "munged did not start"; sleep 0.1; done
slurmctld -D -i > "$tmp/log/slurmctld.out" 2>&1 & pids="$pids $!"
slurmd -D > "$tmp/log/slurmd.out" 2>&1 & pids="$pids $!"
i=0; until sinfo -h -o %T 2>/dev/null | grep -q idle; do
  i=$((i+1)); [ $i -gt 100 ] && fail "the Slurm node did not come up"; sleep 0.2; done
echo "ok: one-node Slurm up in $(( $(date +%s) - t0 )) s"

# Three small categories that differ, and the unsharded reference.
for n in 3 4 5; do
  "$dfrcl" demo --out "$tmp/demo$n" --epochs 1 --train $n --size 32 --layers 4 --random-backbone 0 -q \
    > "$tmp/log/demo.log" 2>&1 || fail "demo"
done
mkdir -p "$tmp/root"
ln -s "$tmp/demo3/data" "$tmp/root/carpet"; ln -s "$tmp/demo4/data" "$tmp/root/fabric"
ln -s "$tmp/demo5/data" "$tmp/root/hazelnut"
args="--random-backbone 0 --layers 4 --size 32 --epochs 1 -q"
"$dfrcl" run --data "$tmp/root" --out "$tmp/u" $args > "$tmp/log/unsharded.log" 2>&1 || fail "unsharded run"

# The shipped script submits the 2-task array and the merge that waits for it.
t1=$(date +%s)
(cd "$tmp" && DFRCL="$dfrcl" DFRCL_DATA="$tmp/root" DFRCL_OUT="$tmp/s" DFRCL_ARGS="$args" SHARDS=2 \
  SBATCH_ARGS="--cpus-per-task=1 --time=5" sh "$root/tools/cluster/slurm_array.sbatch") \
  > "$tmp/log/submit.log" 2>&1 || fail "submitting"
cat "$tmp/log/submit.log"
i=0; while [ -n "$(squeue -h -o %i 2>/dev/null)" ]; do
  i=$((i+1)); [ $i -gt 450 ] && { squeue; fail "jobs still queued after 90 s"; }; sleep 0.2; done
t2=$(date +%s)
cp "$tmp"/dfrcl-*.log "$tmp/log/" 2>/dev/null
[ -f "$tmp/s/shards/1-of-2.json" ] && [ -f "$tmp/s/shards/2-of-2.json" ] || fail "no shard records"
[ -f "$tmp/s/summary.json" ] || fail "the merge job wrote no summary"
grep -q "shard 1/2: 2 of 3" "$tmp"/dfrcl-shard-*_1.log && grep -q "shard 2/2: 1 of 3" "$tmp"/dfrcl-shard-*_2.log &&
  grep -q "merging 2 shards" "$tmp"/dfrcl-merge-*.log || fail "the tasks' logs do not show shards 1/2, 2/2 and the merge"
notime() { sed -e 's#<td class="num[^"]*">[0-9]*</td><td>\(ok\|done before\)</td>#<td>T</td><td>\1</td>#' "$1"; }
cmp "$tmp/u/summary.json" "$tmp/s/summary.json" && cmp "$tmp/u/summary.csv" "$tmp/s/summary.csv" &&
  notime "$tmp/u/summary.html" > "$tmp/a.html" && notime "$tmp/s/summary.html" > "$tmp/b.html" &&
  cmp "$tmp/a.html" "$tmp/b.html" || fail "the merged summary differs from the unsharded one"
echo "ok: Slurm array (2 tasks) + merge job = unsharded run (jobs took $((t2 - t1)) s, all $(( $(date +%s) - t0 )) s)"
