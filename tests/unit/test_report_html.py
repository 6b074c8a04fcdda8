"""The HTML page says what the table is ranked by, marks totals that are not comparable, and states ARI's range."""

from __future__ import annotations

import json

from tests.unit.test_report_placement import BATCH, BIO, CONTROLS, flat, scores_and_manifest

from multiverse.report.html import render


def page(tmp_path, models, controls=CONTROLS):
    scores, manifest = scores_and_manifest({**controls, **models})
    scores.update(aggregation={"bio_weight": 0.6, "batch_weight": 0.4}, labels={}, figures={},
                  metric_set={"name": "leiden-asw", "description": "test set", "metrics": {}})
    manifest.update(input={"path": "/data/x.h5mu", "n_cells": 600, "modalities": {}}, run_id="r1")
    (tmp_path / "x").mkdir(exist_ok=True)
    return render(tmp_path, {"x": (scores, manifest)}, None, {}, manifest).read_text()


def test_a_total_over_fewer_metrics_is_marked_not_comparable_in_the_page_and_the_tables(tmp_path):
    text = page(tmp_path, {"pca": flat(0.7, 0.6), "multivi": flat(0.99, 0.99) | {"kbet": None}})
    assert "Not comparable with the rows above" in text
    assert '<td class="rank">not comparable</td><td class="name">multivi' in text
    assert '<td class="rank">1</td><td class="name">pca' in text
    rows = {r["model"]: r for r in json.loads((tmp_path / "x" / "metrics.json").read_text())}
    assert rows["multivi"]["comparable"] is False and rows["pca"]["rank"] == 1
    assert "Ranked by <b>total</b>" in text


def test_a_report_without_bio_conservation_says_it_is_not_ranked(tmp_path):
    controls = {name: {**{k: None for k in BIO}, **{k: v[k] for k in BATCH}} for name, v in CONTROLS.items()}
    text = page(tmp_path, {"pca": {**{k: None for k in BIO}, **{k: 0.5 for k in BATCH}}}, controls)
    assert "<b>Not ranked</b>: no bio-conservation metric could be computed" in text
    assert "Ranked by" not in text
    assert '<td class="rank">1</td>' not in text


def test_the_page_states_that_ari_can_be_negative_and_no_longer_claims_every_metric_in_0_1(tmp_path):
    text = page(tmp_path, {"pca": flat(0.7, 0.6)})
    assert "can be negative" in text and "Every metric is in [0, 1]" not in text


def test_a_model_that_ran_a_preset_is_shown_with_it(tmp_path):
    scores, manifest = scores_and_manifest({**CONTROLS, "mowgli": flat(0.7, 0.6), "pca": flat(0.6, 0.6)})
    manifest["models"]["mowgli"]["params"] = {"preset": "fast", "max_iter_inner": 200}
    manifest["models"]["pca"]["params"] = {"preset": "default"}
    scores.update(aggregation={"bio_weight": 0.6, "batch_weight": 0.4}, labels={}, figures={},
                  metric_set={"name": "leiden-asw", "description": "test set", "metrics": {}})
    manifest.update(input={"path": "/data/x.h5mu", "n_cells": 600, "modalities": {}}, run_id="r1")
    (tmp_path / "x").mkdir()
    text = render(tmp_path, {"x": (scores, manifest)}, None, {}, manifest).read_text()
    assert 'mowgli <span class="preset">(preset: fast)</span>' in text
    assert "pca <span" not in text  # its method's defaults: nothing to say
    rows = {r["model"]: r for r in json.loads((tmp_path / "x" / "metrics.json").read_text())}
    assert rows["mowgli"]["preset"] == "fast" and rows["pca"]["preset"] is None
