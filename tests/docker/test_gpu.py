"""Asking for a GPU on a machine without one fails clearly, before any training."""

from __future__ import annotations

import pytest
import yaml

from multiverse import api
from multiverse.runner.results import Status
from tests.conftest import run_cli

pytestmark = pytest.mark.docker


def test_a_gpu_request_the_engine_cannot_serve_is_an_infrastructure_error(engine, built, tiny_h5mu, tmp_path, no_leftover_containers):
    if "nvidia" in (engine.client.info().get("Runtimes") or {}):
        pytest.skip("this engine has the NVIDIA runtime: the refusal cannot be shown here")
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({"input": str(tiny_h5mu), "output": str(tmp_path / "out"), "models": {"pca": {"gpus": 1}}}))

    [result] = api.execute(api.prepare(config))

    assert result.status is Status.INFRASTRUCTURE_ERROR
    assert "asked for 1 GPU(s)" in result.reason and "NVIDIA Container Toolkit" in result.reason
    assert not (tmp_path / "out" / "pca").exists()


def test_a_gpu_accelerator_without_a_gpu_request_is_a_config_error(tiny_h5mu, tmp_path):
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({"input": str(tiny_h5mu), "output": "out", "models": {"multivi": {"params": {"accelerator": "gpu"}}}}))
    proc = run_cli("run", "--config", config)
    assert proc.returncode == 2
    assert "also set 'gpus: 1'" in proc.stderr
