"""No method offers a GPU path that cannot run: every image trains on the CPU."""

from __future__ import annotations

import pytest

from multiverse_methods.params import MultiviParams
from multiverse_methods.registry import METHODS
from tests.conftest import run_cli


def test_no_method_claims_a_gpu():
    assert not [m.name for m in METHODS.values() if m.gpu]


def test_multivi_has_no_accelerator_parameter():
    with pytest.raises(TypeError):
        MultiviParams(accelerator="gpu")


def test_asking_multivi_for_a_gpu_accelerator_is_a_config_error(tiny_h5mu, tmp_path):
    config = tmp_path / "runner_config.yaml"
    config.write_text(f"input: {tiny_h5mu}\noutput: out\nmodels:\n  multivi:\n    params: {{accelerator: gpu}}\n")
    proc = run_cli("run", "--config", config)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "models.multivi.params.accelerator: unknown key" in " ".join(proc.stderr.split())
    assert not (tmp_path / "out").exists()
