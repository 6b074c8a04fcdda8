"""The aggregation of the evaluation's metrics (scIB's weighting), without the metrics image."""

from __future__ import annotations

import pytest

from multiverse_methods.scoring.aggregate import aggregate
from multiverse_methods.scoring.metric_sets import BATCH, BIO, METRIC_SETS

SETS = list(METRIC_SETS.values())


@pytest.mark.parametrize("metric_set", SETS, ids=lambda s: s.name)
def test_total_is_six_tenths_bio_plus_four_tenths_batch(metric_set):
    values = {**{k: 0.5 for k in metric_set.group(BIO)}, **{k: 1.0 for k in metric_set.group(BATCH)}}
    aggregates, notes = aggregate(values, metric_set)
    assert aggregates[BIO] == pytest.approx(0.5)
    assert aggregates[BATCH] == pytest.approx(1.0)
    assert aggregates["total"] == pytest.approx(0.7)
    assert aggregates["n_metrics"] == {BIO: [len(metric_set.group(BIO))] * 2, BATCH: [len(metric_set.group(BATCH))] * 2}
    assert notes == []


@pytest.mark.parametrize("metric_set", SETS, ids=lambda s: s.name)
def test_without_bio_conservation_there_is_no_total_never_a_batch_only_one(metric_set):
    values = {**{k: None for k in metric_set.group(BIO)}, **{k: 0.9 for k in metric_set.group(BATCH)}}
    aggregates, notes = aggregate(values, metric_set)
    assert aggregates[BATCH] == pytest.approx(0.9)
    assert aggregates[BIO] is None and aggregates["total"] is None
    assert any("no total: no bio conservation" in note for note in notes)


def test_without_batch_correction_there_is_no_total_either():
    metric_set = METRIC_SETS["leiden-asw"]
    values = {**{k: 0.8 for k in metric_set.group(BIO)}, **{k: None for k in metric_set.group(BATCH)}}
    aggregates, notes = aggregate(values, metric_set)
    assert aggregates[BIO] == pytest.approx(0.8) and aggregates["total"] is None
    assert any("no total: no batch correction" in note for note in notes)


def test_a_group_with_missing_metrics_is_the_mean_of_the_others_and_says_so():
    metric_set = METRIC_SETS["leiden-asw"]
    values = {**{k: 0.6 for k in metric_set.group(BIO)}, **{k: 0.2 for k in metric_set.group(BATCH)}, "kbet": None}
    aggregates, notes = aggregate(values, metric_set)
    assert aggregates[BATCH] == pytest.approx(0.2)
    assert aggregates["n_metrics"][BATCH] == [3, 4]
    assert any("3 of 4" in note and "kbet" in note for note in notes)


def test_the_benchmarker_set_is_scib_metrics_0_5_10_defaults():
    # BioConservation() and BatchCorrection() in scib_metrics/benchmark/_core.py (v0.5.10); the image's
    # equivalence check runs the Benchmarker itself and compares every value and the total.
    metric_set = METRIC_SETS["benchmarker"]
    assert metric_set.group(BIO) == ["isolated_labels", "nmi_kmeans", "ari_kmeans", "silhouette_label", "clisi"]
    assert metric_set.group(BATCH) == ["bras", "ilisi", "kbet", "graph_connectivity", "pcr_comparison"]


def test_no_metric_at_all_gives_no_total():
    metric_set = METRIC_SETS["leiden-asw"]
    aggregates, notes = aggregate({k: None for k in metric_set.keys}, metric_set)
    assert (aggregates[BIO], aggregates[BATCH], aggregates["total"]) == (None, None, None)
    assert notes == ["no metric could be computed"]
