"""Inside the metrics image: the campaign's summary figure, in the style of a funky heatmap.

    python -m multiverse_methods.summary_figure --table /data/input/overall.json --output /data/output

One row per model (ranked methods first, then the controls); columns: the
overall scaled total, bio conservation and batch correction as bars, then per
dataset the scaled total (or bio conservation) as a circle whose size and
colour grow with the score, and the datasets completed. Scores are scaled
between the random (0) and label (1) controls; circles are clipped to [0, 1]
and a failed dataset shows as an empty ring. Writes ``summary.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUTPUT_FILE = "summary.png"


def draw(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    rows = table["rows"]
    datasets = table["datasets"]
    basis = table.get("basis") or "total"
    bars = [("total", "overall total"), ("bio_conservation", "bio conservation"), ("batch_correction", "batch correction")]
    n_cols = len(bars) + len(datasets) + 1
    width = 2.2 + 1.1 * n_cols
    height = 0.9 + 0.42 * len(rows)
    fig, ax = plt.subplots(figsize=(width, height))
    cmap = matplotlib.colormaps["viridis"]
    x0 = 2.0  # room for the names

    def clip(value):
        return None if value is None else max(0.0, min(1.0, float(value)))

    for i, row in enumerate(rows):
        y = len(rows) - 1 - i
        if i % 2 == 0:
            ax.add_patch(Rectangle((0, y - 0.5), x0 + n_cols, 1, color="0.96", zorder=0))
        rank = row.get("rank")
        label = (f"{rank}. " if rank is not None else "") + row["model"] + (" (control)" if row["control"] else "")
        ax.text(x0 - 0.1, y, label, ha="right", va="center", fontsize=9, style="italic" if row["control"] else "normal")
        for j, (key, _) in enumerate(bars):
            value = clip(row.get(key))
            if value is not None:
                ax.add_patch(Rectangle((x0 + j + 0.05, y - 0.28), 0.6 * value, 0.56, color=cmap(value), zorder=2))
                ax.text(x0 + j + 0.95, y, f"{row[key]:.2f}", ha="right", va="center", fontsize=7, zorder=3)
        for j, name in enumerate(datasets):
            x = x0 + len(bars) + j + 0.5
            cell = row.get("per_dataset", {}).get(name)
            value = clip((cell or {}).get(basis))
            if cell is None:
                continue
            if value is None:
                ax.add_patch(Circle((x, y), 0.2, fill=False, edgecolor="0.6", linewidth=1, zorder=2))
                continue
            ax.add_patch(Circle((x, y), 0.08 + 0.3 * value, color=cmap(value), zorder=2))
        ax.text(x0 + n_cols - 0.5, y, f"{row.get('completed', 0)}/{row.get('datasets', 0)}", ha="center", va="center",
                fontsize=8)
    headers = [label for _, label in bars] + [f"{d} ({basis.replace('_', ' ')})" for d in datasets] + ["datasets completed"]
    for j, header in enumerate(headers):
        ax.text(x0 + j + 0.35, len(rows) - 0.4, header, ha="left", va="bottom", fontsize=8, rotation=45,
                rotation_mode="anchor")
    ax.set_xlim(0, x0 + n_cols)
    ax.set_ylim(-0.7, len(rows) + 2.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Scores scaled per dataset between the random (0) and label (1) controls", fontsize=10)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    from multiverse_methods import deadline

    deadline.start()
    parser = argparse.ArgumentParser(prog="python -m multiverse_methods.summary_figure")
    parser.add_argument("--table", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    draw(json.loads(args.table.read_text()), args.output / OUTPUT_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
