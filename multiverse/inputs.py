"""Check the input file on the host before any container starts.

Reads only what is needed (cell names, shapes, a scan of the counts for NaN)
with h5py and anndata's element reader; never loads a whole matrix. Every
problem is an :class:`InputError` (exit 2) that says what to fix.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from multiverse.errors import InputError
from multiverse_methods.protocol import modality_kind

SUFFIXES = (".h5mu", ".h5ad")
_CHUNK = 4_000_000  # values per read when scanning for NaN


@dataclass(frozen=True)
class Modality:
    name: str
    kind: str
    n_obs: int
    n_vars: int


@dataclass(frozen=True)
class InputData:
    """What multiverse knows about the input file after checking it."""

    path: Path
    format: str  # "h5mu" or "h5ad"
    obs_names: tuple[str, ...]
    modalities: dict[str, Modality]
    obs_columns: tuple[str, ...]
    sha256: str

    @property
    def n_obs(self) -> int:
        return len(self.obs_names)

    @property
    def kinds(self) -> dict[str, str]:
        return {name: m.kind for name, m in self.modalities.items()}

    def describe(self) -> str:
        mods = ", ".join(f"{m.name} ({m.kind}, {m.n_vars} features)" for m in self.modalities.values())
        return f"{self.n_obs} cells; {mods}"


def _read_elem(group):
    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem
    return read_elem(group)


def _obs_names(group: h5py.Group, where: str) -> list[str]:
    if "obs" not in group:
        raise InputError(f"{where} has no 'obs' (cell annotations): is it an AnnData/MuData file?")
    obs = _read_elem(group["obs"])
    return [str(name) for name in obs.index]


def _shape(group: h5py.Group, where: str) -> tuple[int, int]:
    if "X" not in group:
        raise InputError(f"{where} has no data matrix 'X'")
    x = group["X"]
    shape = x.attrs["shape"] if isinstance(x, h5py.Group) else x.shape
    if len(shape) != 2:
        raise InputError(f"{where}: X is not a matrix (shape {tuple(shape)})")
    return int(shape[0]), int(shape[1])


def _values(matrix) -> h5py.Dataset:
    """The dataset holding the stored values of a dense or sparse (CSR/CSC) matrix."""
    return matrix["data"] if isinstance(matrix, h5py.Group) else matrix


def _check_finite(group: h5py.Group, where: str) -> None:
    layers = group.get("layers")
    matrix = layers["counts"] if layers is not None and "counts" in layers else group["X"]
    name = "layers['counts']" if matrix is not group["X"] else "X"
    values = _values(matrix)
    if values.dtype.kind not in "fiu":
        raise InputError(f"{where}: {name} holds {values.dtype} values, not numbers")
    if values.dtype.kind != "f" or values.size == 0:
        return
    flat = values.size if values.ndim == 1 else values.shape[0]
    step = max(1, _CHUNK // max(1, values.size // max(1, flat)))
    for start in range(0, flat, step):
        block = values[start : start + step]
        if not np.isfinite(block).all():
            raise InputError(
                f"{where}: {name} contains NaN or infinite values; counts must be finite numbers"
            )


def _kind(name: str, group: h5py.Group, overrides: dict[str, str]) -> str:
    if name in overrides:
        return overrides[name]
    kind = modality_kind(name)
    if kind is None and "var" in group and "feature_types" in group["var"]:
        types = set(_read_elem(group["var"]["feature_types"]).astype(str))
        if len(types) == 1:
            kind = modality_kind(types.pop())
    if kind is None:
        raise InputError(
            f"cannot tell what kind of data modality '{name}' holds (rna, atac or adt). "
            f"Say it in runner_config.yaml, e.g.  modalities: {{{name}: rna}}"
        )
    return kind


def _duplicates(names: list[str], where: str) -> None:
    dup = [name for name, count in Counter(names).items() if count > 1]
    if dup:
        raise InputError(
            f"{where}: {len(dup)} duplicate cell names (e.g. {', '.join(dup[:3])}); "
            "cell names must be unique (anndata's obs_names_make_unique() can fix them)"
        )


def _modality(name: str, group: h5py.Group, where: str, overrides: dict[str, str]) -> tuple[Modality, list[str]]:
    n_obs, n_vars = _shape(group, where)
    names = _obs_names(group, where)
    if n_obs == 0 or len(names) == 0:
        raise InputError(f"{where} has no cells")
    if n_vars == 0:
        raise InputError(f"{where} has no features")
    _duplicates(names, where)
    _check_finite(group, where)
    return Modality(name, _kind(name, group, overrides), n_obs, n_vars), names


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inspect_input(path: Path, modality_kinds: dict[str, str] | None = None) -> InputData:
    """Check the input file and summarise it; raises InputError saying what is wrong."""
    overrides = modality_kinds or {}
    path = Path(path)
    if not path.exists():
        raise InputError(f"input file not found: {path}")
    if not path.is_file():
        raise InputError(f"input is not a file: {path}")
    if path.suffix not in SUFFIXES:
        raise InputError(f"input must be a .h5mu (paired modalities) or .h5ad file, got: {path.name}")
    if not h5py.is_hdf5(path):
        raise InputError(f"{path} is not an HDF5 file: it is not .h5mu/.h5ad data, or it is corrupt or truncated")
    try:
        with h5py.File(path, "r") as handle:
            if path.suffix == ".h5mu":
                modalities, obs_names = _inspect_h5mu(handle, path, overrides)
            else:
                modality, obs_names = _modality(_h5ad_name(handle, overrides), handle, str(path), overrides)
                modalities = {modality.name: modality}
            obs_columns = tuple(str(c) for c in _read_elem(handle["obs"]).columns)
    except InputError:
        raise
    except Exception as exc:  # h5py/anndata raise many kinds of errors on damaged files
        raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    return InputData(
        path=path.resolve(),
        format=path.suffix[1:],
        obs_names=tuple(obs_names),
        modalities=modalities,
        obs_columns=obs_columns,
        sha256=sha256_of(path),
    )


def _h5ad_name(handle: h5py.File, overrides: dict[str, str]) -> str:
    """A single-modality file's modality: named in the config, told by var['feature_types'], else RNA."""
    if len(overrides) == 1:
        return next(iter(overrides))
    if "var" in handle and "feature_types" in handle["var"]:
        types = set(_read_elem(handle["var"]["feature_types"]).astype(str))
        if len(types) == 1 and modality_kind(next(iter(types))):
            return modality_kind(types.pop())
    return "rna"


def _inspect_h5mu(handle: h5py.File, path: Path, overrides: dict[str, str]):
    if "mod" not in handle or len(handle["mod"]) == 0:
        raise InputError(f"{path} holds no modalities (no /mod group): is it a MuData file?")
    modalities, names_by_mod = {}, {}
    for name in handle["mod"]:
        modality, names = _modality(name, handle["mod"][name], f"{path} modality '{name}'", overrides)
        modalities[name], names_by_mod[name] = modality, names
    shared = set.intersection(*(set(n) for n in names_by_mod.values()))
    if not shared:
        raise InputError(
            f"{path}: no cell is shared by all modalities ({', '.join(names_by_mod)}); "
            "paired methods need the same cells measured in every modality"
        )
    union = set.union(*(set(n) for n in names_by_mod.values()))
    if len(shared) != len(union):
        raise InputError(
            f"{path}: only {len(shared)} of {len(union)} cells are present in every modality; "
            "keep the shared cells first (muon: mu.pp.intersect_obs(mdata))"
        )
    obs_names = _obs_names(handle, str(path))
    _duplicates(obs_names, str(path))
    if set(obs_names) != shared:
        raise InputError(f"{path}: the global obs does not list the modalities' cells; rewrite it with mdata.update()")
    return modalities, obs_names
