"""The node side of a Slurm job: ``python -m multiverse.backends.node FOLDER``.

Reads ``FOLDER/spec.json`` (written by ``slurm.py``), makes sure the node's
engine (Docker or Podman) has the image, loading it from the archive on shared
storage if it does not (never from a registry), and runs the same sandboxed
container as a local run, through :class:`DockerBackend`, with the same limits:
Slurm's ``--mem``/``--cpus-per-task`` do not reach a container that the engine
starts outside the job. SIGTERM (scancel, Slurm's time limit), SIGINT and
SIGHUP stop the container; the container's log goes to stdout (Slurm's
``job.log``) and how it ended to ``FOLDER/outcome.json``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from multiverse.backends.slurm import NODE_PREFIX, OUTCOME_FILE, SPEC_FILE, read_json, spec_from_json, write_json
from multiverse.errors import MultiverseError


def say(text: str) -> None:
    print(f"{NODE_PREFIX} {text}", flush=True)


def ensure_image(backend, image_id: str, archive_dir) -> None:
    """The node's engine has ``image_id``, or loads it from the archive that holds it."""
    from multiverse.errors import ImageMissing
    from multiverse.images.archive import archive_of, load_archive

    if backend.has_image(image_id):
        return
    path = archive_of(Path(archive_dir), image_id) if archive_dir else None
    if path is None:
        where = f"and no archive in {archive_dir} holds it" if archive_dir else "and slurm.images names no archive folder"
        raise ImageMissing(
            f"image {image_id[:19]} is not on node {socket.gethostname()}'s {backend.name} engine {where}; "
            f"run 'multiverse images save DIR' on a machine that has it and set slurm.images: DIR"
        )
    say(f"loading {path.name} into {backend.name} (the node lacks the image)")
    started = time.monotonic()
    load_archive(backend, path, image_id)
    say(f"loaded {path.name} in {time.monotonic() - started:.1f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m multiverse.backends.node",
                                     description="Run one multiverse container on this node's engine (inside a Slurm job).")
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    folder = args.folder
    cancel = threading.Event()

    def stop(signum, frame) -> None:
        if not cancel.is_set():
            say(f"{signal.Signals(signum).name}: stopping the container")
        cancel.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)

    doc = read_json(folder / SPEC_FILE)
    if doc is None:
        say(f"cannot read {folder / SPEC_FILE}")
        return 2
    spec = spec_from_json(doc["spec"])
    try:
        from multiverse.backends import connect

        backend = connect(doc.get("engine") or "docker", doc.get("engine_url"), timeout=60)
        say(f"{spec.name} on {socket.gethostname()} ({backend.name})")
        ensure_image(backend, spec.image, doc.get("images"))
        if cancel.is_set():
            write_json(folder / OUTCOME_FILE, {"cancelled": True})
            return 0
        with backend.guard(spec.run_id):
            outcome = backend.run(spec, cancel, lambda line: print(line, flush=True))
    except MultiverseError as exc:
        say(exc.message)
        write_json(folder / OUTCOME_FILE, {"error": f"on node {socket.gethostname()}: {exc.message}"})
        return 3
    write_json(folder / OUTCOME_FILE, {
        "exit_code": outcome.exit_code,
        "oom_killed": outcome.oom_killed,
        "timed_out": outcome.timed_out,
        "cancelled": outcome.cancelled,
        "duration_s": outcome.duration_s,
        "peak_memory_bytes": outcome.peak_memory_bytes,
        "log_tail": outcome.log_tail,
        "node": socket.gethostname(),
    })
    say(f"container ended: exit {outcome.exit_code}" + (" (stopped)" if outcome.cancelled else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
