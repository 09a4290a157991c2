#!/usr/bin/env bash
# Analyses a run on a Slurm cluster and films it: a job array of SHARDS tasks, task i running
# `embedlapse analyse RUN --shard $((i+1))/SHARDS --cache CACHE --threads T`, then a render job that
# runs only once every task has succeeded (--dependency=afterok) and reads the cache they wrote:
# `embedlapse render RUN --cache CACHE -o OUT [render options...]`. See docs/slurm.md.
#
#   scripts/slurm-analyse.sh [--wait] [--cache DIR] [--logs DIR] [--cpus-per-task C] RUN SHARDS OUT.mp4 [render options...]
#   e.g. scripts/slurm-analyse.sh --wait --cpus-per-task 4 /shared/runs/vit 8 /shared/films/vit.mp4 --tween 1
#
# --cache DIR          the analysis cache, on a filesystem every node shares (EMBEDLAPSE_CACHE;
#                      default RUN/.embedlapse/analysis)
# --logs DIR           the jobs' log files (EMBEDLAPSE_SLURM_LOGS; default OUT without its extension,
#                      plus .slurm-logs): analyse-<array job>_<task>.log and render-<job>.log
# --cpus-per-task C    cores of each job (EMBEDLAPSE_CPUS_PER_TASK; default 1); each shard analyses
#                      with --threads SLURM_CPUS_PER_TASK (1 when unset). The last bits of the numbers
#                      depend on the thread count: keep it fixed to get the same cache again.
# --wait               (or EMBEDLAPSE_SLURM_WAIT=1) blocks until the render job has ended; exits 1,
#                      naming the failed jobs and their logs, if any job failed (a failed shard
#                      cancels the render job, which could never run).
# EMBEDLAPSE_BIN names the binary (default: embedlapse on PATH); sbatch's own variables
# (SBATCH_PARTITION, SBATCH_ACCOUNT, SBATCH_TIMELIMIT...) apply to both jobs. Paths given to the
# jobs are absolute. Prints the two job ids; exits 2 on bad arguments.
set -euo pipefail
usage() {
    echo "usage: $0 [--wait] [--cache DIR] [--logs DIR] [--cpus-per-task C] RUN SHARDS OUT.mp4 [embedlapse render options...]" >&2
    exit 2
}
fail() { echo "slurm-analyse: $*" >&2; exit 1; }

wait_for_jobs=${EMBEDLAPSE_SLURM_WAIT:-0}
cache=${EMBEDLAPSE_CACHE:-}
logs=${EMBEDLAPSE_SLURM_LOGS:-}
cpus=${EMBEDLAPSE_CPUS_PER_TASK:-1}
poll=${EMBEDLAPSE_SLURM_POLL:-2}
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --wait) wait_for_jobs=1; shift ;;
        --cache|--logs|--cpus-per-task)
            [[ $# -ge 2 && -n $2 ]] || usage
            case $1 in --cache) cache=$2 ;; --logs) logs=$2 ;; --cpus-per-task) cpus=$2 ;; esac
            shift 2 ;;
        *) usage ;;
    esac
done
[[ $# -ge 3 && $2 =~ ^[1-9][0-9]*$ && $cpus =~ ^[1-9][0-9]*$ && $3 =~ \.(mp4|gif)$ ]] || usage
[[ -d $1 ]] || { echo "slurm-analyse: $1 is not a run directory" >&2; usage; }
run=$(realpath "$1") shards=$2 out=$3
shift 3
render_options=("$@")
binary=${EMBEDLAPSE_BIN:-embedlapse}
binary=$(command -v "$binary") || fail "${EMBEDLAPSE_BIN:-embedlapse} not found: set EMBEDLAPSE_BIN to the binary"
binary=$(realpath "$binary")
command -v sbatch >/dev/null || fail "sbatch not found: is this a Slurm login node? (scripts/slurm-local.sh start for one here)"
mkdir -p "$(dirname "$out")"
out=$(realpath "$out")
cache=$(realpath -m "${cache:-$run/.embedlapse/analysis}")
logs=$(realpath -m "${logs:-${out%.*}.slurm-logs}")
mkdir -p "$logs"

q() { printf '%q' "$1"; }
analysis=$(sbatch --parsable --job-name="embedlapse-analyse" --array="0-$((shards - 1))" --cpus-per-task="$cpus" \
    --output="$logs/analyse-%A_%a.log" <<EOF
#!/bin/bash
# Shard \$((SLURM_ARRAY_TASK_ID + 1)) of $shards of the analysis of $(q "$run") (scripts/slurm-analyse.sh).
set -euo pipefail
shard=\$((SLURM_ARRAY_TASK_ID + 1))
threads=\${SLURM_CPUS_PER_TASK:-1}
echo "slurm-analyse: shard \$shard/$shards on \$(hostname) with \$threads threads"
exec $(q "$binary") analyse $(q "$run") --shard "\$shard/$shards" --cache $(q "$cache") --threads "\$threads"
EOF
) || fail "sbatch refused the analysis job array"
analysis=${analysis%%;*}
render_script="exec $(q "$binary") render $(q "$run") --cache $(q "$cache") -o $(q "$out")"
for option in ${render_options[@]+"${render_options[@]}"}; do render_script+=" $(q "$option")"; done
render=$(sbatch --parsable --job-name="embedlapse-render" --dependency="afterok:$analysis" --kill-on-invalid-dep=yes \
    --cpus-per-task="$cpus" --output="$logs/render-%j.log" <<EOF
#!/bin/bash
# The film of $(q "$run") from the cache that job array $analysis wrote (scripts/slurm-analyse.sh).
set -euo pipefail
$render_script
EOF
) || { scancel "$analysis" 2>/dev/null || true; fail "sbatch refused the render job; cancelled job array $analysis"; }
render=${render%%;*}
echo "slurm-analyse: analysis job $analysis: $shards tasks into $cache, logs $logs/analyse-${analysis}_<task>.log"
echo "slurm-analyse: render job $render after job $analysis succeeds: $out, log $logs/render-$render.log"
[[ $wait_for_jobs == 1 ]] || exit 0

# "TASK STATE REASON EXITCODE" for each task of a job (TASK "-" outside arrays): from the controller
# while it remembers the job (MinJobAge), from accounting (sacct) after that; nothing if neither knows.
states() {
    local lines
    if lines=$(scontrol show job -o "$1" 2>/dev/null) && [[ -n $lines ]]; then
        awk '{ task = "-"; state = reason = code = "?"
               for (i = 1; i <= NF; i++) {
                   split($i, kv, "="); if (kv[1] == "ArrayTaskId") task = kv[2]; else if (kv[1] == "JobState") state = kv[2]
                   else if (kv[1] == "Reason") reason = kv[2]; else if (kv[1] == "ExitCode") code = kv[2] }
               print task, state, reason, code }' <<<"$lines"
    elif lines=$(sacct -n -X -P -j "$1" -o JobID,State,ExitCode 2>/dev/null) && [[ -n $lines ]]; then
        awk -F'|' '{ n = split($1, id, "_"); split($2, state, " "); print (n > 1 ? id[2] : "-"), state[1], "-", $3 }' <<<"$lines"
    fi
}
active='^(PENDING|CONFIGURING|RUNNING|COMPLETING|SUSPENDED|REQUEUED|REQUEUE_FED|REQUEUE_HOLD|RESIZING|SIGNALING|STAGE_OUT|STOPPED)$'
render_cancelled=0
while :; do
    tasks=$(states "$analysis") film=$(states "$render")
    [[ -n $tasks && -n $film ]] || fail "neither scontrol nor sacct knows job ${tasks:+$render}${tasks:-$analysis} any more: see $logs"
    read -r _ film_state film_reason film_code <<<"$film"
    failed=$(awk -v active="$active" '$2 !~ active && $2 != "COMPLETED"' <<<"$tasks" | sort -n)
    if [[ ( -n $failed || $film_reason == DependencyNeverSatisfied ) && $film_state =~ $active && $render_cancelled == 0 ]]; then
        scancel "$render" 2>/dev/null || true
        render_cancelled=1
    fi
    if ! awk -v active="$active" '$2 ~ active { found = 1 } END { exit !found }' <<<"$tasks" && ! [[ $film_state =~ $active ]]; then
        break
    fi
    sleep "$poll"
done
if [[ -z $failed && $film_state == COMPLETED ]]; then
    echo "slurm-analyse: wrote $out (job array $analysis, render job $render)"
    exit 0
fi
# The error a log ends with: its last "embedlapse: ..." or "Error: ..." line, else its last line.
why() {
    [[ -r $1 ]] || { echo "no log"; return; }
    { grep -E '^(embedlapse|Error):' "$1" || tail -n 1 "$1"; } | tail -n 1
}
if [[ -n $failed ]]; then
    while read -r task state _ code; do
        log=$logs/analyse-${analysis}_$task.log
        echo "slurm-analyse: shard $((task + 1))/$shards (job ${analysis}_$task) $state, exit code $code: $(why "$log"), see $log" >&2
    done <<<"$failed"
    echo "slurm-analyse: render job $render $film_state without running: the analysis failed, $out not written" >&2
else
    echo "slurm-analyse: render job $render $film_state, exit code $film_code: $(why "$logs/render-$render.log"), see $logs/render-$render.log" >&2
fi
exit 1
