"""The evaluation container scores embeddings against the input's labels, and never invents labels."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anndata
import mudata
import numpy as np
import pandas as pd
import pytest

from multiverse.catalog import IMAGES
from tests.conftest import CITE, real_data

pytestmark = pytest.mark.docker

BIO = ["nmi_leiden", "ari_leiden", "silhouette_label", "clisi", "isolated_labels"]
BATCH = ["silhouette_batch", "ilisi", "kbet", "graph_connectivity"]


@pytest.fixture(scope="session")
def metrics_image(engine) -> str:
    tag = IMAGES["metrics"].tag
    if not engine.has_image(tag):
        pytest.fail(f"image not built: {tag}; run 'multiverse build metrics' first")
    return tag


def write_embedding(results: Path, model: str, obs_names, X) -> None:
    adata = anndata.AnnData(obs=pd.DataFrame(index=pd.Index(obs_names).astype(str)))
    adata.obsm["X_emb"] = np.asarray(X, dtype=np.float32)
    (results / model).mkdir(parents=True)
    adata.write_h5ad(results / model / "embeddings.h5ad")


def evaluate(image: str, data: Path, results: Path, out: Path, models, labels=None, *extra, timeout=600):
    """Run the evaluation container under the model containers' sandbox."""
    out.mkdir(exist_ok=True)
    labels = labels if labels is not None else {"cell_type": "cell_type", "batch": "batch"}
    cmd = [
        "docker", "run", "--rm", "--user", f"{os.getuid()}:{os.getgid()}",
        "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,exec,nosuid,nodev,mode=1777",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--cpus", "2",
        "-e", "HOME=/tmp", "-e", "NUMBA_CACHE_DIR=/tmp/numba", "-e", "MPLCONFIGDIR=/tmp/matplotlib",
        "-e", "XDG_CACHE_HOME=/tmp/.cache", "-e", "MULTIVERSE_THREADS=2",
        "-v", f"{data}:/data/input/{data.name}:ro", "-v", f"{results}:/data/results:ro", "-v", f"{out}:/data/output",
        image,
        "--input", f"/data/input/{data.name}", "--results", "/data/results", "--output", "/data/output",
        "--models", json.dumps(list(models)), "--labels", json.dumps(labels), "--seed", "0", *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_label_derived_embedding_scores_best_and_random_worst_on_real_cite_data(metrics_image, tmp_path):
    data = real_data(CITE)
    mdata = mudata.read_h5mu(data)
    rng = np.random.default_rng(0)
    codes = pd.Categorical(mdata.obs["cell_type"]).codes
    X = mdata.mod["rna"][mdata.obs_names].X
    X = np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float64)
    X -= X.mean(axis=0)
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    results = tmp_path / "results"
    write_embedding(results, "labels", mdata.obs_names, np.eye(codes.max() + 1)[codes] + rng.normal(0, 0.1, (len(codes), codes.max() + 1)))
    write_embedding(results, "pca", mdata.obs_names, u[:, :30] * s[:30])
    write_embedding(results, "random", mdata.obs_names, rng.normal(size=(len(codes), 16)))
    out = tmp_path / "out"

    proc = evaluate(metrics_image, data, results, out, ["labels", "pca", "random"])

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "log.txt", "scores.json", "umap.npz", "umap_batch.png", "umap_cell_type.png"
    ]
    for path in out.iterdir():
        assert (path.stat().st_uid, path.stat().st_gid) == (os.getuid(), os.getgid())
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_cells"] == mdata.n_obs
    assert scores["labels"]["cell_type"]["n_categories"] == mdata.obs["cell_type"].nunique()
    assert scores["skipped"] == {}
    assert scores["metric_set"]["name"] == "leiden-asw"
    assert scores["labels"]["cell_type"]["n_unlabelled"] == 0
    models = scores["models"]
    for entry in models.values():
        assert entry["status"] == "ok" and not entry["errors"] and not entry["skipped"]
        # every metric lies in [0, 1], but ARI, which is below 0 for worse-than-chance clusterings
        assert all(0 <= v <= 1.0001 for k, v in entry["metrics"].items() if k != "ari_leiden")
        assert entry["cells"] == {k: mdata.n_obs for k in BIO + BATCH}
        assert -0.5 <= entry["metrics"]["ari_leiden"] <= 1
        agg = entry["aggregates"]
        assert agg["total"] == pytest.approx(0.6 * agg["bio_conservation"] + 0.4 * agg["batch_correction"])
    bio = {name: entry["aggregates"]["bio_conservation"] for name, entry in models.items()}
    assert bio["labels"] > bio["pca"] > bio["random"]
    for metric in BIO:
        assert models["labels"]["metrics"][metric] > models["random"]["metrics"][metric]
    umap = np.load(out / "umap.npz")
    assert umap["umap_pca"].shape == (mdata.n_obs, 2)
    assert list(umap["obs_names"]) == list(mdata.obs_names.astype(str))
    assert list(umap["cell_type"]) == list(mdata.obs["cell_type"].astype(str))


@pytest.fixture
def synthetic_results(tiny_h5mu, tmp_path):
    mdata = mudata.read_h5mu(tiny_h5mu)
    rng = np.random.default_rng(1)
    codes = pd.Categorical(mdata.obs["cell_type"]).codes
    results = tmp_path / "results"
    write_embedding(results, "labels", mdata.obs_names, np.eye(codes.max() + 1)[codes] + rng.normal(0, 0.1, (len(codes), codes.max() + 1)))
    write_embedding(results, "random", mdata.obs_names, rng.normal(size=(len(codes), 8)))
    write_embedding(results, "wrong_cells", [f"x{i}" for i in range(len(codes))], rng.normal(size=(len(codes), 8)))
    return mdata, results


def test_without_a_cell_type_column_every_bio_metric_is_skipped_with_the_reason(metrics_image, tiny_h5mu, synthetic_results, tmp_path):
    mdata, results = synthetic_results
    out = tmp_path / "out"

    proc = evaluate(metrics_image, tiny_h5mu, results, out, ["labels", "random"],
                    {"cell_type": "no_such_column", "batch": "batch"}, "--no-umap")

    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads((out / "scores.json").read_text())
    assert scores["labels"]["cell_type"]["present"] is False
    assert "no_such_column" in scores["labels"]["cell_type"]["reason"]
    for entry in scores["models"].values():
        assert all(entry["metrics"][m] is None for m in BIO + ["silhouette_batch", "kbet", "graph_connectivity"])
        assert "no_such_column" in entry["skipped"]["nmi_leiden"]
        assert entry["metrics"]["ilisi"] is not None  # needs batches only
        assert entry["aggregates"]["bio_conservation"] is None
        assert entry["aggregates"]["batch_correction"] is not None
        assert entry["aggregates"]["total"] is None  # never a batch-only total
        assert any("no total: no bio conservation" in note for note in entry["notes"])
    assert set(scores["skipped"]) == set(BIO) | {"silhouette_batch", "kbet", "graph_connectivity"}
    assert not (out / "umap.npz").exists()


def test_a_single_batch_skips_the_batch_metrics_and_a_broken_result_does_not_sink_the_others(metrics_image, tmp_path, synthetic_results):
    mdata, results = synthetic_results
    one_batch = tmp_path / "one_batch.h5ad"
    anndata.AnnData(obs=mdata.obs.assign(batch="only")).write_h5ad(one_batch)
    out = tmp_path / "out"

    proc = evaluate(metrics_image, one_batch, results, out, ["labels", "random", "wrong_cells", "missing"])

    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads((out / "scores.json").read_text())
    models = scores["models"]
    assert models["wrong_cells"]["status"] == "error" and "cells" in models["wrong_cells"]["error"]
    assert models["missing"]["status"] == "error"
    for name in ("labels", "random"):
        entry = models[name]
        assert all(entry["metrics"][m] is None for m in BATCH)
        assert "single value" in entry["skipped"]["ilisi"]
        assert entry["aggregates"]["bio_conservation"] is not None and entry["aggregates"]["total"] is None
    assert models["labels"]["aggregates"]["bio_conservation"] > models["random"]["aggregates"]["bio_conservation"]
    assert (out / "umap_cell_type.png").is_file() and not (out / "umap_batch.png").exists()
    assert "umap_labels" in np.load(out / "umap.npz")


def test_nothing_to_score_exits_1_with_the_reason_in_the_log(metrics_image, tiny_h5mu, synthetic_results, tmp_path):
    _, results = synthetic_results
    out = tmp_path / "out"

    proc = evaluate(metrics_image, tiny_h5mu, results, out, ["wrong_cells"], None, "--no-umap")

    assert proc.returncode == 1
    assert "no model could be scored" in (out / "log.txt").read_text()


def pca_embedding(mdata, n: int = 30):
    X = mdata.mod["rna"][mdata.obs_names].X
    X = np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float64)
    X -= X.mean(axis=0)
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    return u[:, :n] * s[:n]


def with_a_fifth_unlabelled(mdata, tmp_path, seed: int = 0):
    """The file with a fifth of its cells unlabelled: NaN, empty strings and 'Unassigned', a third each."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(mdata.n_obs)[: mdata.n_obs // 5]
    values = mdata.obs["cell_type"].astype(object).to_numpy()
    values[idx[0::3]], values[idx[1::3]], values[idx[2::3]] = np.nan, "", "Unassigned"
    mdata.obs["cell_type"] = pd.Categorical(values)
    path = tmp_path / "fifth_unlabelled.h5mu"
    mdata.write(path)
    return path, idx


def test_a_fifth_of_the_cells_unlabelled_leaves_them_out_of_the_label_metrics_only(metrics_image, tmp_path):
    mdata = mudata.read_h5mu(real_data(CITE))
    labels = mdata.obs["cell_type"].astype(str).to_numpy()
    path, idx = with_a_fifth_unlabelled(mdata, tmp_path)
    keep = np.setdiff1d(np.arange(mdata.n_obs), idx)
    codes = pd.Categorical(labels).codes
    rng = np.random.default_rng(0)
    results = tmp_path / "results"
    # the label-derived embedding knows the true types of every cell, also of the ones the file leaves unlabelled
    write_embedding(results, "labels", mdata.obs_names, np.eye(codes.max() + 1)[codes] + rng.normal(0, 0.1, (len(codes), codes.max() + 1)))
    write_embedding(results, "pca", mdata.obs_names, pca_embedding(mdata))
    write_embedding(results, "random", mdata.obs_names, rng.normal(size=(len(codes), 16)))

    proc = evaluate(metrics_image, path, results, tmp_path / "out", ["labels", "pca", "random"], None, "--no-umap")

    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    info = scores["labels"]["cell_type"]
    assert info["present"] and info["n_unlabelled"] == len(idx) and info["n_labelled"] == mdata.n_obs - len(idx)
    assert set(info["unlabelled_values"]) == {"NaN", "''", "'Unassigned'"}
    assert "Unassigned" not in info["categories"]
    assert scores["skipped"] == {}
    for metric in BIO + ["silhouette_batch", "kbet", "graph_connectivity"]:
        assert scores["metric_cells"][metric] == len(keep)
    assert scores["metric_cells"]["ilisi"] == mdata.n_obs  # needs no cell types: every cell
    models = scores["models"]
    for entry in models.values():
        assert all(entry["metrics"][m] is not None for m in BIO + BATCH), entry["skipped"]
        assert entry["aggregates"]["total"] is not None
    assert models["labels"]["aggregates"]["bio_conservation"] > models["pca"]["aggregates"]["bio_conservation"] \
        > models["random"]["aggregates"]["bio_conservation"]

    # the same metrics on a file holding only the labelled cells: the unlabelled cells changed nothing
    only = mdata[keep].copy()
    only.obs["cell_type"] = pd.Categorical(labels[keep])
    only.write(tmp_path / "labelled_only.h5mu")
    subset = tmp_path / "subset"
    for name in ("labels", "pca", "random"):
        adata = anndata.read_h5ad(results / name / "embeddings.h5ad")[keep]
        write_embedding(subset, name, adata.obs_names, adata.obsm["X_emb"])
    proc = evaluate(metrics_image, tmp_path / "labelled_only.h5mu", subset, tmp_path / "out2",
                    ["labels", "pca", "random"], None, "--no-umap")
    assert proc.returncode == 0, proc.stderr[-3000:]
    alone = json.loads((tmp_path / "out2" / "scores.json").read_text())["models"]
    for name, entry in models.items():
        for metric in BIO + ["silhouette_batch", "kbet", "graph_connectivity"]:
            assert entry["metrics"][metric] == pytest.approx(alone[name]["metrics"][metric], abs=1e-6), (name, metric)


def test_the_benchmarker_metric_set_computes_its_ten_metrics_with_pcr_against_the_unintegrated_rna(metrics_image, tmp_path):
    data = real_data(CITE)
    mdata = mudata.read_h5mu(data)
    rng = np.random.default_rng(0)
    results = tmp_path / "results"
    write_embedding(results, "pca", mdata.obs_names, pca_embedding(mdata))
    write_embedding(results, "random", mdata.obs_names, rng.normal(size=(mdata.n_obs, 16)))

    proc = evaluate(metrics_image, data, results, tmp_path / "out", ["pca", "random"], None,
                    "--no-umap", "--metric-set", "benchmarker")

    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores["metric_set"]["name"] == "benchmarker"
    assert list(scores["metric_names"]["bio_conservation"]) == [
        "isolated_labels", "nmi_kmeans", "ari_kmeans", "silhouette_label", "clisi"]
    assert list(scores["metric_names"]["batch_correction"]) == [
        "bras", "ilisi", "kbet", "graph_connectivity", "pcr_comparison"]
    assert scores["unintegrated"]["present"] and scores["unintegrated"]["source"] == "mod/rna"
    for entry in scores["models"].values():
        assert all(v is not None for v in entry["metrics"].values()), entry["skipped"]
        assert entry["aggregates"]["n_metrics"] == {"bio_conservation": [5, 5], "batch_correction": [5, 5]}
    # the random embedding holds no batch variance: PCR comparison 1; the RNA's own PCA keeps it: near 0
    assert scores["models"]["random"]["metrics"]["pcr_comparison"] > 0.9
    assert scores["models"]["pca"]["metrics"]["pcr_comparison"] < 0.3
