"""Unusable input gets a clear message and exit code 2 before any container starts."""

from __future__ import annotations

import h5py
import numpy as np

from multiverse.synthetic import make_synthetic
from tests.conftest import run_cli


def write(mdata, path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mdata.write(str(path))
    return path


def refuse(path, tmp_path, *expected, models=("pca",)):
    proc = run_cli("run", "--models", *models, "--input", path, "--output", tmp_path / "out")
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stdout + proc.stderr
    for text in expected:
        assert text in message, message
    assert not (tmp_path / "out").exists()


def test_a_missing_file(tmp_path):
    refuse(tmp_path / "absent.h5mu", tmp_path, "input file not found")


def test_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5mu"
    path.write_text("cell_1,cell_2\n")
    refuse(path, tmp_path, "is not an HDF5 file")


def test_a_truncated_file(tiny_h5mu, tmp_path):
    path = tmp_path / "truncated.h5mu"
    path.write_bytes(tiny_h5mu.read_bytes()[: tiny_h5mu.stat().st_size // 3])
    refuse(path, tmp_path, "truncated.h5mu")


def test_a_wrong_suffix(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("x")
    refuse(path, tmp_path, "must be a .h5mu", ".h5ad")


def test_a_modality_with_no_cells(tmp_path):
    mdata = make_synthetic(n_cells=50, n_genes=50, n_peaks=50)
    empty = mdata[[]].copy()
    refuse(write(empty, tmp_path / "empty.h5mu"), tmp_path, "has no cells")


def test_a_matrix_with_no_features(tmp_path):
    import anndata

    adata = anndata.AnnData(X=np.zeros((20, 0), dtype=np.float32))
    path = tmp_path / "nofeatures.h5ad"
    adata.write_h5ad(path)
    refuse(path, tmp_path, "has no features")


def test_modalities_that_share_no_cell(tmp_path):
    mdata = make_synthetic(n_cells=40, n_genes=50, n_peaks=50)
    path = write(mdata, tmp_path / "unpaired.h5mu")
    with h5py.File(path, "r+") as f:
        index = f["mod/atac/obs"].attrs["_index"]
        names = f["mod/atac/obs"][index]
        del f["mod/atac/obs"][index]
        f["mod/atac/obs"].create_dataset(index, data=np.array([f"other_{i}" for i in range(len(names))], dtype=object), dtype=h5py.string_dtype())
        f["mod/atac/obs"][index].attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})
    refuse(path, tmp_path, "no cell is shared by all modalities")


def test_duplicate_cell_names(tmp_path):
    import anndata

    adata = anndata.AnnData(X=np.ones((4, 3), dtype=np.float32))
    adata.obs_names = ["a", "b", "a", "c"]
    path = tmp_path / "dups.h5ad"
    adata.write_h5ad(path)
    refuse(path, tmp_path, "duplicate cell names", "obs_names_make_unique")


def test_nan_in_the_counts(tmp_path):
    mdata = make_synthetic(n_cells=40, n_genes=50, n_peaks=50)
    mdata["rna"].layers["counts"].data[5] = np.nan
    refuse(write(mdata, tmp_path / "nan.h5mu"), tmp_path, "modality 'rna'", "NaN or infinite")


def test_a_modality_of_unknown_kind(tmp_path):
    mdata = make_synthetic(n_cells=40, n_genes=50, n_peaks=50)
    del mdata["atac"].var["feature_types"]
    path = write(mdata, tmp_path / "odd.h5mu")
    with h5py.File(path, "r+") as f:
        f.move("mod/atac", "mod/hic")
    refuse(path, tmp_path, "modality 'hic'", "modalities: {hic: rna}")


def test_a_modality_the_model_does_not_accept(tmp_path, monkeypatch):
    import anndata

    adata = anndata.AnnData(X=np.random.default_rng(0).poisson(5, (30, 8)).astype(np.float32))
    path = tmp_path / "protein_only.h5ad"
    adata.write_h5ad(path)
    config = tmp_path / "runner_config.yaml"
    config.write_text(f"input: {path}\noutput: out\nmodalities: {{adt: adt}}\nmodels:\n  multivi: {{}}\n  pca: {{}}\n")
    proc = run_cli("run", "--config", config)
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, message
    assert "multivi suits none of the inputs" in message and "adt" in message and "Models that can run: pca" in message
