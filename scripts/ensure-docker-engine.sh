#!/usr/bin/env bash
# Make a Docker engine available on a Debian/Ubuntu machine, idempotently.
#
#   - does nothing when `docker info` already answers;
#   - otherwise installs Debian's docker.io (when dockerd is missing) and
#     starts dockerd as root in the background, then waits until it answers.
#
# Normal users with Docker Desktop or a system-managed engine never need this.
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/multiverse-dockerd.log}
WAIT_S=${DOCKERD_WAIT_S:-60}

engine_answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
    echo "docker engine: already running"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "error: no Docker engine answers and this script needs root to install/start one." >&2
    echo "       Start your Docker engine (e.g. 'sudo systemctl start docker') or rerun as root." >&2
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1 || [ ! -x /usr/bin/docker ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: dockerd is not installed and apt-get is unavailable; install Docker for your OS." >&2
        exit 1
    fi
    echo "docker engine: installing Debian's docker.io"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

# A pid file left by an engine that died would stop dockerd from starting.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    echo "docker engine: starting dockerd (log: $LOG)"
    setsid nohup dockerd >"$LOG" 2>&1 < /dev/null &
fi

for _ in $(seq 1 "$WAIT_S"); do
    if engine_answers; then
        echo "docker engine: ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
        exit 0
    fi
    sleep 1
done
echo "error: dockerd did not answer within ${WAIT_S}s; see $LOG" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
