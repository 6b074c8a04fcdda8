"""Bio conservation, batch correction and the total of one embedding's metric values.

As in scIB (Luecken et al. 2022) and scib-metrics' Benchmarker: each group is
the mean of its metrics (a metric that could not be computed is left out of the
mean, and a note says so), total = 0.6 bio + 0.4 batch. A total needs both groups: a batch-only number
would rank embeddings by batch mixing alone, where a random embedding scores
near the top, and a bio-only number is not the same quantity either.
"""

from __future__ import annotations

from multiverse_methods.scoring.metric_sets import BATCH, BATCH_WEIGHT, BIO, BIO_WEIGHT, MetricSet

GROUP_NAMES = {BIO: "bio conservation", BATCH: "batch correction"}


def aggregate(values: dict, metric_set: MetricSet) -> tuple[dict, list[str]]:
    """({bio_conservation, batch_correction, total, n_metrics}, notes) of one embedding's values."""
    notes, means, counts = [], {}, {}
    for group in (BIO, BATCH):
        names = metric_set.group(group)
        got = [values[name] for name in names if values.get(name) is not None]
        counts[group] = [len(got), len(names)]
        means[group] = sum(got) / len(got) if got else None
        if got and len(got) < len(names):
            missing = ", ".join(name for name in names if values.get(name) is None)
            notes.append(f"{GROUP_NAMES[group]} is the mean of {len(got)} of {len(names)} metrics (missing: {missing})")
    bio, batch = means[BIO], means[BATCH]
    total = None
    if bio is not None and batch is not None:
        total = BIO_WEIGHT * bio + BATCH_WEIGHT * batch
    elif bio is None and batch is None:
        notes.append("no metric could be computed")
    else:
        missing = GROUP_NAMES[BIO] if bio is None else GROUP_NAMES[BATCH]
        notes.append(f"no total: no {missing} metric could be computed")
    return {BIO: bio, BATCH: batch, "total": total, "n_metrics": counts}, notes
