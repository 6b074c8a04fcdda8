"""Across a campaign: every method ranked over datasets, and how stable its scores are over seeds.

Pure functions of each dataset's ``scores.json`` and manifest view (no engine, no files).

**Scaling.** Raw metric values are not comparable between datasets (a
dataset with 40 fine cell types is harder than one with 6). So, as Open
Problems scales each metric between its control methods, every metric is
scaled per dataset between the two controls: the random embedding is 0 and
the label embedding 1, ``scaled = (value - random) / (labels - random)``, each
value being the mean over the seeds that ran. A metric on which the label
control does not beat the random control by at least ``MIN_SPREAD`` on a
dataset cannot be scaled there (the controls do not span it: typically a
batch metric, where both controls mix batches perfectly); it is left out of
that dataset's scaled scores, and the report lists it.

**Failures count as the worst.** Every job (one seed) is scaled on its own and
a method's value on a dataset is the mean over its jobs. A job without a score
(failed, timed out, not applicable, out of memory), or a metric that failed on
a scored job, gets the worst scaled value any model reached on that metric and
dataset, and never more than 0 (the random control): a failure never helps a
method's rank and is never silently dropped. The controls, being the scale,
are averaged over their scored seeds only.

**Aggregation.** Per method, each scaled metric is averaged over datasets;
bio conservation and batch correction are the means of their groups' averaged
metrics, the total 0.6 bio + 0.4 batch (scIB's weights) when both exist.
Methods (not the controls) are ranked by that total, else by bio
conservation; equal scores share a rank. ``completed`` counts the datasets on
which a method was scored.

**Seed stability.** Per dataset and method run with two or more seeds: the
mean and standard deviation over seeds of every score, and the mean fraction
of shared 15 nearest neighbours between the seeds' embeddings (the evaluation's
``seed_agreement``).
"""

from __future__ import annotations

import math
import statistics
from typing import Optional

from multiverse.report.ranking import BATCH, BIO, LABELS, RANDOM, TOTAL, metric_keys, preset_of
from multiverse_methods.scoring.metric_sets import BATCH_WEIGHT, BIO_WEIGHT

#: The label control must beat the random control by this much for a metric to be scaled.
MIN_SPREAD = 0.05


def entry_of(job: str) -> str:
    """``multivi[n_latent=20]/seed-1`` -> ``multivi[n_latent=20]``."""
    return job.rsplit("/seed-", 1)[0]


def _mean(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _entries(view: dict) -> dict[str, dict]:
    """Entry -> {method, control, jobs: [job names]} of one dataset."""
    from multiverse.catalog import METHODS

    entries: dict[str, dict] = {}
    for job, record in view["models"].items():
        entry = entries.setdefault(entry_of(job), {"method": record.get("method"), "jobs": [],
                                                   "preset": preset_of(record)})
        spec = METHODS.get(record.get("method") or "")
        entry["control"] = bool(spec and spec.control)
        entry["jobs"].append(job)
    return entries


def seed_means(scores: dict, view: dict) -> dict[str, dict]:
    """Entry -> {metric: mean over its scored seeds} (None where no seed has it), and ``n_scored``."""
    keys = metric_keys(scores)
    out = {}
    for entry, info in _entries(view).items():
        scored = [scores["models"][j] for j in info["jobs"] if scores["models"].get(j, {}).get("status") == "ok"]
        means = {key: _mean(s["metrics"].get(key) for s in scored) for key in keys}
        out[entry] = {**means, "n_scored": len(scored), "method": info["method"], "control": info["control"],
                      "n_jobs": len(info["jobs"]), "preset": info["preset"]}
    return out


def scale_dataset(scores: dict, view: dict) -> tuple[dict[str, dict], dict[str, str]]:
    """(entry -> {metric: scaled value or None}, metric -> why it is not scaled on this dataset)."""
    keys = metric_keys(scores)
    means = seed_means(scores, view)
    controls = {info["method"]: info for info in means.values() if info["control"] and info["n_scored"]}
    excluded = {}
    for key in keys:
        random, labels = (controls.get(c, {}).get(key) for c in (RANDOM, LABELS))
        if random is None or labels is None:
            missing = [c for c, v in ((RANDOM, random), (LABELS, labels)) if v is None]
            excluded[key] = f"no score of {' and '.join(missing)} on it"
        elif labels - random < MIN_SPREAD:
            excluded[key] = (f"the label control ({labels:.3f}) does not beat the random control ({random:.3f}) "
                             f"by {MIN_SPREAD}: the controls do not span this metric here")
    scalable = [key for key in keys if key not in excluded]
    # Each job (one seed) is scaled on its own; a job without a score, or a metric that failed on a
    # scored job, is marked None here and gets the dataset's worst value below.
    per_job: dict[str, list[dict]] = {}
    for entry, info in _entries(view).items():
        jobs = []
        for job in info["jobs"]:
            result = scores["models"].get(job, {})
            ok = result.get("status") == "ok"
            row = {}
            for key in scalable:
                value = result.get("metrics", {}).get(key) if ok else None
                random, labels = controls[RANDOM][key], controls[LABELS][key]
                row[key] = None if value is None else (value - random) / (labels - random)
            jobs.append(row)
        per_job[entry] = jobs
    worst = {key: min([0.0] + [row[key] for jobs in per_job.values() for row in jobs if row[key] is not None])
             for key in scalable}
    scaled: dict[str, dict] = {}
    for entry, jobs in per_job.items():
        scaled[entry] = {key: None for key in keys}
        if means[entry]["control"]:  # the controls are the scale itself: their scored seeds only
            for key in scalable:
                scaled[entry][key] = _mean(row[key] for row in jobs)
            continue
        for key in scalable:  # a failure counts as the worst score on this dataset
            scaled[entry][key] = _mean(worst[key] if row[key] is None else row[key] for row in jobs)
    return scaled, excluded


def _groups(values: dict, scores: dict) -> dict:
    bio = _mean(values.get(k) for k in scores["metric_names"][BIO])
    batch = _mean(values.get(k) for k in scores["metric_names"][BATCH])
    total = BIO_WEIGHT * bio + BATCH_WEIGHT * batch if bio is not None and batch is not None else None
    return {BIO: bio, BATCH: batch, TOTAL: total}


def overall_table(per_dataset: dict[str, tuple[dict, dict]]) -> dict:
    """Every entry ranked across datasets on scaled metrics; see the module's docstring."""
    datasets = list(per_dataset)
    scaled, excluded, means = {}, {}, {}
    for name, (scores, view) in per_dataset.items():
        scaled[name], excluded[name] = scale_dataset(scores, view)
        means[name] = seed_means(scores, view)
    first_scores = next(iter(per_dataset.values()))[0]
    keys = metric_keys(first_scores)
    entries = list(dict.fromkeys(e for name in datasets for e in scaled[name]))
    rows = []
    for entry in entries:
        info = next(means[d][entry] for d in datasets if entry in means[d])
        per_metric = {key: _mean(scaled[d][entry][key] for d in datasets if entry in scaled[d]) for key in keys}
        per_data = {d: _groups(scaled[d][entry], first_scores) for d in datasets if entry in scaled[d]}
        completed = sum(1 for d in datasets if entry in means[d] and means[d][entry]["n_scored"])
        planned = sum(1 for d in datasets if entry in means[d])
        rows.append({"model": entry, "method": info["method"], "control": info["control"], "preset": info["preset"],
                     "completed": completed, "datasets": planned, **per_metric,
                     **_groups(per_metric, first_scores), "per_dataset": per_data})
    basis = TOTAL if any(r[TOTAL] is not None for r in rows) else BIO if any(r[BIO] is not None for r in rows) else None
    ranked = sorted((r for r in rows if not r["control"] and basis and r[basis] is not None), key=lambda r: -r[basis])
    previous, rank = None, 0
    for position, row in enumerate(ranked, start=1):
        if row[basis] != previous:
            rank, previous = position, row[basis]
        row["rank"] = rank
    for row in rows:
        row.setdefault("rank", None)
    rows.sort(key=lambda r: (r["control"], r["rank"] is None, r["rank"] or 0, -(r.get(basis) or -math.inf) if basis else 0))
    return {"datasets": datasets, "metrics": keys, "basis": basis, "rows": rows, "excluded": excluded,
            "metric_names": first_scores["metric_names"]}


def stability_table(scores: dict, view: dict) -> list[dict]:
    """Per entry with two or more scored seeds: mean and sd of every score over seeds, and neighbour agreement."""
    keys = [*metric_keys(scores), BIO, BATCH, TOTAL]
    rows = []
    agreement = scores.get("seed_agreement", {})
    for entry, info in _entries(view).items():
        scored = [scores["models"][j] for j in info["jobs"] if scores["models"].get(j, {}).get("status") == "ok"]
        if len(scored) < 2:
            continue
        row = {"model": entry, "method": info["method"], "seeds": len(scored)}
        for key in keys:
            values = [(s["aggregates"] if key in (BIO, BATCH, TOTAL) else s["metrics"]).get(key) for s in scored]
            values = [v for v in values if v is not None]
            row[f"{key}_mean"] = statistics.fmean(values) if values else None
            row[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else None
        row["knn_overlap"] = agreement.get(entry, {}).get("knn_overlap")
        rows.append(row)
    return rows
