"""Atomic results under the output root.

A model writes into its own staging folder (``.multiverse/staging/``); only an
output that passed validation is renamed into ``<output>/<model>``, replacing
an earlier result in one step. A failed or interrupted attempt goes to
``.multiverse/failed/<model>/`` with the container's log, for inspection: it
never looks like a result and never removes one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from multiverse.errors import ConfigError
from multiverse.plan import WORK_DIR

CONTAINER_LOG = "container.log"


class ResultStore:
    def __init__(self, root: Path, run_id: str):
        self.root = root
        self.run_id = run_id
        self.work = root / WORK_DIR

    @contextlib.contextmanager
    def locked(self):
        """Hold the output root for this run; a second run on it is refused."""
        self.work.mkdir(parents=True, exist_ok=True)
        with open(self.work / "lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"another multiverse run is writing to {self.root}; wait for it or choose another --output") from None
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            try:
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def staging(self, name: str) -> Path:
        folder = self.work / "staging" / f"{name}-{self.run_id}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def promote(self, name: str, staging: Path) -> Path:
        """Move a validated staging folder into place, replacing any earlier result."""
        final = self.root / name
        old = None
        if final.exists():
            old = self.work / "replaced" / f"{name}-{self.run_id}"
            old.parent.mkdir(parents=True, exist_ok=True)
            final.rename(old)
        staging.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def keep_failed(self, name: str, staging: Path, container_log: str = "") -> Path:
        """Keep a failed attempt's folder (and the container's log) out of the results."""
        failed = self.work / "failed" / name
        shutil.rmtree(failed, ignore_errors=True)
        failed.parent.mkdir(parents=True, exist_ok=True)
        if staging.exists():
            staging.rename(failed)
        else:
            failed.mkdir()
        if container_log:
            (failed / CONTAINER_LOG).write_text(container_log)
        return failed

    def clear_failed(self, name: str) -> None:
        shutil.rmtree(self.work / "failed" / name, ignore_errors=True)

    def recover(self) -> None:
        """Tidy up after a run that crashed: staging folders are never results and go;
        a result caught between its two renames is put back."""
        shutil.rmtree(self.work / "staging", ignore_errors=True)
        replaced = self.work / "replaced"
        if replaced.is_dir():
            for old in replaced.iterdir():
                name = old.name.rsplit("-", 3)[0]  # strip "-<run id>" (YYYYmmdd-HHMMSS-hex)
                if not (self.root / name).exists():
                    old.rename(self.root / name)
            shutil.rmtree(replaced, ignore_errors=True)
