"""Check the input file on the host before any container starts, without loading its matrices.

Accepted as users have them:

- ``.h5mu``: one modality per ``mod/<name>``, every modality with the same cells;
- ``.h5ad``: one modality, or several when ``var["feature_types"]`` mixes
  ``Gene Expression`` with ``Peaks`` or ``Antibody Capture`` (split into one
  modality per type);
- Cell Ranger / Cell Ranger ARC ``filtered_feature_bc_matrix.h5``, split by
  ``feature_type``.

Split inputs are converted once into an ``.h5mu`` (``convert.py``); the others
reach the containers unchanged. Every problem is an :class:`InputError`
(exit 2) that says what to fix. The file is read with h5py in ``layout.py``;
the checksum, the counts scans and the summary are remembered per file
(``cache.py``), so a rerun on a large file does not open it (nor import h5py).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from multiverse.errors import InputError
from multiverse.inputs.cache import InputCache, file_identity, sha256_of

SUFFIXES = (".h5mu", ".h5ad", ".h5")
#: Changes whenever what inspection learns changes: older cached inspections are then not used.
INSPECTION_VERSION = 1
#: Guards the first read of an InputData's cell names (the runner may read them in a thread).
_NAMES_LOCK = threading.Lock()


@dataclass(frozen=True)
class Modality:
    name: str
    kind: str
    n_obs: int
    n_vars: int


@dataclass(frozen=True)
class InputData:
    """What multiverse knows about the input file after checking it."""

    path: Path  # the user's file
    format: str  # "h5mu", "h5ad" or "10x-h5"
    n_obs: int
    #: sha256 of the cell names, one per line: which cells results were made for.
    cells_sha256: str
    modalities: dict[str, Modality]
    obs_columns: tuple[str, ...]
    sha256: str
    #: Modality -> where its raw counts are in ``model_path`` (protocol.COUNTS_*), or None.
    counts: dict[str, Optional[str]] = field(default_factory=dict)
    #: Modality -> the feature type it was split from, for inputs converted to .h5mu first.
    split: Optional[dict[str, str]] = None
    #: The file the containers read: the user's, or its conversion (set by the plan).
    converted_path: Optional[Path] = None
    #: The cell names once read (a list holding one tuple, shared with copies made by
    #: dataclasses.replace): an inspection taken from the cache does not read them.
    _names: list = field(default_factory=list, repr=False, compare=False)

    @property
    def obs_names(self) -> tuple[str, ...]:
        """The input's cell names in order, read from the file on first use."""
        with _NAMES_LOCK:
            if not self._names:
                from multiverse.inputs import layout

                names = tuple(layout.cell_names(self.path, self.format))
                if _names_sha256(names) != self.cells_sha256:
                    raise InputError(f"{self.path} changed while multiverse was using it: its cell names differ")
                self._names.append(names)
        return self._names[0]

    @property
    def kinds(self) -> dict[str, str]:
        return {name: m.kind for name, m in self.modalities.items()}

    @property
    def needs_conversion(self) -> bool:
        return self.split is not None

    @property
    def model_path(self) -> Path:
        return self.converted_path or self.path

    @property
    def container_name(self) -> str:
        return self.model_path.name

    def describe(self) -> str:
        mods = ", ".join(f"{m.name} ({m.kind}, {m.n_vars} features)" for m in self.modalities.values())
        return f"{self.n_obs} cells; {mods}"


def _names_sha256(names) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def read_obs_names(path: Path) -> list[str]:
    """The cell names of an .h5mu/.h5ad file (global obs), without reading anything else."""
    from multiverse.inputs import layout

    return layout.cell_names(Path(path), "h5mu")


def inspect_input(
    path: Union[str, Path],
    modality_kinds: Optional[dict[str, str]] = None,
    counts_layer: Union[str, dict, None] = None,
    cache: Optional[InputCache] = None,
) -> InputData:
    """Check the input file and summarise it; raises InputError saying what is wrong.

    A file already inspected (same path, size, modification time and inode) with the same
    modality kinds and counts layer is not read again: its summary comes from the cache."""
    overrides = modality_kinds or {}
    path = Path(path)
    if not path.exists():
        raise InputError(f"input file not found: {path}")
    if not path.is_file():
        raise InputError(f"input is not a file: {path}")
    if path.suffix not in SUFFIXES:
        raise InputError(
            f"input must be a .h5mu (paired modalities), a .h5ad or a Cell Ranger (ARC) .h5 file, got: {path.name}"
        )
    cache = cache or InputCache()
    identity = file_identity(path)
    entry = cache.get(identity)
    question = json.dumps([INSPECTION_VERSION, overrides, counts_layer], sort_keys=True)
    known = entry.get("inspections", {}).get(question)
    if known and known.get("sha256") == entry.get("sha256"):
        return _from_cache(path, known)

    from multiverse.inputs import layout  # h5py: only when the file must be read

    if not layout.is_hdf5(path):
        raise InputError(f"{path} is not an HDF5 file: it is not .h5mu/.h5ad/.h5 data, or it is corrupt or truncated")
    before = repr(entry.get("scans"))
    try:
        fmt, parts = layout.read(path, overrides, counts_layer, entry)
    except InputError:
        cache.update(identity, scans=entry.get("scans", {}))  # what was learnt stays learnt
        raise
    except Exception as exc:  # h5py/anndata raise many kinds of errors on damaged files
        raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    modalities, obs_names, obs_columns, counts, split = parts
    if repr(entry.get("scans")) != before:
        cache.update(identity, scans=entry["scans"])
    sha256 = cache.remembered(identity, "sha256", lambda: sha256_of(path))
    names = tuple(obs_names)
    data = InputData(
        path=path.resolve(),
        format=fmt,
        n_obs=len(names),
        cells_sha256=_names_sha256(names),
        modalities=modalities,
        obs_columns=tuple(obs_columns),
        sha256=sha256,
        counts=counts,
        split=split,
        _names=[names],
    )
    cache.update(identity, inspections={**cache.get(identity).get("inspections", {}), question: _to_cache(data)})
    return data


def _to_cache(data: InputData) -> dict:
    return {
        "format": data.format, "n_obs": data.n_obs, "cells_sha256": data.cells_sha256, "sha256": data.sha256,
        "modalities": {n: [m.kind, m.n_obs, m.n_vars] for n, m in data.modalities.items()},
        "obs_columns": list(data.obs_columns), "counts": data.counts, "split": data.split,
    }


def _from_cache(path: Path, known: dict) -> InputData:
    return InputData(
        path=path.resolve(),
        format=known["format"],
        n_obs=known["n_obs"],
        cells_sha256=known["cells_sha256"],
        modalities={n: Modality(n, kind, n_obs, n_vars) for n, (kind, n_obs, n_vars) in known["modalities"].items()},
        obs_columns=tuple(known["obs_columns"]),
        sha256=known["sha256"],
        counts=known["counts"],
        split=known["split"],
    )
