"""Control: an embedding made from the cell-type labels, the ceiling of the comparison.

Each cell is the one-hot code of its cell type plus a little Gaussian noise:
cells of a type cluster perfectly and carry no batch signal. Labels are never
invented: without the label column the control is not applicable.
"""

from __future__ import annotations

import logging

import numpy as np

from multiverse_methods.contract import Dataset, MethodResult, NotApplicable
from multiverse_methods.params import LabelControlParams

PACKAGES = ("numpy", "pandas")
log = logging.getLogger("multiverse_methods.control_labels")


def fit(data: Dataset, params: LabelControlParams) -> MethodResult:
    key = params.label_key
    if not key or key not in data.obs.columns:
        raise NotApplicable(f"the input has no obs column {key!r} with cell-type labels")
    labels = data.obs[key].astype(str).to_numpy()
    if (data.obs[key].isna()).any():
        raise NotApplicable(f"obs[{key!r}] has missing labels")
    types, codes = np.unique(labels, return_inverse=True)
    log.info("%d cell types in obs[%r]", len(types), key)
    rng = np.random.default_rng(params.seed)
    embedding = np.eye(len(types))[codes] + rng.normal(scale=params.noise, size=(data.n_obs, len(types)))
    return MethodResult(embedding=embedding, extra_metrics={"n_cell_types": int(len(types))})
