"""Check a model's output folder by its content before it counts as a result.

Call only on a tree that :func:`multiverse.runner.untrusted.check_tree` passed:
every name is then a plain file, so reading it cannot follow a planted link.
"""

from __future__ import annotations

import json
from pathlib import Path

from multiverse_methods import protocol

REQUIRED_METRICS = ("runtime_s", "peak_memory_mb", "params", "versions")
MAX_EMBEDDING_DIM = 1000
#: metrics.json larger than this is not a result (the host reads it whole).
MAX_METRICS_BYTES = 16 * 2**20


class InvalidOutput(Exception):
    """The output folder does not satisfy the contract; the message says how."""


def validate_output(folder: Path, obs_names: tuple[str, ...], params: dict) -> dict:
    """Raise InvalidOutput unless ``folder`` holds a valid result; return its metrics."""
    missing = [name for name in protocol.REQUIRED_OUTPUTS if not (folder / name).is_file()]
    if missing:
        raise InvalidOutput(f"missing {', '.join(missing)}")
    metrics = _read_metrics(folder / protocol.METRICS_FILE)
    _check_embeddings(folder / protocol.EMBEDDINGS_FILE, obs_names, params)
    return metrics


def _read_metrics(path: Path) -> dict:
    if path.stat().st_size > MAX_METRICS_BYTES:
        raise InvalidOutput(f"metrics.json is larger than {MAX_METRICS_BYTES // 2**20} MiB")
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidOutput(f"metrics.json does not parse: {exc}") from None
    if not isinstance(metrics, dict):
        raise InvalidOutput("metrics.json is not a JSON object")
    absent = [key for key in REQUIRED_METRICS if key not in metrics]
    if absent:
        raise InvalidOutput(f"metrics.json lacks {', '.join(absent)}")
    return metrics


def _read_embeddings(path: Path):
    """(cell names, embedding, echoed parameters) of embeddings.h5ad, read with h5py alone."""
    import h5py

    from multiverse.inputs import h5

    with h5py.File(path, "r") as handle:
        names = h5.obs_names(handle, str(path))
        obsm = handle.get("obsm")
        node = obsm.get(protocol.EMBEDDING_KEY) if isinstance(obsm, h5py.Group) else None
        if node is None:
            raise InvalidOutput(f"embeddings.h5ad has no obsm[{protocol.EMBEDDING_KEY!r}]")
        if not isinstance(node, h5py.Dataset):
            raise InvalidOutput(f"obsm[{protocol.EMBEDDING_KEY!r}] is not a dense matrix")
        embedding = node[()]
        uns = handle.get("uns")
        echoed = uns.get(protocol.PARAMS_KEY) if isinstance(uns, h5py.Group) else None
        if isinstance(echoed, h5py.Dataset):
            echoed = echoed.asstr()[()] if echoed.dtype.kind in "OS" else echoed[()]
        elif echoed is not None:
            echoed = h5.read_elem(echoed)
    return names, embedding, echoed


def prepare() -> None:
    """Import what validation reads files with (numpy, h5py: 0.1-0.2 s), e.g. while a container
    runs, so that a finished job is validated without that wait. Validation works without it."""
    import h5py  # noqa: F401
    import numpy  # noqa: F401


def _check_embeddings(path: Path, obs_names: tuple[str, ...], params: dict) -> None:
    import numpy as np

    try:
        names, embedding, echoed = _read_embeddings(path)
    except InvalidOutput:
        raise
    except Exception as exc:  # noqa: BLE001 - any read failure makes the output invalid
        raise InvalidOutput(f"embeddings.h5ad cannot be read: {type(exc).__name__}: {exc}") from None
    if len(names) != len(obs_names):
        raise InvalidOutput(f"embeddings.h5ad has {len(names)} cells, the input has {len(obs_names)}")
    if names != list(obs_names):
        first = next(i for i, (a, b) in enumerate(zip(names, obs_names)) if a != b)
        raise InvalidOutput(
            f"embeddings.h5ad's cells differ from the input's or are out of order "
            f"(position {first}: {names[first]!r}, input has {obs_names[first]!r})"
        )
    embedding = np.asarray(embedding)
    if embedding.ndim != 2 or not 1 <= embedding.shape[1] <= MAX_EMBEDDING_DIM:
        raise InvalidOutput(f"the embedding has shape {embedding.shape}; expected (cells, 1..{MAX_EMBEDDING_DIM})")
    if not np.issubdtype(embedding.dtype, np.number):
        raise InvalidOutput(f"the embedding holds {embedding.dtype}, not numbers")
    if not np.isfinite(embedding).all():
        bad = int((~np.isfinite(embedding)).any(axis=1).sum())
        raise InvalidOutput(f"the embedding has NaN or infinite values in {bad} cells")
    if len(obs_names) > 1 and float(np.ptp(embedding, axis=0).max()) == 0.0:
        raise InvalidOutput("the embedding is the same for every cell")
    if echoed is None:
        raise InvalidOutput(f"embeddings.h5ad has no uns[{protocol.PARAMS_KEY!r}] (effective parameters)")
    try:
        given_back = json.loads(str(echoed))
    except ValueError as exc:
        raise InvalidOutput(f"uns[{protocol.PARAMS_KEY!r}] in embeddings.h5ad is not JSON: {exc}") from None
    if given_back != params:
        raise InvalidOutput("the parameters echoed in embeddings.h5ad differ from those given to the method")
