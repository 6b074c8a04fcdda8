"""Resolve an image's pinned requirements into a wheelhouse on the host.

pip inside a container may not reach the package index (proxies, TLS
interception, air-gapped clusters), so every wheel an image installs is
downloaded here first, with the host's own pip configuration, for the image's
platform (Linux x86_64, CPython 3.11), and installed in the image with
``--no-index``. A wheelhouse is reused while its requirements file is unchanged.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from multiverse.errors import BuildError

#: The images run Debian bookworm (glibc 2.36): accept every manylinux tag up to it.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]
PYTHON_VERSION = "3.11"
ABIS = ["cp311", "abi3", "none"]
STAMP = ".requirements.sha256"


def _pins(requirements: Path) -> list[str]:
    return [
        line.strip()
        for line in requirements.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _digest(requirements: Path) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def is_current(requirements: Path, dest: Path) -> bool:
    stamp = dest / STAMP
    return stamp.is_file() and stamp.read_text().strip() == _digest(requirements)


def _pip(args: list[str], what: str, cwd: Path | None = None) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise BuildError(
            f"{what} failed (pip exit code {result.returncode}). pip said:\n{tail}\n"
            "The wheelhouse is resolved on this machine with its own pip configuration: "
            "check that pip can reach your package index (or a local mirror)."
        )


def ensure_wheelhouse(requirements: Path, dest: Path) -> Path:
    """Make ``dest`` hold a wheel for every pin of ``requirements``; return ``dest``."""
    if is_current(requirements, dest):
        return dest
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    pins = _pins(requirements)
    if pins:
        args = ["download", "--no-deps", "--dest", str(partial), "--implementation", "cp",
                "--python-version", PYTHON_VERSION]
        for abi in ABIS:
            args += ["--abi", abi]
        for platform_tag in PLATFORMS:
            args += ["--platform", platform_tag]
        _pip(args + ["-r", str(requirements)], f"downloading the wheels of {requirements.name}")
        _build_sdists(partial)
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    (dest / STAMP).write_text(_digest(requirements) + "\n")
    return dest


def _build_sdists(folder: Path) -> None:
    """Turn the few source-only (pure Python) packages into wheels, on the host."""
    for sdist in [*folder.glob("*.tar.gz"), *folder.glob("*.zip")]:
        before = set(folder.glob("*.whl"))
        _pip(["wheel", "--no-deps", "--wheel-dir", str(folder), str(sdist)], f"building a wheel of {sdist.name}", cwd=folder)
        built = set(folder.glob("*.whl")) - before
        impure = [w.name for w in built if not w.name.endswith("-none-any.whl")]
        if impure:
            raise BuildError(
                f"{sdist.name} has no wheel for the image's platform and compiles native code "
                f"({', '.join(impure)}); pin a version that publishes manylinux wheels."
            )
        sdist.unlink()
