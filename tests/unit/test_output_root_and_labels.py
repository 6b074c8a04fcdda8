"""Before anything starts: a user's own folders are never replaced, and the label columns must exist."""

from __future__ import annotations

import json

import pytest
import yaml

from multiverse.config import datasets_of, load_config
from multiverse.plan import inspect_datasets, make_plan
from tests.conftest import run_cli


def config_file(tmp_path, data, models, **extra):
    path = tmp_path / "runner_config.yaml"
    path.write_text(yaml.safe_dump({"input": str(data), "output": str(tmp_path / "out"), "models": models, **extra}))
    return path


def test_a_users_own_folder_named_like_a_model_is_never_replaced(tmp_path, tiny_h5mu):
    mine = tmp_path / "out" / "tiny" / "pca" / "seed-0"
    mine.mkdir(parents=True)
    (mine / "analysis.ipynb").write_text("my notebook")

    proc = run_cli("run", "--config", config_file(tmp_path, tiny_h5mu, {"pca": {}}))

    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    assert str(mine) in message and "is not a multiverse result" in message and "another --output" in message
    assert (mine / "analysis.ipynb").read_text() == "my notebook"
    assert not (tmp_path / "out" / ".multiverse").exists()  # nothing started


def test_a_users_own_report_folder_is_never_replaced(tmp_path, tiny_h5mu):
    mine = tmp_path / "out" / "report"
    mine.mkdir(parents=True)
    (mine / "figure1.pdf").write_text("%PDF")
    proc = run_cli("run", "--config", config_file(tmp_path, tiny_h5mu, {"pca": {}}), "--report")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "is not a multiverse report" in " ".join(proc.stderr.split())
    assert (mine / "figure1.pdf").read_text() == "%PDF"


def test_every_problem_is_listed_at_once(tmp_path, tiny_h5mu):
    for name in ("pca", "mofa"):
        (tmp_path / "out" / "tiny" / name / "seed-0").mkdir(parents=True)
    proc = run_cli("run", "--config", config_file(tmp_path, tiny_h5mu, {"pca": {}, "mofa": {}}, labels={"batch": "donor"}))
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2
    assert "tiny/pca/seed-0" in message and "tiny/mofa/seed-0" in message and "'donor'" in message


def test_a_label_column_that_is_not_in_the_input_is_refused_naming_the_columns_there_are(tmp_path, tiny_h5mu):
    proc = run_cli("run", "--config", config_file(tmp_path, tiny_h5mu, {"pca": {}}, labels={"cell_type": "celltype"}))
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, message
    assert "no column labels.cell_type: 'celltype'" in message and "its columns: cell_type, batch" in message


def test_a_models_own_batch_key_must_exist_too(tmp_path, tiny_h5mu):
    proc = run_cli("run", "--config", config_file(tmp_path, tiny_h5mu, {"multivi": {"params": {"batch_key": "Sample"}}}))
    assert proc.returncode == 2
    assert "models.multivi.params.batch_key: 'Sample'" in " ".join(proc.stderr.split())


def test_the_batch_the_user_names_is_the_batch_every_correcting_method_gets(tmp_path, tiny_h5mu):
    from tests.forms import read, write

    mdata = read(tiny_h5mu)
    mdata.obs["sample"] = mdata.obs["batch"]
    data = write(mdata, tmp_path / "sample.h5mu")
    config, entries = load_config(config_file(tmp_path, data, {"multivi": {}, "cobolt": {}, "pca": {},
                                                               "own": {"method": "cobolt", "params": {"batch_key": "batch"}}},
                                              labels={"batch": "sample"}))
    plan = make_plan(config, entries, inspect_datasets(datasets_of(config)))
    params = {job.entry: job.params for job in plan.jobs}
    assert params["multivi"]["batch_key"] == "sample" and params["cobolt"]["batch_key"] == "sample"
    assert params["own"]["batch_key"] == "batch"  # a model's own setting wins
    assert "batch_key" not in params["pca"]


def test_a_default_label_column_the_input_lacks_is_said_not_silently_used(tmp_path, tiny_h5mu):
    from tests.forms import read, write

    mdata = read(tiny_h5mu)
    del mdata.obs["batch"]
    for mod in mdata.mod.values():
        del mod.obs["batch"]
    data = write(mdata, tmp_path / "nobatch.h5mu")
    config, entries = load_config(config_file(tmp_path, data, {"multivi": {}}))
    plan = make_plan(config, entries, inspect_datasets(datasets_of(config)))
    assert plan.jobs[0].params["batch_key"] is None
    assert plan.labels["batch"] is None
    assert any("no obs column 'batch'" in note for note in plan.notes)


def test_a_folder_multiverse_made_is_replaced_and_a_forged_marker_is_not_enough(tmp_path, tiny_h5mu):
    out = tmp_path / "out" / "tiny" / "pca" / "seed-0"
    out.mkdir(parents=True)
    (out / "provenance.json").write_text(json.dumps({"multiverse_version": "0.1.0"}))
    config, entries = load_config(config_file(tmp_path, tiny_h5mu, {"pca": {}}))
    make_plan(config, entries, inspect_datasets(datasets_of(config)))  # ours: accepted

    (out / "provenance.json").unlink()
    (out / "provenance.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(Exception, match="not a multiverse result"):
        make_plan(config, entries, inspect_datasets(datasets_of(config)))
