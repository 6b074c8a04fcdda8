"""How much a method's embedding depends on its seed: the agreement of its cells' neighbourhoods across seeds."""

from __future__ import annotations

import itertools

#: Neighbours compared (as the Leiden graph of the metrics uses).
K_AGREEMENT = 15


def neighbour_sets(X, k: int = K_AGREEMENT):
    """Each cell's k nearest other cells (exact Euclidean), as an index array (cells x k)."""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float64)
    k = min(k, X.shape[0] - 1)
    _, indices = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    rows = np.arange(X.shape[0])[:, None]
    # Drop each cell itself (normally first; with duplicate points elsewhere in the list).
    own = indices == rows
    keep = ~own
    keep[own.sum(axis=1) == 0, -1] = False
    return indices[keep].reshape(X.shape[0], k)


def knn_overlap(embeddings: list, k: int = K_AGREEMENT) -> dict:
    """Mean fraction of shared k nearest neighbours between every pair of embeddings of the same cells.

    1 when every seed gives every cell the same neighbours; about k / n_cells for unrelated embeddings.
    """
    import numpy as np

    sets = [np.sort(neighbour_sets(X, k), axis=1) for X in embeddings]
    values = []
    for a, b in itertools.combinations(sets, 2):
        shared = [np.intersect1d(x, y, assume_unique=True).size for x, y in zip(a, b)]
        values.append(float(np.mean(shared)) / a.shape[1])
    return {"knn_overlap": float(np.mean(values)), "pairs": len(values), "k": int(sets[0].shape[1]),
            "per_pair": [round(v, 4) for v in values]}
