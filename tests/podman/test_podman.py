"""The same sandboxed containers on Podman, through its Docker-compatible API (scripts/ensure-podman.sh).

Images reach Podman as archives written from Docker (``multiverse images
save`` / ``load``), keeping their ids: a result made on one engine is kept
by a rerun on the other. The sandbox checks themselves are
tests/docker/test_isolation.py, parametrised over both engines.
"""

from __future__ import annotations

import pytest
import yaml

from multiverse import api
from multiverse.backends.base import LABEL_RUN
from multiverse.catalog import METHODS, image_of
from multiverse.runner.results import Status
from tests.conftest import result_dir, run_cli

pytestmark = [pytest.mark.podman, pytest.mark.docker]


def test_images_reach_podman_from_docker_with_the_same_id_and_are_loaded_once(engine, podman, image_archive):
    tag = image_of(METHODS["pca"]).tag
    assert podman.resolve_image(tag) == engine.resolve_image(tag)

    saved = run_cli("images", "save", image_archive, "pca")
    loaded = run_cli("images", "load", image_archive, "pca", "--backend", "podman")

    assert saved.returncode == 0 and loaded.returncode == 0, saved.stderr + loaded.stderr
    assert "archive up to date" in saved.stdout
    assert "already on podman" in loaded.stdout


def test_pca_and_failing_methods_under_podman_are_classified_as_under_docker(podman, faulty_catalog, tiny_h5mu, tmp_path):
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({"input": str(tiny_h5mu), "output": str(tmp_path / "out"), "models": {
        "pca": {},
        "crash": {"method": "faulty", "params": {"behaviour": "crash"}},
        "hang": {"method": "faulty", "timeout": 3, "params": {"behaviour": "sleep", "seconds": 600}},
        "hog": {"method": "faulty", "memory": "200m", "params": {"behaviour": "oom"}},
    }}))
    plan = api.prepare(config, catalog=faulty_catalog)

    results = {r.name.split("/")[1]: r for r in api.execute(plan, podman)}

    assert results["pca"].status is Status.OK, results["pca"].reason
    assert (result_dir(tmp_path / "out", "pca", tiny_h5mu) / "embeddings.h5ad").is_file()
    assert results["pca"].peak_memory_mb > 50  # read from the container's cgroup
    assert results["crash"].status is Status.METHOD_ERROR and "blew up on purpose" in results["crash"].reason
    assert results["hang"].status is Status.TIMEOUT and results["hang"].duration_s < 30
    assert results["hog"].status is Status.OUT_OF_MEMORY, results["hog"].reason
    assert not podman.client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={plan.run_id}"})


def test_a_result_made_under_podman_is_kept_by_a_docker_run(podman, built, tiny_h5mu, tmp_path):
    out = tmp_path / "out"
    first = run_cli("run", "--models", "pca", "--input", tiny_h5mu, "--output", out, "--backend", "podman", "--no-report")
    again = run_cli("run", "--models", "pca", "--input", tiny_h5mu, "--output", out, "--backend", "docker", "--no-report")

    assert first.returncode == 0, first.stdout + first.stderr
    assert "/pca/seed-0 | ok" in first.stdout
    assert again.returncode == 0 and "/pca/seed-0 | cached" in again.stdout, again.stdout + again.stderr
