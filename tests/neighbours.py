"""How well an embedding keeps cell types apart, as the tests measure it."""

from __future__ import annotations

import numpy as np


def knn_accuracy(embedding: np.ndarray, labels, k: int = 15) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour majority vote (Euclidean) for ``labels``."""
    x = np.asarray(embedding, dtype=np.float64)
    sq = (x * x).sum(axis=1)
    dist = sq[:, None] + sq[None, :] - 2.0 * x @ x.T
    np.fill_diagonal(dist, np.inf)
    neighbours = np.argsort(dist, axis=1)[:, :k]
    codes = np.unique(np.asarray(labels), return_inverse=True)[1]
    votes = np.array([np.bincount(codes[row], minlength=codes.max() + 1).argmax() for row in neighbours])
    return float((votes == codes).mean())
