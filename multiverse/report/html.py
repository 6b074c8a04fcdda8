"""One self-contained HTML report (figures inlined), plus the table as CSV and JSON.

Reads ``scores.json`` and the figures written by the evaluation image and the
run's ``manifest.json``; writes ``report.html``, ``metrics.csv`` and
``metrics.json`` into the report folder. The rows, their ranking and the
placement texts come from ``ranking.py``.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import json
from pathlib import Path

from multiverse import __version__
from multiverse.report.ranking import BATCH, BIO, TOTAL, metric_keys, table_rows

#: Short column headers; any other metric shows scores.json's display name.
METRIC_LABELS = {
    "nmi_leiden": "NMI",
    "ari_leiden": "ARI",
    "nmi_kmeans": "KMeans NMI",
    "ari_kmeans": "KMeans ARI",
    "silhouette_label": "cell-type ASW",
    "clisi": "cLISI",
    "isolated_labels": "isolated labels",
    "silhouette_batch": "batch ASW",
    "bras": "BRAS",
    "ilisi": "iLISI",
    "kbet": "kBET",
    "graph_connectivity": "graph conn.",
    "pcr_comparison": "PCR comp.",
}
ARI_KEYS = ("ari_leiden", "ari_kmeans")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1400px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;font-size:.92rem}
th,td{border-bottom:1px solid #ddd;padding:.35rem .6rem;text-align:right;white-space:nowrap}
th{background:#f4f4f4} td.name,th.name{text-align:left}
td.reason{text-align:left;white-space:normal;max-width:38rem}
tr.control td.name{font-style:italic;color:#555}
tr.notcomparable td{color:#777} tr.sep td{text-align:left;background:#fafafa;font-style:italic;color:#555}
.ok{color:#1a7f37}.bad{color:#c62828}.warn{color:#b26a00}
.bar{display:inline-block;height:.6rem;background:#4c78a8;vertical-align:middle;margin-left:.3rem}
.skip{color:#999} figure{margin:1.5rem 0} img{max-width:100%;border:1px solid #eee}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4rem .8rem;margin:.5rem 0}
code{background:#f4f4f4;padding:0 .2rem}
.scroll{overflow-x:auto} th.group{text-align:center;border-left:2px solid #ccc}
"""


def _preset(row: dict) -> str:
    """" (preset: fast)" beside a model that did not run its method's defaults."""
    return f' <span class="preset">(preset: {html.escape(row["preset"])})</span>' if row.get("preset") else ""


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_tables(folder: Path, rows: list[dict]) -> None:
    (folder / "metrics.json").write_text(json.dumps(rows, indent=2) + "\n")
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: ";".join(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows)


def _image(folder: Path, name: str, alt: str) -> str:
    data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _status_cell(status: str | None) -> str:
    css = "ok" if status in ("ok", "cached") else "warn" if status in ("not applicable", "interrupted") else "bad"
    return f'<td class="{css}">{html.escape(status or "?")}</td>'


def ranking_text(basis: str | None, weights: dict) -> str:
    """The sentence above the table that says what the rows are ranked by."""
    if basis == TOTAL:
        return (f"Ranked by <b>total</b> = {weights['bio_weight']} × bio conservation + {weights['batch_weight']} "
                "× batch correction (the weighting of scIB, Luecken et al. 2022).")
    if basis == BIO:
        return ("Ranked by <b>bio conservation</b>: no batch-correction metric could be computed, and a total "
                "needs both groups.")
    return ("<b>Not ranked</b>: no bio-conservation metric could be computed. Batch correction alone does not "
            "rank integrations: it rewards embeddings that ignore biology (a random embedding scores near the top). "
            "Rows are in the run's order.")


def label_notes(scores: dict) -> list[str]:
    """What the labels were, how many cells had none, and on how many cells the metrics ran."""
    notes = []
    cells = scores.get("metric_cells", {})
    names = {k: m["name"] for k, m in scores.get("metric_set", {}).get("metrics", {}).items()}
    for role, info in scores.get("labels", {}).items():
        column = f"<code>obs[{html.escape(repr(info.get('column')))}]</code>"
        what = role.replace("_", " ")
        if not info.get("present"):
            notes.append(f"{what}: {column} — <i>{html.escape(info.get('reason', 'absent'))}</i>")
            continue
        text = f"{what}: {column}, {info['n_categories']} categories"
        if info.get("n_unlabelled"):
            used = sorted({n for key, n in cells.items() if role in scores["metric_set"]["metrics"][key]["needs"]})
            text += (f"; <b>{info['n_unlabelled']} of {info['n_cells']} cells have no {what}</b> "
                     f"({html.escape(', '.join(info.get('unlabelled_values', [])))}) and are left out of the "
                     f"metrics that need it (those ran on {' / '.join(map(str, used)) or 'no'} cells)")
            full = [names.get(k, k) for k, n in cells.items()
                    if role not in scores["metric_set"]["metrics"][k]["needs"] and n == scores["n_cells"]]
            if full:
                text += f"; {html.escape(', '.join(full))} used all {scores['n_cells']} cells"
        notes.append(text)
    return notes


def dataset_section(folder: Path, scores: dict, manifest: dict, dataset: str, several: bool) -> str:
    """One dataset's part of the report: its table, labels, placements, UMAPs and runs (tables written to ``folder``)."""
    rows, basis = table_rows(scores, manifest)
    write_tables(folder, rows)
    keys = metric_keys(scores)
    bio, batch = scores["metric_names"][BIO], scores["metric_names"][BATCH]
    display = {**{k: v for group in (bio, batch) for k, v in group.items()}, **METRIC_LABELS}
    skipped_everywhere = scores.get("skipped", {})
    slug = html.escape(dataset)

    head = "".join(f'<th title="{html.escape(k)}">{html.escape(display.get(k, k))}</th>' for k in keys)
    body, separated = [], False
    for row in rows:
        scored = scores["models"].get(row["model"], {})
        if not row["comparable"] and row["scored"] and not separated:
            body.append(f'<tr class="sep"><td colspan="{5 + len(keys)}">Not comparable with the rows above: '
                        "scored on fewer metrics (a mean over fewer metrics is a different number)</td></tr>")
            separated = True
        cells = []
        for metric in keys:
            value = row[metric]
            why = scored.get("skipped", {}).get(metric) or scored.get("errors", {}).get(metric) or skipped_everywhere.get(metric)
            cells.append(f'<td class="skip" title="{html.escape(why or "")}">–</td>' if value is None else f"<td>{value:.3f}</td>")
        total = row[TOTAL]
        bar = f'<span class="bar" style="width:{4 * max(total, 0):.2f}rem"></span>' if total is not None else ""
        rank = ("control" if row["control"] else str(row["rank"]) if row["rank"] is not None
                else "not comparable" if row["scored"] and not row["comparable"] else "–")
        css = "control" if row["control"] else "method"
        if row["scored"] and not row["comparable"]:
            css += " notcomparable"
        body.append(
            f'<tr class="{css}"><td class="rank">{html.escape(rank)}</td><td class="name">{html.escape(row["model"])}'
            f'{" (control)" if row["control"] else ""}{_preset(row)}</td>'
            f"<td><b>{_fmt(total)}</b>{bar}</td><td>{_fmt(row[BIO])}</td><td>{_fmt(row[BATCH])}</td>"
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
    figures = "".join(
        _image(folder, name, f"UMAP of every embedding, coloured by {role.replace('_', ' ')}")
        for role, name in scores.get("figures", {}).items()
    )
    source = manifest["input"]
    heading = f'<h2 id="dataset-{slug}">Dataset {slug}</h2>' if several else "<h2>Integration metrics</h2>"
    return f"""{heading}
<p class="sub">Input <code>{html.escape(source['path'])}</code> ({source['n_cells']} cells;
{html.escape(', '.join(f"{n} ({m['kind']}, {m['n_features']} features)" for n, m in source['modalities'].items()))}).</p>
<p>{ranking_text(basis, scores['aggregation'])}</p>
<ul id="labels-{slug}" class="labels">{''.join(f'<li>{n}</li>' for n in label_notes(scores))}</ul>
{''.join(f'<p class="note">Skipped: {html.escape(g)}</p>' for g in skipped_groups)}
<div class="scroll"><table id="metrics-{slug}" class="metrics"><thead>
<tr><th></th><th></th><th colspan="3">aggregate scores</th><th colspan="{len(bio)}" class="group">bio conservation</th><th colspan="{len(batch)}" class="group">batch correction</th></tr>
<tr><th>rank</th><th class="name">model</th><th>total</th><th>bio conservation</th><th>batch correction</th>{head}</tr></thead>
<tbody>{''.join(body)}</tbody></table></div>
{''.join(f'<p class="note">{n}</p>' for n in notes)}
<h3>Each method beside the controls</h3>
<ul id="placement-{slug}" class="placement">{placements}</ul>
<h3>Embeddings side by side</h3>
{figures or '<p>No UMAP was computed.</p>'}
<h3>Runs</h3>
<table id="runs-{slug}" class="runs"><thead><tr><th class="name">model</th><th>status</th><th>runtime (s)</th><th title="peak_memory_mb as the run's manifest records it">peak memory (MiB)</th><th class="name">reason</th></tr></thead>
<tbody>{status_rows}</tbody></table>
<p>This table is also in <code>{slug}/metrics.csv</code> and <code>{slug}/metrics.json</code>.</p>
"""


def _csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()} for row in rows)


def overall_section(overall: dict, display: dict, figure: str) -> str:
    """The campaign table: every metric scaled per dataset between the controls, averaged; with the figure."""
    datasets, keys, basis = overall["datasets"], overall["metrics"], overall["basis"]
    head = "".join(f'<th title="{html.escape(k)}">{html.escape(display.get(k, k))}</th>' for k in keys)
    head += "".join(f"<th>{html.escape(d)}</th>" for d in datasets)
    body = []
    for row in overall["rows"]:
        rank = "control" if row["control"] else str(row["rank"]) if row["rank"] is not None else "–"
        cells = "".join(f"<td>{_fmt(row[k])}</td>" for k in keys)
        per = "".join(f"<td>{_fmt((row['per_dataset'].get(d) or {}).get(basis or TOTAL))}</td>" for d in datasets)
        body.append(
            f'<tr class="{"control" if row["control"] else "method"}"><td class="rank">{rank}</td>'
            f'<td class="name">{html.escape(row["model"])}{_preset(row)}</td><td>{row["completed"]}/{row["datasets"]}</td>'
            f"<td><b>{_fmt(row[TOTAL])}</b></td><td>{_fmt(row[BIO])}</td><td>{_fmt(row[BATCH])}</td>{cells}{per}</tr>")
    excluded = [f"<li><b>{html.escape(d)}</b>, {html.escape(display.get(k, k))}: {html.escape(why)}</li>"
                for d, items in overall["excluded"].items() for k, why in items.items()]
    what = {TOTAL: "total", BIO: "bio conservation", None: "nothing: no bio-conservation score"}[basis]
    return f"""<h2>Across the datasets</h2>
{figure}
<p>Every metric is scaled per dataset between the controls (random embedding = 0, label embedding = 1), each
seed on its own, then averaged over seeds and datasets; bio conservation and batch correction are the means of
their groups, the total 0.6 × bio + 0.4 × batch. A seed that failed, timed out or was not applicable, and a
metric that failed, count there as the worst score any model reached (at most 0): failures never help a rank. Methods are ranked by {what}.
<code>completed</code>: datasets on which the method was scored, of those it was planned for
(<code>docs/CAMPAIGNS.md</code>).</p>
<div class="scroll"><table id="overall"><thead>
<tr><th></th><th></th><th></th><th colspan="3">scaled aggregates</th><th colspan="{len(keys)}" class="group">scaled metrics</th><th colspan="{len(datasets)}" class="group">scaled {html.escape(what.split(':')[0])} per dataset</th></tr>
<tr><th>rank</th><th class="name">model</th><th>completed</th><th>total</th><th>bio conservation</th><th>batch correction</th>{head}</tr></thead>
<tbody>{''.join(body)}</tbody></table></div>
{('<p>Not scaled (left out of the averages on that dataset):</p><ul id="excluded">' + ''.join(excluded) + '</ul>') if excluded else ''}
<p>Also in <code>overall.csv</code> and <code>overall.json</code>.</p>
"""


def stability_section(stability: dict[str, list[dict]], display: dict) -> str:
    parts = []
    for dataset, rows in stability.items():
        if not rows:
            continue
        keys = [TOTAL, BIO, BATCH] + [k[:-5] for k in rows[0] if k.endswith("_mean") and k[:-5] not in (TOTAL, BIO, BATCH)]
        head = "".join(f"<th>{html.escape(display.get(k, k.replace('_', ' ')))}</th>" for k in keys)
        body = "".join(
            f'<tr><td class="name">{html.escape(r["model"])}</td><td>{r["seeds"]}</td><td>{_fmt(r["knn_overlap"])}</td>'
            + "".join(f"<td>{_fmt(r[f'{k}_mean'])} ± {_fmt(r[f'{k}_sd'])}</td>" for k in keys) + "</tr>"
            for r in rows)
        parts.append(f"""<h3>{html.escape(dataset)}</h3><div class="scroll"><table class="stability" id="stability-{html.escape(dataset)}">
<thead><tr><th class="name">model</th><th>seeds</th><th title="mean fraction of shared 15 nearest neighbours between the seeds' embeddings">15-NN agreement</th>{head}</tr></thead>
<tbody>{body}</tbody></table></div>""")
    if not parts:
        return ""
    return ("<h2>Stability over seeds</h2><p>Mean ± standard deviation of every score over the seeds that were "
            "scored, and how much the seeds' embeddings agree: the mean fraction of each cell's 15 nearest neighbours "
            "that two seeds share (1: the same neighbourhoods; about 15 / cells for unrelated embeddings). Also in "
            "<code>stability.csv</code> and <code>stability.json</code>.</p>" + "".join(parts))


def render(folder: Path, per_dataset: dict[str, tuple[dict, dict]], overall: dict | None,
           stability: dict[str, list[dict]], manifest: dict) -> Path:
    """The whole report: the summary across datasets, each dataset's section, stability over seeds."""
    several = len(per_dataset) > 1
    sections = [dataset_section(folder / name, scores, view, name, several) for name, (scores, view) in per_dataset.items()]
    first = next(iter(per_dataset.values()))[0]
    bio, batch = first["metric_names"][BIO], first["metric_names"][BATCH]
    display = {**{k: v for group in (bio, batch) for k, v in group.items()}, **METRIC_LABELS}
    summary = ""
    if overall is not None:
        figure = _image(folder, "summary.png", "Every method on every dataset, scaled between the controls") \
            if (folder / "summary.png").is_file() else ""
        summary = overall_section(overall, display, figure)
        (folder / "overall.json").write_text(json.dumps(overall, indent=2) + "\n")
        _csv(folder / "overall.csv", [{k: v for k, v in r.items() if k != "per_dataset"}
                                      | {f"{d}_{m}": (r["per_dataset"].get(d) or {}).get(m) for d in overall["datasets"]
                                         for m in (TOTAL, BIO, BATCH)} for r in overall["rows"]])
    flat = [{"dataset": d, **row} for d, rows in stability.items() for row in rows]
    (folder / "stability.json").write_text(json.dumps(flat, indent=2) + "\n")
    _csv(folder / "stability.csv", flat)
    metric_set = first.get("metric_set", {})
    keys = metric_keys(first)
    ari = [display[k] for k in ARI_KEYS if k in keys]
    ari_text = (f"{' and '.join(ari)} (adjusted Rand index) can be negative: it is 1 for identical partitions, "
                "about 0 for chance agreement and below 0 for worse than chance, so a mean or total can dip below 0. "
                "Every other metric lies in [0, 1].") if ari else "Every metric lies in [0, 1]."
    title = ", ".join(per_dataset) if several else first.get("input", next(iter(per_dataset)))
    toc = ("<p>Datasets: " + ", ".join(f'<a href="#dataset-{html.escape(d)}">{html.escape(d)}</a>' for d in per_dataset)
           + "</p>") if several else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>multiverse report: {html.escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>multiverse report</h1>
<p class="sub">{len(per_dataset)} dataset(s); run {html.escape(manifest.get('run_id', '?'))}; report made
{dt.datetime.now().astimezone():%Y-%m-%d %H:%M} by multiverse {__version__}.</p>
<p>Metric set <code>{html.escape(metric_set.get('name', '?'))}</code>: {html.escape(metric_set.get('description', ''))}.
Higher is better. {ari_text} Bio conservation and batch correction are the means of their group's metrics.
Two controls set the scale: <code>control_random</code>, a random Gaussian embedding, and <code>control_labels</code>,
the one-hot code of each cell's type plus noise. Neither holds any batch signal, so both can score high on batch
correction: read it beside bio conservation.</p>
{toc}
{summary}
{''.join(sections)}
{stability_section(stability, display)}
<p>Provenance of every run (image ids, package versions, parameters, seeds, input checksums): <code>manifest.json</code>
in the output folder. Metrics computed with scib-metrics {html.escape(first.get('versions', {}).get('scib-metrics', '?'))}.</p>
</body></html>
"""
    path = folder / "report.html"
    path.write_text(page)
    return path
