"""Models that crash, hang or write garbage are reported as failed, and harm nothing."""

from __future__ import annotations

import re
import time

import anndata
import pytest
import yaml

from multiverse import api
from multiverse.runner.results import Status
from tests.conftest import result_dir, run_cli

pytestmark = pytest.mark.docker


def plan_for(tmp_path, data, models: dict, catalog):
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({"input": str(data), "output": str(tmp_path / "out"), "models": models}))
    return api.prepare(config, catalog=catalog)


def test_each_failure_is_reported_with_its_reason_and_the_other_models_still_succeed(
    faulty_catalog, tiny_h5mu, tmp_path, no_leftover_containers
):
    plan = plan_for(
        tmp_path,
        tiny_h5mu,
        {
            "crash": {"method": "faulty", "params": {"behaviour": "crash"}},
            "hang": {"method": "faulty", "timeout": 3, "params": {"behaviour": "sleep", "seconds": 600}},
            "garbage": {"method": "faulty", "params": {"behaviour": "invalid"}},
            "silent": {"method": "faulty", "params": {"behaviour": "no_output"}},
            "pca": {},
        },
        faulty_catalog,
    )
    start = time.monotonic()

    results = {r.name.split("/")[1]: r for r in api.execute(plan)}

    assert time.monotonic() - start < 120  # the hanging model did not hold the run for 600 s
    assert results["crash"].status is Status.METHOD_ERROR
    assert "the method blew up on purpose" in results["crash"].reason
    assert results["crash"].exit_code == 1
    assert results["hang"].status is Status.TIMEOUT
    assert "timeout of 3 s" in results["hang"].reason
    assert results["hang"].duration_s < 30
    assert results["garbage"].status is Status.INVALID_OUTPUT
    assert "out of order" in results["garbage"].reason
    assert results["silent"].status is Status.INVALID_OUTPUT
    assert "missing embeddings.h5ad, metrics.json" in results["silent"].reason
    assert results["pca"].status is Status.OK

    out = tmp_path / "out"
    for name in ("crash", "hang", "garbage", "silent"):
        assert not result_dir(out, name, tiny_h5mu).exists(), f"{name} left a result folder"
        assert (out / ".multiverse" / "failed" / "tiny" / name / "seed-0" / "container.log").is_file()
    assert anndata.read_h5ad(result_dir(out, "pca", tiny_h5mu) / "embeddings.h5ad").n_obs == 200
    assert not (out / ".multiverse" / "staging").exists() or not any((out / ".multiverse" / "staging").rglob("*.h5ad"))


def test_a_failed_rerun_never_removes_the_earlier_good_result(faulty_catalog, tiny_h5mu, tmp_path, no_leftover_containers):
    good = plan_for(tmp_path, tiny_h5mu, {"model": {"method": "faulty", "params": {"behaviour": "ok"}}}, faulty_catalog)
    [first] = api.execute(good)
    assert first.status is Status.OK
    result_file = result_dir(tmp_path / "out", "model", tiny_h5mu) / "embeddings.h5ad"
    before = result_file.read_bytes()

    bad = plan_for(tmp_path, tiny_h5mu, {"model": {"method": "faulty", "params": {"behaviour": "invalid"}}}, faulty_catalog)
    [second] = api.execute(bad)

    assert second.status is Status.INVALID_OUTPUT
    assert result_file.read_bytes() == before


def test_a_container_that_says_not_applicable_is_reported_as_such(faulty_catalog, tiny_h5mu, tmp_path, no_leftover_containers):
    plan = plan_for(tmp_path, tiny_h5mu, {"faulty": {"params": {"behaviour": "not_applicable"}}}, faulty_catalog)
    [result] = api.execute(plan)
    assert result.status is Status.NOT_APPLICABLE
    assert "does not model anything" in result.reason


def test_the_cli_exits_non_zero_and_explains_a_timeout(built, tiny_h5mu, tmp_path, engine):
    config = tmp_path / "runner_config.yaml"
    config.write_text(f"input: {tiny_h5mu}\noutput: {tmp_path / 'out'}\nmodels:\n  pca:\n    timeout: 0.5\n")

    proc = run_cli("run", "--config", config)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tiny/pca/seed-0 | timeout: ran past its timeout of 0.5 s and was killed" in proc.stdout
    assert "1 of 1 job(s) did not succeed: tiny/pca/seed-0" in proc.stderr
    assert not result_dir(tmp_path / "out", "pca", tiny_h5mu).exists()
    run_id = re.search(r"run (\S+):", proc.stdout).group(1)
    assert not engine.client.containers.list(all=True, filters={"label": f"io.multiverse.run={run_id}"})


def test_a_model_that_exceeds_its_memory_limit_is_classed_out_of_memory(faulty_catalog, tiny_h5mu, tmp_path, no_leftover_containers):
    plan = plan_for(
        tmp_path, tiny_h5mu, {"hog": {"method": "faulty", "memory": "200m", "params": {"behaviour": "oom"}}}, faulty_catalog
    )
    [result] = api.execute(plan)
    assert result.status is Status.OUT_OF_MEMORY, result.reason
    assert "memory limit of 0.2 GiB" in result.reason
    assert not result_dir(tmp_path / "out", "hog", tiny_h5mu).exists()


def test_a_missing_image_is_an_infrastructure_error_with_advice_not_a_pull(
    faulty_catalog, engine, tiny_h5mu, tmp_path, no_leftover_containers
):
    from multiverse.catalog import Method, image_of

    unbuilt = Method("unbuilt", "a method whose image nobody built", faulty_catalog["faulty"].params, "never-built-test")
    assert not engine.has_image(image_of(unbuilt).tag)
    plan = plan_for(tmp_path, tiny_h5mu, {"unbuilt": {}, "pca": {}}, {**faulty_catalog, "unbuilt": unbuilt})

    results = {r.name.split("/")[1]: r for r in api.execute(plan)}

    assert results["unbuilt"].status is Status.INFRASTRUCTURE_ERROR
    assert "never-built-test" in results["unbuilt"].reason
    assert "never pulls" in results["unbuilt"].reason and "multiverse build" in results["unbuilt"].reason
    assert not engine.has_image(image_of(unbuilt).tag), "the image must not have been pulled"
    assert results["pca"].status is Status.OK
    assert not result_dir(tmp_path / "out", "unbuilt", tiny_h5mu).exists()
