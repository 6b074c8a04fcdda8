"""The container side of the contract: read the input, write the three outputs.

Runs inside the method images only (anndata, mudata, numpy). Written to work
with the old anndata/mudata of the Mowgli image as well as the current ones.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from multiverse_methods import protocol

log = logging.getLogger("multiverse_methods")


class NotApplicable(Exception):
    """The method cannot be applied to this input; the message says why."""


#: Stored values per block of rows when a matrix is read (or sliced) block by block:
#: 8 Mi values, about 64 MB of float32 values and int32 indices.
BLOCK_VALUES = 1 << 23


def row_ranges(indptr, values: int | None = None):
    """(start, stop) row ranges of a CSR matrix holding about ``values`` stored values each (one row at least)."""
    values = values or BLOCK_VALUES
    n = len(indptr) - 1
    start = 0
    while start < n:
        stop = int(np.searchsorted(indptr, indptr[start] + values, side="right")) - 1
        stop = min(n, max(stop, start + 1))
        yield start, stop
        start = stop


@dataclass
class InMemoryMatrix:
    """A modality's matrix already in memory, offered block by block of rows like a stored one."""

    x: object  # scipy CSR, float32
    is_counts: bool

    @property
    def shape(self) -> tuple:
        return self.x.shape

    @property
    def order(self):
        return None  # the rows are in the Dataset's order already

    def blocks(self, values: int | None = None):
        """(first row, CSR block), the rows in the Dataset's cell order."""
        for start, stop in row_ranges(self.x.indptr, values):
            yield start, self.x[start:stop]


@dataclass
class StoredMatrix:
    """One modality's matrix in the input file, read block by block of rows, never whole.

    Rows come in the order the file stores them; ``order`` (the stored row of each
    cell of the Dataset, None when the orders agree) puts a result built from the
    blocks into the Dataset's cell order. A CSC matrix cannot be read by rows: it is
    read whole (the only case that holds the whole matrix) and then sliced.
    """

    path: Path
    location: str  # the matrix's HDF5 path in the file
    shape: tuple
    is_counts: bool
    order: object = None  # np.ndarray or None

    def blocks(self, values: int | None = None):
        import h5py
        import scipy.sparse as sp

        with h5py.File(self.path, "r") as f:
            node = f[self.location]
            n_cols = self.shape[1]
            if isinstance(node, h5py.Dataset):  # dense storage
                rows = max(1, (values or BLOCK_VALUES) // max(1, n_cols))
                for start in range(0, self.shape[0], rows):
                    stop = min(self.shape[0], start + rows)
                    yield start, sp.csr_matrix(node[start:stop].astype(np.float32, copy=False))
                return
            if _encoding(node) != "csr":
                x = _read_matrix(node)
                yield from InMemoryMatrix(x, self.is_counts).blocks(values)
                return
            indptr = node["indptr"][()]
            for start, stop in row_ranges(indptr, values):
                lo, hi = int(indptr[start]), int(indptr[stop])
                data = node["data"][lo:hi].astype(np.float32, copy=False)
                indices = node["indices"][lo:hi]
                yield start, sp.csr_matrix((data, indices, indptr[start:stop + 1] - lo), shape=(stop - start, n_cols))


@dataclass
class Dataset:
    """The paired input: one AnnData per modality, all with the same cells in order."""

    modalities: dict  # name -> AnnData
    kinds: dict  # name -> "rna" | "atac" | "adt"
    obs: object  # pandas.DataFrame of cell annotations (global obs for .h5mu)
    #: Whether ``release`` may drop matrices: set by the image's entry point, which trains one
    #: method once on the data; other callers (tests, notebooks) keep their Dataset whole.
    release_after_use: bool = False
    #: name -> StoredMatrix: where each modality's matrix is in the file (set by ``load_input``).
    stored: dict = field(default_factory=dict)
    #: Whether the modalities' values were read (False: shapes and names only, see ``matrix``).
    values_read: bool = True

    def matrix(self, name: str):
        """The modality's matrix (its counts where it has them, else ``.X``) as blocks of rows: from
        memory when the values were read, else straight from the file (``load_input(matrices=False)``),
        so that a method that selects features block by block never holds the whole matrix."""
        if self.values_read or name not in self.stored:
            from multiverse_methods import preprocess

            x, is_counts = preprocess.expression(self.modalities[name], name)
            return InMemoryMatrix(x, is_counts)
        return self.stored[name]

    @property
    def obs_names(self):
        return self.obs.index

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    def release(self, name: str) -> None:
        """Drop a modality's values once a method holds what it needs of them (its selected
        features), so the whole input does not stay in memory beside them; shape and names stay."""
        import scipy.sparse as sp

        if not self.release_after_use:
            return
        adata = self.modalities[name]
        for key in list(adata.layers):
            del adata.layers[key]
        adata.X = sp.csr_matrix(adata.shape, dtype=np.float32)

    def of_kind(self, kind: str) -> dict:
        return {name: ad for name, ad in self.modalities.items() if self.kinds[name] == kind}


@dataclass
class MethodResult:
    """What a method returns: the embedding and any figures it wants in metrics.json."""

    embedding: np.ndarray
    extra_metrics: dict = field(default_factory=dict)


def _read_elem(group):
    """anndata's reader of one stored element (obs, var): anndata >= 0.11 and the Mowgli image's 0.8."""
    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem
    return read_elem(group)


def _read_matrix(node):
    """One stored matrix as a float32 CSR matrix (or a float32 array when stored dense).

    Read with h5py, converting to float32 while reading, so that no float64 copy of
    the values is ever held; a CSC matrix (as some files store them) is converted to
    CSR once, the only moment two copies coexist.
    """
    import h5py
    import scipy.sparse as sp

    if isinstance(node, h5py.Dataset):
        return node.astype(np.float32)[()]
    shape = _shape(node)
    fmt = _encoding(node)
    if fmt is None or len(shape) != 2:
        raise NotApplicable(f"{node.name}: not a matrix multiverse can read (encoding {_raw_encoding(node)!r})")
    data = node["data"].astype(np.float32)[()]
    indices, indptr = node["indices"][()], node["indptr"][()]
    cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
    x = cls((data, indices, indptr), shape=shape, copy=False)
    del data, indices, indptr
    return x if fmt == "csr" else x.tocsr()


def _raw_encoding(node) -> str:
    attrs = node.attrs
    encoding = attrs.get("encoding-type", attrs.get("h5sparse_format", ""))
    return encoding.decode() if isinstance(encoding, bytes) else str(encoding)


def _encoding(node) -> str | None:
    """"csr" or "csc" for a stored sparse matrix, None otherwise."""
    return {"csr_matrix": "csr", "csr": "csr", "csc_matrix": "csc", "csc": "csc"}.get(_raw_encoding(node))


def _shape(node) -> tuple:
    import h5py

    if isinstance(node, h5py.Dataset):
        return tuple(node.shape)
    attrs = node.attrs
    return tuple(int(v) for v in attrs.get("shape", attrs.get("h5sparse_shape", ())))


#: Stored values looked at to tell counts (non-negative whole numbers) from normalised data.
INTEGRAL_SAMPLE = 1_000_000


def looks_integral(values) -> bool:
    """Whether the first stored values are non-negative whole numbers, i.e. look like counts."""
    values = np.asarray(values[:INTEGRAL_SAMPLE])
    return bool(np.all(values >= 0) and np.all(np.equal(np.mod(values, 1), 0)))


def _integral_start(node) -> bool:
    """``looks_integral`` of a stored matrix, read from the file (dense: its first rows)."""
    import h5py

    if isinstance(node, h5py.Dataset):
        return looks_integral(node[: max(1, INTEGRAL_SAMPLE // max(1, node.shape[1]))].ravel())
    return looks_integral(node["data"][:INTEGRAL_SAMPLE])


def _matrix_location(group, location, has_counts_map: bool) -> tuple[str | None, bool]:
    """(path in the group of the one matrix to read, whether it holds the raw counts).

    ``location`` is the host's finding (``--counts``): a layer, ``raw/X`` or ``X``; None means the
    modality has no raw counts (methods that model counts then look at whether ``.X`` is integral,
    and say "not applicable" otherwise). Without the host's map, ``layers/counts`` when present.
    """
    if not has_counts_map:
        return ("layers/counts", True) if "layers/counts" in group else ("X", False)
    if location is None:
        return "X", False
    return location, True


def _read_modality(group, obs, location, has_counts_map: bool, matrices: bool):
    """One AnnData holding only the matrix the methods use, its rows in the order of ``obs``,
    and where that matrix is in the file (a StoredMatrix; None when absent).

    The matrix is ``.X``; when it holds the raw counts, ``layers["counts"]`` is the same object
    (not a copy), which is where ``preprocess.counts`` looks first.
    """
    import anndata
    import scipy.sparse as sp

    path, is_counts = _matrix_location(group, location, has_counts_map)
    var_group = group["raw/var"] if path == protocol.COUNTS_RAW else group["var"]
    var = _read_elem(var_group)
    var.index = var.index.astype(str)
    own_index = _read_elem(group["obs"]).index.astype(str) if "obs" in group else None
    # Every modality holds the same cells (the host checks it); this puts them in the global order.
    order = own_index.get_indexer(obs.index) if own_index is not None and not own_index.equals(obs.index) else None
    stored = None
    if path in group:
        node = group[path]
        stored = StoredMatrix(Path(group.file.filename), node.name, _shape(node) or (len(obs), len(var)),
                              is_counts or _integral_start(node), order)
    if not matrices:  # no values at all, only the shape (the controls; the others read from ``stored``)
        x = sp.csr_matrix((len(obs), len(var)), dtype=np.float32)
        return anndata.AnnData(X=x, obs=obs.iloc[:, :0].copy(), var=var), stored
    if stored is None:
        raise NotApplicable(f"{group.name}: no {path} to read the raw counts from")
    x = _read_matrix(group[path])
    if order is not None:
        x = x[order]
    adata = anndata.AnnData(X=x, obs=obs.iloc[:, :0].copy(), var=var)
    if is_counts:
        adata.layers["counts"] = adata.X
    return adata, stored


def load_input(path: Path, kinds: dict, counts: dict | None = None, matrices: bool = True) -> Dataset:
    """Read the ``.h5mu`` or ``.h5ad`` input; ``kinds`` maps modality name -> kind, ``counts`` modality ->
    where its raw counts are (the host's finding; without it, ``layers["counts"]`` when present).

    Only the modalities named in ``kinds`` are read, and of each only one matrix: its raw counts
    where it has them, else ``.X``; sparse stays sparse, values float32. Layers, obsm, uns and
    the rest are never read. ``matrices=False`` reads no values at all: the controls need none,
    and the other methods but Mowgli read their matrices block by block through ``Dataset.matrix``.
    """
    import h5py

    with h5py.File(path, "r") as f:
        obs = _read_elem(f["obs"])
        obs.index = obs.index.astype(str)
        if "mod" in f:
            # mudata's order of the modalities (its "mod-order"), not HDF5's alphabetical one.
            order = [str(n.decode() if isinstance(n, bytes) else n) for n in f["mod"].attrs.get("mod-order", [])]
            order = [n for n in order if n in f["mod"]] + sorted(n for n in f["mod"] if n not in order)
            groups = {name: f["mod"][name] for name in order}
        else:
            groups = {(next(iter(kinds)) if kinds else "rna"): f}
        unknown = [name for name in groups if name not in kinds]
        if unknown:
            raise NotApplicable(f"modalities {unknown} have no known kind (rna, atac or adt)")
        modalities, stored = {}, {}
        for name, group in groups.items():
            modalities[name], where = _read_modality(group, obs, (counts or {}).get(name), counts is not None, matrices)
            if where is not None:
                stored[name] = where
    return Dataset(modalities=modalities, kinds={n: kinds[n] for n in modalities}, obs=obs,
                   stored=stored, values_read=matrices)


def package_versions(names) -> dict:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


#: The container's own cgroup memory peak: cgroup v2, then v1 (the runner mounts neither; both are the kernel's).
CGROUP_PEAK_FILES = ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes")


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its children, in MiB (what ru_maxrss sees)."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_kb, children_kb) / 1024.0


def peak_memory() -> tuple[float, str]:
    """(MiB, source): the container's cgroup memory peak, which also counts the page cache and tmpfs
    files that ru_maxrss misses; ru_maxrss where no cgroup file is readable (outside a container)."""
    for path in CGROUP_PEAK_FILES:
        try:
            return int(Path(path).read_text().strip()) / 2**20, "cgroup"
        except (OSError, ValueError):
            continue
    return peak_rss_mb(), "ru_maxrss"


def check_embedding(embedding, n_obs: int) -> np.ndarray:
    embedding = np.asarray(embedding, dtype=np.float32)
    if embedding.ndim != 2 or embedding.shape[0] != n_obs:
        raise RuntimeError(
            f"the method returned an embedding of shape {embedding.shape}, expected ({n_obs}, d)"
        )
    if not np.isfinite(embedding).all():
        raise RuntimeError("the method returned an embedding with NaN or infinite values")
    return embedding


def write_outputs(
    out_dir: Path,
    method: str,
    data: Dataset,
    result: MethodResult,
    params: dict,
    runtime_s: float,
    packages,
) -> None:
    import anndata
    import pandas as pd

    embedding = check_embedding(result.embedding, data.n_obs)
    peak, peak_source = peak_memory()
    obs = pd.DataFrame(index=pd.Index(data.obs_names.astype(str), name=None))
    adata = anndata.AnnData(obs=obs)
    adata.obsm[protocol.EMBEDDING_KEY] = embedding
    adata.uns[protocol.PARAMS_KEY] = json.dumps(params, sort_keys=True)
    adata.uns["multiverse_method"] = method
    adata.uns["multiverse_contract_version"] = protocol.CONTRACT_VERSION
    adata.write_h5ad(str(out_dir / protocol.EMBEDDINGS_FILE))

    metrics = {
        "method": method,
        "contract_version": protocol.CONTRACT_VERSION,
        "runtime_s": round(runtime_s, 3),
        "peak_memory_mb": round(peak, 1),
        "peak_memory_source": peak_source,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "n_cells": int(data.n_obs),
        "embedding_dim": int(embedding.shape[1]),
        "modalities": {
            name: {"kind": data.kinds[name], "n_features": int(ad.n_vars)}
            for name, ad in data.modalities.items()
        },
        "params": params,
        "versions": package_versions(packages),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        **result.extra_metrics,
    }
    (out_dir / protocol.METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=_jsonable))


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to metrics.json")


def setup_logging(out_dir: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(out_dir / protocol.LOG_FILE)):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    logging.captureWarnings(True)


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False
