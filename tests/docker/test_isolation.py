"""The container cannot harm the user's data or reach the network."""

from __future__ import annotations

import json
import os

import pytest

from multiverse import api
from tests.conftest import result_dir

pytestmark = pytest.mark.docker


def write_config(tmp_path, data, models: dict) -> str:
    import yaml

    config = tmp_path / "runner_config.yaml"
    config.write_text(yaml.safe_dump({"input": str(data), "output": str(tmp_path / "out"), "models": models}))
    return config


@pytest.mark.parametrize("sandbox", ["docker", pytest.param("podman", marks=pytest.mark.podman)], indirect=True)
def test_the_input_is_read_only_and_the_container_has_no_network(sandbox, faulty_catalog, tiny_h5mu, tmp_path, no_leftover_containers):
    before = tiny_h5mu.read_bytes()
    plan = api.prepare(write_config(tmp_path, tiny_h5mu, {"faulty": {"params": {"behaviour": "probe"}}}), catalog=faulty_catalog)

    [result] = api.execute(plan, sandbox)

    assert result.status.value == "ok", result.reason
    probe = json.loads((result_dir(tmp_path / "out", "faulty", tiny_h5mu) / "probe.json").read_text())
    assert "Read-only file system" in probe["write_input"]
    assert "Read-only file system" in probe["write_root"]
    assert probe["write_tmp"] == "succeeded"
    assert probe["network"] != "succeeded"
    assert (probe["uid"], probe["gid"]) == (os.getuid(), os.getgid())
    assert tiny_h5mu.read_bytes() == before
