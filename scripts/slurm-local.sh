#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for trying scripts/slurm-analyse.sh and for its tests:
# munged, slurmctld and slurmd from Debian's Slurm (slurmctld, slurmd, slurm-client) and munge (make deps installs them), one
# partition of this machine's cores (nproc) and memory, jobs run as whoever submits them (root too).
#
#   scripts/slurm-local.sh start     # idempotent: does nothing if sinfo already answers
#   scripts/slurm-local.sh status    # one line; exits 3 when it is not running
#   scripts/slurm-local.sh stop      # stops the daemons it started (by their pid files)
#
# Writes SLURM_CONF (default /etc/slurm/slurm.conf), marked as its own by its first line, and
# refuses to replace one that is not; keeps state, spool, logs and pid files in EMBEDLAPSE_SLURM_DIR
# (default /var/lib/embedlapse-slurm). Finished jobs stay visible to `scontrol show job` for an hour
# (MinJobAge): there is no accounting database, so sacct has nothing to say. Needs root.
set -euo pipefail
conf=${SLURM_CONF:-/etc/slurm/slurm.conf}
dir=${EMBEDLAPSE_SLURM_DIR:-/var/lib/embedlapse-slurm}
timeout=${EMBEDLAPSE_SLURM_TIMEOUT:-30}
marker="# Written by embedlapse scripts/slurm-local.sh: a throwaway single-node cluster."
export SLURM_CONF=$conf

usage() { echo "usage: $0 start|stop|status" >&2; exit 2; }
[[ $# -eq 1 ]] || usage

# scontrol ping answers at once when the config names a controller; without a config (a fresh
# install) it looks for one through DNS for a minute, and sinfo retries for seconds while no
# controller listens: ask only when there is a config, and never for long.
answers() { [[ -f $conf ]] && timeout 5 scontrol ping >/dev/null 2>&1 && timeout 10 sinfo -h >/dev/null 2>&1; }
munge_answers() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
summary() { sinfo -h -N -o '%N %t %c CPUs %m MB' 2>/dev/null | head -n 1; }

start() {
    if answers; then
        echo "slurm-local: already up: $(summary)"
        return
    fi
    for tool in munged slurmctld slurmd sinfo; do
        command -v "$tool" >/dev/null || { echo "slurm-local: $tool is missing: apt-get install -y slurmctld slurmd slurm-client munge" >&2; exit 1; }
    done
    if [[ -e $conf ]] && [[ $(head -n 1 "$conf") != "$marker" ]]; then
        echo "slurm-local: $conf exists and is not ours; not touching it (move it away, or set SLURM_CONF)" >&2
        exit 1
    fi
    [[ $(id -u) -eq 0 ]] || { echo "slurm-local: run as root (it starts munged, slurmctld and slurmd)" >&2; exit 1; }
    mkdir -p "$dir"/{state,spool,log,run} "$(dirname "$conf")"

    # munge: a key if there is none, then munged as the munge user, unless one already answers.
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    if ! munge_answers; then
        install -d -o munge -g munge -m 755 /run/munge
        install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
        setsid runuser -u munge -- /usr/sbin/munged --foreground </dev/null >>"$dir/log/munged.out" 2>&1 &
        touch "$dir/run/started-munged"
        for _ in $(seq 50); do munge_answers && break; sleep 0.1; done
        munge_answers || { echo "slurm-local: munged does not answer; see $dir/log/munged.out" >&2; exit 1; }
    fi

    local host cpus memory
    host=$(hostname -s)
    cpus=$(nproc)
    memory=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 1024 ))
    cat >"$conf" <<EOF
$marker
# Stop it with scripts/slurm-local.sh stop; state, logs and pid files are in $dir.
ClusterName=embedlapse-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$(( memory / cpus / 2 ))
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=3600
SlurmdTimeout=30
InactiveLimit=0
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

    # In the foreground (-D) of a background session: no daemonising forks left behind. -c: a fresh
    # controller, no jobs left from an earlier start.
    setsid /usr/sbin/slurmctld -D -c -f "$conf" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
    setsid /usr/sbin/slurmd -D -f "$conf" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
    local deadline=$(( SECONDS + timeout )) state=
    while (( SECONDS < deadline )); do
        state=$(timeout 5 sinfo -h -n "$host" -o '%t' 2>/dev/null || true)
        [[ $state == idle ]] && break
        sleep 0.2
    done
    if [[ $state != idle ]]; then
        echo "slurm-local: node $host not idle after ${timeout}s (state: ${state:-no answer}); see $dir/log/" >&2
        exit 1
    fi
    echo "slurm-local: up: $(summary), config $conf"
}

stop_daemon() {  # name, pid file
    local pid
    [[ -s $2 ]] && pid=$(cat "$2") || return 0
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
        stopped+=("$1")
    fi
    rm -f "$2"
}

stop() {
    stopped=()
    stop_daemon slurmd "$dir/run/slurmd.pid"
    stop_daemon slurmctld "$dir/run/slurmctld.pid"
    if [[ -e $dir/run/started-munged ]]; then
        stop_daemon munged /run/munge/munged.pid
        rm -f "$dir/run/started-munged"
    fi
    echo "slurm-local: stopped ${stopped[*]:-nothing (not running)}"
}

status() {
    if answers; then
        echo "slurm-local: up: $(summary)"
    else
        echo "slurm-local: not running"
        exit 3
    fi
}

case $1 in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
