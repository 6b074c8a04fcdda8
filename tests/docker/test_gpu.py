"""GPUs: no method's image can use one, so asking is refused before start; the backend explains a GPU it cannot serve."""

from __future__ import annotations

import threading

import pytest
import yaml

from multiverse.backends.base import ContainerSpec, Resources
from multiverse.catalog import METHODS
from multiverse.errors import InfrastructureError
from tests.conftest import run_cli


@pytest.mark.parametrize("method", [m for m in METHODS if not METHODS[m].control])
def test_asking_a_cpu_only_method_for_a_gpu_is_refused_before_anything_starts(method, tiny_h5mu, tmp_path):
    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({"input": str(tiny_h5mu), "output": "out", "models": {method: {"gpus": 1}}}))

    proc = run_cli("run", "--config", config)

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "runs on the CPU only" in proc.stderr and "gpus: 0" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.docker
def test_a_gpu_request_the_engine_cannot_serve_is_an_infrastructure_error(engine, built):
    if "nvidia" in (engine.client.info().get("Runtimes") or {}):
        pytest.skip("this engine has the NVIDIA runtime: the refusal cannot be shown here")
    from multiverse.catalog import image_of

    spec = ContainerSpec(
        name="gpu-probe", image=engine.resolve_image(image_of(METHODS["pca"]).tag), command=("--help",),
        mounts=(), resources=Resources(timeout_s=60, memory_bytes=2**28, cpus=1, pids=64, gpus=1), run_id="gpu-test",
    )
    with pytest.raises(InfrastructureError, match="asked for 1 GPU.*NVIDIA Container Toolkit"):
        engine.run(spec, threading.Event(), lambda line: None)
    assert not engine.containers_of("gpu-test")
