"""The five real methods, trained in their own images on small synthetic data.

A biologist runs every method at once on paired data with known cell types and
expects: each finishes, each embedding keeps the cells apart by type far better
than a random embedding does, each integrating method tells apart cell types
that differ in one modality only (which an embedding of one modality cannot), a
rerun with the same seed gives the same numbers, and a parameter or preset set
in the config is the one the method used. The iteration counts come from
``configs/smoke.yaml`` (``preset: fast``), so the whole module trains every
method three times in minutes on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pytest
import yaml

from tests.conftest import REPO, records, require_images, run_cli
from tests.neighbours import knn_accuracy

pytestmark = [pytest.mark.docker, pytest.mark.slow]

METHODS = ("pca", "mofa", "multivi", "mowgli", "cobolt")
SMOKE = REPO / "configs" / "smoke.yaml"
SMOKE_CONFIG = yaml.safe_load(SMOKE.read_text())

#: A method "separates the cell types" when the 15-nearest-neighbour vote recovers
#: a cell's type at least this often. The fixtures have 6 balanced types, so chance
#: is 1/6 ~ 0.17 and a random embedding scores 0.17 +/- 0.03 on 200 cells; 0.6 is
#: more than ten standard deviations above it, yet below what every method reaches
#: with the smoke iterations (0.8-1.0 when this was written).
MIN_KNN_ACCURACY = 0.6
#: ... and at least this far above the random control of the same run.
MIN_MARGIN_OVER_RANDOM = 0.35


def folder_of(out: Path, model: str, seed: int = 0) -> Path:
    """A model's result folder in the output of a one-input run (<out>/<dataset>/<model>/seed-<seed>)."""
    [folder] = out.glob(f"*/{model}/seed-{seed}")
    return folder


def embedding_of(out: Path, model: str) -> ad.AnnData:
    return ad.read_h5ad(folder_of(out, model) / "embeddings.h5ad")


def metrics_of(out: Path, model: str) -> dict:
    return json.loads((folder_of(out, model) / "metrics.json").read_text())


def run_smoke(data: Path, out: Path, config: Path = SMOKE) -> Path:
    """Every method and the random control, two at a time; all must succeed."""
    proc = run_cli(
        "run", "--config", config, "--models", *METHODS, "control_random",
        "--input", data, "--output", out, "--jobs", "2", "--no-report",
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def images(engine):
    require_images(engine, *METHODS)


@pytest.fixture(scope="module")
def multiome_h5mu(tmp_path_factory) -> Path:
    """300 synthetic cells, 300 genes, 5000 peaks, 6 types (two twin pairs), 2 batches.

    Larger than the 200-cell, 600-peak fixture of conftest: on that one MultiVI and
    Cobolt, with the smoke settings, could not see the ATAC-only difference of
    types 0/1 (twin accuracy 0.58 and 0.55), which 5000 peaks carry (0.81 and
    above; see KNOWN_MISSES and docs/METHODS.md).
    """
    from multiverse.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("data") / "multiome.h5mu", n_cells=300, n_genes=300, n_peaks=5000)


@pytest.fixture(scope="module")
def cite_h5mu(tmp_path_factory) -> Path:
    """300 synthetic cells, 300 genes, 30 proteins (on 200 cells and 400 genes MultiVI saw
    only part of the RNA-only difference, 0.77)."""
    from multiverse.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("data") / "cite.h5mu", n_cells=300, n_genes=300, second="adt")


@pytest.fixture(scope="module")
def rna_atac_run(images, multiome_h5mu, tmp_path_factory):
    return run_smoke(multiome_h5mu, tmp_path_factory.mktemp("methods") / "rna_atac")


@pytest.fixture(scope="module")
def rna_adt_run(images, cite_h5mu, tmp_path_factory):
    return run_smoke(cite_h5mu, tmp_path_factory.mktemp("methods") / "rna_adt")


def data_of(run: str, request) -> Path:
    """The input file of a run fixture."""
    return request.getfixturevalue("multiome_h5mu" if run == "rna_atac_run" else "cite_h5mu")


def labels_of(path: Path) -> np.ndarray:
    return md.read_h5mu(path).obs["cell_type"].astype(str).to_numpy()


def test_all_five_methods_finish_two_at_a_time_sharing_the_cpus(rna_atac_run, multiome_h5mu):
    manifest = json.loads((rna_atac_run / "manifest.json").read_text())
    assert manifest["parallel_jobs"] == 2
    input_cells = md.read_h5mu(multiome_h5mu).obs_names
    jobs = records(rna_atac_run)
    for model in METHODS:
        entry = jobs[model]
        assert entry["status"] == "ok", (model, entry["reason"])
        assert entry["limits"]["cpus"] == pytest.approx(1.0), "two jobs share the two CPUs equally"
        embedding = embedding_of(rna_atac_run, model)
        assert list(embedding.obs_names) == list(input_cells), model
        assert np.isfinite(embedding.obsm["X_emb"]).all(), model


@pytest.mark.parametrize("run", ["rna_atac_run", "rna_adt_run"])
def test_every_method_separates_the_known_cell_types_far_better_than_random(run, request):
    out = request.getfixturevalue(run)
    labels = labels_of(data_of(run, request))
    random_score = knn_accuracy(embedding_of(out, "control_random").obsm["X_emb"], labels)
    assert random_score < 0.35, f"the random control should sit near chance, got {random_score:.2f}"
    scores = {m: knn_accuracy(embedding_of(out, m).obsm["X_emb"], labels) for m in METHODS}
    weak = {
        m: round(s, 3) for m, s in scores.items()
        if s < MIN_KNN_ACCURACY or s < random_score + MIN_MARGIN_OVER_RANDOM
    }
    assert not weak, f"kNN accuracy {weak} (random control {random_score:.3f}; all: {scores})"


#: The fixtures' twin types (multiverse.synthetic): each pair has one profile in one
#: modality and differs only in the other, named here.
TWINS = {("type_0", "type_1"): "second", ("type_2", "type_3"): "rna"}
#: An embedding "tells a twin pair apart" when a leave-one-out 15-nearest-neighbour vote
#: among the pair's ~100 cells recovers the type this often. Chance is 0.5 (a little
#: less, leave-one-out); PCA of one modality alone scores 0.42-0.58 on the pair that
#: modality cannot see (while it separates all types overall at kNN 0.82-0.87, which
#: the test above accepts) and PCA of both modalities 1.0 (measured when this was
#: written, on the 300-cell data of this module).
MIN_TWIN_ACCURACY = 0.8


def twin_accuracy(embedding: np.ndarray, labels: np.ndarray, pair: tuple[str, str], k: int = 15) -> float:
    """How often the k nearest cells of the pair, by majority, share a cell's type."""
    inside = np.isin(labels, pair)
    return knn_accuracy(np.asarray(embedding)[inside], labels[inside], k=k)


def twin_scores(embedding, labels) -> dict:
    return {f"{a}/{b}": round(twin_accuracy(embedding, labels, (a, b)), 3) for a, b in TWINS}


@pytest.fixture(scope="module")
def one_modality_runs(images, multiome_h5mu, cite_h5mu, tmp_path_factory) -> dict:
    """PCA of each fixture's RNA alone and of its second modality alone (the same PCA wrapper)."""
    out = {}
    root = tmp_path_factory.mktemp("one_modality")
    for run, path in (("rna_atac_run", multiome_h5mu), ("rna_adt_run", cite_h5mu)):
        data = md.read_h5mu(path)
        for name in data.mod:
            single = md.MuData({name: data.mod[name]})
            single.obs = data.obs.copy()
            file = root / f"{run}_{name}.h5mu"
            single.write(str(file))
            proc = run_cli("run", "--config", SMOKE, "--models", "pca", "--input", file,
                           "--output", root / f"{run}_{name}", "--no-report")
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            kind = "rna" if name == "rna" else "second"
            out[(run, kind)] = embedding_of(root / f"{run}_{name}", "pca").obsm["X_emb"]
    return out


@pytest.mark.parametrize("run", ["rna_atac_run", "rna_adt_run"])
def test_an_embedding_of_one_modality_alone_cannot_tell_apart_the_twins_of_that_modality(
    run, one_modality_runs, request
):
    labels = labels_of(data_of(run, request))
    for kind in ("rna", "second"):
        scores = {pair: twin_accuracy(one_modality_runs[(run, kind)], labels, pair) for pair in TWINS}
        for pair, differs_in in TWINS.items():
            if differs_in == kind:
                assert scores[pair] >= MIN_TWIN_ACCURACY, (kind, pair, scores)  # it sees this pair
            else:
                assert scores[pair] < MIN_TWIN_ACCURACY - 0.15, (kind, pair, scores)  # blind to this one


#: Methods that do not tell both twin pairs apart with the smoke settings (measured
#: twin accuracies type_0/1, type_2/3 when this was written); strict, so that a fix
#: shows up as a failure here until the mark is removed. See docs/METHODS.md.
#: Mowgli keeps the ATAC- and ADT-only differences but loses most of the RNA-only
#: one, with the smoke settings (latent_dim 8, 100 inner steps) as with its fast
#: preset alone (latent_dim 15, 200 inner steps: 0.98, 0.58 on the RNA+ATAC data);
#: more inner steps do not change it, and the cause is not established.
#: MOFA+ with mofapy2's default of no view scaling (scale_views false) lets the 300
#: genes outweigh the 30 proteins: the ADT-only difference is lost (0.63 with its
#: defaults, 0.64 with preset fast); with scale_views true it scores 1.0, 1.0. The
#: default stays mofapy2's: on the real CITE file it is 0.05 ARI above muon's recipe.
KNOWN_MISSES = {
    ("rna_adt_run", "mofa"): "loses the ADT-only difference without view scaling (0.64, 1.0)",
    ("rna_atac_run", "mowgli"): "misses the RNA-only difference (0.98, 0.59)",
    ("rna_adt_run", "mowgli"): "misses the RNA-only difference (1.0, 0.41)",
}


def _twin_cases():
    for run in ("rna_atac_run", "rna_adt_run"):
        for method in METHODS:
            reason = KNOWN_MISSES.get((run, method))
            # raises=AssertionError: only a miss is expected, a failed run is still an error.
            marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)] if reason else []
            yield pytest.param(run, method, marks=marks, id=f"{run}-{method}")


@pytest.mark.parametrize("run, method", list(_twin_cases()))
def test_each_method_tells_apart_twin_types_that_differ_in_one_modality_only(run, method, request):
    out = request.getfixturevalue(run)
    labels = labels_of(data_of(run, request))
    scores = twin_scores(embedding_of(out, method).obsm["X_emb"], labels)
    assert min(scores.values()) >= MIN_TWIN_ACCURACY, f"{method}: twin accuracy {scores}"


def test_mowgli_converges_with_a_loss_that_falls_at_every_outer_iteration(rna_atac_run, rna_adt_run):
    for out in (rna_atac_run, rna_adt_run):
        metrics = metrics_of(out, "mowgli")
        assert metrics["stop_reason"] == "converged", metrics["loss_history"]
        after_h = metrics["loss_history"][1::2]  # the total loss at the end of each outer iteration
        assert len(after_h) >= 3, after_h
        tol = metrics["params"]["tol_outer"]
        assert all(b <= a + tol for a, b in zip(after_h, after_h[1:])), after_h


def test_mowgli_with_too_few_inner_steps_is_a_method_error_not_a_result(images, tiny_h5mu, tmp_path):
    """20 inner LBFGS steps: the loss zig-zags and Mowgli stops itself after 3 outer iterations."""
    config = tmp_path / "few_steps.yaml"
    settings = json.loads(json.dumps(SMOKE_CONFIG))
    settings["models"] = {"mowgli": {"params": {**SMOKE_CONFIG["models"]["mowgli"]["params"], "max_iter_inner": 20}}}
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "out"
    proc = run_cli("run", "--config", config, "--input", tiny_h5mu, "--output", out, "--no-report")
    assert proc.returncode == 1, proc.stdout[-3000:]
    entry = records(out)["mowgli"]
    assert entry["status"] == "method error", entry
    assert "loss rose" in entry["reason"] and "max_iter_inner" in entry["reason"], entry["reason"]
    assert not list(out.glob("*/mowgli/seed-0/embeddings.h5ad"))


def test_the_preset_that_ran_is_in_metrics_json(rna_atac_run):
    from multiverse_methods.registry import METHODS as REGISTRY

    for model in METHODS:
        settings = SMOKE_CONFIG["models"][model].get("params", {})
        params = metrics_of(rna_atac_run, model)["params"]
        preset = settings.get("preset", "default")
        assert params["preset"] == preset, model
        for key, value in REGISTRY[model].params.PRESETS[preset].items():
            assert params[key] == settings.get(key, value), (model, key)


def test_the_same_seed_gives_an_identical_embedding(rna_atac_run, multiome_h5mu, tmp_path):
    again = run_smoke(multiome_h5mu, tmp_path / "again")
    for model in METHODS:
        first = embedding_of(rna_atac_run, model).obsm["X_emb"]
        second = embedding_of(again, model).obsm["X_emb"]
        np.testing.assert_array_equal(first, second, err_msg=f"{model} is not reproducible with seed 0")


CHANGED = {
    "pca": ("n_components", 7),
    "mofa": ("n_factors", 4),
    "multivi": ("n_latent", 6),
    "mowgli": ("latent_dim", 5),
    "cobolt": ("n_latent", 6),
}


def test_a_changed_parameter_reaches_every_method(images, tiny_h5mu, tmp_path):
    config = json.loads(json.dumps(SMOKE_CONFIG))
    for model, (key, value) in CHANGED.items():
        config["models"][model]["params"][key] = value
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    out = run_smoke(tiny_h5mu, tmp_path / "out", config=changed)
    for model, (key, value) in CHANGED.items():
        embedding = embedding_of(out, model)
        assert embedding.obsm["X_emb"].shape[1] == value, model
        assert json.loads(embedding.uns["multiverse_params"])[key] == value, model
        assert metrics_of(out, model)["params"][key] == value, model


@pytest.fixture
def normalised_only_h5mu(tiny_h5mu, tmp_path) -> Path:
    """The fixture as many public files ship: log-normalised .X and no raw counts anywhere."""
    import scipy.sparse as sp

    data = md.read_h5mu(tiny_h5mu)
    for mod in data.mod.values():
        counts = sp.csr_matrix(mod.layers["counts"], dtype=np.float32)
        del mod.layers["counts"]
        size = np.asarray(counts.sum(axis=1)).ravel()
        normalised = sp.diags(1e4 / np.maximum(size, 1)) @ counts
        mod.X = normalised.log1p().astype(np.float32).tocsr()
    path = tmp_path / "normalised.h5mu"
    data.write_h5mu(path)
    return path


def test_count_models_say_not_applicable_without_counts(images, normalised_only_h5mu, tmp_path):
    out = tmp_path / "out"
    proc = run_cli(
        "run", "--config", SMOKE, "--models", "pca", "multivi", "cobolt",
        "--input", normalised_only_h5mu, "--output", out, "--no-report",
    )
    assert proc.returncode == 1, "a model that did not run is not a success"
    manifest = records(out)
    assert manifest["pca"]["status"] == "ok"
    for model in ("multivi", "cobolt"):
        assert manifest[model]["status"] == "not applicable", manifest[model]
        assert "raw counts" in manifest[model]["reason"], manifest[model]["reason"]
        assert not list(out.glob(f"*/{model}/seed-0/embeddings.h5ad"))
    assert "not applicable" in proc.stdout
