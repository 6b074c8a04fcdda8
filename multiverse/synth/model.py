"""Fit a compact count model to a real paired dataset (the *reference*).

The model, per modality (RNA, ATAC or ADT), for a cell of type t in batch b
whose depth is s (its total counts over the reference's features):

    counts[f] ~ NegativeBinomial(mean = s * profile[t, f] * batch[b, f] / Z[t, b],
                                 dispersion = dispersion[f])

- ``profile[t, f]``: the share of a type-t cell's counts that feature f takes,
  pooled over the type's reference cells and shrunk towards the all-cell share
  by one median cell's worth of counts (types with one or two cells would
  otherwise copy those cells' noise);
- ``batch[b, f]``: the feature's fold change in batch b once types and depths
  are accounted for, shrunk by a pseudocount of ``_BATCH_PSEUDOCOUNT``;
  profiles and batch effects are fitted jointly by a few rounds of iterative
  proportional fitting (the maximum-likelihood fit of this Poisson log-linear
  model), ``Z[t, b]`` makes the expected total of a cell equal to s;
- ``dispersion[f]``: 1/theta by the method of moments on the residuals of that
  fit, clipped to [0, ``_MAX_DISPERSION``]; 0 (no more variance than Poisson
  once type, batch and depth are known) makes the feature Poisson.

ATAC counts of the NeurIPS 2021 files count Tn5 insertions: a fragment inside
a peak adds 2 (both ends) or, less often, 1, so the counts are mostly even.
When the reference's ATAC counts show this (more 2s than 1s), the model is
fitted to fragments (ceil(count / 2)) and sampling turns each fragment back
into 2 insertions, or 1 with probability ``half_fragment`` (the reference's
share of 1s among its 1s and 2s). A reference whose ATAC is binary gives
binary output.

Cells are resampled: each synthetic cell copies the type, batch and
per-modality depths of a reference cell drawn uniformly at random, so the
type abundances, the type-by-batch composition, the depth distribution of each
type and batch and the correlation of RNA and ATAC/ADT depth are the
reference's.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from multiverse.errors import InputError
from multiverse_methods.protocol import modality_kind

_BATCH_PSEUDOCOUNT = 5.0  # counts added to observed and expected before a batch fold change
_MAX_DISPERSION = 20.0
_FIT_ROUNDS = 5


@dataclass(frozen=True)
class ModalityModel:
    """What is fitted for one modality; arrays are indexed by reference feature."""

    name: str  # the modality's name in the reference ("rna", "atac", "adt")
    kind: str  # "rna", "atac" or "adt"
    feature_names: np.ndarray  # (F,) str
    feature_type: str  # var["feature_types"] value in the reference, e.g. "GEX"
    profile: np.ndarray  # (T, F): share of a type's counts per feature (rows sum to 1)
    batch_effect: np.ndarray  # (B, F): multiplicative, around 1
    dispersion: np.ndarray  # (F,): 1/theta of the negative binomial; 0 means Poisson
    half_fragment: float | None  # ATAC: chance that a fragment adds 1 insertion, not 2; None: plain counts
    binary: bool  # the reference's counts are 0/1

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


@dataclass(frozen=True)
class ReferenceModel:
    """The fitted model of a whole reference file."""

    source: str  # the reference file's name
    cell_types: np.ndarray  # (T,) str
    batches: np.ndarray  # (B,) str
    cell_type: np.ndarray  # (N_ref,) int: each reference cell's type
    batch: np.ndarray  # (N_ref,) int
    depth: dict[str, np.ndarray]  # modality name -> (N_ref,) each reference cell's total, in the model's units
    modalities: dict[str, ModalityModel]

    def modality_of_kind(self, kind: str) -> ModalityModel | None:
        return next((m for m in self.modalities.values() if m.kind == kind), None)


def _counts(adata, where: str) -> sp.csr_matrix:
    matrix = adata.layers["counts"] if "counts" in adata.layers else adata.X
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    if matrix.nnz and (matrix.data.min() < 0 or not np.allclose(matrix.data, np.round(matrix.data))):
        raise InputError(f"{where}: the reference needs raw integer counts in layers['counts'] (or .X)")
    matrix.data = np.round(matrix.data)
    return matrix


def _labels(obs, key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    if key not in obs.columns:
        raise InputError(f"{where}: the reference needs obs['{key}'] (known cell types and batches)")
    values = obs[key].astype(str).to_numpy()
    names, codes = np.unique(values, return_inverse=True)
    return names, codes


def _indicator(codes: np.ndarray, n: int) -> sp.csr_matrix:
    """(n, cells) matrix with a 1 where a cell belongs to a group."""
    return sp.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n, len(codes)))


def fit_modality(name: str, kind: str, counts: sp.csr_matrix, feature_names, feature_type: str,
                 cell_type: np.ndarray, batch: np.ndarray, n_types: int, n_batches: int
                 ) -> tuple[ModalityModel, np.ndarray]:
    """Fit profiles, batch effects and dispersions of one modality (see the module's docstring).

    Returns the model and each reference cell's depth in the units the model
    samples (fragments for paired-insertion ATAC, counts otherwise).
    """
    half_fragment, binary = None, bool(counts.nnz) and counts.data.max() <= 1
    if kind == "atac" and not binary:
        ones, twos = np.count_nonzero(counts.data == 1), np.count_nonzero(counts.data == 2)
        if twos > ones:
            half_fragment = ones / (ones + twos)
            counts = counts.copy()
            counts.data = np.ceil(counts.data / 2)  # insertions -> fragments
    observed_depth = np.asarray(counts.sum(axis=1)).ravel()
    depth = np.maximum(observed_depth, 1.0)  # an empty cell would divide by zero; its depth only scales zeros
    type_sums = np.asarray((_indicator(cell_type, n_types) @ counts).todense())  # (T, F)
    batch_sums = np.asarray((_indicator(batch, n_batches) @ counts).todense())  # (B, F)
    overall = np.asarray(counts.sum(axis=0)).ravel() / depth.sum()
    prior_depth = float(np.median(depth))

    # Total depth of each (type, batch): the fit needs no cells x features array, whatever the reference's size.
    depth_tb = np.zeros((n_types, n_batches))
    np.add.at(depth_tb, (cell_type, batch), depth)
    batch_effect = np.ones((n_batches, counts.shape[1]))
    for _ in range(_FIT_ROUNDS):
        # a type's profile: its counts / the depth of its cells, weighted by their batches' effects
        profile = (type_sums + prior_depth * overall) / (depth_tb @ batch_effect + prior_depth)
        profile /= profile.sum(axis=1, keepdims=True)
        expected = depth_tb.T @ profile  # (B, F): counts each batch would have without its effect
        batch_effect = (batch_sums + _BATCH_PSEUDOCOUNT) / (expected + _BATCH_PSEUDOCOUNT)
    normaliser = _normaliser(profile, batch_effect)  # (T, B)

    # Method-of-moments dispersion: sum((x - m)^2 - m) / sum(m^2), from sparse sums only.
    scale = depth / normaliser[cell_type, batch]  # (N,)
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    mean_nonzero = scale[rows] * profile[cell_type[rows], counts.indices] * batch_effect[batch[rows], counts.indices]
    sum_x2 = np.bincount(counts.indices, counts.data**2, counts.shape[1])
    sum_xm = np.bincount(counts.indices, counts.data * mean_nonzero, counts.shape[1])
    group = cell_type * n_batches + batch
    scale_sum = np.bincount(group, scale, n_types * n_batches)
    scale_sq = np.bincount(group, scale**2, n_types * n_batches)
    unit = (profile[:, None, :] * batch_effect[None, :, :]).reshape(n_types * n_batches, -1)  # (G, F)
    sum_m = scale_sum @ unit
    sum_m2 = scale_sq @ unit**2
    with np.errstate(invalid="ignore", divide="ignore"):
        dispersion = (sum_x2 - 2 * sum_xm + sum_m2 - sum_m) / sum_m2
    dispersion = np.clip(np.nan_to_num(dispersion, nan=0.0), 0.0, _MAX_DISPERSION)
    return ModalityModel(
        name=name,
        kind=kind,
        feature_names=np.asarray(feature_names, dtype=str),
        feature_type=feature_type,
        profile=profile,
        batch_effect=batch_effect,
        dispersion=dispersion,
        half_fragment=half_fragment,
        binary=binary,
    ), observed_depth


def _normaliser(profile: np.ndarray, batch_effect: np.ndarray) -> np.ndarray:
    """Z[t, b] = sum_f profile[t, f] * batch[b, f]: makes a cell's expected total its depth."""
    return profile @ batch_effect.T


def fit_reference(path: Path, cell_type_key: str = "cell_type", batch_key: str = "batch") -> ReferenceModel:
    """Read a paired .h5mu (raw counts, cell types, batches) and fit the model to it."""
    import mudata

    path = Path(path)
    if not path.is_file():
        raise InputError(f"reference file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mdata = mudata.read_h5mu(path)
    except Exception as exc:
        raise InputError(f"cannot read the reference {path}: {type(exc).__name__}: {exc}") from None
    where = f"reference {path.name}"
    shared = mdata.obs_names
    for name, adata in mdata.mod.items():
        if adata.n_obs != mdata.n_obs or not adata.obs_names.equals(shared):
            raise InputError(f"{where}: modality '{name}' does not hold the same cells in the same order")
    cell_types, cell_type = _labels(mdata.obs, cell_type_key, where)
    batches, batch = _labels(mdata.obs, batch_key, where)
    modalities, depth = {}, {}
    for name, adata in mdata.mod.items():
        kind = modality_kind(name)
        if kind is None:
            continue  # a modality we cannot generate; it is left out
        counts = _counts(adata, f"{where} modality '{name}'")
        feature_type = (
            str(adata.var["feature_types"].iloc[0]) if "feature_types" in adata.var and adata.n_vars else kind
        )
        modalities[name], depth[name] = fit_modality(
            name, kind, counts, adata.var_names, feature_type, cell_type, batch, len(cell_types), len(batches)
        )
    if modality_kind("rna") not in {m.kind for m in modalities.values()}:
        raise InputError(f"{where}: no RNA modality (named rna or gex)")
    return ReferenceModel(
        source=path.name,
        cell_types=cell_types,
        batches=batches,
        cell_type=cell_type,
        batch=batch,
        depth=depth,
        modalities=modalities,
    )
