#!/usr/bin/env bash
# Start a real single-node SLURM (munged, slurmctld, slurmd) on Debian without systemd,
# installing the packages first if they are missing. Run as root. Idempotent: daemons
# already running are left alone. The PIDs of the daemons it starts are written to
# $STATE (stop.sh stops exactly those). Waits until the node is idle.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE=${SLURM_CI_STATE:-/run/opscale-slurm.pids}
TIMEOUT=${SLURM_CI_TIMEOUT:-60}
log() { echo "[slurm-start] $*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

packages=(munge slurmctld slurmd slurm-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  # Without systemd the packages' postinst would start daemons before any config exists.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

node=$(hostname -s)
hardware=$(slurmd -C | head -1)
cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hardware")
memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hardware")
memory=$(( memory * 95 / 100 ))  # above what slurmd detects, the node is drained
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /run/slurm /var/log/slurm \
  /run/munge /var/log/munge /var/lib/munge
chown slurm:slurm /var/spool/slurmctld /run/slurm /var/log/slurm
chown munge:munge /run/munge /var/log/munge /var/lib/munge
sed -e "s/@NODE@/$node/g" -e "s/@CPUS@/$cpus/" -e "s/@MEMORY@/$memory/" \
  "$HERE/slurm.conf.in" > /etc/slurm/slurm.conf

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null \
  && ! grep -q '^State:[[:space:]]*Z' "/proc/$(cat "$1")/status" 2>/dev/null; }
started() { echo "$1 $(cat "$2")" >> "$STATE"; log "$1 started (pid $(cat "$2"))"; }
wait_for() { for _ in $(seq 1 100); do alive "$1" && return 0; sleep 0.05; done; die "$1 not written"; }

[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged && wait_for /run/munge/munged.pid
  started munged /run/munge/munged.pid
fi
if ! alive /run/slurm/slurmctld.pid; then
  /usr/sbin/slurmctld && wait_for /run/slurm/slurmctld.pid
  started slurmctld /run/slurm/slurmctld.pid
fi
if ! alive /run/slurm/slurmd.pid; then
  /usr/sbin/slurmd -N "$node" && wait_for /run/slurm/slurmd.pid
  started slurmd /run/slurm/slurmd.pid
fi

deadline=$(( $(date +%s) + TIMEOUT ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
  case "$state" in
    idle|mixed|allocated) log "node $node is $state ($cpus CPUs, ${memory} MB)"; exit 0 ;;
    down*|drain*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.2
done
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
die "node $node not idle after ${TIMEOUT}s"
