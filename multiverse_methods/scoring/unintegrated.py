"""The unintegrated reference that ``pcr_comparison`` compares an embedding with.

scib-metrics' Benchmarker computes it as ``sc.tl.pca`` (50 components, ARPACK,
every feature) of the normalised, unintegrated ``adata.X``. Paired multimodal
input has no single unintegrated matrix; here it is the RNA modality: the
first modality of an ``.h5mu`` whose name means RNA (``rna``, ``gex``, ...),
or the ``.h5ad`` itself. Its raw counts (``layers["counts"]``, or an
integer-valued ``.X``) are normalised to 10,000 per cell and log1p-transformed;
an ``.X`` that is not integer-valued is taken as already normalised. So the
PCR comparison says how much of the RNA's batch variance an embedding removes,
also for methods that use the second modality.
"""

from __future__ import annotations

from pathlib import Path

from multiverse_methods.protocol import modality_kind

#: scanpy's default number of components, the one the Benchmarker's ``sc.tl.pca`` call uses.
N_COMPONENTS = 50


def _integral(x) -> bool:
    import numpy as np
    import scipy.sparse as sp

    values = x.data if sp.issparse(x) else np.asarray(x)
    sample = np.asarray(values).ravel()[:1_000_000]
    return bool(np.all(sample >= 0) and np.all(np.mod(sample, 1) == 0))


def unintegrated_pca(adata) -> tuple:
    """(cells x components PCA, description) of one RNA AnnData, as the Benchmarker's ``prepare``."""
    import anndata
    import numpy as np
    import scanpy as sc
    import scipy.sparse as sp

    if "counts" in adata.layers:
        x, how = adata.layers["counts"], "layers['counts'] normalised to 1e4 per cell, log1p"
    elif _integral(adata.X):
        x, how = adata.X, ".X (counts) normalised to 1e4 per cell, log1p"
    else:
        x, how = adata.X, ".X as stored (already normalised)"
    work = anndata.AnnData(X=sp.csr_matrix(x, dtype=np.float32) if sp.issparse(x) else np.asarray(x, np.float32))
    if "log1p" in how:
        sc.pp.normalize_total(work, target_sum=1e4)
        sc.pp.log1p(work)
    n_comps = min(N_COMPONENTS, min(work.shape) - 1)
    sc.tl.pca(work, n_comps=n_comps, svd_solver="arpack", mask_var=None)
    return np.asarray(work.obsm["X_pca"]), f"PCA ({n_comps} components, ARPACK) of {how}"


def read_unintegrated(path: Path, obs_names) -> tuple:
    """(PCA or None, info) for the cells ``obs_names`` of the input file; info says what it is or why not."""
    import anndata
    import h5py

    path = Path(path)
    if path.suffix == ".h5mu":
        with h5py.File(path, "r") as f:
            modalities = list(f["mod"]) if "mod" in f else []
        rna = [name for name in modalities if modality_kind(name) == "rna"]
        if not rna:
            return None, {"present": False, "reason": f"the input has no RNA modality (it has {modalities})"}
        import mudata

        adata, source = mudata.read_h5ad(str(path), mod=rna[0]), f"mod/{rna[0]}"
    else:
        adata, source = anndata.read_h5ad(path), "the input"
    names = adata.obs_names.astype(str)
    if not names.equals(obs_names):
        if not set(obs_names) <= set(names):
            return None, {"present": False, "reason": f"{source} does not hold every cell of the input's obs"}
        adata = adata[names.get_indexer(obs_names)]
    X_pre, how = unintegrated_pca(adata)
    return X_pre, {"present": True, "source": source, "what": how, "n_components": int(X_pre.shape[1])}
