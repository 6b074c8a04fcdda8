"""Rerunning skips what is done; changing one model's parameters reruns only that model."""

from __future__ import annotations

import json

import pytest
import yaml

from multiverse import api
from multiverse.runner.results import Status
from tests.conftest import result_dir

pytestmark = pytest.mark.docker


def config_with(tmp_path, data, models):
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({"input": str(data), "output": str(tmp_path / "out"), "models": models}))
    return config


def statuses(results):
    return {r.name.split("/")[1]: r.status for r in results}


def test_a_second_run_skips_everything_and_a_changed_parameter_reruns_only_that_model(built, tiny_h5mu, tmp_path):
    models = {"pca_a": {"method": "pca", "params": {"n_components": 5}}, "pca_b": {"method": "pca", "params": {"n_components": 6}}}
    first = api.execute(api.prepare(config_with(tmp_path, tiny_h5mu, models)))
    assert statuses(first) == {"pca_a": Status.OK, "pca_b": Status.OK}
    b_before = (result_dir(tmp_path / "out", "pca_b", tiny_h5mu) / "embeddings.h5ad").stat().st_mtime_ns

    second = api.execute(api.prepare(config_with(tmp_path, tiny_h5mu, models)))
    assert statuses(second) == {"pca_a": Status.CACHED, "pca_b": Status.CACHED}

    models["pca_a"]["params"]["n_components"] = 8
    third = api.execute(api.prepare(config_with(tmp_path, tiny_h5mu, models)))
    assert statuses(third) == {"pca_a": Status.OK, "pca_b": Status.CACHED}
    assert (result_dir(tmp_path / "out", "pca_b", tiny_h5mu) / "embeddings.h5ad").stat().st_mtime_ns == b_before

    forced = api.execute(api.prepare(config_with(tmp_path, tiny_h5mu, models)), force=True)
    assert statuses(forced) == {"pca_a": Status.OK, "pca_b": Status.OK}


def test_a_damaged_result_is_not_trusted(built, tiny_h5mu, tmp_path):
    models = {"pca": {}}
    api.execute(api.prepare(config_with(tmp_path, tiny_h5mu, models)))
    (result_dir(tmp_path / "out", "pca", tiny_h5mu) / "embeddings.h5ad").write_bytes(b"not any more")

    [again] = api.execute(api.prepare(config_with(tmp_path, tiny_h5mu, models)))

    assert again.status is Status.OK


def test_the_manifest_says_what_ran(built, tiny_h5mu, tmp_path):
    api.execute(api.prepare(config_with(tmp_path, tiny_h5mu, {"pca": {"params": {"seed": 3}}})))

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())

    record = manifest["jobs"]["tiny/pca/seed-3"]
    assert record["status"] == "ok"
    assert record["image_id"].startswith("sha256:")
    assert record["seed"] == 3 and record["params"]["n_components"] == 30
    assert record["versions"]["scanpy"] and record["versions"]["python"]
    assert record["input_sha256"] == manifest["datasets"]["tiny"]["input"]["sha256"]
    assert record["exit_code"] == 0 and record["duration_s"] > 0 and record["peak_memory_mb"] > 0
    assert record["started_at"] <= record["finished_at"]
    assert manifest["backend"]["kind"] == "docker" and manifest["backend"]["version"] and manifest["multiverse_version"] and manifest["host"]["hostname"]
    provenance = json.loads((result_dir(tmp_path / "out", "pca", tiny_h5mu, seed=3) / "provenance.json").read_text())
    assert provenance["key"]["image_id"] == record["image_id"]
