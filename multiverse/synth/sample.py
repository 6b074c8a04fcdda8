"""Sample counts from a fitted model, for any number of features, block by block.

More or fewer features than the reference has: the generated features are
the reference's features (a random subset when fewer are asked for) plus,
when more are asked for, copies of reference features drawn at random with
replacement. A copy keeps its source's batch effect and dispersion; its
per-type profile is the source's times an independent log-normal factor per
type (sigma ``COPY_JITTER``, mean 1), so copies are related to their source
without repeating it. Each generated feature keeps the per-cell mean of its
source, so per-feature statistics (detection rate, mean, accessibility) match
the reference at any size, and a cell's total grows with the number of
features (about proportionally: 20,000 genes drawn from 600 give ~33x the
reference depth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from multiverse.synth.model import ModalityModel, _normaliser

COPY_JITTER = 0.25
#: Values sampled at once (a cells x features block); bounds the memory of sampling.
BLOCK_VALUES = 1 << 21


@dataclass(frozen=True)
class FeatureSet:
    """The generated features of one modality and what sampling needs of them."""

    model: ModalityModel
    source: np.ndarray  # (F,) the reference feature each generated feature follows
    names: np.ndarray  # (F,) str, unique
    mean_per_depth: np.ndarray  # (T * B, F) float32: expected count per unit of depth, by type and batch
    dispersion: np.ndarray  # (F,) 1 / theta of the negative binomial; 0: Poisson

    @property
    def n_features(self) -> int:
        return len(self.source)


def expand_features(model: ModalityModel, n_features: int, rng: np.random.Generator) -> FeatureSet:
    """Choose ``n_features`` features following the reference's (see the module's docstring)."""
    if n_features < 1:
        raise ValueError("n_features must be at least 1")
    n_ref = model.n_features
    if n_features <= n_ref:
        source = np.sort(rng.choice(n_ref, n_features, replace=False))
        jitter = np.ones((model.profile.shape[0], n_features))
    else:
        extra = rng.choice(n_ref, n_features - n_ref, replace=True)
        source = np.concatenate([np.arange(n_ref), extra])
        noise = rng.normal(-COPY_JITTER**2 / 2, COPY_JITTER, (model.profile.shape[0], len(extra)))
        jitter = np.concatenate([np.ones((model.profile.shape[0], n_ref)), np.exp(noise)], axis=1)
    names = _copy_names(model.feature_names, source, n_ref)
    normaliser = _normaliser(model.profile, model.batch_effect)  # (T, B), over the reference's features
    per_type = model.profile[:, source] * jitter  # (T, F)
    mean = per_type[:, None, :] * model.batch_effect[None, :, source] / normaliser[:, :, None]
    return FeatureSet(
        model=model,
        source=source,
        names=names,
        mean_per_depth=mean.reshape(-1, len(source)).astype(np.float32),
        dispersion=model.dispersion[source],
    )


def _copy_names(reference_names: np.ndarray, source: np.ndarray, n_ref: int) -> np.ndarray:
    """Originals keep their names; the k-th copy of feature NAME is NAME_copyk."""
    names = reference_names[source].astype(object)
    extra = source[n_ref:] if len(source) > n_ref else source[:0]
    if len(extra):
        order = np.argsort(extra, kind="stable")
        sorted_extra = extra[order]
        first = np.searchsorted(sorted_extra, sorted_extra)  # first position of each value
        rank = np.empty(len(extra), dtype=np.int64)
        rank[order] = np.arange(len(extra)) - first + 1
        names[n_ref:] = [f"{name}_copy{k}" for name, k in zip(reference_names[extra], rank)]
    return names.astype(str)


def sample_counts(rng: np.random.Generator, features: FeatureSet, depth: np.ndarray, group: np.ndarray
                  ) -> sp.csr_matrix:
    """Counts of cells with the given depths and (type * B + batch) groups: float32 CSR.

    Samples a block of at most ``BLOCK_VALUES`` values at a time (a Poisson
    whose rate is gamma-distributed around the mean for overdispersed features,
    the mean itself for the others), keeps only the non-zeros, so memory is
    that of the block plus the result.
    """
    n_cells, n_features = len(depth), features.n_features
    rows_per_block = max(1, BLOCK_VALUES // n_features)
    model = features.model
    overdispersed = np.flatnonzero(features.dispersion > 0)
    theta = 1.0 / features.dispersion[overdispersed]
    every_feature = len(overdispersed) == n_features
    values, indices, per_row = [], [], []
    for start in range(0, n_cells, rows_per_block):
        stop = min(n_cells, start + rows_per_block)
        rate = features.mean_per_depth[group[start:stop]] * depth[start:stop, None]
        if len(overdispersed):
            gamma = rng.standard_gamma(theta, size=(stop - start, len(overdispersed)))
            gamma /= theta
            if every_feature:
                rate *= gamma
            else:
                rate[:, overdispersed] *= gamma
            del gamma
        counts = rng.poisson(rate)
        del rate
        flat = np.flatnonzero(counts)
        counts = counts.ravel()[flat]
        row, col = np.divmod(flat, n_features)
        if model.half_fragment is not None:  # fragments -> insertions: 2 each, or 1 with chance q
            counts = 2 * counts - rng.binomial(counts, model.half_fragment)
        if model.binary:
            counts = np.minimum(counts, 1)
        values.append(counts.astype(np.float32))
        indices.append(col.astype(np.int32))
        per_row.append(np.bincount(row, minlength=stop - start))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(per_row))])
    # 32-bit positions keep scipy from widening the indices too; the file's indptr is 64-bit anyway.
    indptr = indptr.astype(np.int32 if indptr[-1] < np.iinfo(np.int32).max else np.int64)
    return sp.csr_matrix(
        (np.concatenate(values), np.concatenate(indices), indptr), shape=(n_cells, n_features)
    )
