"""The report's ranking and placement texts, derived from the scores alone (no engine)."""

from __future__ import annotations

from multiverse.report.ranking import placement, table_rows

BIO = ["nmi_leiden", "ari_leiden", "silhouette_label"]
BATCH = ["ilisi", "kbet"]


def scores_and_manifest(models: dict, statuses: dict | None = None):
    """models: name -> {metric: value} (None for a failed metric) or None for a model that was not scored."""
    entries = {}
    for name, values in models.items():
        if values is None:
            continue
        bio = [values[k] for k in BIO if values.get(k) is not None]
        batch = [values[k] for k in BATCH if values.get(k) is not None]
        b = sum(bio) / len(bio) if bio else None
        c = sum(batch) / len(batch) if batch else None
        entries[name] = {"status": "ok", "metrics": dict(values), "skipped": {}, "errors": {}, "notes": [],
                         "aggregates": {"bio_conservation": b, "batch_correction": c,
                                        "total": 0.6 * b + 0.4 * c if b is not None and c is not None else None}}
    scores = {"metric_names": {"bio_conservation": {k: k for k in BIO}, "batch_correction": {k: k for k in BATCH}},
              "models": entries}
    manifest = {"models": {name: {"method": name, "status": (statuses or {}).get(name, "ok")} for name in models}}
    return scores, manifest


def flat(bio, batch):
    return {**{k: bio for k in BIO}, **{k: batch for k in BATCH}}


CONTROLS = {"control_random": flat(0.2, 0.9), "control_labels": flat(0.95, 0.8)}


def rows_by_name(models, statuses=None):
    rows, basis = table_rows(*scores_and_manifest({**CONTROLS, **models}, statuses))
    return {r["model"]: r for r in rows}, [r["model"] for r in rows], basis


def test_methods_are_ranked_by_total_and_controls_are_shown_among_them_without_a_rank():
    rows, order, basis = rows_by_name({"pca": flat(0.7, 0.6), "mofa": flat(0.8, 0.5)})
    assert basis == "total"
    assert order == ["control_labels", "mofa", "pca", "control_random"]
    assert (rows["mofa"]["rank"], rows["pca"]["rank"]) == (1, 2)
    assert rows["control_labels"]["rank"] is None and rows["control_labels"]["placement"] == "control"


def test_a_total_over_fewer_metrics_is_not_comparable_and_not_ranked_even_when_it_is_higher():
    broken = flat(0.99, 0.99) | {"kbet": None}  # its kBET failed: a mean over fewer metrics
    rows, order, _ = rows_by_name({"pca": flat(0.7, 0.6), "multivi": broken})
    assert rows["multivi"]["total"] > rows["pca"]["total"]
    assert rows["multivi"]["comparable"] is False and rows["multivi"]["rank"] is None
    assert rows["multivi"]["missing_metrics"] == ["kbet"]
    assert rows["pca"]["rank"] == 1
    assert order.index("multivi") > order.index("control_random")  # below every comparable row
    assert rows["multivi"]["placement"].startswith("not comparable: scored on 4 of the 5 metrics")


def test_a_metric_missing_for_every_model_leaves_them_all_comparable():
    no_kbet = {name: v | {"kbet": None} for name, v in {**CONTROLS, "pca": flat(0.7, 0.6)}.items()}
    rows, _ = table_rows(*scores_and_manifest(no_kbet))
    assert all(r["comparable"] for r in rows)
    assert next(r for r in rows if r["model"] == "pca")["rank"] == 1


def test_without_bio_conservation_nothing_is_ranked_by_batch_correction():
    no_bio = {name: {**{k: None for k in BIO}, **{k: v[k] for k in BATCH}}
              for name, v in {**CONTROLS, "pca": flat(0.7, 0.3), "random2": flat(0.1, 0.95)}.items()}
    rows, basis = table_rows(*scores_and_manifest(no_bio))
    assert basis is None
    assert all(r["rank"] is None for r in rows)
    assert [r["model"] for r in rows] == list(no_bio)  # the run's order, not sorted by batch correction
    pca = next(r for r in rows if r["model"] == "pca")
    assert "not ranked: no bio-conservation score" in pca["placement"]


def test_without_batch_correction_methods_are_ranked_by_bio_conservation():
    no_batch = {name: {**{k: v[k] for k in BIO}, **{k: None for k in BATCH}}
                for name, v in {**CONTROLS, "pca": flat(0.7, 0.3), "mofa": flat(0.6, 0.9)}.items()}
    rows, basis = table_rows(*scores_and_manifest(no_batch))
    assert basis == "bio_conservation"
    assert {r["model"]: r["rank"] for r in rows if not r["model"].startswith("control")} == {"pca": 1, "mofa": 2}


def test_placement_states_each_score_beside_the_controls_from_the_numbers():
    rows, _, _ = rows_by_name({"pca": flat(0.7, 0.6)})
    text = rows["pca"]["placement"]
    # total 0.66 between random 0.48 and labels 0.89; bio 0.70 between 0.20 and 0.95; batch 0.60 below 0.90 and 0.80
    assert text == ("total 0.660: between the controls (random 0.480, labels 0.890); "
                    "bio conservation 0.700: between the controls (random 0.200, labels 0.950); "
                    "batch correction 0.600: below both controls (random 0.900, labels 0.800)")


def test_placement_follows_the_scores_when_a_method_beats_the_label_control_or_loses_to_the_random_one():
    rows, _, _ = rows_by_name({"best": flat(0.99, 0.95), "worst": flat(0.1, 0.5)})
    assert rows["best"]["placement"].startswith("total 0.974: above both controls")
    assert rows["worst"]["placement"].startswith("total 0.260: below both controls")
    assert "bio conservation 0.100: below both controls" in rows["worst"]["placement"]


def test_placement_says_level_when_the_displayed_numbers_are_equal():
    rows, _, _ = rows_by_name({"same": flat(0.2, 0.9)})
    assert rows["same"]["placement"].startswith("total 0.480: level with the random control")


def test_a_failed_method_is_not_scored_and_says_why():
    rows, order, _ = rows_by_name({"multivi": None}, {"multivi": "out of memory"})
    assert rows["multivi"]["placement"] == "not scored: out of memory"
    assert order[-1] == "multivi"


def test_without_controls_the_placement_asks_for_them():
    rows, _ = table_rows(*scores_and_manifest({"pca": flat(0.7, 0.6)}))
    assert "add control_random and control_labels" in rows[0]["placement"]
    assert placement(rows[0], None, None, "total", 5) == rows[0]["placement"]
