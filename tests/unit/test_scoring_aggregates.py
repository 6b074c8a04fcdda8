"""The aggregation of the evaluation's metrics (scIB's weighting), without the metrics image."""

from __future__ import annotations

import pytest

from multiverse_methods.scoring import BATCH_METRICS, BIO_METRICS, aggregate


def test_total_is_six_tenths_bio_plus_four_tenths_batch():
    values = {**{name: 0.5 for name in BIO_METRICS}, **{name: 1.0 for name in BATCH_METRICS}}
    aggregates, notes = aggregate(values)
    assert aggregates == pytest.approx({"bio_conservation": 0.5, "batch_correction": 1.0, "total": 0.7})
    assert notes == []


def test_a_missing_group_leaves_the_other_alone_with_a_note():
    values = {**{name: 0.8 for name in BIO_METRICS}, **{name: None for name in BATCH_METRICS}}
    aggregates, notes = aggregate(values)
    assert aggregates["batch_correction"] is None
    assert aggregates["total"] == pytest.approx(0.8)
    assert any("bio conservation alone" in note for note in notes)


def test_a_group_with_missing_metrics_is_the_mean_of_the_others_and_says_so():
    values = {**{name: 0.6 for name in BIO_METRICS}, **{name: 0.2 for name in BATCH_METRICS}, "kbet": None}
    aggregates, notes = aggregate(values)
    assert aggregates["batch_correction"] == pytest.approx(0.2)
    assert any("3 of 4" in note and "kbet" in note for note in notes)


def test_no_metric_at_all_gives_no_total():
    aggregates, notes = aggregate({name: None for name in (*BIO_METRICS, *BATCH_METRICS)})
    assert aggregates == {"bio_conservation": None, "batch_correction": None, "total": None}
    assert notes == ["no metric could be computed"]
