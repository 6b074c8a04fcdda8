"""Shared fixtures: synthetic data, the real engine, the test-only "faulty" method."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional
from pathlib import Path

import pytest

from multiverse.catalog import METHODS, Method, image_of
from multiverse_methods.params import MethodParams

REPO = Path(__file__).resolve().parents[1]
#: The real labelled datasets (never committed); override with MULTIVERSE_REAL_DATA.
REAL_DATA = Path(os.environ.get("MULTIVERSE_REAL_DATA", REPO.parent / "shared" / "data"))
MULTIOME = REAL_DATA / "bmmc_multiome_starter_500.h5mu"
CITE = REAL_DATA / "bmmc_cite_starter_600.h5mu"


def real_data(path: Path) -> Path:
    """The real dataset, or a skip where it is absent; in CI (CI=true) its absence fails the run."""
    if not path.is_file():
        message = f"real dataset {path.name} not found in {REAL_DATA} (set MULTIVERSE_REAL_DATA)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(message)
    return path


def result_dir(out: Path, model: str, data: Path, seed: int = 0) -> Path:
    """Where ``multiverse run`` puts a model's result for input ``data``: <out>/<dataset>/<model>/seed-<seed>."""
    from multiverse.config import dataset_name_of

    return Path(out) / dataset_name_of(data) / model / f"seed-{seed}"


def records(out: Path) -> dict:
    """The manifest's jobs of a one-input, one-seed run, keyed by model name."""
    import json

    manifest = json.loads((Path(out) / "manifest.json").read_text())
    return {name.split("/")[1]: record for name, record in manifest["jobs"].items()}


def input_record(out: Path) -> dict:
    """The manifest's description of a one-input run's input."""
    import json

    [info] = json.loads((Path(out) / "manifest.json").read_text())["datasets"].values()
    return info["input"]


def run_cli(*args, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the ``multiverse`` command line as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "multiverse", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture(scope="session")
def tiny_h5mu(tmp_path_factory) -> Path:
    """200 synthetic cells, RNA + ATAC, 6 known types, 2 batches."""
    from multiverse.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("data") / "tiny.h5mu", n_cells=200, n_genes=400, n_peaks=600)


@pytest.fixture(scope="session")
def tiny_adt_h5mu(tmp_path_factory) -> Path:
    """200 synthetic cells, RNA + ADT."""
    from multiverse.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("data") / "tiny_adt.h5mu", n_cells=200, n_genes=400, second="adt")


@pytest.fixture(scope="session")
def engine():
    from multiverse.backends.docker import DockerBackend
    from multiverse.errors import EngineUnavailable

    try:
        return DockerBackend.connect()
    except EngineUnavailable as exc:
        pytest.fail(f"these tests need a Docker engine: {exc.message}")


def require_images(engine, *models: str) -> None:
    """Fail early, with advice, when a method's image is not built."""
    missing = [image_of(METHODS[m]).tag for m in models if not engine.has_image(image_of(METHODS[m]).tag)]
    if missing:
        pytest.fail(f"images not built: {', '.join(missing)}; run 'make build-all' first")


@pytest.fixture(scope="session")
def built(engine):
    """The PCA image, which the orchestrator's tests run."""
    require_images(engine, "pca")
    return True


@dataclass
class FaultyParams(MethodParams):
    behaviour: str = "ok"
    seconds: float = 600.0
    #: Where the "hostile" behaviour points its links.
    target: str = ""
    #: Like the methods that correct for batch: the run's labels.batch reaches it.
    batch_key: Optional[str] = "batch"


FAULTY = Method("faulty", "a fake method that misbehaves on request", FaultyParams, "faulty-test")


@pytest.fixture(scope="session")
def faulty_catalog(engine, built) -> dict[str, Method]:
    """The real catalog plus the test-only 'faulty' method, its image built on the PCA image."""
    engine.client.images.build(
        path=str(REPO / "tests" / "images"),
        dockerfile="faulty.Dockerfile",
        tag=image_of(FAULTY).tag,
        buildargs={"BASE_IMAGE": image_of(METHODS["pca"]).tag},
        labels={"io.multiverse.image": "faulty-test"},
        rm=True,
    )
    return {**METHODS, "faulty": FAULTY}


@pytest.fixture
def no_leftover_containers(request, engine):
    """After the test, no container this test process started may be left, running or not
    (on the engine of a ``sandbox`` test, else Docker)."""
    yield
    from multiverse.backends.base import LABEL_PID

    if "sandbox" in request.fixturenames:
        engine = request.getfixturevalue("sandbox")
    leftovers = engine.client.containers.list(all=True, filters={"label": f"{LABEL_PID}={os.getpid()}"})
    names = [c.name for c in leftovers]
    for container in leftovers:
        container.remove(force=True)
    assert not names, f"containers left behind: {names}"


EXAMPLE_IMAGE = "multiverse-test/example-method:1"
BROKEN_IMAGE = "multiverse-test/example-method:broken"


@pytest.fixture(scope="session")
def example_images(engine, built) -> tuple[str, str]:
    """A user's own method image (tests/images/example_method) and a deliberately broken variant."""
    for tag, broken in ((EXAMPLE_IMAGE, "0"), (BROKEN_IMAGE, "1")):
        engine.client.images.build(
            path=str(REPO / "tests" / "images" / "example_method"),
            tag=tag,
            buildargs={"BASE_IMAGE": image_of(METHODS["pca"]).tag, "BROKEN": broken},
            labels={"io.multiverse.image": "example-method-test"},
            rm=True,
        )
    return EXAMPLE_IMAGE, BROKEN_IMAGE


@pytest.fixture(scope="session")
def image_archive(engine, faulty_catalog, tmp_path_factory) -> Path:
    """The PCA and faulty images as archives (``multiverse images save``), as on a cluster's shared storage."""
    from multiverse.images.archive import save_images

    folder = tmp_path_factory.mktemp("images")
    save_images(engine, [image_of(METHODS["pca"]).tag, image_of(FAULTY).tag], folder)
    return folder


@pytest.fixture(scope="session")
def podman(image_archive):
    """Podman's Docker-compatible service, with the PCA and faulty images loaded from the archive."""
    from multiverse.backends import connect
    from multiverse.errors import EngineUnavailable
    from multiverse.images.archive import load_images

    try:
        backend = connect("podman")
    except EngineUnavailable as exc:
        pytest.fail(f"these tests need Podman's service: run scripts/ensure-podman.sh as root ({exc.message})")
    load_images(backend, image_archive)
    return backend


@pytest.fixture
def sandbox(request):
    """The engine a sandbox test runs on: a test parametrised with "docker" or "podman"."""
    return request.getfixturevalue("engine" if request.param == "docker" else "podman")

