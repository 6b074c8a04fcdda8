"""A small synthetic paired dataset with known cell types and batches.

The default data of ``make run-all`` and the fixture of the tests. Cells of
``n_types`` types in ``n_batches`` batches; RNA counts are negative binomial
around type-specific programmes with a gene-wise batch shift and per-batch
library sizes; ATAC is binary accessibility of type-specific peaks; ADT counts
are negative binomial around type-specific protein levels.

Built so that integration matters: types 0 and 1 have the same RNA profile
and differ only in the second modality, types 2 and 3 differ only in RNA.
A method that uses one modality cannot separate all types; one that
integrates both can.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp


def _type_profiles(rng, n_types: int, n_features: int, marker_fraction: float, effect: float, twins):
    """Log-scale effects per type; each pair in ``twins`` shares one profile."""
    effects = np.zeros((n_types, n_features))
    n_markers = max(1, int(marker_fraction * n_features))
    for t in range(n_types):
        markers = rng.choice(n_features, n_markers, replace=False)
        effects[t, markers] = effect * rng.uniform(0.7, 1.3, n_markers)
    for a, b in twins:
        effects[b] = effects[a]
    return effects


def _negative_binomial(rng, mean: np.ndarray, dispersion: float) -> np.ndarray:
    """Gamma-Poisson counts with the given mean and inverse-dispersion."""
    return rng.poisson(rng.gamma(dispersion, mean / dispersion)).astype(np.float32)


def make_synthetic(
    n_cells: int = 600,
    n_types: int = 6,
    n_batches: int = 2,
    n_genes: int = 1000,
    n_peaks: int = 2000,
    n_proteins: int = 30,
    second: str = "atac",
    seed: int = 0,
):
    """A MuData with modalities ``rna`` and ``second`` ("atac" or "adt")."""
    import anndata
    import mudata

    if second not in ("atac", "adt"):
        raise ValueError("second must be 'atac' or 'adt'")
    if n_types < 4:
        raise ValueError("n_types must be at least 4 (two pairs of twin types)")
    rng = np.random.default_rng(seed)
    cell_type = rng.integers(0, n_types, n_cells)
    batch = rng.integers(0, n_batches, n_cells)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([f"type_{t}" for t in cell_type]),
            "batch": pd.Categorical([f"batch_{b}" for b in batch]),
        },
        index=[f"cell_{i:05d}" for i in range(n_cells)],
    )

    # RNA: types 0/1 are twins here (same programme); 2/3 differ.
    base = rng.normal(0, 1, n_genes)
    rna_effect = _type_profiles(rng, n_types, n_genes, 0.05, 2.0, twins=[(0, 1)])
    batch_shift = rng.normal(0, 0.4, (n_batches, n_genes))
    batch_shift[0] = 0
    logits = base + rna_effect[cell_type] + batch_shift[batch]
    proportions = np.exp(logits - logits.max(axis=1, keepdims=True))
    proportions /= proportions.sum(axis=1, keepdims=True)
    library = rng.lognormal(np.log(2500), 0.3, n_cells) * (1 + 0.3 * batch)
    rna_counts = _negative_binomial(rng, proportions * library[:, None], dispersion=5.0)
    rna = anndata.AnnData(
        X=sp.csr_matrix(rna_counts),
        obs=obs.copy(),
        var=pd.DataFrame({"feature_types": "Gene Expression"}, index=[f"gene_{g:05d}" for g in range(n_genes)]),
    )

    # Second modality: types 2/3 are twins here; 0/1 differ.
    if second == "atac":
        open_base = rng.beta(1.0, 25.0, n_peaks)
        peak_effect = _type_profiles(rng, n_types, n_peaks, 0.08, 1.0, twins=[(2, 3)]) > 0
        depth = rng.lognormal(0, 0.3, n_cells) * (1 - 0.2 * batch)
        p = np.clip((open_base + 0.35 * peak_effect[cell_type]) * depth[:, None], 0, 0.95)
        values = (rng.random((n_cells, n_peaks)) < p).astype(np.float32)
        var = pd.DataFrame({"feature_types": "Peaks"}, index=[f"chr1:{1000 * k}-{1000 * k + 500}" for k in range(n_peaks)])
    else:
        level = rng.lognormal(3.0, 0.8, n_proteins)
        protein_effect = _type_profiles(rng, n_types, n_proteins, 0.15, 2.0, twins=[(2, 3)])
        scale = rng.lognormal(0, 0.2, n_cells) * (1 + 0.2 * batch)
        mean = level * np.exp(protein_effect[cell_type]) * scale[:, None] + 5.0
        values = _negative_binomial(rng, mean, dispersion=10.0)
        var = pd.DataFrame({"feature_types": "Antibody Capture"}, index=[f"protein_{k:03d}" for k in range(n_proteins)])
    other = anndata.AnnData(X=sp.csr_matrix(values), obs=obs.copy(), var=var)

    for adata in (rna, other):
        adata.layers["counts"] = adata.X.copy()
    mdata = mudata.MuData({"rna": rna, second: other})
    mdata.obs = obs.copy()
    mdata.uns["multiverse_synthetic"] = {
        "seed": seed,
        "note": "types 0/1 differ only in the second modality, types 2/3 only in RNA",
    }
    return mdata


def write_synthetic(path: Path, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mudata's notice about its obs/var joins
        make_synthetic(**kwargs).write(str(tmp))
    tmp.replace(path)
    return path
