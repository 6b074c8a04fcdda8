"""A biologist brings the files they have: each form runs, with the counts where the file keeps them."""

from __future__ import annotations

import json

import anndata
import pytest
import yaml

from tests import forms
from tests.conftest import CITE, MULTIOME, input_record, real_data, records, require_images, result_dir, run_cli

pytestmark = pytest.mark.docker

#: Cobolt models counts and trains in seconds on these files with few epochs: it shows whether
#: the counts reached the method ("not applicable" when it finds none).
COUNT_MODEL = {"cobolt": {"params": {"n_epochs": 3}}}


def run(tmp_path, data, models, **config):
    path = tmp_path / "runner_config.yaml"
    path.write_text(yaml.safe_dump({"input": str(data), "output": str(tmp_path / "out"), "models": models, **config}))
    proc = run_cli("run", "--config", path, "--no-report")
    manifest_path = tmp_path / "out" / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return proc, manifest


@pytest.fixture(scope="module")
def images(engine):
    require_images(engine, "pca", "cobolt")


@pytest.mark.parametrize("form, source", [
    (forms.cellranger_h5, MULTIOME), (forms.mixed_h5ad, MULTIOME), (forms.mixed_h5ad, CITE),
], ids=["cell-ranger-arc-h5", "mixed-h5ad-multiome", "mixed-h5ad-cite"])
def test_a_split_input_is_converted_once_and_every_model_runs_on_it(form, source, images, tmp_path):
    suffix = ".h5" if form is forms.cellranger_h5 else ".h5ad"
    data = form(real_data(source), tmp_path / f"input{suffix}")

    proc, manifest = run(tmp_path, data, {"pca": {}, **COUNT_MODEL})

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {m["status"] for m in manifest["jobs"].values()} == {"ok"}
    paired = forms.read(real_data(source))
    embedding = anndata.read_h5ad(result_dir(tmp_path / "out", "pca", data) / "embeddings.h5ad")
    assert list(embedding.obs_names) == list(paired.obs_names)
    kinds = {name: m["kind"] for name, m in input_record(tmp_path / "out")["modalities"].items()}
    assert kinds == {name: name for name in paired.mod}
    converted = input_record(tmp_path / "out")["model_path"]
    assert converted.endswith(".h5mu") and ".multiverse/inputs/" in converted

    again, _ = run(tmp_path, data, {"pca": {}, **COUNT_MODEL})
    assert again.returncode == 0 and "convert |" not in again.stdout  # the conversion is reused
    assert "cached" in again.stdout


def test_counts_in_raw_reach_a_count_model(images, tmp_path):
    data = forms.counts_in_raw(real_data(MULTIOME), tmp_path / "raw.h5mu")
    proc, manifest = run(tmp_path, data, COUNT_MODEL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert input_record(tmp_path / "out")["modalities"]["rna"]["counts"] == "raw/X"


def test_counts_in_a_layer_the_config_names_reach_a_count_model(images, tmp_path):
    data = forms.counts_in_layer(real_data(MULTIOME), tmp_path / "layer.h5mu", layer="umi_counts")

    unnamed, manifest = run(tmp_path / "a", data, COUNT_MODEL) if (tmp_path / "a").mkdir() is None else None
    assert unnamed.returncode == 1
    assert records(tmp_path / "a" / "out")["cobolt"]["status"] == "not applicable"

    named, manifest = run(tmp_path / "b", data, COUNT_MODEL, counts_layer="umi_counts") if (tmp_path / "b").mkdir() is None else None
    assert named.returncode == 0, named.stdout[-3000:] + named.stderr[-3000:]
    assert records(tmp_path / "b" / "out")["cobolt"]["status"] == "ok"
