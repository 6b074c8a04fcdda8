"""The metric sets the evaluation offers: which scib-metrics 0.5.10 functions run, with which arguments.

Import-light (no numpy, no scib-metrics): the host reads the set names for
``multiverse report --metric-set``. How each metric is computed is in
``metrics.py``; the aggregation in ``aggregate.py``.

``leiden-asw`` (the default)
    Leiden NMI/ARI (best-NMI resolution of 0.2..2.0 on the 15-NN graph),
    cell-type ASW, cLISI, isolated-label ASW; batch ASW within cell types,
    iLISI, kBET per cell type, graph connectivity. Needs only the embedding and
    the labels.
``benchmarker``
    The default metrics of scib-metrics 0.5.10's ``Benchmarker``
    (``BioConservation()`` and ``BatchCorrection()`` in
    ``scib_metrics/benchmark/_core.py``): isolated labels, KMeans NMI/ARI,
    cell-type ASW, cLISI; BRAS, iLISI, kBET per cell type, graph connectivity,
    PCR comparison. Its totals can be set beside published scib-metrics tables
    (the Benchmarker's ``get_results()``, not min-max scaled). ``pcr_comparison``
    compares with the PCA of the unintegrated RNA (``unintegrated.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

BIO, BATCH = "bio_conservation", "batch_correction"
#: What a metric can need besides the embedding; a metric runs on the cells that carry every label it needs.
CELL_TYPE, BATCH_LABEL, UNINTEGRATED = "cell_type", "batch", "unintegrated"


@dataclass(frozen=True)
class Metric:
    key: str
    name: str  # display name (scib-metrics' own where it has one)
    group: str  # BIO or BATCH
    needs: tuple  # of CELL_TYPE, BATCH_LABEL, UNINTEGRATED
    what: str  # one line for the docs and scores.json


METRICS = {m.key: m for m in (
    Metric("nmi_leiden", "Leiden NMI", BIO, (CELL_TYPE,),
           "NMI of the Leiden clustering (15-NN graph, resolutions 0.2..2.0) with the best NMI"),
    Metric("ari_leiden", "Leiden ARI", BIO, (CELL_TYPE,), "ARI of that clustering"),
    Metric("nmi_kmeans", "KMeans NMI", BIO, (CELL_TYPE,),
           "NMI of scib-metrics' KMeans (k = number of cell types, seed 0) on the embedding"),
    Metric("ari_kmeans", "KMeans ARI", BIO, (CELL_TYPE,), "ARI of that clustering"),
    Metric("silhouette_label", "Silhouette label", BIO, (CELL_TYPE,), "cell-type ASW, rescaled to [0, 1]"),
    Metric("clisi", "cLISI", BIO, (CELL_TYPE,), "scaled cell-type LISI, 90 neighbours"),
    Metric("isolated_labels", "Isolated labels", BIO, (CELL_TYPE, BATCH_LABEL),
           "ASW (rescaled) of the cell types present in the fewest batches"),
    Metric("silhouette_batch", "Silhouette batch", BATCH, (CELL_TYPE, BATCH_LABEL),
           "1 - |batch ASW| within each cell type (Euclidean, nearest other batch)"),
    Metric("bras", "BRAS", BATCH, (CELL_TYPE, BATCH_LABEL),
           "batch-removal adapted silhouette: 1 - |ASW| within each cell type, cosine, mean over all other batches"),
    Metric("ilisi", "iLISI", BATCH, (BATCH_LABEL,), "scaled batch LISI, 90 neighbours"),
    Metric("kbet", "kBET", BATCH, (CELL_TYPE, BATCH_LABEL),
           "kBET acceptance rate per cell type (diffusion-map neighbours within each type, 50-NN graph)"),
    Metric("graph_connectivity", "Graph connectivity", BATCH, (CELL_TYPE, BATCH_LABEL),
           "per cell type, the largest connected share of its 15-NN subgraph"),
    Metric("pcr_comparison", "PCR comparison", BATCH, (BATCH_LABEL, UNINTEGRATED),
           "drop of the variance explained by batch from the unintegrated PCA to the embedding, in [0, 1]"),
)}


@dataclass(frozen=True)
class MetricSet:
    name: str
    description: str
    keys: tuple  # display order, bio first

    @property
    def metrics(self) -> list[Metric]:
        return [METRICS[key] for key in self.keys]

    def group(self, group: str) -> list[str]:
        return [m.key for m in self.metrics if m.group == group]

    def needs(self, need: str) -> bool:
        return any(need in m.needs for m in self.metrics)


METRIC_SETS = {s.name: s for s in (
    MetricSet(
        "leiden-asw",
        "Leiden NMI/ARI, cell-type ASW, cLISI, isolated labels; batch ASW, iLISI, kBET, graph connectivity "
        "(scib-metrics' functions; needs no unintegrated data)",
        ("nmi_leiden", "ari_leiden", "silhouette_label", "clisi", "isolated_labels",
         "silhouette_batch", "ilisi", "kbet", "graph_connectivity"),
    ),
    MetricSet(
        "benchmarker",
        "scib-metrics 0.5.10 Benchmarker's default metrics: isolated labels, KMeans NMI/ARI, cell-type ASW, "
        "cLISI; BRAS, iLISI, kBET, graph connectivity, PCR comparison",
        ("isolated_labels", "nmi_kmeans", "ari_kmeans", "silhouette_label", "clisi",
         "bras", "ilisi", "kbet", "graph_connectivity", "pcr_comparison"),
    ),
)}
DEFAULT_METRIC_SET = "leiden-asw"
#: scIB's weighting (Luecken et al. 2022), also scib-metrics' Benchmarker's.
BIO_WEIGHT, BATCH_WEIGHT = 0.6, 0.4
#: Neighbourhood sizes of scib-metrics' Benchmarker, all cut from one 90-NN search.
K_CLUSTER, K_KBET, K_LISI = 15, 50, 90
