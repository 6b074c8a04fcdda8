"""A preset fills the parameters a user leaves unset, and says so; the default is the authors' recipe."""

from __future__ import annotations

import dataclasses

import pytest

from multiverse_methods.params import MofaParams, MowgliParams, MultiviParams, PcaParams
from multiverse_methods.registry import METHODS
from tests.conftest import run_cli


def effective(cls, raw: dict) -> dict:
    return cls(**cls.resolve(raw)).to_dict()


def test_without_a_preset_the_defaults_are_the_authors():
    mowgli = effective(MowgliParams, {})
    assert mowgli["preset"] == "default"
    assert mowgli["max_iter_inner"] == 1000 and mowgli["max_iter_outer"] == 100  # MowgliModel.train
    multivi = effective(MultiviParams, {})
    assert multivi["max_epochs"] == 500 and multivi["lr"] == 1e-4  # MULTIVI.train
    mofa = effective(MofaParams, {})
    assert mofa["scale_views"] is False and mofa["likelihood_atac"] == "gaussian"  # mofapy2 / muon


def test_the_fast_preset_fills_only_what_the_user_left_unset():
    params = effective(MowgliParams, {"preset": "fast", "max_iter_outer": 7})
    assert params["preset"] == "fast"
    assert params["max_iter_inner"] == MowgliParams.PRESETS["fast"]["max_iter_inner"] < 1000
    assert params["max_iter_outer"] == 7, "an explicit value wins over the preset"
    assert effective(MofaParams, {"preset": "fast"})["max_iter"] < MofaParams().max_iter


def test_every_preset_of_every_method_is_valid():
    for method in METHODS.values():
        assert "default" in method.params.PRESETS, method.name
        assert method.params.PRESETS["default"] == {}, "the default preset is the dataclass defaults"
        names = {f.name for f in dataclasses.fields(method.params)}
        for preset, values in method.params.PRESETS.items():
            assert set(values) <= names, (method.name, preset)
            effective(method.params, {"preset": preset})  # validates


def test_an_unknown_preset_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="preset must be one of 'default'"):
        effective(PcaParams, {"preset": "fast"})


def test_an_unknown_preset_in_a_config_is_a_config_error(tiny_h5mu, tmp_path):
    config = tmp_path / "runner_config.yaml"
    config.write_text(f"input: {tiny_h5mu}\noutput: out\nmodels:\n  mofa:\n    params: {{preset: quick}}\n")
    proc = run_cli("run", "--config", config)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    assert "models.mofa.params" in message and "preset must be one of 'default', 'fast'" in message
    assert not (tmp_path / "out").exists()
