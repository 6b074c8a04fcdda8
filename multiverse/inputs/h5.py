"""Reading the parts of AnnData, MuData and 10x HDF5 files that the host needs, without their matrices.

Cell names, feature types and shapes come through h5py and anndata's element
reader; matrix values are only ever read in bounded chunks (:func:`value_chunks`).
"""

from __future__ import annotations

from typing import Iterator, Optional

import h5py
import numpy as np

from multiverse.errors import InputError

#: Stored values read at a time when a matrix is scanned.
CHUNK_VALUES = 8_000_000


def read_elem(node):
    try:
        from anndata.io import read_elem as _read
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem as _read
    return _read(node)


def strings(node) -> list[str]:
    """A string array as anndata stores it, read with h5py alone (anndata's reader for anything else).

    anndata itself takes a second to import, which every run would pay for reading cell names.
    """
    if isinstance(node, h5py.Dataset) and node.dtype.kind in "OSU":
        return [str(v) for v in node.asstr()[:]] if node.dtype.kind != "U" else [str(v) for v in node[:]]
    return [str(v) for v in read_elem(node)]


def obs_names(group: h5py.Group, where: str) -> list[str]:
    """The cell names of an AnnData (or MuData) group, from its obs index alone."""
    if "obs" not in group:
        raise InputError(f"{where} has no 'obs' (cell annotations): is it an AnnData/MuData file?")
    obs = group["obs"]
    index_key = obs.attrs.get("_index", "_index")
    if isinstance(obs, h5py.Group) and index_key in obs:
        return strings(obs[index_key])
    return [str(n) for n in read_elem(obs).index]  # older layouts: a structured array


def obs_columns(group: h5py.Group) -> tuple[str, ...]:
    """Column names of an obs dataframe, without reading the columns."""
    if "obs" not in group:
        return ()
    obs = group["obs"]
    if isinstance(obs, h5py.Group):
        order = obs.attrs.get("column-order", [])
        return tuple(str(c) for c in np.atleast_1d(order) if str(c))
    return tuple(str(c) for c in read_elem(obs).columns)


def read_column(group: h5py.Group, column: str):
    """One obs column as a pandas Series-like array (categoricals decoded)."""
    return read_elem(group["obs"][column])


def var_column(group: h5py.Group, column: str) -> Optional[np.ndarray]:
    if "var" not in group or not isinstance(group["var"], h5py.Group) or column not in group["var"]:
        return None
    node = group["var"][column]
    if isinstance(node, h5py.Group) and str(node.attrs.get("encoding-type")) == "categorical":
        categories = np.asarray(strings(node["categories"]), dtype=object)
        codes = node["codes"][:]
        return np.where(codes >= 0, categories[np.maximum(codes, 0)], "nan").astype(str)
    if isinstance(node, h5py.Dataset) and node.dtype.kind in "OSU":
        return np.asarray(strings(node)).astype(str)
    return np.asarray(read_elem(node)).astype(str)


def matrix_shape(node, where: str) -> tuple[int, int]:
    shape = node.attrs["shape"] if isinstance(node, h5py.Group) else node.shape
    if len(shape) != 2:
        raise InputError(f"{where} is not a matrix (shape {tuple(shape)})")
    return int(shape[0]), int(shape[1])


def matrix_format(node) -> str:
    """``dense``, ``csr`` or ``csc``."""
    if isinstance(node, h5py.Dataset):
        return "dense"
    if "barcodes" in node and "features" in node:
        # A 10x matrix is features x barcodes in CSC: per cell (barcode) the values and their
        # feature indices, which is CSR in the cells x features orientation used here.
        return "csr"
    encoding = str(node.attrs.get("encoding-type", node.attrs.get("h5sparse_format", "")))
    if encoding.startswith("csr"):
        return "csr"
    if encoding.startswith("csc"):
        return "csc"
    raise InputError(f"{node.name}: unknown matrix encoding {encoding!r}")


def value_chunks(node, columns: Optional[np.ndarray] = None) -> Iterator[np.ndarray]:
    """The stored values of a dense or sparse matrix, in chunks; with ``columns`` (a boolean mask
    over the matrix's columns) only the values in those columns."""
    kind = matrix_format(node)
    if kind == "dense":
        n_rows = node.shape[0]
        step = max(1, CHUNK_VALUES // max(1, node.shape[1]))
        for start in range(0, n_rows, step):
            block = node[start : start + step]
            yield block[:, columns].ravel() if columns is not None else block.ravel()
        return
    data = node["data"]
    if columns is None:
        for start in range(0, data.shape[0], CHUNK_VALUES):
            yield data[start : start + CHUNK_VALUES]
        return
    if kind == "csr":  # a value's column is its index
        indices = node["indices"]
        for start in range(0, data.shape[0], CHUNK_VALUES):
            yield data[start : start + CHUNK_VALUES][columns[indices[start : start + CHUNK_VALUES]]]
        return
    indptr = node["indptr"][:]  # csc: the values of column j are data[indptr[j]:indptr[j+1]]
    for j in np.flatnonzero(columns):
        lo, hi = int(indptr[j]), int(indptr[j + 1])
        for start in range(lo, hi, CHUNK_VALUES):
            yield data[start : min(hi, start + CHUNK_VALUES)]


def is_10x_h5(handle: h5py.File) -> bool:
    """A Cell Ranger (ARC) feature-barcode matrix: /matrix with barcodes, features and CSC arrays."""
    matrix = handle.get("matrix")
    return isinstance(matrix, h5py.Group) and {"barcodes", "data", "indices", "indptr", "shape", "features"} <= set(matrix)
