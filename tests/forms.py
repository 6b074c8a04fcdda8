"""Inputs as people have them, built in the tests from a paired .h5mu (the real files in ../shared/data).

Each function writes one form the field uses and returns its path:
counts in ``.raw``, counts in a layer with another name, a single ``.h5ad``
whose ``var["feature_types"]`` mixes modalities, and a Cell Ranger (ARC)
``filtered_feature_bc_matrix.h5``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata
import h5py
import mudata
import numpy as np
import scipy.sparse as sp

FEATURE_TYPE = {"rna": "Gene Expression", "atac": "Peaks", "adt": "Antibody Capture"}


def read(path: Path) -> mudata.MuData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return mudata.read_h5mu(path)


def write(mdata: mudata.MuData, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mdata.write(str(path))
    return path


def _normalised(counts) -> sp.csr_matrix:
    counts = sp.csr_matrix(counts, dtype=np.float32)
    size = np.asarray(counts.sum(axis=1)).ravel()
    return (sp.diags(1e4 / np.maximum(size, 1)) @ counts).log1p().astype(np.float32).tocsr()


def counts_in_raw(source: Path, out: Path) -> Path:
    """Every modality as scanpy leaves it: log-normalised ``.X``, the counts in ``.raw``, no counts layer."""
    mdata = read(source)
    for mod in mdata.mod.values():
        counts = sp.csr_matrix(mod.layers["counts"], dtype=np.float32)
        del mod.layers["counts"]
        mod.X = counts
        mod.raw = mod
        mod.X = _normalised(counts)
    return write(mdata, out)


def counts_in_layer(source: Path, out: Path, layer: str = "raw_counts") -> Path:
    """Normalised ``.X`` and the counts in a layer with another name than ``counts``."""
    mdata = read(source)
    for mod in mdata.mod.values():
        counts = sp.csr_matrix(mod.layers.pop("counts"), dtype=np.float32)
        mod.layers[layer] = counts
        mod.X = _normalised(counts)
    return write(mdata, out)


def mixed_h5ad(source: Path, out: Path) -> Path:
    """One .h5ad holding every modality's counts side by side, told apart by var["feature_types"]."""
    mdata = read(source)
    blocks, vars_ = [], []
    for name, mod in mdata.mod.items():
        blocks.append(sp.csr_matrix(mod.layers["counts"], dtype=np.float32))
        var = mod.var[[]].copy()
        var["feature_types"] = FEATURE_TYPE[name]
        vars_.append(var)
    import pandas as pd

    var = pd.concat(vars_)
    var.index = [f"{t}:{n}" for t, n in zip(var["feature_types"], var.index)]
    adata = anndata.AnnData(X=sp.hstack(blocks).tocsr(), obs=mdata.obs.copy(), var=var)
    adata.layers["counts"] = adata.X.copy()
    adata.write_h5ad(out)
    return out


def cellranger_h5(source: Path, out: Path) -> Path:
    """A Cell Ranger (ARC) feature-barcode matrix: features x barcodes, CSC, feature_type per feature."""
    mdata = read(source)
    blocks, ids, types = [], [], []
    for name, mod in mdata.mod.items():
        blocks.append(sp.csr_matrix(mod.layers["counts"]).astype(np.int32))
        ids += [str(v) for v in mod.var_names]
        types += [FEATURE_TYPE[name]] * mod.n_vars
    matrix = sp.hstack(blocks).tocsr()  # cells x features: CSR rows are the 10x CSC columns
    with h5py.File(out, "w") as f:
        group = f.create_group("matrix")
        group.create_dataset("barcodes", data=np.array(mdata.obs_names, dtype="S"))
        group.create_dataset("data", data=matrix.data)
        group.create_dataset("indices", data=matrix.indices.astype(np.int64))
        group.create_dataset("indptr", data=matrix.indptr.astype(np.int64))
        group.create_dataset("shape", data=np.array([matrix.shape[1], matrix.shape[0]], dtype=np.int32))
        features = group.create_group("features")
        features.create_dataset("id", data=np.array(ids, dtype="S"))
        features.create_dataset("name", data=np.array(ids, dtype="S"))
        features.create_dataset("feature_type", data=np.array(types, dtype="S"))
        features.create_dataset("genome", data=np.array(["GRCh38"] * len(ids), dtype="S"))
        features.create_dataset("_all_tag_keys", data=np.array(["genome"], dtype="S"))
    return out


def with_bad_counts(source: Path, out: Path, modality: str, value: float) -> Path:
    """The file with one stored count of ``modality`` replaced by ``value`` (negative, NaN, 0.5)."""
    mdata = read(source)
    counts = sp.csr_matrix(mdata[modality].layers["counts"], dtype=np.float32)
    counts.data[len(counts.data) // 2] = value
    mdata[modality].layers["counts"] = counts
    return write(mdata, out)
