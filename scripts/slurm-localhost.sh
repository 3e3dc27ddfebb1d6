#!/usr/bin/env bash
# A real single-node SLURM on localhost, for jouleflow's cluster tests and for trying the
# SLURM profile on a workstation: Debian's slurmctld + slurmd + munge, no accounting DB,
# a fake GPU GRES backed by plain files, daemons started by hand (no systemd) and stopped
# by PID.  Runs as root (daemons and the config under /etc/slurm need it).
#
#   scripts/slurm-localhost.sh install   # apt-get install slurmctld slurmd slurm-client munge
#   scripts/slurm-localhost.sh start     # write slurm.conf + gres.conf, start munged, slurmctld, slurmd
#   scripts/slurm-localhost.sh status    # daemons, sinfo, where the logs are
#   scripts/slurm-localhost.sh stop      # stop the daemons this script started (by PID)
#
# Settings (environment):
#   JOULEFLOW_SLURM_DIR       state, logs, fake GPU files   [/var/lib/jouleflow-slurm]
#   JOULEFLOW_SLURM_GPUS      number of fake GPUs on the node  [4]
#   JOULEFLOW_SLURM_GPU_TYPE  their GRES type name             [h100]
#   JOULEFLOW_SLURM_CPUS      CPUs to declare (default: what slurmd -C detects)
#
# Records: every finished job is appended to $JOULEFLOW_SLURM_DIR/log/jobcomp.log
# (jobcomp/filetxt: JobId, Name, JobState, Partition, TimeLimit, Tres incl. gres/gpu),
# submissions are in log/slurmctld.log.  There is no slurmdbd, so `sacct` has no data:
# point the Snakemake SLURM plugin at `squeue` (profiles/slurm does) — MinJobAge is set
# high so finished jobs stay visible to squeue long enough.
set -euo pipefail

STATE_DIR="${JOULEFLOW_SLURM_DIR:-/var/lib/jouleflow-slurm}"
GPU_COUNT="${JOULEFLOW_SLURM_GPUS:-4}"
GPU_TYPE="${JOULEFLOW_SLURM_GPU_TYPE:-h100}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MARKER="# written by jouleflow scripts/slurm-localhost.sh"
MUNGE_RUN=/run/munge
PARTITION=debug

log() { printf 'slurm-localhost: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "run as root (it installs packages, writes $CONF_DIR and starts daemons)"
}

cmd_install() {
    need_root
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # The maintainer scripts try to start the services; without systemd that is refused
    # harmlessly (policy-rc.d / no runlevel).  We start the daemons ourselves in `start`.
    apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
    log "installed: $(slurmctld -V)"
}

node_name() { hostname -s 2>/dev/null || uname -n | cut -d. -f1; }

write_config() {
    local node cpus detected mem gres_range
    node="$(node_name)"
    detected="$(slurmd -C | head -n1)"
    cpus="${JOULEFLOW_SLURM_CPUS:-$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$detected")}"
    # Leave some memory to the OS so the node is never "low memory" → DRAIN.
    mem="$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")"
    mem=$((mem * 9 / 10))
    [ -n "$cpus" ] && [ -n "$mem" ] || die "could not read CPUs/RealMemory from 'slurmd -C': $detected"

    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script; refusing to overwrite it"
    fi
    mkdir -p "$CONF_DIR" "$STATE_DIR"/{ctld,spool,log,dev}

    # Fake GPUs: SLURM wants a device node per GPU for File=; nothing opens them (no
    # cgroup device constraint here).  They exist only so scheduling, CUDA_VISIBLE_DEVICES
    # and the --gpus/--gres request path behave as on a real GPU node.  Character
    # devices with /dev/null's numbers; a plain file where mknod is not allowed (slurmd
    # then logs "not a valid character or block device" but schedules the GRES alike).
    local i dev
    for ((i = 0; i < GPU_COUNT; i++)); do
        dev="$STATE_DIR/dev/fake-gpu$i"
        [ -e "$dev" ] || mknod "$dev" c 1 3 2>/dev/null || : >"$dev"
    done
    gres_range="[0-$((GPU_COUNT - 1))]"

    cat >"$CONF" <<EOF
$MARKER — single-node test cluster; do not use in production.
ClusterName=jouleflow-local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Containers: no cgroups, no systemd.  Track processes through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
# No accounting DB; a plain-text completion record per job instead.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE_DIR/log/jobcomp.log
# Keep finished jobs in slurmctld (squeue --states=all) for 30 min: the Snakemake
# plugin polls squeue and must see every job's final state.
MinJobAge=1800
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
GresTypes=gpu
ReturnToService=2
MailProg=/bin/true
KillWait=5
InactiveLimit=0
Waittime=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:$GPU_TYPE:$GPU_COUNT State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$CONF_DIR/gres.conf" <<EOF
$MARKER
AutoDetect=off
NodeName=$node Name=gpu Type=$GPU_TYPE File=$STATE_DIR/dev/fake-gpu$gres_range
EOF
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
    if pid_alive "$MUNGE_RUN/munged.pid"; then return; fi
    mkdir -p "$MUNGE_RUN" /var/log/munge /var/lib/munge
    chown munge:munge "$MUNGE_RUN" /var/log/munge /var/lib/munge
    chmod 0755 "$MUNGE_RUN"
    if [ ! -s /etc/munge/munge.key ]; then
        runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
    fi
    runuser -u munge -- /usr/sbin/munged
    munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
}

wait_node_ready() {
    local deadline=$((SECONDS + 60)) state=""
    while ((SECONDS < deadline)); do
        pid_alive "$STATE_DIR/slurmctld.pid" || break
        state="$(timeout 5 sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)"
        case "$state" in
            idle | mixed | allocated | completing) log "node $(node_name) is $state"; return 0 ;;
            down* | drain*)
                # A node left DOWN/DRAIN by an earlier run is brought back.
                scontrol update NodeName="$(node_name)" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    log "node did not become ready (state: '${state:-unknown}'); last log lines:"
    tail -n 15 "$STATE_DIR/log/slurmctld.log" "$STATE_DIR/log/slurmd.log" >&2 || true
    return 1
}

cmd_start() {
    need_root
    command -v slurmctld >/dev/null || die "slurmctld not installed; run '$0 install' first"
    write_config
    start_munge
    if pid_alive "$STATE_DIR/slurmctld.pid"; then
        scontrol reconfigure  # pick up a rewritten slurm.conf
    else
        /usr/sbin/slurmctld -f "$CONF"
    fi
    if ! pid_alive "$STATE_DIR/slurmd.pid"; then
        /usr/sbin/slurmd -f "$CONF" -N "$(node_name)"
    fi
    wait_node_ready
    log "running; logs in $STATE_DIR/log (slurmctld.log, slurmd.log, jobcomp.log)"
}

stop_pidfile() {
    local name="$1" pidfile="$2" pid i
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for ((i = 0; i < 30; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) did not stop on TERM; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

cmd_stop() {
    need_root
    stop_pidfile slurmd "$STATE_DIR/slurmd.pid"
    stop_pidfile slurmctld "$STATE_DIR/slurmctld.pid"
    stop_pidfile munged "$MUNGE_RUN/munged.pid"
}

cmd_status() {
    local rc=0 name pidfile
    for name in munged slurmctld slurmd; do
        case "$name" in
            munged) pidfile="$MUNGE_RUN/munged.pid" ;;
            *) pidfile="$STATE_DIR/$name.pid" ;;
        esac
        if pid_alive "$pidfile"; then
            echo "$name: running (pid $(cat "$pidfile"))"
        else
            echo "$name: not running"
            rc=1
        fi
    done
    if [ "$rc" -eq 0 ]; then
        sinfo -N -o '%N %P %T %c %m %G' || rc=1
    fi
    echo "logs: $STATE_DIR/log"
    return "$rc"
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 {install|start|stop|status}" >&2; exit 2 ;;
esac
