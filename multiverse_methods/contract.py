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
import warnings
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

    @property
    def obs_names(self):
        return self.obs.index

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    def of_kind(self, kind: str) -> dict:
        return {name: ad for name, ad in self.modalities.items() if self.kinds[name] == kind}


@dataclass
class MethodResult:
    """What a method returns: the embedding and any figures it wants in metrics.json."""

    embedding: np.ndarray
    extra_metrics: dict = field(default_factory=dict)


def _with_counts(adata, location):
    """The modality with its raw counts in ``layers["counts"]``, wherever the host found them.

    ``location`` is the host's finding (``--counts``): a layer, ``raw/X`` or ``X``; None means
    the modality has no raw counts, and methods that model counts say "not applicable".
    """
    if location is None:
        if "counts" in adata.layers:
            del adata.layers["counts"]
        return adata
    if location == protocol.COUNTS_RAW:
        import anndata

        raw = adata.raw
        return anndata.AnnData(X=raw.X, obs=adata.obs, var=raw.var.copy(), layers={"counts": raw.X})
    if location == protocol.COUNTS_X:
        adata.layers["counts"] = adata.X
    elif location.startswith(protocol.COUNTS_LAYER_PREFIX):
        layer = location[len(protocol.COUNTS_LAYER_PREFIX):]
        if layer != "counts":
            adata.layers["counts"] = adata.layers[layer]
    return adata


def load_input(path: Path, kinds: dict, counts: dict | None = None) -> Dataset:
    """Read ``.h5mu`` or ``.h5ad`` input; ``kinds`` maps modality name -> kind, ``counts`` modality ->
    where its raw counts are (the host's finding; without it, ``layers["counts"]`` as found)."""
    import anndata

    if path.suffix == ".h5mu":
        import mudata

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # mudata's notice about obs/var joins
            mdata = mudata.read_h5mu(str(path))
        modalities = {name: mdata.mod[name] for name in mdata.mod}
        obs = mdata.obs
        # Every modality holds the same cells (the host checks it); use the global order.
        for name, ad in modalities.items():
            if not ad.obs_names.equals(obs.index):
                modalities[name] = ad[obs.index].copy()
    else:
        adata = anndata.read_h5ad(str(path))
        name = next(iter(kinds)) if kinds else "rna"
        modalities = {name: adata}
        obs = adata.obs
    unknown = [name for name in modalities if name not in kinds]
    if unknown:
        raise NotApplicable(f"modalities {unknown} have no known kind (rna, atac or adt)")
    if counts is not None:
        modalities = {name: _with_counts(ad, counts.get(name)) for name, ad in modalities.items()}
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
