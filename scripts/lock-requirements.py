#!/usr/bin/env python3
"""Resolve docker/requirements-<name>.in into the pinned docker/requirements-<name>.txt.

Maintainer tool: run it on Linux x86_64 with Python 3.11 (the images' platform)
after changing a .in file. An .in file whose first line is ``# base: <other>``
is resolved on top of that image's lock, and its lock lists only what it adds.

    python scripts/lock-requirements.py [NAME ...]
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

DOCKER = Path(__file__).resolve().parent.parent / "docker"


def read_base(in_file: Path) -> str | None:
    first = in_file.read_text().splitlines()[:1]
    if first and first[0].startswith("# base:"):
        return first[0].split(":", 1)[1].strip()
    return None


def resolve(requirement_files: list[Path], constraints: Path | None) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--quiet", "--report", str(report)]
        for f in requirement_files:
            cmd += ["-r", str(f)]
        if constraints:
            cmd += ["-c", str(constraints)]
        subprocess.run(cmd, check=True)
        installs = json.loads(report.read_text())["install"]
    pins = {f"{i['metadata']['name'].lower()}=={i['metadata']['version']}" for i in installs}
    return sorted(pins)


def lock(name: str) -> None:
    in_file = DOCKER / f"requirements-{name}.in"
    base = read_base(in_file)
    files, constraints, base_pins = [in_file], None, set()
    if base:
        lock(base) if not (DOCKER / f"requirements-{base}.txt").exists() else None
        constraints = DOCKER / f"requirements-{base}.txt"
        files.insert(0, DOCKER / f"requirements-{base}.in")
        base_pins = {l for l in constraints.read_text().splitlines() if l and not l.startswith("#")}
    pins = [p for p in resolve(files, constraints) if p not in base_pins]
    header = [f"# Pinned from requirements-{name}.in by scripts/lock-requirements.py; do not edit."]
    if base:
        header.append(f"# Installed on top of requirements-{base}.txt (image multiverse/{base}).")
    (DOCKER / f"requirements-{name}.txt").write_text("\n".join(header + pins) + "\n")
    print(f"requirements-{name}.txt: {len(pins)} pins")


def main(names: list[str]) -> None:
    if platform.system() != "Linux" or platform.machine() != "x86_64" or sys.version_info[:2] != (3, 11):
        sys.exit("lock on Linux x86_64 with Python 3.11, the platform of the images")
    names = names or sorted(p.name[len("requirements-"):-3] for p in DOCKER.glob("requirements-*.in"))
    for name in sorted(names, key=lambda n: read_base(DOCKER / f"requirements-{n}.in") is not None):
        lock(name)


if __name__ == "__main__":
    main(sys.argv[1:])
