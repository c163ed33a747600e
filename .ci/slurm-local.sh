#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, and the workflow run through it (Debian or Ubuntu, root,
# no systemd needed; slurm-wlm 22.05 on Debian 12).
#
#   .ci/slurm-local.sh [test] [--reference DIR] [--record FILE]
#                                       install, start, run the checks below, then stop the
#                                       daemons this call started (also on failure or TERM/INT)
#   .ci/slurm-local.sh up               install and start (or find running); leave up
#   .ci/slurm-local.sh down             stop the daemons `up` started
#
# test, on clean copies of the working tree (tracked and unignored files; the active venv, or
# .venv, provides the packages, and PYTHONPATH points each copy at its own src/):
#   1. fail fast: with `--slurm-status-command sacct` and no accounting, the workflow must stop
#      before any job with a line naming `slurm-status-command` (the plugin would wait for ever);
#   2. config/tiny.yaml through profiles/slurm-gpu, which puts the neural rules on the gpu
#      partition with --gpus=1 (the node's GPU is a gres backed by /dev/null; torch finds no
#      CUDA and uses the CPU); every job's state, partition, CPUs (= the rule's threads) and GPU
#      request are checked in squeue;
#   3. its results equal a local run's (DIR/results of --reference, else a local run here, on one
#      core beside the SLURM one) bit for bit, up to timing columns (.ci/compare_runs.py lists what
#      is left out and why);
#   4. preemption, through profiles/slurm: one training job is scancel'ed (SIGTERM) after its
#      first periodic save; it must save again at the step the signal arrived in and exit; the
#      workflow fails; rerunning the same command must resume from that step, and the final
#      checkpoint, log and summary equal an uninterrupted local run's bit for bit.
# --record FILE writes the result and each step's time as JSON (bench/results/slurm_local.json).
# The node offers this machine's CPUs and at most 16 GB.
# Knobs: LATTHERM_SLURM_STATE (state, logs; default /tmp/lattherm-slurm), LATTHERM_SLURM_MEM_MB,
# LATTHERM_SLURM_STEPS (the checks to run, default "1 2 3 4"; 3 needs 2).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state=${LATTHERM_SLURM_STATE:-/tmp/lattherm-slurm}
conf=/etc/slurm/slurm.conf
marker="# written by lattherm .ci/slurm-local.sh"
packages=(munge slurmctld slurmd slurm-client)
started=()  # daemons this call started, stopped on exit in test mode
children=() # commands running in the background (spawn), stopped on exit
spawned= step_name= step_t0= record_file=
timings=() record=()
work=       # the test's directory: its logs name the Snakemake runs whose jobs to cancel on exit

say() { echo "== slurm-local: $*"; }
die() { echo "slurm-local: error: $*" >&2; exit 1; }
now() { date +%s; }

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {  # stop one daemon by its pid file: TERM, then KILL after 15 s
  local name=$1 pidfile=$2 pid
  alive "$pidfile" || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  echo "stopped $name ($pid)"
}

cancel_our_jobs() {  # the SLURM jobs of this test's Snakemake runs, if any are left
  local uuid uuids
  [[ -n $work ]] || return 0
  uuids=$(sed -n 's/^SLURM run ID: //p' "$work"/*.log 2>/dev/null | sort -u | paste -sd, -)
  [[ -n $uuids ]] || return 0
  for uuid in ${uuids//,/ }; do scancel --name "$uuid" 2>/dev/null || true; done
  # before the daemons stop: the cancelled jobs' processes get KillWait (30 s) to end
  for _ in $(seq 90); do
    [[ -z $(squeue -h --name "$uuids" -t PENDING,RUNNING,COMPLETING -o %i 2>/dev/null) ]] && break
    sleep 0.5
  done
}

on_exit() {
  local rc=$?
  set +e
  trap - TERM INT
  stop_children
  cancel_our_jobs
  stop_started
  if ((rc != 0)); then
    [[ -z $work ]] || echo "slurm-local: failed in step '$step_name'; logs kept in $work" >&2
    [[ -z $step_name ]] || done_step "FAILED"
    write_record "failed in step '$step_name'"
  fi
}

stop_started() {
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    case ${started[i]} in
      slurmd) stop_pidfile slurmd "$state/slurmd.pid" ;;
      slurmctld) stop_pidfile slurmctld "$state/slurmctld.pid" ;;
      munged) stop_pidfile munged /run/munge/munged.pid; rm -f "$state/munged.ours" ;;
    esac
  done
}

install() {
  [[ $(id -u) == 0 ]] || die "needs root (it installs packages and starts daemons)"
  command -v apt-get >/dev/null || die "needs apt-get (Debian or Ubuntu)"
  local missing=() p
  for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  fi
}

write_config() {
  local cpus mem_total mem need tmp
  if [[ -e $conf ]] && ! grep -qxF "$marker" "$conf"; then
    die "$conf exists and was not written by this script; refusing to replace a real cluster's configuration"
  fi
  cpus=$(nproc)
  mem_total=$(awk '/^MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
  mem=${LATTHERM_SLURM_MEM_MB:-$((mem_total * 7 / 10 < 16000 ? mem_total * 7 / 10 : 16000))}
  need=$(grep -ho 'mem_mb=[0-9]*' workflow/rules/*.smk | cut -d= -f2 | sort -n | tail -1)
  ((mem >= need)) || die "the node would offer ${mem} MB, but a rule declares mem_mb=$need (set LATTHERM_SLURM_MEM_MB)"
  mkdir -p "$state/ctld" "$state/spool" /etc/slurm
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
$marker
ClusterName=lattherm
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
# no cgroups, no systemd: processes tracked by parentage, no CPU binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
# no slurmdbd: sacct answers "accounting storage is disabled", so status comes from squeue
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# squeue lists finished jobs for an hour: the plugin's squeue polling and the checks rely on it
MinJobAge=3600
# seconds between scancel's SIGTERM and SIGKILL: time for training to save its progress
KillWait=30
SchedulerParameters=sched_interval=2
GresTypes=gpu
# the node's CPUs, memory and GPU as written here, not as probed (the GPU is not real)
SlurmdParameters=config_overrides
NodeName=localhost CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
EOF
  if ! cmp -s "$tmp" "$conf"; then
    if alive "$state/slurmctld.pid" || alive "$state/slurmd.pid"; then
      say "configuration changed: restarting the daemons"
      stop_pidfile slurmd "$state/slurmd.pid"; stop_pidfile slurmctld "$state/slurmctld.pid"
    fi
    mv "$tmp" "$conf"; chmod 644 "$conf"
  else
    rm -f "$tmp"
  fi
  printf '%s\nNodeName=localhost Name=gpu File=/dev/null\n' "$marker" >/etc/slurm/gres.conf
}

port_owner() { command -v ss >/dev/null || return 0; ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -1; }

start() {
  local t0 st
  t0=$(now)
  install
  write_config
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    echo "munged: running"
  else
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create || die "cannot create /etc/munge/munge.key"
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
    touch "$state/munged.ours"; started+=(munged)
    munge -n | unmunge >/dev/null || die "munge does not authenticate after starting munged"
  fi
  if alive "$state/slurmctld.pid"; then
    echo "slurmctld: running"
  else
    [[ -z $(port_owner 6817) ]] || die "port 6817 is taken by $(port_owner 6817): another slurmctld?"
    slurmctld || die "slurmctld did not start: $(tail -5 "$state/slurmctld.log" 2>/dev/null)"
    started+=(slurmctld)
  fi
  if alive "$state/slurmd.pid"; then
    echo "slurmd: running"
  else
    [[ -z $(port_owner 6818) ]] || die "port 6818 is taken by $(port_owner 6818): another slurmd?"
    slurmd -N localhost || die "slurmd did not start: $(tail -5 "$state/slurmd.log" 2>/dev/null)"
    started+=(slurmd)
  fi
  for _ in $(seq 60); do
    st=$(sinfo -h -n localhost -o %t 2>/dev/null | head -1 || true)
    case $st in
      idle|mix|alloc) break ;;
      drain*|down*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
    esac
    sleep 1
  done
  [[ $st == idle || $st == mix || $st == alloc ]] || {
    tail -n 20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
    die "node localhost is '${st:-unknown}' after 60 s, not idle (logs above, in $state)"
  }
  sinfo
  say "SLURM up in $(($(now) - t0)) s"
}

python_env() {
  if [[ -z ${VIRTUAL_ENV:-} && -f $root/.venv/bin/activate ]]; then . "$root/.venv/bin/activate"; fi
  command -v snakemake >/dev/null || die "snakemake not found: activate the project's venv (pip install -c constraints.txt -e .)"
  python -c "import snakemake_executor_plugin_slurm, lattherm" 2>/dev/null \
    || die "snakemake-executor-plugin-slurm or lattherm is not importable in $(command -v python)"
}

copy() {  # a clean copy of the working tree (tracked and unignored files: no results, no .snakemake)
  mkdir -p "$1"
  git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$1"
}

# Commands that take long run in the background, so that a TERM or INT to this script (a CI
# timeout) is handled at once: on_exit stops them (`timeout` passes the TERM on to Snakemake, which
# cancels its jobs, and KILLs it 30 s later if it hangs), then cancels what is left.
spawn() {  # spawn DIR LOG LIMIT_S CMD...: CMD in DIR with DIR's package, under `timeout`; its pid in $spawned
  local dir=$1 log=$2 limit=$3; shift 3
  env -C "$dir" PYTHONPATH="$dir/src" timeout -k 30 "$limit" "$@" >"$log" 2>&1 &
  spawned=$!
  children+=("$spawned")
}

finish() {  # finish PID: wait for a spawned command; its exit status
  local rc=0
  wait "$1" || rc=$?
  local pid left=()
  for pid in "${children[@]}"; do [[ $pid == "$1" ]] || left+=("$pid"); done
  children=("${left[@]}")
  return $rc
}

in_copy() {  # in_copy DIR LOG LIMIT_S CMD...: run and wait
  spawn "$@"
  finish "$spawned"
}

stop_children() {
  local pid
  for pid in "${children[@]}"; do
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${children[@]}"; do
    [[ -n $pid ]] && for _ in $(seq 90); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  done
  children=()
}

wants() { [[ " ${LATTHERM_SLURM_STEPS:-1 2 3 4} " == *" $1 "* ]]; }  # to rerun some steps while debugging

step() {  # step NAME: start timing a step
  say "$1"
  step_name=$1 step_t0=$(now)
}

done_step() {  # done_step [NOTE]: the step's time, for the summary and the record
  local s=$(($(now) - step_t0))
  timings+=("$step_name: $s s${1:+ ($1)}")
  record+=("$(python -c 'import json, sys; print(json.dumps({"step": sys.argv[1], "seconds": int(sys.argv[2]), "note": sys.argv[3]}))' \
    "$step_name" "$s" "${1:-}")")
}

write_record() {  # the test's result as JSON (--record FILE)
  [[ -n $record_file ]] || return 0
  local IFS=,
  python - "$record_file" "[${record[*]}]" "$1" <<'EOF'
import json, os, platform, subprocess, sys
from importlib.metadata import version

def out(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return None

path, steps, result = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
record = {
    "command": ".ci/slurm-local.sh test",
    "checks": os.environ.get("LATTHERM_SLURM_STEPS", "1 2 3 4"),
    "result": result,
    "date": out("date", "-u", "+%Y-%m-%dT%H:%M:%SZ"),
    "commit": out("git", "rev-parse", "HEAD"),
    "working_tree_clean": out("git", "status", "--porcelain", "--untracked-files=no") == "",
    "machine": {"cpus": int(out("nproc")), "os": out("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
                "python": platform.python_version()},
    "versions": {"slurm": out("sinfo", "-V"), "snakemake": version("snakemake"),
                 "snakemake-executor-plugin-slurm": version("snakemake-executor-plugin-slurm"),
                 "torch": version("torch")},
    "steps": steps,
    "total_seconds": sum(s["seconds"] for s in steps),
}
with open(path, "w") as f:
    json.dump(record, f, indent=2)
    f.write("\n")
print(f"result recorded in {path}")
EOF
}

run_test() {
  local reference=$1 rc uuid submitted local_run= jobid train_dir first whole s0 k resumed snap
  python_env
  step "setup: install (if needed) and start a one-node SLURM"
  start
  done_step "$(sinfo -V)"
  work=$(mktemp -d /tmp/lattherm-slurm-test.XXXXXX)
  say "work in $work"

  step "smoke test: a job on each partition, one with --gpus=1"
  timeout 120 sbatch --wait -p cpu -o "$work/smoke-cpu.out" --wrap 'true' >/dev/null || die "a trivial job on partition cpu failed"
  timeout 120 sbatch --wait -p gpu --gpus=1 -o "$work/smoke-gpu.out" --wrap 'test -n "$SLURM_JOB_GPUS"' >/dev/null \
    || die "a --gpus=1 job on partition gpu failed: $(cat "$work/smoke-gpu.out")"
  done_step

  copy "$work/slurm"
  if wants 1; then
    step "1. fail fast when status polling cannot work (sacct without accounting)"
    rc=0
    in_copy "$work/slurm" "$work/failfast.log" 300 snakemake --configfile config/tiny.yaml --profile profiles/slurm \
      --slurm-status-command sacct || rc=$?
    ((rc != 0 && rc != 124 && rc != 137)) || { tail -20 "$work/failfast.log"; die "expected a prompt failure, got exit status $rc"; }
    grep -q 'slurm-status-command: squeue' "$work/failfast.log" || { tail -20 "$work/failfast.log"; die "the failure does not name slurm-status-command"; }
    ! grep -q 'has been submitted with SLURM jobid' "$work/failfast.log" || die "jobs were submitted before the status check"
    grep '^error:' "$work/failfast.log"
    done_step "exit status $rc before any job"
  fi

  # Every rule on the thread count it declares (1), as in the local run, so that the results can
  # be compared bit for bit: torch on 2 threads sums in another order (~1e-7 relative on the
  # transformer), and a discrete draw near a threshold can then flip and change a whole training.
  # figure_snapshots (a figure: not compared) gets 2 threads, to check that threads reach SLURM as
  # --cpus-per-task. The status polls start after 5 s instead of 40.
  if wants 2; then
    if [[ -z $reference ]] && wants 3; then  # the local run for 3, beside this one
      copy "$work/local"
      spawn "$work/local" "$work/local.log" 2700 snakemake --cores 1 --configfile config/tiny.yaml
      local_run=$spawned
    fi
    step "2. config/tiny.yaml through profiles/slurm-gpu"
    rc=0
    in_copy "$work/slurm" "$work/slurm.log" 2700 snakemake --configfile config/tiny.yaml --profile profiles/slurm-gpu --jobs 8 \
      --set-threads neural_train=1 neural_sample=1 neural_transfer=1 mcmc_run=1 figure_snapshots=2 \
      --slurm-init-seconds-before-status-checks 5 || rc=$?
    ((rc == 0)) || { tail -40 "$work/slurm.log"; die "the tiny workflow through SLURM failed (exit $rc; log $work/slurm.log)"; }
    uuid=$(sed -n 's/^SLURM run ID: //p' "$work/slurm.log" | head -1)
    squeue -h --states=all --name "$uuid" -O 'JobID:12,State:12,Partition:10,NumCPUs:6,tres-per-job:24,Comment:300' \
      >"$work/jobs.txt"
    submitted=$(grep -c 'has been submitted with SLURM jobid' "$work/slurm.log")
    python - "$work/jobs.txt" "$submitted" <<'EOF' || die "SLURM jobs did not get the partitions, CPUs or GPUs the profile asks for"
import sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
submitted = int(sys.argv[2])
gpu_rules = ("rule_neural_train", "rule_neural_sample", "rule_neural_transfer")
threads = {"rule_figure_snapshots": 2}
bad = [] if len(rows) == submitted else [f"{submitted} jobs submitted, {len(rows)} in squeue"]
for jobid, status, partition, cpus, tres, comment in rows:
    rule = comment.split("_wildcards_")[0]
    want = ("gpu", "gres:gpu:1") if rule in gpu_rules else ("cpu", "N/A")
    if status != "COMPLETED" or (partition, tres) != want or int(cpus) != threads.get(rule, 1):
        bad.append(f"job {jobid} {comment}: {status}, partition {partition}, {cpus} CPUs, {tres}")
rules = {row[5].split("_wildcards_")[0] for row in rows}
if not rules >= set(gpu_rules) | set(threads):
    bad.append(f"no SLURM job of {sorted(set(gpu_rules) | set(threads) - rules)}")
print(f"{len(rows)} SLURM jobs, all COMPLETED: every neural job on partition gpu with --gpus=1, the others on cpu; "
      f"CPUs = the rule's threads" if rows and not bad else "\n".join(bad or ["no SLURM jobs found"]))
sys.exit(1 if bad or not rows else 0)
EOF
    done_step "$(wc -l <"$work/jobs.txt") SLURM jobs"
  fi

  if wants 3; then
    step "3. the same results as a local run"
    if [[ -z $reference ]]; then
      finish "$local_run" || { tail -40 "$work/local.log"; die "the local tiny run failed"; }
      reference=$work/local
    fi
    python .ci/compare_runs.py "$reference/results" "$work/slurm/results" --rtol 0 | tee "$work/compare.txt" \
      || die "results through SLURM differ from the local run's"
    done_step "$(tail -1 "$work/compare.txt")"
  fi

  if wants 4; then
    # One training run (the transformer on the 4x4 Ising cell), long enough to be caught, saving
    # its progress every $every steps; on one thread both times, so the comparison is bit for bit.
    step "4. preemption: scancel a training job, rerun, compare with an uninterrupted run"
    local steps=200 every=50
    # (a config file: --config would pass the numbers as strings)
    printf 'training: {steps: %d, batch_size: 64, lr: 1.0e-3, anneal: 0.98, clip: 1.0, checkpoint_every: %d}\n' \
      "$steps" "$every" >"$work/training.yaml"
    local target=results/neural/ising/mam/T2.269/checkpoint.pt
    train_dir=$work/preempt/results/neural/ising/mam/T2.269
    local preempt=(snakemake --configfile config/tiny.yaml "$work/training.yaml" --profile profiles/slurm --set-threads
                   neural_train=1 --retries 0 --slurm-init-seconds-before-status-checks 5 "$target")
    copy "$work/preempt"
    copy "$work/whole"
    # the uninterrupted run, locally, beside the SLURM one
    spawn "$work/whole" "$work/whole.log" 900 snakemake "$target" --cores 1 --configfile config/tiny.yaml "$work/training.yaml"
    whole=$spawned
    spawn "$work/preempt" "$work/preempt-1.log" 900 "${preempt[@]}"
    first=$spawned
    # the training job, once it runs; then its first periodic save (at step $every), and at once scancel
    jobid=
    for _ in $(seq 1200); do
      uuid=$(sed -n 's/^SLURM run ID: //p' "$work/preempt-1.log" | head -1)
      [[ -z $uuid ]] || jobid=$(squeue -h --name "$uuid" -t RUNNING -o '%i %k' | awk '$2 ~ /^rule_neural_train/ {print $1}')
      [[ -z $jobid ]] || break
      kill -0 "$first" 2>/dev/null || break; sleep 0.5
    done
    [[ -n $jobid ]] || { tail -20 "$work/preempt-1.log"; die "no neural_train job ran"; }
    for _ in $(seq 6000); do [[ -e $train_dir/.progress/checkpoint.pt ]] && break; kill -0 "$first" 2>/dev/null || break; sleep 0.1; done
    [[ -e $train_dir/.progress/checkpoint.pt ]] || { tail -20 "$work/preempt-1.log"; die "training saved no progress to cancel"; }
    scancel "$jobid"
    s0=$every
    echo "scancel $jobid (SIGTERM) after the periodic save at step $s0 of $steps"
    progress_step() { python -c "import torch, sys; print(torch.load(sys.argv[1], weights_only=False)['step'])" "$1"; }
    rc=0; finish "$first" || rc=$?
    ((rc != 0 && rc != 124 && rc != 137)) || { tail -20 "$work/preempt-1.log"; die "the cancelled run should fail promptly, got exit status $rc"; }
    grep -q "SLURM-job '$jobid' failed, SLURM status is: 'CANCELLED'" "$work/preempt-1.log" \
      || { tail -20 "$work/preempt-1.log"; die "Snakemake did not see job $jobid CANCELLED"; }
    k=$(progress_step "$train_dir/.progress/checkpoint.pt") || die "no progress checkpoint survived the cancel"
    # The periodic saves are at steps $every, 2 x $every, ...: a save at a step between them is the
    # one SIGTERM asked for, at the end of the step it arrived in (a training that ignored SIGTERM
    # would be killed 30 s later, KillWait, with nothing saved since its last periodic save).
    ((k > s0 && k < steps && k % every != 0)) \
      || die "progress at step $k after the cancel (periodic save at $s0): training did not save on SIGTERM"
    echo "SIGTERM: training saved its progress at step $k and exited"
    rc=0
    in_copy "$work/preempt" "$work/preempt-2.log" 900 "${preempt[@]}" || rc=$?
    ((rc == 0)) || { tail -20 "$work/preempt-2.log"; die "the rerun after the cancel failed (exit $rc)"; }
    resumed=$(sed -n "s/^resuming from step \([0-9]*\) of $steps .*/\1/p" "$work/preempt/logs/neural/train_ising_mam_T2.269.log")
    ((${resumed:-0} == k)) || die "the rerun did not resume from step $k (its log: $(cat "$work/preempt/logs/neural/train_ising_mam_T2.269.log"))"
    echo "the rerun resumed from step $resumed of $steps"
    [[ ! -e $train_dir/.progress ]] || die "the finished training left its progress directory"
    rc=0; finish "$whole" || rc=$?
    ((rc == 0)) || { tail -20 "$work/whole.log"; die "the uninterrupted local training failed (exit $rc)"; }
    python .ci/compare_runs.py "$work/whole/${target%/*}" "$train_dir" --rtol 0 | tee "$work/compare-preempt.txt" \
      || die "the resumed training differs from the uninterrupted one"
    done_step "cancelled after step $k, resumed from step $resumed; $(tail -1 "$work/compare-preempt.txt" | sed "s|$work/||g")"
  fi

  say "passed; timings:"
  printf '  %s\n' "${timings[@]}"
  write_record passed
  rm -rf "$work"
}

on_signal() { echo "slurm-local: stopped by SIG$1" >&2; exit $((128 + $(kill -l "$1"))); }

mode=${1:-test}
[[ $# -gt 0 ]] && shift
case $mode in
  test)
    reference= record_file=
    while (($#)); do
      case $1 in
        --reference) reference=$(cd "${2:?--reference needs a directory}" && pwd); shift 2
                     [[ -d $reference/results ]] || die "--reference $reference has no results/" ;;
        --record) record_file=$(realpath -m "${2:?--record needs a file}"); shift 2 ;;
        *) die "unknown option '$1' (--reference DIR, --record FILE)" ;;
      esac
    done
    trap on_exit EXIT
    trap 'on_signal TERM' TERM
    trap 'on_signal INT' INT
    run_test "$reference"
    ;;
  up) start ;;
  down)
    stop_pidfile slurmd "$state/slurmd.pid"
    stop_pidfile slurmctld "$state/slurmctld.pid"
    if [[ -e $state/munged.ours ]]; then stop_pidfile munged /run/munge/munged.pid; rm -f "$state/munged.ours"; fi
    ;;
  *) die "unknown mode '$mode' (test, up, down)" ;;
esac
