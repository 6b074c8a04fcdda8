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
    x, is_counts = preprocess.expression(adata, name)
    x = x[:, preprocess.drop_empty_features(x)]
    keep = (
        preprocess.select_features(x, kind, params.n_top_genes, params.n_top_peaks)
        if is_counts else np.arange(x.shape[1])
    )
    # Normalised on every feature (library sizes, TF-IDF terms), then reduced to the selection.
    x = np.asarray(preprocess.normalize(x, kind, is_counts)[:, keep].toarray(), dtype=np.float64)
    x -= x.mean(axis=0)
    sd = x.std(axis=0)
    x = x[:, sd > 0] / sd[sd > 0]
    np.clip(x, -10, 10, out=x)
    log.info("%s (%s): %d features after selection", name, kind, x.shape[1])
    if params.weighting == "balanced":
        x /= np.sqrt(x.var(axis=0).sum())
    return x


def fit(data: Dataset, params: PcaParams) -> MethodResult:
    import anndata
    import scanpy as sc

    blocks = [modality_block(ad, name, data.kinds[name], params) for name, ad in data.modalities.items()]
    joint = np.hstack(blocks).astype(np.float32)
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
