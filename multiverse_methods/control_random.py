"""Control: a random embedding (independent of the data), the floor of the comparison."""

from __future__ import annotations

import numpy as np

from multiverse_methods.contract import Dataset, MethodResult
from multiverse_methods.params import RandomControlParams

PACKAGES = ("numpy",)


def fit(data: Dataset, params: RandomControlParams) -> MethodResult:
    rng = np.random.default_rng(params.seed)
    return MethodResult(embedding=rng.normal(size=(data.n_obs, params.n_dims)))
