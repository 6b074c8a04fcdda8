"""The numerical side of the evaluation image: scIB-style metrics of one embedding, and its UMAP.

Runs inside the metrics image (scib-metrics 0.5.10 on CPU jax, scanpy). One job per module:

- ``environment``: caches and thread settings of the read-only container, quiet libraries
- ``kernels``: faster drop-ins for four scib-metrics kernels (same definitions), installed and removed
- ``metric_sets``: which metrics a set holds (import-light: the host reads the names)
- ``metrics``: every metric of a set on one embedding, each on the cells that carry its labels
- ``aggregate``: bio conservation, batch correction and the total
- ``unintegrated``: the PCA of the unintegrated RNA that ``pcr_comparison`` compares with
- ``umap_layout``: 2-D UMAP coordinates
- ``equivalence``: every metric value with the fast kernels against scib-metrics' own functions
- ``warmup``: at image build, fills the numba cache and runs the equivalence check

The command line, the labels, the files and the figures are outside this package
(``evaluate``, ``labels``, ``figures``), so the image build copies this package in
first and a change to the rest does not redo the warm-up.
"""
