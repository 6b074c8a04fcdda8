"""The report's table: one row per model, which rows can be ranked together, and where each lies beside the controls.

Pure functions of ``scores.json`` and the run's manifest (no engine, no files).

Ranking. Totals (and group means) are only comparable when they are made of
the same metrics: a model whose metric failed, or was undefined for it alone,
has a mean over fewer metrics, which is a different number. So the reference
set is every metric that some scored model has; a model with a value for each
is *comparable* and ranked, any other is shown apart as "not comparable",
without a rank. Rows are ranked by the total; when no model has one because no
batch-correction metric could be computed, by bio conservation; when no model
has a bio-conservation score they are not ranked at all: batch correction alone
rewards an embedding that ignores biology (a random embedding scores near the top).

Placement. For each method, where its scores lie beside the two controls'
(``control_random``, ``control_labels``), stated from the numbers only.
"""

from __future__ import annotations

from multiverse.catalog import METHODS

BIO, BATCH, TOTAL = "bio_conservation", "batch_correction", "total"
MEASURE_NAMES = {TOTAL: "total", BIO: "bio conservation", BATCH: "batch correction"}
RANDOM, LABELS = "control_random", "control_labels"
CONTROL_NAMES = {RANDOM: "the random control", LABELS: "the label control"}


def _is_control(name: str, manifest: dict) -> bool:
    method = manifest["models"].get(name, {}).get("method", name)
    spec = METHODS.get(method)
    return bool(spec and spec.control)


def preset_of(record: dict) -> str | None:
    """The parameter preset a job ran with, when not its method's defaults (e.g. "fast")."""
    preset = (record.get("params") or {}).get("preset")
    return preset if isinstance(preset, str) and preset != "default" else None


def metric_keys(scores: dict) -> list[str]:
    return [*scores["metric_names"][BIO], *scores["metric_names"][BATCH]]


def ranking_basis(rows: list[dict]) -> str | None:
    """What the rows are ranked by: the total, else bio conservation, else nothing (never batch correction alone)."""
    if any(r[TOTAL] is not None for r in rows):
        return TOTAL
    if any(r[BIO] is not None for r in rows):
        return BIO
    return None


def table_rows(scores: dict, manifest: dict) -> tuple[list[dict], str | None]:
    """(rows, ranking basis): one row per model of the run, in display order, with rank and placement."""
    keys = metric_keys(scores)
    rows = []
    for name, record in manifest["models"].items():
        scored = scores["models"].get(name, {})
        aggregates = scored.get("aggregates", {})
        values = scored.get("metrics", {})
        row = {
            "model": name,
            "method": record.get("method", name),
            "control": _is_control(name, manifest),
            "status": record.get("status"),
            "reason": record.get("reason") or scored.get("error") or "",
            "runtime_s": record.get("runtime_s"),
            "peak_memory_mb": record.get("peak_memory_mb"),
            "scored": scored.get("status") == "ok",
            "preset": preset_of(record),
            BIO: aggregates.get(BIO),
            BATCH: aggregates.get(BATCH),
            TOTAL: aggregates.get(TOTAL),
        }
        row.update({key: values.get(key) for key in keys})
        rows.append(row)

    reference = [key for key in keys if any(r["scored"] and r[key] is not None for r in rows)]
    basis = ranking_basis([r for r in rows if r["scored"]])
    for row in rows:
        missing = [key for key in reference if row[key] is None]
        row["n_metrics"] = len(reference) - len(missing)
        row["missing_metrics"] = missing
        row["comparable"] = row["scored"] and not missing
        row["rank"] = None
    ranked = [r for r in rows if r["comparable"] and basis and r[basis] is not None]
    ranked.sort(key=lambda r: -r[basis])
    previous, rank = None, 0
    for position, row in enumerate([r for r in ranked if not r["control"]], start=1):
        if row[basis] != previous:
            rank, previous = position, row[basis]
        row["rank"] = rank  # equal scores share a rank

    ranked_ids = {id(r) for r in ranked}

    def order(row):
        if id(row) in ranked_ids:
            return (0, -row[basis])
        if row["scored"]:
            value = row.get(basis) if basis else None
            return (1, -(value if value is not None else float("-inf")))
        return (2, 0.0)

    rows.sort(key=order)  # stable: otherwise the run's order
    controls = {r["method"]: r for r in rows if r["control"]}
    for row in rows:
        row["placement"] = placement(row, controls.get(RANDOM), controls.get(LABELS), basis, len(reference))
    return rows, basis


def _position(value: float, others: dict) -> str:
    """Where ``value`` lies beside the controls' values ({name: value}), compared as displayed (3 decimals)."""
    shown = round(value, 3)
    level = [CONTROL_NAMES[name] for name, v in others.items() if round(v, 3) == shown]
    if level:
        return "level with " + " and ".join(level)
    below = [name for name, v in others.items() if shown < round(v, 3)]
    if len(others) == 1:
        return f"{'below' if below else 'above'} {CONTROL_NAMES[next(iter(others))]}"
    if len(below) == len(others):
        return "below both controls"
    if not below:
        return "above both controls"
    return "between the controls"


def placement(row: dict, random: dict | None, labels: dict | None, basis: str | None, n_reference: int) -> str:
    """Where a method's scores lie beside the controls', from the numbers alone."""
    if row["control"]:
        return "control"
    if not row["scored"]:
        return f"not scored: {row['status']}" + (f" ({row['reason']})" if row["reason"] else "")
    if not row["comparable"]:
        return (f"not comparable: scored on {row['n_metrics']} of the {n_reference} metrics the others have "
                f"(missing: {', '.join(row['missing_metrics'])})")
    controls = {name: c for name, c in ((RANDOM, random), (LABELS, labels)) if c and c["comparable"]}
    if not controls:
        return "no control scored on the same metrics to compare with (add control_random and control_labels to the run)"
    measures = [m for m in (TOTAL, BIO, BATCH) if row[m] is not None]
    parts = []
    for measure in measures:
        others = {name: c[measure] for name, c in controls.items() if c[measure] is not None}
        if not others:
            continue
        figures = ", ".join(f"{'random' if name == RANDOM else 'labels'} {v:.3f}" for name, v in others.items())
        parts.append(f"{MEASURE_NAMES[measure]} {row[measure]:.3f}: {_position(row[measure], others)} ({figures})")
    text = "; ".join(parts) if parts else "the controls have none of its scores"
    if basis is None:
        text += "; not ranked: no bio-conservation score"
    return text
