"""The cell-type and batch labels of the evaluation, read from the input's obs.

Labels come from the global obs of an ``.h5mu`` (from the modalities' obs when
only they hold the column and agree) or the obs of an ``.h5ad``; no matrix is
read. They are never invented. A cell whose value is missing, blank or a
placeholder (``unlabelled.UNLABELLED_VALUES``) has no label: it is left out of
the metrics that need that label, and counted. A column is unusable (every
metric that needs it is skipped, with the reason) when it is absent, when no
cell has a label, or when the labelled cells hold a single value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from multiverse_methods.unlabelled import UNLABELLED_VALUES, describe_unlabelled, unlabelled_mask

ROLES = ("cell_type", "batch")


@dataclass
class Labels:
    """Arrays of labels (None for a cell without one), or None with the reason; what scores.json says of them."""

    obs_names: object  # pandas.Index of str
    cell_type: object = None  # numpy object array (str or None), or None
    batch: object = None
    info: dict = field(default_factory=dict)  # role -> {"column", "present", "source", "categories", ...}

    def reason(self, role: str) -> str | None:
        return self.info[role].get("reason")


def read_obs(path: Path):
    """The global obs of an .h5mu (and each modality's obs), or the obs of an .h5ad."""
    import h5py

    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem

    with h5py.File(path, "r") as f:
        obs = read_elem(f["obs"])
        mod_obs = {}
        if "mod" in f:
            for name in f["mod"]:
                mod_obs[name] = read_elem(f["mod"][name]["obs"])
    obs.index = obs.index.astype(str)
    for frame in mod_obs.values():
        frame.index = frame.index.astype(str)
    return obs, mod_obs


def _label_column(obs, mod_obs: dict, column: str):
    """(series, source) of ``column``: the global obs, else the modalities' obs if they agree."""
    import pandas as pd

    if column in obs.columns:
        return obs[column], "obs"
    found = {}
    for name, frame in mod_obs.items():
        if column in frame.columns and len(frame) == len(obs) and frame.index.isin(obs.index).all():
            found[name] = frame[column].reindex(obs.index)
    if not found:
        return None, f"the input has no obs column {column!r}"
    first_name, first = next(iter(found.items()))
    for name, series in found.items():
        if not series.astype(str).equals(first.astype(str)):
            return None, f"obs column {column!r} is only in the modalities, and mod/{first_name} and mod/{name} disagree"
    return pd.Series(first.to_numpy(), index=obs.index, dtype=first.dtype), f"mod/{first_name}/obs"


def labels_from_series(series, column: str, source: str) -> tuple:
    """(array with None for unlabelled cells, or None; the info entry) of one label column."""
    import numpy as np

    missing = unlabelled_mask(series)
    entry = {"column": column, "present": False, "source": source, "n_cells": int(len(series)),
             "n_labelled": int((~missing).sum()), "n_unlabelled": int(missing.sum())}
    if missing.any():
        entry["unlabelled_values"] = describe_unlabelled(series, missing)
    values = np.asarray(series.astype(object).to_numpy(), dtype=object)
    text = np.array([str(v) for v in values[~missing]], dtype=object)
    present = set(text)
    if hasattr(series, "cat"):
        categories = [str(c) for c in series.cat.categories if str(c) in present]
    else:
        categories = sorted(present)
    entry.update(n_categories=len(categories), categories=categories)
    if not present:
        entry["reason"] = f"obs[{column!r}] has no labelled cell (all {len(series)} are missing or placeholders)"
        return None, entry
    if len(categories) < 2:
        entry["reason"] = f"obs[{column!r}] has a single value ({categories[0]!r}) among its labelled cells"
        return None, entry
    out = np.full(len(series), None, dtype=object)
    out[~missing] = text
    entry["present"] = True
    return out, entry


def load_labels(path: Path, columns: dict) -> Labels:
    obs, mod_obs = read_obs(path)
    labels = Labels(obs_names=obs.index)
    for role in ROLES:
        column = columns.get(role)
        if not column:
            labels.info[role] = {"column": column, "present": False, "reason": f"no {role} column was given"}
            continue
        series, source = _label_column(obs, mod_obs, column)
        if series is None:
            labels.info[role] = {"column": column, "present": False, "reason": source}
            continue
        values, labels.info[role] = labels_from_series(series, column, source)
        setattr(labels, role, values)
    return labels


def unlabelled_rule() -> dict:
    """What scores.json says counts as unlabelled."""
    return {"missing": "NaN, None, pandas NA, empty or blank strings",
            "placeholders": list(UNLABELLED_VALUES), "comparison": "after stripping blanks, case-insensitive"}
