#!/usr/bin/env bash
# A one-node SLURM on this machine, for trying the SLURM scripts and for the tests (tests/test_slurm_real.py).
#   scripts/slurm_local.sh up       install what is missing (Debian: slurm-wlm, munge, openmpi-bin; as root),
#                                   write slurm.conf for this host, start munged, slurmctld and slurmd, wait
#                                   until the node is idle (quick when already up)
#   scripts/slurm_local.sh down     stop the three daemons it started
#   scripts/slurm_local.sh status   one line: up (with the node's CPUs and memory) or why not; exit 0 when up
# Needs root (it installs packages and runs the daemons as root). The configuration suits a container: no
# cgroups (proctrack/linuxproc, task/none), no accounting database (sacct does not work; squeue does), one
# partition "debug" holding this host, jobs may share its CPUs (OverSubscribe=FORCE:4) so that small test jobs
# run side by side. It leaves alone a slurm.conf it did not write.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by bert-tf scripts/slurm_local.sh"
STATE=/var/spool/slurm-local
LOGS=/var/log/slurm-local
PACKAGES=(slurm-wlm munge openmpi-bin)
COMMANDS=(slurmctld slurmd munged sbatch mpiexec)
WAIT_SECONDS=${SLURM_LOCAL_WAIT:-60}

die() { echo "error: $*" >&2; exit 2; }

missing_commands() {  # the commands of PACKAGES not on PATH
  local name
  for name in "${COMMANDS[@]}"; do
    command -v "$name" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$name" >/dev/null 2>&1 ||
      printf '%s ' "$name"
  done
}

install_packages() {  # apt-get install what is missing (once: apt-get update first)
  [[ -z $(missing_commands) ]] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing $(missing_commands)and no apt-get to install them"
  ((EUID == 0)) || die "missing $(missing_commands): run as root to install ${PACKAGES[*]}"
  echo "installing ${PACKAGES[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
    die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null ||
    die "apt-get install ${PACKAGES[*]} failed"
}

node_line() {  # this host as slurmd sees it: NodeName=... CPUs=... RealMemory=...
  slurmd -C | head -n 1
}

render_conf() {  # slurm.conf for this host, on stdout
  local node host
  node=$(node_line) || die "slurmd -C failed"
  host=${node#NodeName=}
  host=${host%% *}
  cat <<EOF
$MARK
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdTimeout=300
InactiveLimit=0
KillWait=10
MinJobAge=3600
SchedulerParameters=sched_interval=2,bf_interval=2
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

conf_is_current() {  # whether slurm.conf is the one this script would write now
  [[ -f $CONF ]] && grep -qF "$MARK" "$CONF" && cmp -s <(render_conf) "$CONF"
}

write_conf() {  # slurm.conf for this host (unless someone else's is there); fails when it was already so
  if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: leaving it (stop here, or move it away)"
  fi
  conf_is_current && return 1
  mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$LOGS"
  local tmp
  tmp=$(mktemp "$CONF_DIR/.slurm.conf.XXXXXX")
  render_conf >"$tmp"
  mv -f "$tmp" "$CONF"
}

pid_file() {  # daemon: where it writes its process id
  case $1 in munged) echo /run/munge/munged.pid ;; *) echo "$STATE/$1.pid" ;; esac
}

running() {  # daemon: whether the process its pid file names runs (as that daemon)
  local pid
  pid=$(cat "$(pid_file "$1")" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]  # a zombie has stopped
}

start_munge() {
  running munged && return 0
  mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  chmod 0755 /run/munge
  if id munge >/dev/null 2>&1; then
    su -s /bin/sh munge -c /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
  else
    /usr/sbin/munged --force || die "munged did not start"
  fi
}

start_slurm() {  # changed: whether slurm.conf changed (the daemons then restart)
  if [[ $1 == 1 ]]; then stop_daemons slurmd slurmctld; fi
  running slurmctld || slurmctld || die "slurmctld did not start (see $LOGS/slurmctld.log)"
  running slurmd || slurmd || die "slurmd did not start (see $LOGS/slurmd.log)"
}

node_state() {  # the node's state as sinfo reports it ('' when the controller does not answer)
  sinfo -h -N -o "%T" 2>/dev/null | head -n 1 || true
}

wait_idle() {
  local state="" waited=0
  while ((waited < WAIT_SECONDS)); do
    state=$(node_state)
    case $state in
      idle|mixed|allocated) return 0 ;;
      down*|drain*) scontrol update nodename="$(node_host)" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
    waited=$((waited + 1))
  done
  die "the node is not idle after ${WAIT_SECONDS}s (state '${state:-no answer}'; see $LOGS/slurmctld.log, $LOGS/slurmd.log)"
}

node_host() { local node; node=$(node_line); node=${node#NodeName=}; printf '%s' "${node%% *}"; }

stop_daemons() {  # daemons: stop each by the process id of its pid file (SIGTERM, then SIGKILL)
  local name pid i
  for name in "$@"; do
    running "$name" || continue
    pid=$(cat "$(pid_file "$name")")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do running "$name" || break; sleep 0.2; done
    if running "$name"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  return 0
}

status() {
  local state
  state=$(node_state)
  if [[ -z $state ]]; then echo "down: no SLURM controller answers"; return 1; fi
  echo "up: node $(sinfo -h -N -o '%N, %c CPUs, %m MB memory, state %T' | head -n 1)"
  [[ $state == idle || $state == mixed || $state == allocated ]]
}

up() {
  ((EUID == 0)) || die "run as root (it installs packages and starts the SLURM daemons)"
  export PATH=$PATH:/usr/sbin:/sbin
  if running slurmctld && running slurmd && conf_is_current && status >/dev/null 2>&1; then status; return 0; fi
  install_packages
  local changed=0
  if write_conf; then changed=1; fi
  start_munge
  start_slurm "$changed"
  wait_idle
  status
}

down() {
  export PATH=$PATH:/usr/sbin:/sbin
  if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then die "$CONF was not written by this script: not stopping"; fi
  stop_daemons slurmd slurmctld munged
  echo "down"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) export PATH=$PATH:/usr/sbin:/sbin; status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
