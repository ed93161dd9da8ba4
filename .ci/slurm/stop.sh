#!/usr/bin/env bash
# Stop what start.sh started, by PID (never by process name): cancel the jobs, then
# slurmd, slurmctld and munged, each only if its PID still names that daemon.
set -uo pipefail
STATE=${SLURM_CI_STATE:-/run/opscale-slurm.pids}
log() { echo "[slurm-stop] $*" >&2; }
[ -f "$STATE" ] || { log "nothing to stop ($STATE absent)"; exit 0; }
if command -v squeue >/dev/null && squeue -h >/dev/null 2>&1; then
  jobs=$(squeue -h -o %A | tr '\n' ' ')
  [ -n "${jobs// /}" ] && scancel $jobs && sleep 1
fi
for name in slurmd slurmctld munged; do
  pid=$(awk -v n="$name" '$1 == n {print $2}' "$STATE" | tail -1)
  [ -n "$pid" ] || continue
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    kill "$pid"
    for _ in $(seq 1 100); do
      [ -d "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null || break
      sleep 0.1
    done
    [ -d "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null \
      && kill -9 "$pid"
    log "stopped $name (pid $pid)"
  fi
done
rm -f "$STATE"
