"""A biologist runs the PCA baseline on real paired data and gets a validated result."""

from __future__ import annotations

import json
import os

import anndata
import mudata
import numpy as np
import pytest

from tests.conftest import MULTIOME, real_data, result_dir, run_cli

pytestmark = pytest.mark.docker


def test_pca_on_real_multiome_data_leaves_a_validated_result_owned_by_the_caller(built, tmp_path):
    data = real_data(MULTIOME)
    out = tmp_path / "OUT"

    proc = run_cli("run", "--models", "pca", "--input", data, "--output", out)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = result_dir(out, "pca", data)
    assert sorted(p.name for p in folder.iterdir()) == ["embeddings.h5ad", "log.txt", "metrics.json", "provenance.json"]
    for path in folder.iterdir():
        assert (path.stat().st_uid, path.stat().st_gid) == (os.getuid(), os.getgid())
    embedding = anndata.read_h5ad(folder / "embeddings.h5ad")
    expected = mudata.read_h5mu(data).obs_names
    assert list(embedding.obs_names) == list(expected)
    assert embedding.obsm["X_emb"].shape == (len(expected), 30)
    assert np.isfinite(embedding.obsm["X_emb"]).all()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["params"]["n_components"] == 30
    assert metrics["runtime_s"] > 0 and metrics["peak_memory_mb"] > 0
    assert "scanpy" in metrics["versions"]
    assert "/pca/seed-0 | " in proc.stdout  # log lines streamed with the model's name
    assert "ok" in proc.stdout


def test_a_changed_parameter_reaches_the_method(built, tiny_h5mu, tmp_path):
    config = tmp_path / "runner_config.yaml"
    config.write_text(f"input: {tiny_h5mu}\noutput: out\nmodels:\n  pca:\n    params: {{n_components: 7}}\n")

    proc = run_cli("run", "--config", config)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    embedding = anndata.read_h5ad(result_dir(tmp_path / "out", "pca", tiny_h5mu) / "embeddings.h5ad")
    assert embedding.obsm["X_emb"].shape[1] == 7
    assert json.loads(embedding.uns["multiverse_params"])["n_components"] == 7


def test_pca_runs_on_rna_plus_protein(built, tiny_adt_h5mu, tmp_path):
    proc = run_cli("run", "--models", "pca", "--input", tiny_adt_h5mu, "--output", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((result_dir(tmp_path, "pca", tiny_adt_h5mu) / "metrics.json").read_text())
    assert {m["kind"] for m in metrics["modalities"].values()} == {"rna", "adt"}
