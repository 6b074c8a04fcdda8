"""Where each modality's raw counts are, and whether they really are counts.

Looked for, in this order: the layer the config names (``counts_layer:``),
``layers["counts"]``, ``.raw``, then ``.X`` itself. A place the config names,
or ``layers["counts"]``, must hold counts: negative, non-finite or
non-integer values there are refused before anything starts (exit 2). ``.raw``
and ``.X`` are used only when they hold non-negative integers; otherwise the
modality has no counts and methods that model counts say "not applicable".

Every scan reads the stored values in chunks (never a whole matrix) and is
remembered with the file's checksum (``cache.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import h5py
import numpy as np

from multiverse.errors import InputError
from multiverse.inputs import h5
from multiverse_methods import protocol

COUNTS_LAYER = "counts"


@dataclass(frozen=True)
class Source:
    """Where one modality lives in the file: an AnnData group, and for a split file the columns it owns."""

    name: str
    group: str  # HDF5 path of the AnnData group ("/" for an .h5ad, "/mod/rna" in an .h5mu)
    columns: Optional[tuple[int, int, bytes]] = None  # (n_vars, n_selected, packed boolean mask)

    def mask(self) -> Optional[np.ndarray]:
        if self.columns is None:
            return None
        n, _, packed = self.columns
        return np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=n).astype(bool)

    @staticmethod
    def packed(mask: np.ndarray) -> tuple[int, int, bytes]:
        return int(mask.size), int(mask.sum()), np.packbits(mask).tobytes()


def describe(location: str) -> str:
    """How a user would name a counts location: layers['counts'], .raw.X, .X."""
    if location.startswith(protocol.COUNTS_LAYER_PREFIX):
        return f"layers[{location[len(protocol.COUNTS_LAYER_PREFIX):]!r}]"
    return {protocol.COUNTS_RAW: ".raw.X", protocol.COUNTS_X: ".X"}.get(location, location)


def matrix_node(handle: h5py.File, source: Source, location: str):
    group = handle[source.group]
    if location == protocol.COUNTS_X:
        return group["X"] if "X" in group else None
    if location == protocol.COUNTS_RAW:
        raw = group.get("raw")
        return raw["X"] if isinstance(raw, h5py.Group) and "X" in raw else None
    layer = location[len(protocol.COUNTS_LAYER_PREFIX):]
    layers = group.get("layers")
    return layers[layer] if isinstance(layers, h5py.Group) and layer in layers else None


def scan(node, mask: Optional[np.ndarray] = None) -> dict:
    """Whether the stored values are finite, non-negative and whole numbers, with an example of each fault."""
    values_of = node["data"] if isinstance(node, h5py.Group) else node
    kind = values_of.dtype.kind
    if kind not in "fiub":
        return {"numeric": False, "dtype": str(values_of.dtype)}
    result = {"numeric": True, "dtype": str(values_of.dtype), "finite": True, "non_negative": True, "integer": True}
    for block in h5.value_chunks(node, mask):
        if block.size == 0:
            continue
        if kind == "f":
            bad = ~np.isfinite(block)
            if result["finite"] and bad.any():
                result.update(finite=False, non_finite_example=str(block[bad][0]))
            block = block[~bad]
            if result["integer"] and block.size:
                fractional = block[np.mod(block, 1) != 0]
                if fractional.size:
                    result.update(integer=False, non_integer_example=float(fractional[0]))
        if kind in "fi" and result["non_negative"] and block.size:
            negative = block[block < 0]
            if negative.size:
                result.update(non_negative=False, negative_example=float(negative[0]))
    return result


def is_counts(facts: dict) -> bool:
    return bool(facts.get("numeric") and facts.get("finite") and facts.get("non_negative") and facts.get("integer"))


def problem(facts: dict) -> Optional[str]:
    """Why these values are not counts, in words; None if they are."""
    if not facts.get("numeric"):
        return f"holds {facts.get('dtype')} values, not numbers"
    if not facts.get("finite"):
        return f"contains NaN or infinite values (e.g. {facts['non_finite_example']})"
    if not facts.get("non_negative"):
        return f"contains negative values (e.g. {facts['negative_example']:g})"
    if not facts.get("integer"):
        return f"contains values that are not whole numbers (e.g. {facts['non_integer_example']:g}), so it is not raw counts"
    return None


def candidates(requested: Optional[str]) -> list[tuple[str, bool]]:
    """(location, must hold counts) in the order they are tried."""
    if requested:
        if requested in ("X", ".X"):
            return [(protocol.COUNTS_X, True)]
        if requested in ("raw", ".raw", "raw/X"):
            return [(protocol.COUNTS_RAW, True)]
        return [(protocol.COUNTS_LAYER_PREFIX + requested, True)]
    return [
        (protocol.COUNTS_LAYER_PREFIX + COUNTS_LAYER, True),
        (protocol.COUNTS_RAW, False),
        (protocol.COUNTS_X, False),
    ]


def locate(handle: h5py.File, source: Source, where: str, requested: Optional[str], scans: dict) -> Optional[str]:
    """The counts location of one modality (None: it has none); raises InputError for counts that are not.

    ``scans``: location -> facts, filled and reused (the cache's entry for this file and modality).
    """
    mask = source.mask()
    for location, required in candidates(requested):
        node = matrix_node(handle, source, location)
        if node is None:
            if requested:
                raise InputError(
                    f"{where}: counts_layer {requested!r} names {describe(location)}, which does not exist"
                )
            continue
        if location == protocol.COUNTS_RAW and source.columns is not None:
            continue  # a split file's .raw has features of its own; its counts must be in X or a layer
        if location == protocol.COUNTS_RAW:
            raw_rows = h5.matrix_shape(node, where)[0]
            own_rows = h5.matrix_shape(handle[source.group]["X"], where)[0]
            if raw_rows != own_rows:
                continue
        if location not in scans:
            scans[location] = scan(node, mask)
        why = problem(scans[location])
        if why is None:
            return location
        if required:
            raise InputError(
                f"{where}: {describe(location)} {why}; raw counts must be non-negative whole numbers. "
                + ("Fix the data, or name the layer with raw counts in runner_config.yaml (counts_layer: NAME)."
                   if not requested else "Name another layer (counts_layer:) or fix the data.")
            )
    return None
