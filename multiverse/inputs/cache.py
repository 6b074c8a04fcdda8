"""What the host learnt about an input file (checksum, counts scans, its summary), remembered across runs.

Hashing and scanning a multi-GB input takes seconds to minutes; a rerun on
the same file should not pay it again. Entries are keyed by the file's path,
size, modification time and inode: any change to the file (or a new file at
that path) makes a new entry. The cache is one JSON file under
``$XDG_CACHE_HOME/multiverse/`` (default ``~/.cache``), or
``$MULTIVERSE_CACHE_DIR``; losing it only costs time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Optional

CACHE_FILE = "inputs.json"
#: Entries kept (the most recently used).
MAX_ENTRIES = 200


def cache_dir() -> Path:
    explicit = os.environ.get("MULTIVERSE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "multiverse"


def file_identity(path: Path) -> str:
    info = os.stat(path)
    return f"{Path(path).resolve()}|{info.st_size}|{info.st_mtime_ns}|{info.st_ino}|{info.st_dev}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class InputCache:
    """A small persistent map from a file's identity to facts about its content."""

    def __init__(self, folder: Optional[Path] = None):
        self.path = (folder or cache_dir()) / CACHE_FILE

    @contextlib.contextmanager
    def _locked(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path.with_suffix(".lock"), "a")
        except OSError:
            yield False  # an unwritable cache: work without it
            return
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, identity: str) -> dict:
        return dict(self._load().get(identity, {}))

    def update(self, identity: str, **facts) -> None:
        with self._locked() as ok:
            if not ok:
                return
            data = self._load()
            entry = {**data.pop(identity, {}), **facts}
            data[identity] = entry  # most recent last
            while len(data) > MAX_ENTRIES:
                data.pop(next(iter(data)))
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.partial")
            try:
                tmp.write_text(json.dumps(data))
                tmp.replace(self.path)
            except OSError:
                pass

    def remembered(self, identity: str, name: str, compute: Callable[[], object]):
        """``facts[name]`` for this file, computed once."""
        entry = self.get(identity)
        if name in entry:
            return entry[name]
        value = compute()
        self.update(identity, **{name: value})
        return value
