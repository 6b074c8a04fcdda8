#!/usr/bin/env bash
# Make Podman's Docker-compatible API answer on this machine (Debian's podman 4.3).
#
# Idempotent: installs podman if missing, writes /etc/containers/containers.conf.d/multiverse.conf
# (the settings it needs without systemd, and open-file limits this host allows), starts
# `podman system service` on a socket if nothing answers there, and prints the socket's URL
# (multiverse reads MULTIVERSE_PODMAN_URL, default unix:///run/podman/podman.sock).
# Needs root on a Debian-like system (a rootless set-up is described in docs/CLUSTER.md).
set -euo pipefail

log() { echo "ensure-podman: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root (it installs a package and starts a service)"; exit 1; }

SOCKET=${PODMAN_SOCKET:-/run/podman/podman.sock}
URL="unix://$SOCKET"

if ! command -v podman >/dev/null; then
  log "installing Debian's podman"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null
fi

# As root, Podman gives every container nofile=1048576 and nproc at the kernel's maximum; where the
# hard limits of the service's process are lower (20000 open files here) every container fails to
# start ("error setting rlimit type 7" or "type 6"). Use the limits the service itself will have.
NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=1048576
# Podman lowers its own process limit to 32768: no container can be given more.
NPROC=$(ulimit -Hu); { [ "$NPROC" = unlimited ] || [ "$NPROC" -gt 32768 ]; } && NPROC=32768
mkdir -p /etc/containers/containers.conf.d
CONF=/etc/containers/containers.conf.d/multiverse.conf
cat >"$CONF.new" <<EOF
# written by multiverse scripts/ensure-podman.sh
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]

[engine]
# No systemd here: cgroups managed directly, events to a file.
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
PIDFILE=/run/podman/multiverse-service.pid
answers() { curl -sf --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; }

if cmp -s "$CONF.new" "$CONF"; then
  rm -f "$CONF.new"
else
  mv "$CONF.new" "$CONF"
  log "wrote $CONF"
  # The service reads the configuration when it starts.
  if [ -s "$PIDFILE" ] && kill "$(cat "$PIDFILE")" 2>/dev/null; then
    for _ in $(seq 1 25); do answers || break; sleep 0.2; done
    log "stopped the running podman service to apply it"
  fi
fi

if ! command -v curl >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi
if ! answers; then
  mkdir -p "$(dirname "$SOCKET")" /var/log
  rm -f "$SOCKET"
  # --time=0: the service never exits for being idle.
  # From / : conmon writes files (e.g. "oom") into the service's working directory.
  (cd / && exec setsid nohup podman system service --time=0 "$URL" >/var/log/podman-service.log 2>&1 </dev/null) &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 50); do answers && break; sleep 0.2; done
  answers || { log "podman system service did not answer; see /var/log/podman-service.log"; exit 1; }
  log "started podman system service"
fi
log "Podman answers at $URL ($(podman --version))"
echo "$URL"
