"""PCA baseline (scanpy): per-modality normalisation, scaling, balanced weighting.

Each modality is normalised as suits its kind (RNA log-normalised, ATAC TF-IDF,
ADT the CLR of Stoeckius et al.; see ``preprocess``), reduced to its selected
features (RNA: the genes of highest dispersion, ATAC: the most frequently open
peaks), centred and scaled to unit variance per feature (clipped at +-10 like
``sc.pp.scale(max_value=10)``), and weighted so every modality contributes the
same total variance; ``sc.pp.pca`` then runs on the concatenation with a fixed seed.
"""

from __future__ import annotations

import logging

import numpy as np

from multiverse_methods import preprocess
from multiverse_methods.contract import Dataset, MethodResult
from multiverse_methods.params import PcaParams

PACKAGES = ("scanpy", "anndata", "mudata", "numpy", "scipy", "scikit-learn")
log = logging.getLogger("multiverse_methods.pca")


def modality_block(adata, name: str, kind: str, params: PcaParams) -> np.ndarray:
    """The scaled, weighted cells x selected-features block of one modality (float32, dense)."""
    x, is_counts = preprocess.expression(adata, name)
    nonempty = preprocess.drop_empty_features(x)
    keep = (
        preprocess.select_features(x, kind, params.n_top_genes, params.n_top_peaks, among=nonempty)
        if is_counts else nonempty
    )
    # Normalised with per-cell terms from every feature (library sizes, TF-IDF), made dense only
    # on the selection; statistics in float64, the block itself float32 (what PCA gets anyway).
    x = preprocess.normalize(x, kind, is_counts, columns=keep).toarray().astype(np.float32, copy=False)
    mean = x.mean(axis=0, dtype=np.float64)
    sd = x.std(axis=0, dtype=np.float64)
    x = x[:, sd > 0]
    x -= mean[sd > 0].astype(np.float32)
    x /= sd[sd > 0].astype(np.float32)
    np.clip(x, -10, 10, out=x)
    log.info("%s (%s): %d features after selection", name, kind, x.shape[1])
    if params.weighting == "balanced":
        x /= np.float32(np.sqrt(x.var(axis=0, dtype=np.float64).sum()))
    return x


def fit(data: Dataset, params: PcaParams) -> MethodResult:
    import anndata
    import scanpy as sc

    blocks = [modality_block(ad, name, data.kinds[name], params) for name, ad in data.modalities.items()]
    joint = np.hstack(blocks)
    del blocks
    n_comps = min(params.n_components, joint.shape[0] - 1, joint.shape[1] - 1)
    if n_comps < params.n_components:
        log.warning("n_components lowered from %d to %d (data too small)", params.n_components, n_comps)
    adata = anndata.AnnData(joint)
    sc.pp.pca(adata, n_comps=n_comps, zero_center=True, svd_solver="arpack", random_state=params.seed)
    ratio = adata.uns["pca"]["variance_ratio"]
    log.info("PCA: %d components explain %.1f%% of the variance", n_comps, 100 * ratio.sum())
    return MethodResult(
        embedding=adata.obsm["X_pca"],
        extra_metrics={"variance_ratio": [round(float(v), 5) for v in ratio]},
    )
