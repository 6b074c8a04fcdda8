"""The evaluation's figures: UMAPs of every embedding side by side, coloured by a label.

A label has the same colour in every panel; one legend; cells without the
label are drawn in light grey and listed as "unlabelled".
"""

from __future__ import annotations

import math
from pathlib import Path

#: Colour of the cells without a label.
UNLABELLED_COLOUR = (0.82, 0.82, 0.82, 1.0)
UNLABELLED_NAME = "unlabelled"


def palette(n: int) -> list:
    """n distinct colours, none of them grey (grey marks the unlabelled cells).

    tab10 without its grey (9 colours), tab20 (18), tab20 + tab20b + tab20c (54), else a hue wheel.
    """
    import matplotlib
    import numpy as np

    for names in (("tab10",), ("tab20",), ("tab20", "tab20b", "tab20c")):
        colours = [matplotlib.colormaps[name](i) for name in names for i in range(matplotlib.colormaps[name].N)]
        colours = [c for c in colours if not (c[0] == c[1] == c[2])]
        if n <= len(colours):
            return colours[:n]
    return [matplotlib.colormaps["hsv"](x) for x in np.linspace(0, 1, n, endpoint=False)]


def plot_umaps(coords: dict, values, categories: list, title: str, path: Path, seed: int = 0) -> None:
    """A grid of UMAPs, one panel per model; a label has the same colour in every panel; one legend.

    ``values``: one label per cell, None for a cell without one (drawn grey),
    or None for no colours. At most 4 panels a row (5 and 6 models: 3 a row),
    the legend to the right in as many columns as 40 cell types need, points
    drawn in one random order so that no label always lies on top.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D

    models = list(coords)
    ncols = math.ceil(len(models) / math.ceil(len(models) / 4))
    nrows = math.ceil(len(models) / ncols)
    panel = 3.2
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols, panel * nrows + 0.5), squeeze=False)
    n_cells = len(next(iter(coords.values())))
    size = float(np.clip(5000 / max(n_cells, 1), 0.3, 16))
    order = np.random.default_rng(seed).permutation(n_cells)
    n_cat = len(categories) if values is not None else 0
    colours = palette(n_cat)
    names = list(categories)
    if n_cat:
        lookup = {c: i for i, c in enumerate(categories)}
        n_unlabelled = sum(v is None for v in values)
        if n_unlabelled:
            lookup[None] = n_cat
            colours = [*colours, UNLABELLED_COLOUR]
            names.append(f"{UNLABELLED_NAME} ({n_unlabelled})")
        point_colours = np.array(colours)[np.array([lookup[v] for v in values])][order]
    else:
        point_colours = "0.35"
    for ax, model in zip(axes.flat, models):
        xy = coords[model][order]
        ax.scatter(xy[:, 0], xy[:, 1], s=size, c=point_colours, linewidths=0, rasterized=True)
        ax.set_title(model, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("UMAP 1", fontsize=8)
        ax.set_ylabel("UMAP 2", fontsize=8)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    if n_cat:
        rows_per_column = max(12, int(panel * nrows * 5))  # about 5 legend rows per inch of height
        handles = [Line2D([], [], marker="o", linestyle="", markersize=6, markerfacecolor=c, markeredgewidth=0)
                   for c in colours]
        fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5),
                   ncol=math.ceil(len(names) / rows_per_column), fontsize=8, frameon=False,
                   handletextpad=0.1, columnspacing=0.8, borderaxespad=0.2)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight" takes the legend in
    plt.close(fig)
