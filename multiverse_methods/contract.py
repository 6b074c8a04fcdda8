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


@dataclass
class Dataset:
    """The paired input: one AnnData per modality, all with the same cells in order."""

    modalities: dict  # name -> AnnData
    kinds: dict  # name -> "rna" | "atac" | "adt"
    obs: object  # pandas.DataFrame of cell annotations (global obs for .h5mu)
    #: Whether ``release`` may drop matrices: set by the image's entry point, which trains one
    #: method once on the data; other callers (tests, notebooks) keep their Dataset whole.
    release_after_use: bool = False

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
    attrs = node.attrs
    encoding = attrs.get("encoding-type", attrs.get("h5sparse_format", ""))
    if isinstance(encoding, bytes):
        encoding = encoding.decode()
    shape = tuple(int(v) for v in attrs.get("shape", attrs.get("h5sparse_shape", ())))
    fmt = {"csr_matrix": "csr", "csr": "csr", "csc_matrix": "csc", "csc": "csc"}.get(encoding)
    if fmt is None or len(shape) != 2:
        raise NotApplicable(f"{node.name}: not a matrix multiverse can read (encoding {encoding!r})")
    data = node["data"].astype(np.float32)[()]
    indices, indptr = node["indices"][()], node["indptr"][()]
    cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
    x = cls((data, indices, indptr), shape=shape, copy=False)
    del data, indices, indptr
    return x if fmt == "csr" else x.tocsr()


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
    """One AnnData holding only the matrix the methods use, its rows in the order of ``obs``.

    The matrix is ``.X``; when it holds the raw counts, ``layers["counts"]`` is the same object
    (not a copy), which is where ``preprocess.counts`` looks first.
    """
    import anndata
    import scipy.sparse as sp

    path, is_counts = _matrix_location(group, location, has_counts_map)
    var_group = group["raw/var"] if path == protocol.COUNTS_RAW else group["var"]
    var = _read_elem(var_group)
    var.index = var.index.astype(str)
    if not matrices:  # the controls: no values at all, only the shape
        x = sp.csr_matrix((len(obs), len(var)), dtype=np.float32)
        return anndata.AnnData(X=x, obs=obs.iloc[:, :0].copy(), var=var)
    if path not in group:
        raise NotApplicable(f"{group.name}: no {path} to read the raw counts from")
    x = _read_matrix(group[path])
    own_index = _read_elem(group["obs"]).index.astype(str) if "obs" in group else None
    if own_index is not None and not own_index.equals(obs.index):
        # Every modality holds the same cells (the host checks it); put them in the global order.
        x = x[own_index.get_indexer(obs.index)]
    adata = anndata.AnnData(X=x, obs=obs.iloc[:, :0].copy(), var=var)
    if is_counts:
        adata.layers["counts"] = adata.X
    return adata


def load_input(path: Path, kinds: dict, counts: dict | None = None, matrices: bool = True) -> Dataset:
    """Read the ``.h5mu`` or ``.h5ad`` input; ``kinds`` maps modality name -> kind, ``counts`` modality ->
    where its raw counts are (the host's finding; without it, ``layers["counts"]`` when present).

    Only the modalities named in ``kinds`` are read, and of each only one matrix: its raw counts
    where it has them, else ``.X``; sparse stays sparse, values float32. Layers, obsm, uns and
    the rest are never read. ``matrices=False`` (the controls) reads no values at all.
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
        modalities = {
            name: _read_modality(
                group, obs, (counts or {}).get(name), counts is not None, matrices
            )
            for name, group in groups.items()
        }
    return Dataset(modalities=modalities, kinds={n: kinds[n] for n in modalities}, obs=obs)


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
