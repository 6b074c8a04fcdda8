"""Atomic results under the output root, which also holds the user's own files.

A job's container writes into ``.multiverse/staging/<job>-<key digest>/output/``
(only that ``output/`` folder is mounted). Once the output passed the tree
check and validation, the host adds ``provenance.json`` (multiverse's marker)
and renames ``output/`` into ``<output>/<job>/``, replacing an earlier result
in one step. A failed attempt moves to ``.multiverse/failed/<job>/`` with the
container's log beside (never inside) what the container wrote: it never
looks like a result and never removes one.

A folder is replaced only if it carries the marker: a user's own ``pca/`` or
``report/`` is never deleted (the plan refuses to start, :func:`foreign`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Iterable, Optional

from multiverse.errors import ConfigError, InfrastructureError
from multiverse.runner.untrusted import write_new_file

#: Hidden folder under the output root: staging areas, failed attempts, the run lock.
WORK_DIR = ".multiverse"
PROVENANCE_FILE = "provenance.json"
CONTAINER_LOG = "container.log"
#: What the container wrote, inside a staging or failed folder.
OUTPUT = "output"


def _is_plain_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


#: A marker file and the key its JSON object must hold.
MARKERS = {PROVENANCE_FILE: "multiverse_version", "scores.json": "schema_version"}


def has_marker(folder: Path, marker: str = PROVENANCE_FILE) -> bool:
    """``folder`` is multiverse's own: a real folder holding ``marker``, a plain file multiverse wrote."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode) or not _is_plain_file(folder / marker):
            return False
        return MARKERS[marker] in json.loads((folder / marker).read_text())
    except (OSError, ValueError, TypeError):
        return False


def foreign(folder: Path, marker: str = PROVENANCE_FILE) -> bool:
    """``folder`` exists and is not multiverse's (so it must never be replaced)."""
    return os.path.lexists(folder) and not has_marker(folder, marker)


def _rmtree(path: Path) -> None:
    """Remove a tree that a container may have written (rmtree never follows links); fix modes it set."""

    def retry(function, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            function(target)
        except OSError:
            pass

    if os.path.lexists(path):
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
        else:
            shutil.rmtree(path, onerror=retry)


class ResultStore:
    def __init__(self, root: Path, run_id: str):
        self.root = root
        self.run_id = run_id
        self.work = root / WORK_DIR

    @contextlib.contextmanager
    def locked(self):
        """Hold the output root for this run; a second run on it is refused."""
        self.work.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.work / "lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "r+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"another multiverse run is writing to {self.root}; wait for it or choose another --output") from None
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            try:
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def staging_path(self, name: str, tag: Optional[str] = None) -> Path:
        return self.work / "staging" / f"{name}-{tag or self.run_id}"

    def staging(self, name: str, tag: Optional[str] = None, fresh: bool = True) -> Path:
        """The staging folder of ``name``, emptied unless ``fresh`` is False; the container gets its
        ``output/`` sub-folder. A job's ``tag`` is its result key's digest, the same in every run, so
        that a job an earlier run left running (Slurm) can be picked up where it writes; without a
        tag the folder is this run's own."""
        folder = self.staging_path(name, tag)
        if fresh:
            _rmtree(folder)
        (folder / OUTPUT).mkdir(parents=True, exist_ok=True)
        return folder

    def promote(self, final: Path, staging: Path, record: dict) -> Path:
        """Mark a checked, validated output as multiverse's and move it into place, replacing an earlier result."""
        output = staging / OUTPUT
        write_new_file(output / PROVENANCE_FILE, json.dumps(record, indent=2, default=str) + "\n")
        if foreign(final):
            raise InfrastructureError(
                f"{final} appeared during the run and is not a multiverse result; it was left alone "
                f"and this result kept in {self.work / 'failed'}"
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if os.path.lexists(final):
            # Kept under its path relative to the root, so that recover() can put it back.
            old = self.work / "replaced" / self.run_id / final.relative_to(self.root)
            old.parent.mkdir(parents=True, exist_ok=True)
            os.rename(final, old)
        os.rename(output, final)
        _rmtree(staging)
        if old is not None:
            _rmtree(old)
        return final

    def keep_failed(self, name: str, staging: Path, container_log: str = "") -> Path:
        """Keep a failed attempt (the container's files in ``output/``, the log beside them) out of the results."""
        failed = self.work / "failed" / name
        _rmtree(failed)
        failed.parent.mkdir(parents=True, exist_ok=True)
        if not staging.is_dir():
            staging.mkdir(parents=True)
        if container_log:
            # The staging folder itself is the host's: the container only ever had output/ inside it.
            write_new_file(staging / CONTAINER_LOG, container_log)
        os.rename(staging, failed)
        return failed

    def discard(self, folder: Path) -> None:
        _rmtree(folder)

    def clear_failed(self, name: str) -> None:
        _rmtree(self.work / "failed" / name)

    def recover(self, keep: Iterable[Path] = ()) -> None:
        """Tidy up after a run that crashed: staging folders are never results and go, except those in
        ``keep`` (a backend's jobs that outlived their run write there); a result caught between its
        two renames is put back."""
        keep = {os.path.abspath(path) for path in keep}

        def prune(folder: Path) -> None:
            # Job names nest (<dataset>/<entry>/seed-<s>-<tag>): descend into what holds a kept folder.
            for entry in folder.iterdir():
                path = os.path.abspath(entry)
                if path in keep:
                    continue
                if entry.is_dir() and not entry.is_symlink() and any(k.startswith(path + os.sep) for k in keep):
                    prune(entry)
                else:
                    _rmtree(entry)

        staging = self.work / "staging"
        if staging.is_dir():
            prune(staging)
        replaced = self.work / "replaced"
        if replaced.is_dir():
            for run in replaced.iterdir():
                for marker in sorted(path for name in MARKERS for path in run.rglob(name)):
                    old = marker.parent
                    target = self.root / old.relative_to(run)
                    if has_marker(old, marker.name) and not os.path.lexists(target):
                        target.parent.mkdir(parents=True, exist_ok=True)
                        os.rename(old, target)
            _rmtree(replaced)
