"""Cobolt in its image, with its defaults (the authors' tutorial settings), on synthetic RNA + ATAC.

Cobolt's main use is paired RNA + ATAC. In the synthetic data, types 0 and 1
have the same RNA profile and differ only in ATAC, types 2 and 3 the other way
round: only an embedding that uses both modalities keeps both pairs apart. The
data has 5000 peaks (~310 open per cell against ~3000 RNA counts): with the
shared 600-peak fixture (~40 open peaks per cell) the authors' package itself
leaves types 0/1 mixed (docs/COBOLT.md).
"""

from __future__ import annotations

import json

import anndata as ad
import mudata as md
import numpy as np
import pytest

from tests.conftest import require_images, result_dir, run_cli
from tests.neighbours import knn_accuracy

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def multiome_h5mu(tmp_path_factory):
    """300 synthetic cells, 300 genes, 5000 peaks, 6 types, 2 batches."""
    from multiverse.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("data") / "multiome.h5mu", n_cells=300, n_genes=300, n_peaks=5000)


@pytest.fixture(scope="module")
def cobolt_run(engine, multiome_h5mu, tmp_path_factory):
    require_images(engine, "cobolt")
    cwd = tmp_path_factory.mktemp("cobolt")  # no runner_config.yaml here: the method's own defaults
    proc = run_cli(
        "run", "--models", "cobolt", "--input", multiome_h5mu, "--output", cwd / "out", "--no-report", cwd=cwd
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return result_dir(cwd / "out", "cobolt", multiome_h5mu)


def test_cobolt_runs_with_the_authors_settings(cobolt_run):
    metrics = json.loads((cobolt_run / "metrics.json").read_text())
    params = metrics["params"]
    assert (params["n_latent"], params["n_epochs"], params["lr"], params["batch_size"]) == (10, 100, 0.005, 128)
    assert metrics["modality_subsets"] == [["atac"], ["rna"], ["rna", "atac"]]
    assert metrics["n_batches"] == 2
    assert len(metrics["loss_history"]) == 100
    assert np.mean(metrics["loss_history"][-5:]) < np.mean(metrics["loss_history"][:5])


def test_the_joint_embedding_separates_the_types_that_only_atac_or_only_rna_tells_apart(cobolt_run, multiome_h5mu):
    labels = md.read_h5mu(multiome_h5mu).obs["cell_type"].astype(str).to_numpy()
    embedding = ad.read_h5ad(cobolt_run / "embeddings.h5ad").obsm["X_emb"]
    # The authors' corrected latent: every cell's vector has mean zero over its coordinates.
    assert np.abs(embedding.mean(axis=1)).max() < 1e-5

    def pair(a: str, b: str) -> float:
        keep = np.isin(labels, [a, b])
        return knn_accuracy(embedding[keep], labels[keep])

    # ~50 cells per type; an embedding blind to a modality scores about 0.5 on the pair that modality separates.
    assert pair("type_0", "type_1") > 0.9, "types 0/1 differ only in ATAC"
    assert pair("type_2", "type_3") > 0.9, "types 2/3 differ only in RNA"
    assert knn_accuracy(embedding, labels) > 0.9
