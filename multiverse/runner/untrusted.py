"""Folders a container wrote are hostile until walked; files the host writes never follow links.

A method's image may run a compromised dependency, and it owns its output
folder while it runs: it can plant a symbolic link named ``embeddings.h5ad``
that points at the user's files, a hard link, a FIFO that blocks a reader, a
device node. So before the host reads, renames or writes anything in such a
tree, :func:`check_tree` walks it without following links and refuses
anything that is not a plain file or folder. The host's own files go where
the container never had access, or are created with :func:`write_new_file`,
which refuses to follow a link and never opens an existing file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

#: A container-written tree with more entries than this is refused (it is not a result).
MAX_ENTRIES = 10_000


class UnsafeTree(Exception):
    """The folder holds something the host must not touch; the message names it."""


def check_tree(root: Path, reserved: tuple[str, ...] = (), max_entries: int = MAX_ENTRIES) -> None:
    """Raise UnsafeTree unless ``root`` is a real folder holding only real folders and single-link files.

    ``reserved``: names the host writes at the top of ``root`` (a container must not pre-empt them).
    """
    root = Path(root)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeTree(f"{root} is not a folder")
    for name in reserved:
        if os.path.lexists(root / name):
            raise UnsafeTree(f"{name} was written by the container, but only multiverse writes it")
    seen = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                seen += 1
                if seen > max_entries:
                    raise UnsafeTree(f"more than {max_entries} files and folders")
                where = Path(entry.path).relative_to(root)
                mode = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(mode.st_mode):
                    raise UnsafeTree(f"{where} is a symbolic link (to {os.readlink(entry.path)!r})")
                if stat.S_ISDIR(mode.st_mode):
                    stack.append(Path(entry.path))
                elif stat.S_ISREG(mode.st_mode):
                    if mode.st_nlink > 1:
                        raise UnsafeTree(f"{where} is a hard link (a file with {mode.st_nlink} names)")
                else:
                    raise UnsafeTree(f"{where} is not a regular file or folder (a device, FIFO or socket)")


def write_new_file(path: Path, text: str) -> None:
    """Create ``path`` with ``text``; fails if anything (a file, a link) is already there. Never follows a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def replace_file(path: Path, text: str) -> None:
    """Write ``path`` atomically: a fresh temporary file beside it, then a rename over it.

    The rename replaces a link at ``path`` rather than writing through it.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
