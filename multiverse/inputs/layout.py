"""The input file's layout, read with h5py: its modalities, cells, obs columns and where the
raw counts are, checked as ``inspect.py`` promises. Imported only when a file must really be
read: a rerun on a file already inspected takes all of this from the cache, without h5py."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

from multiverse.errors import InputError
from multiverse.inputs import counts as counts_mod
from multiverse.inputs import h5
from multiverse.inputs.inspect import Modality
from multiverse_methods.protocol import modality_kind

FEATURE_TYPES = "feature_types"


def read(path: Path, overrides: dict[str, str], counts_layer, cache_entry: dict):
    """(format, (modalities, obs_names, obs_columns, counts, split)) of the file; InputError if it
    is not an input multiverse can run on."""
    with h5py.File(path, "r") as handle:
        inspector = _Inspector(path, handle, overrides, counts_layer, cache_entry)
        if h5.is_10x_h5(handle):
            return "10x-h5", inspector.tenx()
        if path.suffix == ".h5mu":
            return "h5mu", inspector.h5mu()
        if path.suffix == ".h5ad" or "X" in handle:
            return "h5ad", inspector.h5ad()
    raise InputError(f"{path} is neither an AnnData/MuData file nor a Cell Ranger feature-barcode matrix")


def cell_names(path: Path, fmt: str) -> list[str]:
    """The cell names inspection found in a file of this format (10x: its barcodes)."""
    with h5py.File(path, "r") as handle:
        if fmt == "10x-h5":
            return _barcodes(handle["matrix"])
        return h5.obs_names(handle, str(path))


def is_hdf5(path: Path) -> bool:
    return bool(h5py.is_hdf5(path))


def _barcodes(matrix) -> list[str]:
    return [b.decode() if isinstance(b, bytes) else str(b) for b in matrix["barcodes"][:]]


def _duplicates(names: list[str], where: str) -> None:
    dup = [name for name, count in Counter(names).items() if count > 1]
    if dup:
        raise InputError(
            f"{where}: {len(dup)} duplicate cell names (e.g. {', '.join(dup[:3])}); "
            "cell names must be unique (anndata's obs_names_make_unique() can fix them)"
        )


def _kind_of_name(name: str, types: Optional[np.ndarray], overrides: dict[str, str]) -> Optional[str]:
    if name in overrides:
        return overrides[name]
    kind = modality_kind(name)
    if kind is None and types is not None and len(set(types)) == 1:
        kind = modality_kind(str(types[0]))
    return kind


def _unknown_kind(name: str) -> InputError:
    return InputError(
        f"cannot tell what kind of data modality '{name}' holds (rna, atac or adt). "
        f"Say it in runner_config.yaml, e.g.  modalities: {{{name}: rna}}"
    )


class _Inspector:
    def __init__(self, path: Path, handle: h5py.File, overrides: dict[str, str], counts_layer, cache_entry: dict):
        self.path = path
        self.handle = handle
        self.overrides = overrides
        self.counts_layer = counts_layer
        self.scans: dict = cache_entry.setdefault("scans", {})

    def requested_layer(self, modality: str) -> Optional[str]:
        if isinstance(self.counts_layer, dict):
            return self.counts_layer.get(modality)
        return self.counts_layer

    def counts_of(self, source: counts_mod.Source, where: str) -> Optional[str]:
        scans = self.scans.setdefault(f"{source.group}|{source.name if source.columns else ''}", {})
        location = counts_mod.locate(self.handle, source, where, self.requested_layer(source.name), scans)
        if location is None:
            self._check_expression(source, where, scans)
        return location

    def _check_expression(self, source: counts_mod.Source, where: str, scans: dict) -> None:
        """Without counts, methods read X as it is: it must at least hold finite numbers."""
        facts = scans.get("X")
        if facts is None:
            node = counts_mod.matrix_node(self.handle, source, "X")
            facts = scans["X"] = counts_mod.scan(node, source.mask())
        if not facts.get("numeric"):
            raise InputError(f"{where}: X holds {facts.get('dtype')} values, not numbers")
        if not facts.get("finite"):
            raise InputError(f"{where}: X contains NaN or infinite values; the data must be finite numbers")

    # ---------------------------------------------------------------- formats

    def h5mu(self):
        handle, path = self.handle, self.path
        if "mod" not in handle or len(handle["mod"]) == 0:
            raise InputError(f"{path} holds no modalities (no /mod group): is it a MuData file?")
        modalities, names_by_mod, counts = {}, {}, {}
        for name in handle["mod"]:
            group = handle["mod"][name]
            where = f"{path} modality '{name}'"
            modality, names = self._anndata_modality(name, group, where)
            counts[name] = self.counts_of(counts_mod.Source(name, group.name), where)
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
        obs_names = h5.obs_names(handle, str(path))
        _duplicates(obs_names, str(path))
        if set(obs_names) != shared:
            raise InputError(f"{path}: the global obs does not list the modalities' cells; rewrite it with mdata.update()")
        return modalities, obs_names, h5.obs_columns(handle), counts, None

    def _anndata_modality(self, name: str, group: h5py.Group, where: str):
        if "X" not in group:
            raise InputError(f"{where} has no data matrix 'X'")
        n_obs, n_vars = h5.matrix_shape(group["X"], where)
        names = h5.obs_names(group, where)
        if n_obs == 0 or len(names) == 0:
            raise InputError(f"{where} has no cells")
        if n_vars == 0:
            raise InputError(f"{where} has no features")
        _duplicates(names, where)
        kind = _kind_of_name(name, h5.var_column(group, FEATURE_TYPES), self.overrides)
        if kind is None:
            raise _unknown_kind(name)
        return Modality(name, kind, n_obs, n_vars), names

    def h5ad(self):
        handle, path = self.handle, self.path
        if "X" not in handle:
            raise InputError(f"{path} has no data matrix 'X'")
        types = h5.var_column(handle, FEATURE_TYPES)
        groups = self._feature_groups(types)
        if len(groups) <= 1:
            name = self._single_name(types)
            modality, names = self._anndata_modality(name, handle, str(path))
            counts = {name: self.counts_of(counts_mod.Source(name, "/"), str(path))}
            return {name: modality}, names, h5.obs_columns(handle), counts, None
        obs_names = h5.obs_names(handle, str(path))
        if not obs_names:
            raise InputError(f"{path} has no cells")
        _duplicates(obs_names, str(path))
        modalities, _ = self._split(groups, types, "/", obs_names)
        counts, split = self._split_counts(groups, types, "/")
        return modalities, obs_names, h5.obs_columns(handle), counts, split

    def _single_name(self, types: Optional[np.ndarray]) -> str:
        """A single-modality file's modality: named in the config, told by var['feature_types'], else RNA."""
        if len(self.overrides) == 1:
            return next(iter(self.overrides))
        if types is not None and len(set(types)) == 1 and modality_kind(str(types[0])):
            return modality_kind(str(types[0]))
        return "rna"

    def _feature_groups(self, types: Optional[np.ndarray]) -> dict[str, str]:
        """Feature type -> modality name, for a file whose features are of several types."""
        if types is None:
            return {}
        present = list(dict.fromkeys(str(t) for t in types))
        if len(present) <= 1:
            return {}
        groups = {}
        for feature_type in present:
            kind = self.overrides.get(feature_type) or modality_kind(feature_type)
            if kind is None:
                raise InputError(
                    f"{self.path}: var['feature_types'] includes {feature_type!r}, which multiverse does not know "
                    f"(known: Gene Expression, Peaks, Antibody Capture). Say what it is in runner_config.yaml, "
                    f"e.g.  modalities: {{'{feature_type}': adt}}"
                )
            name = kind if kind not in groups.values() else f"{kind}_{len(groups)}"
            groups[feature_type] = name
        return groups

    def _split(self, groups: dict[str, str], types: np.ndarray, _group: str, obs_names: list[str]):
        modalities = {}
        for feature_type, name in groups.items():
            n_vars = int((types == feature_type).sum())
            kind = self.overrides.get(name) or self.overrides.get(feature_type) or modality_kind(feature_type)
            modalities[name] = Modality(name, kind, len(obs_names), n_vars)
        return modalities, obs_names

    def _split_counts(self, groups: dict[str, str], types: np.ndarray, group: str):
        counts, split = {}, {}
        for feature_type, name in groups.items():
            source = counts_mod.Source(name, group, counts_mod.Source.packed(types == feature_type))
            located = self.counts_of(source, f"{self.path} ({feature_type} features)")
            # The conversion writes each modality's counts (if any) as its X.
            counts[name] = "X" if located else None
            split[name] = {"feature_type": feature_type, "counts": located}
        return counts, split

    def tenx(self):
        handle, path = self.handle, self.path
        matrix = handle["matrix"]
        barcodes = _barcodes(matrix)
        if not barcodes:
            raise InputError(f"{path} has no cells (barcodes)")
        _duplicates(barcodes, str(path))
        types = np.asarray(matrix["features"]["feature_type"][:]).astype(str)
        groups = self._feature_groups(types) or {str(types[0]): modality_kind(str(types[0])) or "rna"}
        modalities, _ = self._split(groups, types, "/matrix", barcodes)
        counts, split = {}, {}
        for feature_type, name in groups.items():
            source = counts_mod.Source(name, "/matrix", counts_mod.Source.packed(types == feature_type))
            key = f"/matrix|{feature_type}"
            scans = self.scans.setdefault(key, {})
            if "X" not in scans:
                scans["X"] = counts_mod.scan(matrix, source.mask())
            why = counts_mod.problem(scans["X"])
            if why:
                raise InputError(f"{path} ({feature_type} features): the matrix {why}; a Cell Ranger matrix holds counts")
            counts[name] = "X"
            split[name] = {"feature_type": feature_type, "counts": "X"}
        return modalities, barcodes, (), counts, split
