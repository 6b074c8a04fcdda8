"""A watchdog that removes a run's containers when the process that started them dies.

``multiverse run`` may die in ways it cannot clean up after: SIGKILL, the
kernel's OOM killer, a lost SSH session. So, like testcontainers' reaper, a
small separate process watches it: :class:`Watchdog` starts
``python -m multiverse.backends.reaper RUN_ID`` in its own session (a closed
terminal does not reach it) with a pipe on its stdin. The reaper blocks on
that pipe; when it reads end-of-file (the run finished, or its process died
and the kernel closed the pipe) it removes every container labelled with the
run's id, three times over a few seconds to catch one created at the last
moment, and exits. A run that ends normally has removed its containers
already and says so on the pipe ("done") before closing it: the reaper then
exits without sweeping.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Optional

#: Seconds after end-of-file at which the reaper sweeps (a container created as the run died shows up late).
SWEEPS_AT_S = (0.0, 1.0, 3.0)
#: What a run that cleaned up after itself writes before closing the pipe.
DONE = b"done"


class Watchdog:
    """While entered, a reaper process removes this run's containers if this process dies."""

    def __init__(self, run_id: str, base_url: Optional[str] = None):
        self.run_id = run_id
        self.base_url = base_url
        self.process: Optional[subprocess.Popen] = None

    def __enter__(self) -> "Watchdog":
        command = [sys.executable, "-m", "multiverse.backends.reaper", self.run_id]
        if self.base_url:
            command += ["--base-url", self.base_url]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # no SIGHUP/SIGINT from our terminal or process group
            close_fds=True,
        )
        return self

    def __exit__(self, exc_type, *rest) -> bool:
        if self.process is not None:
            try:
                if exc_type is None:
                    self.process.stdin.write(DONE)  # every container of the run is gone already
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        return False


#: Seconds a container that another process is removing gets to disappear.
REMOVAL_WAIT_S = 15.0


def force_remove(container, wait_s: float = REMOVAL_WAIT_S) -> bool:
    """Remove ``container``, running or not; True once it is gone, False if it already was.

    A dead run's containers have two removers racing: its reaper and the next run's
    clean-up. The engine answers the loser 409 Conflict ("removal ... already in progress";
    Podman words it its own way), which is not a failure as long as the container then goes."""
    import docker.errors

    try:
        container.remove(force=True)
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError:
        end = time.monotonic() + wait_s
        while True:
            try:
                container.reload()
            except docker.errors.NotFound:
                return True
            if time.monotonic() >= end:
                raise
            time.sleep(0.2)


def sweep(client, run_id: str) -> list[str]:
    """Remove every container of ``run_id``; returns their names."""
    from multiverse.backends.base import LABEL, LABEL_RUN

    removed = []
    for container in client.containers.list(all=True, filters={"label": [f"{LABEL}=1", f"{LABEL_RUN}={run_id}"]}):
        if force_remove(container):
            removed.append(container.name)
    return removed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m multiverse.backends.reaper",
                                     description="Remove a multiverse run's containers once its process is gone.")
    parser.add_argument("run_id")
    parser.add_argument("--base-url", help="the engine's API address (default: DOCKER_HOST or the local socket)")
    args = parser.parse_args(argv)
    # Blocks until the run closes the pipe or dies.
    said = b""
    while chunk := sys.stdin.buffer.read(4096):
        said += chunk
    if said == DONE:
        return 0
    import docker

    client = docker.DockerClient(base_url=args.base_url) if args.base_url else docker.from_env()
    started = time.monotonic()
    for at in SWEEPS_AT_S:
        time.sleep(max(0.0, started + at - time.monotonic()))
        try:
            sweep(client, args.run_id)
        except Exception:  # noqa: BLE001 - the engine may be restarting; the next sweep tries again
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
