"""Build the method images from ``docker/`` with BuildKit.

Order: the Python base image (official, or the offline one), the shared
scverse base, then each method image. Every image installs its pinned
requirements from a host-side wheelhouse bind-mounted into the build, with
``--no-index``: builds need no network inside the container, and a change of
method code only rebuilds the last layer.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from multiverse import __version__
from multiverse.images.buildkit import buildkit_client, buildkit_env
from multiverse.images.wheelhouse import ensure_wheelhouse
from multiverse.catalog import IMAGES, ImageSpec
from multiverse.backends.docker import DockerBackend
from multiverse.errors import BuildError

OFFICIAL_BASE = "python:3.11-slim-bookworm"
OFFLINE_BASE = "multiverse/python:3.11-slim-bookworm"
LABEL_COMPONENT = "io.multiverse.image"


def project_root() -> Path:
    """The source checkout holding docker/ and multiverse_methods/ (builds need it)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "docker").is_dir() or not (root / "multiverse_methods").is_dir():
        raise BuildError(
            "building images needs the multiverse source checkout (its docker/ folder); "
            "install multiverse from a clone with 'pip install -e .'"
        )
    return root


def choose_base_image(engine: DockerBackend, requested: str | None = None) -> str:
    """The Python base image: as requested, else the official one, else the offline one."""
    if requested:
        if not engine.has_image(requested):
            raise BuildError(f"base image {requested} is not present locally; pull or build it first")
        return requested
    for candidate in (OFFICIAL_BASE, OFFLINE_BASE):
        if engine.has_image(candidate):
            return candidate
    if engine.try_pull(OFFICIAL_BASE):
        return OFFICIAL_BASE
    raise BuildError(
        f"no Python base image: {OFFICIAL_BASE} is not present and cannot be pulled. "
        f"Build the equivalent offline image with 'make base-image' (as root), or pass --base-image."
    )


@dataclass
class BuiltImage:
    spec: ImageSpec
    image_id: str
    seconds: float
    size: int


class ImageBuilder:
    def __init__(self, engine: DockerBackend, base_image: str, log: Callable[[str], None] = print, no_cache: bool = False):
        self.engine = engine
        self.base_image = base_image
        self.log = log
        self.no_cache = no_cache
        self.root = project_root()

    def build(self, spec: ImageSpec) -> BuiltImage:
        requirements = self.root / spec.requirements
        dockerfile = self.root / spec.dockerfile
        for path in (requirements, dockerfile):
            if not path.is_file():
                raise BuildError(f"{path.relative_to(self.root)} is missing")
        start = time.perf_counter()
        self.log(f"{spec.name}: resolving wheels of {spec.requirements}")
        ensure_wheelhouse(requirements, self.root / "build" / "wheelhouse" / spec.name)
        base = IMAGES[spec.base].tag if spec.base else self.base_image
        self.log(f"{spec.name}: building {spec.tag} on {base}")
        cmd = [
            str(buildkit_client()), "build",
            "--progress=plain",
            "--file", str(dockerfile),
            "--build-arg", f"BASE_IMAGE={base}",
            *[arg for key, value in spec.build_args.items() for arg in ("--build-arg", f"{key}={value}")],
            "--label", f"{LABEL_COMPONENT}={spec.name}",
            "--label", f"io.multiverse.version={__version__}",
            "--tag", spec.tag,
            "--tag", spec.tag.rsplit(":", 1)[0] + ":latest",
        ]
        if self.no_cache:
            cmd.append("--no-cache")
        build_log = self.root / "build" / "logs" / f"{spec.name}.log"
        build_log.parent.mkdir(parents=True, exist_ok=True)
        with build_log.open("w") as handle:
            proc = subprocess.run(cmd + [str(self.root)], stdout=handle, stderr=subprocess.STDOUT, env=buildkit_env())
        if proc.returncode != 0:
            tail = "\n".join(build_log.read_text().splitlines()[-25:])
            raise BuildError(f"building {spec.tag} failed (full log: {build_log}):\n{tail}")
        image_id = self.engine.resolve_image(spec.tag)
        size = self.engine.image_size(spec.tag)
        seconds = time.perf_counter() - start
        self.log(f"{spec.name}: built {spec.tag} ({size / 1e6:.0f} MB) in {seconds:.1f} s")
        return BuiltImage(spec, image_id, seconds, size)

    def prune_dangling(self) -> None:
        """Remove our untagged leftovers of earlier builds, never anybody else's images."""
        self.engine.prune_dangling(LABEL_COMPONENT)
