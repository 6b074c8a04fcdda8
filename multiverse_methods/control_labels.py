"""Control: an embedding made from the cell-type labels, the ceiling of bio conservation.

Each labelled cell is the one-hot code of its cell type plus a little Gaussian
noise: cells of a type cluster tightly, apart from every other type, and
nothing in the embedding depends on the batch. A cell without a label (missing,
blank or a placeholder: ``unlabelled.UNLABELLED_VALUES``) gets the zero code
plus the same noise, one more cluster equally far from every type: the
evaluation leaves those cells out of the label-based metrics, so they only
enter the batch metrics that need no cell types. Labels are never invented:
without the column, or with fewer than two labelled types, the control is not
applicable.
"""

from __future__ import annotations

import logging

import numpy as np

from multiverse_methods.contract import Dataset, MethodResult, NotApplicable
from multiverse_methods.params import LabelControlParams
from multiverse_methods.unlabelled import unlabelled_mask

PACKAGES = ("numpy", "pandas")
log = logging.getLogger("multiverse_methods.control_labels")


def fit(data: Dataset, params: LabelControlParams) -> MethodResult:
    key = params.label_key
    if not key or key not in data.obs.columns:
        raise NotApplicable(f"the input has no obs column {key!r} with cell-type labels")
    unlabelled = unlabelled_mask(data.obs[key])
    labels = data.obs[key].astype(str).to_numpy()
    types, codes = np.unique(labels[~unlabelled], return_inverse=True)
    if len(types) < 2:
        raise NotApplicable(f"obs[{key!r}] has {len(types)} cell type(s) among its labelled cells; the control needs 2")
    log.info("%d cell types in obs[%r]; %d of %d cells unlabelled (zero code)", len(types), key,
             int(unlabelled.sum()), data.n_obs)
    code = np.zeros((data.n_obs, len(types)))
    code[np.flatnonzero(~unlabelled), codes] = 1.0
    rng = np.random.default_rng(params.seed)
    embedding = code + rng.normal(scale=params.noise, size=code.shape)
    return MethodResult(embedding=embedding, extra_metrics={
        "n_cell_types": int(len(types)), "n_unlabelled": int(unlabelled.sum()),
    })
