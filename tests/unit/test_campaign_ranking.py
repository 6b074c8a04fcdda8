"""Ranking across a campaign's datasets, on made-up scores: scaling, failures, seeds (docs/CAMPAIGNS.md)."""

from __future__ import annotations

import pytest

from multiverse.report.campaign import overall_table, stability_table

BIO = {"ari": "ARI", "asw": "ASW"}
BATCH = {"ilisi": "iLISI", "gc": "graph connectivity"}


def dataset(values: dict, failed=()) -> tuple[dict, dict]:
    """(scores, manifest view) of one dataset: ``values`` = {entry: [metrics of seed 0, metrics of seed 1, ...]}."""
    methods = {"random": "control_random", "labels": "control_labels"}
    models, records = {}, {}
    for entry, seeds in values.items():
        for seed, metrics in enumerate(seeds):
            job = f"{entry}/seed-{seed}"
            records[job] = {"method": methods.get(entry, "pca"), "status": "ok"}
            models[job] = {"status": "ok", "metrics": metrics,
                           "aggregates": {"bio_conservation": None, "batch_correction": None, "total": None}}
    for entry in failed:
        records[f"{entry}/seed-0"] = {"method": "mofa", "status": "timeout"}
    scores = {"metric_names": {"bio_conservation": BIO, "batch_correction": BATCH}, "models": models}
    return scores, {"models": records}


def m(ari, asw, ilisi, gc):
    return {"ari": ari, "asw": asw, "ilisi": ilisi, "gc": gc}


CONTROLS = {"random": [m(0.0, 0.2, 0.9, 0.2)], "labels": [m(1.0, 0.8, 0.88, 1.0)]}


def test_each_metric_is_scaled_between_the_controls_and_averaged_over_datasets_and_seeds():
    one = dataset({**CONTROLS, "a": [m(0.5, 0.5, 0.9, 0.6), m(0.7, 0.5, 0.9, 0.6)]})
    two = dataset({**CONTROLS, "a": [m(1.0, 0.8, 0.9, 1.0)]})
    table = overall_table({"one": one, "two": two})
    row = {r["model"]: r for r in table["rows"]}["a"]
    assert row["ari"] == pytest.approx((0.6 + 1.0) / 2)  # seeds averaged first (0.5, 0.7 -> 0.6), then datasets
    assert row["asw"] == pytest.approx((0.5 + 1.0) / 2)
    assert row["ilisi"] is None  # the controls do not span iLISI: never scaled
    assert "does not beat the random control" in table["excluded"]["one"]["ilisi"]
    assert row["total"] == pytest.approx(0.6 * (0.8 + 0.75) / 2 + 0.4 * (0.5 + 1.0) / 2)
    assert row["completed"] == 2 and row["rank"] == 1


def test_a_failed_dataset_counts_as_the_worst_score_there_never_as_missing():
    good = dataset({**CONTROLS, "a": [m(0.5, 0.5, 0.9, 0.6)], "b": [m(0.5, 0.5, 0.9, 0.6)]})
    bad = dataset({**CONTROLS, "a": [m(-0.1, 0.1, 0.9, 0.1)]}, failed=["b"])
    table = overall_table({"good": good, "bad": bad})
    rows = {r["model"]: r for r in table["rows"]}
    worst_ari = (-0.1 - 0.0) / 1.0  # a's, the lowest any model reached on "bad"
    assert rows["b"]["ari"] == pytest.approx((0.5 + worst_ari) / 2)
    assert rows["b"]["completed"] == 1 and rows["a"]["completed"] == 2
    assert rows["a"]["rank"] == rows["b"]["rank"] == 1  # b gets a's worst: a tie, never a better rank


def test_a_failure_is_never_above_the_random_control():
    good = dataset({**CONTROLS, "a": [m(0.9, 0.7, 0.9, 0.9)], "b": [m(0.9, 0.7, 0.9, 0.9)]})
    bad = dataset({**CONTROLS, "a": [m(0.9, 0.7, 0.9, 0.9)]}, failed=["b"])
    rows = {r["model"]: r for r in overall_table({"good": good, "bad": bad})["rows"]}
    assert rows["b"]["per_dataset"]["bad"]["bio_conservation"] == pytest.approx(0.0)
    assert rows["a"]["rank"] == 1 and rows["b"]["rank"] == 2


def test_stability_gives_mean_and_sd_over_seeds_and_the_neighbour_agreement():
    scores, view = dataset({**CONTROLS, "a": [m(0.4, 0.5, 0.9, 0.6), m(0.6, 0.5, 0.9, 0.6)]})
    scores["seed_agreement"] = {"a": {"knn_overlap": 0.8}}
    [row] = stability_table(scores, view)
    assert row["model"] == "a" and row["seeds"] == 2 and row["knn_overlap"] == 0.8
    assert row["ari_mean"] == pytest.approx(0.5) and row["ari_sd"] == pytest.approx(0.1414, abs=1e-3)
