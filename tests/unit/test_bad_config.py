"""A mistake in the config gets one clear message and exit code 2; nothing starts."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

CASES = {
    "unknown model": ("models:\n  pcaa: {}\n", "unknown model 'pcaa'", "Did you mean 'pca'?"),
    "unknown key": ("modles: [pca]\n", "modles: unknown key", None),
    "unknown parameter": ("models:\n  pca:\n    params: {n_comps: 5}\n", "models.pca.params.n_comps: unknown key", "pca parameters:"),
    "wrong type": ("models:\n  pca:\n    params: {n_components: thirty}\n", "models.pca.params.n_components", "valid integer"),
    "out of range": ("models:\n  pca:\n    params: {n_components: 1}\n", "n_components must be between 2 and 500", None),
    "bad memory": ("models:\n  pca:\n    memory: lots\n", "models.pca.memory", "is not a size"),
    "bad timeout": ("defaults:\n  timeout: soon\n", "defaults.timeout", "is not a duration"),
    "malformed yaml": ("models: [pca\n", "not valid YAML", "line"),
    "escaping name": ("models:\n  ../evil:\n    method: pca\n", "cannot be a folder name", "inside the output folder"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_bad_config_is_refused_before_anything_starts(case, tiny_h5mu, tmp_path):
    text, expected, also = CASES[case]
    config = tmp_path / "runner_config.yaml"
    config.write_text(f"input: {tiny_h5mu}\noutput: out\n" + text)

    proc = run_cli("run", "--config", config)

    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    assert "error:" in message and expected in message
    if also:
        assert also in message
    assert not (tmp_path / "out").exists()  # nothing was started or written


def test_an_unknown_model_on_the_command_line_is_refused(tiny_h5mu, tmp_path):
    proc = run_cli("run", "--models", "pca", "mowgly", "--input", tiny_h5mu, "--output", tmp_path / "out")
    assert proc.returncode == 2
    assert "unknown model 'mowgly'" in proc.stderr and "Did you mean 'mowgli'?" in proc.stderr


def test_a_config_that_is_not_a_mapping_is_refused(tmp_path):
    config = tmp_path / "runner_config.yaml"
    config.write_text("- pca\n- mofa\n")
    proc = run_cli("run", "--config", config)
    assert proc.returncode == 2
    assert "expected a mapping" in proc.stderr


def test_a_missing_config_file_is_refused(tmp_path):
    proc = run_cli("run", "--config", tmp_path / "nope.yaml")
    assert proc.returncode == 2
    assert "config file not found" in proc.stderr


def test_no_input_anywhere_is_refused(tmp_path):
    proc = run_cli("run", "--models", "pca", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no input" in proc.stderr


def test_flags_override_the_config_file(tiny_h5mu, tmp_path):
    from multiverse.config import load_config

    config = tmp_path / "runner_config.yaml"
    config.write_text("input: somewhere.h5mu\noutput: results\nmodels:\n  pca: {}\n  mofa: {}\njobs: 2\n")

    cfg, models = load_config(config, models=["mofa"], input=tiny_h5mu, output=tmp_path / "elsewhere", jobs=1)

    assert cfg.input == tiny_h5mu and cfg.output == tmp_path / "elsewhere" and cfg.jobs == 1
    assert [m.name for m in models] == ["mofa"]


def test_relative_paths_in_a_config_file_are_relative_to_its_folder(tmp_path):
    from multiverse.config import load_config

    (tmp_path / "sub").mkdir()
    config = tmp_path / "sub" / "runner_config.yaml"
    config.write_text("input: data.h5mu\noutput: results\nmodels:\n  pca: {}\n")

    cfg, _ = load_config(config)

    assert cfg.input == tmp_path / "sub" / "data.h5mu"
    assert cfg.output == tmp_path / "sub" / "results"


def test_limits_and_parameters_resolve_from_defaults_and_overrides(tmp_path):
    from multiverse.config import load_config

    config = tmp_path / "runner_config.yaml"
    config.write_text(
        "defaults: {memory: 2g, timeout: 30m, cpus: 1, seed: 7}\n"
        "models:\n  pca: {memory: 512m, params: {n_components: 5}}\n  mofa: {}\n"
    )

    _, (pca, mofa) = load_config(config)

    assert pca.limits.memory == 512 * 1024**2 and mofa.limits.memory == 2 * 1024**3
    assert pca.limits.timeout == mofa.limits.timeout == 1800
    assert pca.params["n_components"] == 5 and pca.params["seed"] == mofa.params["seed"] == 7
    assert mofa.params["n_factors"] == 10  # the method's documented default
