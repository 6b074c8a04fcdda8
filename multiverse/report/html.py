"""One self-contained HTML report (figures inlined), plus the table as CSV and JSON.

Reads ``scores.json`` and the figures written by the evaluation image and the
run's ``manifest.json``; writes ``report.html``, ``metrics.csv`` and
``metrics.json`` into the report folder.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import json
from pathlib import Path

from multiverse import __version__
from multiverse.catalog import METHODS

METRIC_LABELS = {
    "nmi_leiden": "NMI",
    "ari_leiden": "ARI",
    "silhouette_label": "cell-type ASW",
    "clisi": "cLISI",
    "isolated_labels": "isolated labels",
    "silhouette_batch": "batch ASW",
    "ilisi": "iLISI",
    "kbet": "kBET",
    "graph_connectivity": "graph conn.",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1400px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;font-size:.92rem}
th,td{border-bottom:1px solid #ddd;padding:.35rem .6rem;text-align:right;white-space:nowrap}
th{background:#f4f4f4} td.name,th.name{text-align:left}
td.reason{text-align:left;white-space:normal;max-width:38rem}
tr.control td.name{font-style:italic;color:#555}
.ok{color:#1a7f37}.bad{color:#c62828}.warn{color:#b26a00}
.bar{display:inline-block;height:.6rem;background:#4c78a8;vertical-align:middle;margin-left:.3rem}
.skip{color:#999} figure{margin:1.5rem 0} img{max-width:100%;border:1px solid #eee}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4rem .8rem;margin:.5rem 0}
code{background:#f4f4f4;padding:0 .2rem}
.scroll{overflow-x:auto} th.group{text-align:center;border-left:2px solid #ccc}
"""


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _is_control(name: str, manifest: dict) -> bool:
    method = manifest["models"].get(name, {}).get("method", name)
    spec = METHODS.get(method)
    return bool(spec and spec.control)


def table_rows(scores: dict, manifest: dict) -> list[dict]:
    """One row per model of the run: status, resources and (when scored) every metric."""
    metric_names = [*scores["metric_names"]["bio_conservation"], *scores["metric_names"]["batch_correction"]]
    rows = []
    for name, record in manifest["models"].items():
        scored = scores["models"].get(name, {})
        aggregates = scored.get("aggregates", {})
        row = {
            "model": name,
            "method": record.get("method", name),
            "control": _is_control(name, manifest),
            "status": record.get("status"),
            "reason": record.get("reason") or scored.get("error") or "",
            "runtime_s": record.get("runtime_s"),
            "peak_memory_mb": record.get("peak_memory_mb"),
            "bio_conservation": aggregates.get("bio_conservation"),
            "batch_correction": aggregates.get("batch_correction"),
            "total": aggregates.get("total"),
        }
        row.update({metric: scored.get("metrics", {}).get(metric) for metric in metric_names})
        rows.append(row)
    rows.sort(key=lambda r: (r["total"] is None, -(r["total"] or 0)))
    by_method = {r["method"]: r for r in rows if r["control"]}
    for row in rows:
        row["placement"] = placement(row, by_method.get("control_random"), by_method.get("control_labels"))
    return rows


def placement(row: dict, floor: dict | None, ceiling: dict | None) -> str:
    """Where a method's total falls between the random control and the label control, and why."""
    if row["control"]:
        return "control"
    if row["total"] is None:
        return f"not scored: {row['status']}" + (f" ({row['reason']})" if row["reason"] else "")
    if not floor or not ceiling or floor["total"] is None or ceiling["total"] is None:
        return "no controls to compare with (add control_random and control_labels to the run)"
    if row["total"] < floor["total"]:
        if row["bio_conservation"] is not None and floor["bio_conservation"] is not None \
                and row["bio_conservation"] > floor["bio_conservation"]:
            return (
                "below the random control on total, though above it on bio conservation: the random "
                "embedding mixes batches perfectly, so its batch score is high; read bio conservation here"
            )
        return (
            "below the random control: this embedding keeps the cell types apart no better than chance; "
            "see the method's log (too few iterations or too little data for its defaults are the usual causes)"
        )
    if row["total"] > ceiling["total"]:
        return "above the label control: the batch scores carry it (the label control keeps batch structure)"
    return "between the controls"


def write_tables(folder: Path, rows: list[dict]) -> None:
    (folder / "metrics.json").write_text(json.dumps(rows, indent=2) + "\n")
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _image(folder: Path, name: str, alt: str) -> str:
    data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _status_cell(status: str | None) -> str:
    css = "ok" if status in ("ok", "cached") else "warn" if status in ("not applicable", "interrupted") else "bad"
    return f'<td class="{css}">{html.escape(status or "?")}</td>'


def render(folder: Path, scores: dict, manifest: dict) -> Path:
    rows = table_rows(scores, manifest)
    write_tables(folder, rows)
    bio, batch = scores["metric_names"]["bio_conservation"], scores["metric_names"]["batch_correction"]
    skipped_everywhere = scores.get("skipped", {})

    head = "".join(
        f'<th title="{html.escape(m)}">{html.escape(METRIC_LABELS.get(m, m))}</th>' for m in [*bio, *batch]
    )
    body = []
    for row in rows:
        scored = scores["models"].get(row["model"], {})
        cells = []
        for metric in [*bio, *batch]:
            value = row[metric]
            why = scored.get("skipped", {}).get(metric) or scored.get("errors", {}).get(metric) or skipped_everywhere.get(metric)
            cells.append(f'<td class="skip" title="{html.escape(why or "")}">–</td>' if value is None else f"<td>{value:.3f}</td>")
        total = row["total"]
        bar = f'<span class="bar" style="width:{4 * total:.2f}rem"></span>' if total is not None else ""
        name = html.escape(row["model"]) + (" (control)" if row["control"] else "")
        body.append(
            f'<tr class="{"control" if row["control"] else "method"}"><td class="name">{name}</td>'
            f"<td><b>{_fmt(total)}</b>{bar}</td><td>{_fmt(row['bio_conservation'])}</td><td>{_fmt(row['batch_correction'])}</td>"
            + "".join(cells) + "</tr>"
        )
    placements = "".join(
        f'<li><b>{html.escape(r["model"])}</b>: {html.escape(r["placement"])}</li>' for r in rows if not r["control"]
    )
    status_rows = "".join(
        f'<tr><td class="name">{html.escape(r["model"])}</td>{_status_cell(r["status"])}'
        f'<td>{_fmt(r["runtime_s"], 1)}</td><td>{_fmt(r["peak_memory_mb"], 0)}</td>'
        f'<td class="reason">{html.escape(r["reason"])}</td></tr>'
        for r in rows
    )
    notes = [f"<b>{html.escape(name)}</b>: {html.escape(note)}" for name, entry in scores["models"].items() for note in entry.get("notes", [])]
    skipped_groups = sorted(set(skipped_everywhere.values()))
    labels = scores.get("labels", {})
    label_text = ", ".join(
        f"{role}: <code>obs[{html.escape(repr(info.get('column')))}]</code>"
        + ("" if info.get("present") else f" — <i>{html.escape(info.get('reason', 'absent'))}</i>")
        for role, info in labels.items()
    )
    figures = "".join(
        _image(folder, name, f"UMAP of every embedding, coloured by {role.replace('_', ' ')}")
        for role, name in scores.get("figures", {}).items()
    )
    weights = scores["aggregation"]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>multiverse report: {html.escape(manifest['input']['path'].rsplit('/', 1)[-1])}</title>
<style>{_CSS}</style></head><body>
<h1>multiverse report</h1>
<p class="sub">Input <code>{html.escape(manifest['input']['path'])}</code> ({manifest['input']['n_cells']} cells;
{html.escape(', '.join(f"{n} ({m['kind']}, {m['n_features']} features)" for n, m in manifest['input']['modalities'].items()))}),
run {html.escape(manifest.get('run_id', '?'))}; report made {dt.datetime.now().astimezone():%Y-%m-%d %H:%M} by multiverse {__version__}.</p>

<h2>Integration metrics</h2>
<p>Every metric is in [0, 1], higher is better. <b>total</b> = {weights['bio_weight']} × bio conservation + {weights['batch_weight']} × batch correction
(the weighting of scIB, Luecken et al. 2022). Labels: {label_text}. The controls anchor the scale: a random embedding
(the floor; note that it mixes batches perfectly, so read batch scores beside the bio ones) and one built from the cell-type labels themselves (the ceiling).</p>
{''.join(f'<p class="note">Skipped: {html.escape(g)}</p>' for g in skipped_groups)}
<div class="scroll"><table id="metrics"><thead>
<tr><th></th><th colspan="3">aggregate scores</th><th colspan="{len(bio)}" class="group">bio conservation</th><th colspan="{len(batch)}" class="group">batch correction</th></tr>
<tr><th class="name">model</th><th>total</th><th>bio conservation</th><th>batch correction</th>{head}</tr></thead>
<tbody>{''.join(body)}</tbody></table></div>
{''.join(f'<p class="note">{n}</p>' for n in notes)}
<h3>Where each method falls between the controls</h3>
<ul id="placement">{placements}</ul>

<h2>Embeddings side by side</h2>
{figures or '<p>No UMAP was computed.</p>'}

<h2>Runs</h2>
<table id="runs"><thead><tr><th class="name">model</th><th>status</th><th>runtime (s)</th><th>peak memory (MiB)</th><th class="name">reason</th></tr></thead>
<tbody>{status_rows}</tbody></table>
<p>Provenance of every run (image ids, package versions, parameters, seeds, input checksum): <code>manifest.json</code> in the output folder.
The table above is also in <code>metrics.csv</code> and <code>metrics.json</code> beside this file.
Metrics computed with scib-metrics {html.escape(scores.get('versions', {}).get('scib-metrics', '?'))}.</p>
</body></html>
"""
    path = folder / "report.html"
    path.write_text(page)
    return path
