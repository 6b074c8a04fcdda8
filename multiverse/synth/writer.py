"""Write a MuData file chunk of cells by chunk, never holding a whole matrix.

mudata writes the skeleton (global and per-modality obs and var, the global
obsm/obsmap/varm/varmap, uns, the file's MuData header) with an empty matrix
of the right shape per modality. Each modality's ``X`` is then replaced by a
CSR matrix that grows by appending rows with anndata's on-disk API
(``write_elem`` for the first chunk, ``sparse_dataset(...).append`` after).
``layers["counts"]`` is an HDF5 hard link to ``X``: the counts are stored
once and both names read them (mudata, anndata and h5py all see two ordinary
elements).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

#: HDF5 chunk of the data/indices datasets (values); 1 MiB of float32, enough for fast appends and reads.
_HDF5_CHUNK = 1 << 18


def _io():
    try:
        from anndata.io import sparse_dataset, write_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import sparse_dataset, write_elem
    return sparse_dataset, write_elem


def write_skeleton(path: Path, obs: pd.DataFrame, var: Mapping[str, pd.DataFrame], uns: dict) -> None:
    """The file without its matrices: every modality's X is an empty CSR of the final shape."""
    import anndata
    import mudata

    mods = {
        name: anndata.AnnData(
            X=sp.csr_matrix((len(obs), len(frame)), dtype=np.float32), obs=obs.copy(), var=frame
        )
        for name, frame in var.items()
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mudata's notices about pulling obs columns and duplicate var names
        mdata = mudata.MuData(mods)
        mdata.obs = obs.copy()
        mdata.uns.update(uns)
        mdata.write(str(path))


def fill_matrices(path: Path, blocks: Iterable[tuple[str, sp.csr_matrix]]) -> dict[str, int]:
    """Stream blocks of rows into the modalities' X; returns the stored non-zeros per modality.

    ``blocks`` yields (modality name, CSR block of its next cells); one block
    is held at a time. The skeleton's shapes are checked at the end.
    """
    sparse_dataset, write_elem = _io()
    nnz: dict[str, int] = {}
    with h5py.File(path, "r+") as handle:
        groups = {name: handle["mod"][name] for name in handle["mod"]}
        expected = {name: tuple(int(v) for v in group["X"].attrs["shape"]) for name, group in groups.items()}
        for group in groups.values():
            del group["X"]
        for name, block in blocks:
            if name not in groups:
                raise ValueError(f"no modality '{name}' in {path.name} (it has {', '.join(groups)})")
            if name not in nnz:
                write_elem(groups[name], "X", block,
                           dataset_kwargs={"chunks": (_HDF5_CHUNK,), "indptr_dtype": np.int64})
            else:
                sparse_dataset(groups[name]["X"]).append(block)
            nnz[name] = nnz.get(name, 0) + block.nnz
        for name, group in groups.items():
            shape = tuple(int(v) for v in group["X"].attrs["shape"]) if "X" in group else None
            if shape != expected[name]:
                raise RuntimeError(f"modality '{name}': wrote a {shape} matrix, expected {expected[name]}")
            layers = group.require_group("layers")
            if "counts" in layers:
                del layers["counts"]
            layers["counts"] = group["X"]  # a hard link: the counts are stored once
    return nnz
