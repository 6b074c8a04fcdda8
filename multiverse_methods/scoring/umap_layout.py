"""2-D UMAP coordinates of one embedding, for the report's figures."""

from __future__ import annotations

from multiverse_methods.protocol import EMBEDDING_KEY


def compute_umap(X, seed: int):
    """scanpy's neighbours (15) on the embedding, then ``tl.umap``; cells x 2, float32."""
    import anndata
    import numpy as np
    import pandas as pd
    import scanpy as sc

    adata = anndata.AnnData(obs=pd.DataFrame(index=pd.RangeIndex(X.shape[0]).astype(str)))
    adata.obsm[EMBEDDING_KEY] = np.asarray(X, dtype=np.float32)
    # From 8192 cells scanpy switches to pynndescent, whose csr_array output its own code then fails on
    # with scipy 1.17 ("no attribute 'getnnz'"); scikit-learn's exact neighbours avoid that path.
    transformer = "sklearn" if X.shape[0] >= 8192 else None
    sc.pp.neighbors(adata, use_rep=EMBEDDING_KEY, n_neighbors=min(15, X.shape[0] - 1), random_state=seed,
                    transformer=transformer)
    sc.tl.umap(adata, random_state=seed)
    return np.asarray(adata.obsm["X_umap"], dtype=np.float32)
