"""Cells without a label: which values count, what the evaluation's labels and the label control make of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multiverse_methods.contract import Dataset, NotApplicable
from multiverse_methods.control_labels import fit
from multiverse_methods.labels import labels_from_series
from multiverse_methods.params import LabelControlParams
from multiverse_methods.unlabelled import unlabelled_mask


def test_missing_blank_and_placeholder_values_count_as_unlabelled_whatever_their_case():
    values = ["B cell", np.nan, None, "", "  ", "Unassigned", "UNKNOWN", "n/a", "NA", "unlabelled", "T cell", "nan"]
    assert unlabelled_mask(values).tolist() == [False, True, True, True, True, True, True, True, True, True, False, True]


def test_a_categorical_column_with_missing_codes_is_read_like_any_other():
    series = pd.Series(pd.Categorical(["a", None, "b", "Unassigned"], categories=["a", "b", "Unassigned"]))
    assert unlabelled_mask(series).tolist() == [False, True, False, True]


def fifth_unlabelled(n=100, seed=0):
    rng = np.random.default_rng(seed)
    types = rng.choice(["B", "T", "NK", "Mono"], size=n).astype(object)
    idx = rng.permutation(n)[: n // 5]
    types[idx[0::3]], types[idx[1::3]], types[idx[2::3]] = np.nan, "", "unassigned"
    return pd.Series(pd.Categorical(types)), idx


def test_labels_keep_the_labelled_cells_count_the_others_and_say_which_values_they_had():
    series, idx = fifth_unlabelled()
    values, info = labels_from_series(series, "cell_type", "obs")
    assert info["present"] and info["n_unlabelled"] == 20 and info["n_labelled"] == 80
    assert sorted(info["categories"]) == ["B", "Mono", "NK", "T"]  # placeholders are no category
    assert set(info["unlabelled_values"]) == {"NaN", "''", "'unassigned'"}
    assert all(values[i] is None for i in idx)
    assert sum(v is None for v in values) == 20


def test_a_column_with_no_labelled_cell_or_a_single_type_is_unusable_with_the_reason():
    values, info = labels_from_series(pd.Series(["unknown", None, ""]), "cell_type", "obs")
    assert values is None and "no labelled cell" in info["reason"]
    values, info = labels_from_series(pd.Series(["T", "T", None]), "cell_type", "obs")
    assert values is None and "single value" in info["reason"] and info["n_unlabelled"] == 1


def dataset(series) -> Dataset:
    obs = pd.DataFrame({"cell_type": series.to_numpy()}, index=[f"c{i}" for i in range(len(series))])
    return Dataset(modalities={}, kinds={}, obs=obs)


def test_the_label_control_codes_labelled_cells_by_type_and_gives_unlabelled_cells_the_zero_code():
    series, idx = fifth_unlabelled()
    result = fit(dataset(series), LabelControlParams(label_key="cell_type", noise=0.0))
    X = result.embedding
    assert X.shape == (100, 4) and np.isfinite(X).all()
    assert result.extra_metrics == {"n_cell_types": 4, "n_unlabelled": 20}
    assert np.all(X[idx] == 0)
    labelled = np.setdiff1d(np.arange(100), idx)
    assert np.all(X[labelled].sum(axis=1) == 1)
    # same type, same code; different types, different codes
    types = series.astype(str).to_numpy()[labelled]
    codes = X[labelled].argmax(axis=1)
    assert len({(t, c) for t, c in zip(types, codes)}) == 4


def test_the_label_control_is_not_applicable_with_fewer_than_two_labelled_types():
    with pytest.raises(NotApplicable, match="2"):
        fit(dataset(pd.Series(["T"] * 5 + ["unknown"] * 5)), LabelControlParams(label_key="cell_type"))
