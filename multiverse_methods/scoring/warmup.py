"""At image build: fill the numba and matplotlib caches, then run the equivalence check.

    NUMBA_CACHE_DIR=<caches>/numba MPLCONFIGDIR=<caches>/matplotlib python -m multiverse_methods.scoring.warmup

Scores the check's synthetic embedding with both metric sets and draws its UMAP
(which compiles and caches umap-learn's and pynndescent's numba kernels), then
compares every metric value with scib-metrics' own functions
(``equivalence.compare``). Exit 1, which stops the image build, when one is
beyond its tolerance. Only this package, ``protocol`` and the synthetic
generator are in the image when it runs, so a change to the rest of the code
does not repeat it.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("multiverse_methods.scoring.warmup")


def warmup() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    start = time.perf_counter()
    import matplotlib.font_manager  # noqa: F401 - builds matplotlib's font list in MPLCONFIGDIR

    from multiverse_methods.scoring import equivalence, kernels
    from multiverse_methods.scoring.environment import enable_numba_caching, quiet_libraries
    from multiverse_methods.scoring.metric_sets import METRIC_SETS
    from multiverse_methods.scoring.metrics import score_embedding
    from multiverse_methods.scoring.umap_layout import compute_umap

    quiet_libraries()
    enable_numba_caching()
    kernels.install()
    X, cell_type, batch, unintegrated = equivalence.from_synthetic()
    for name, metric_set in METRIC_SETS.items():
        result = score_embedding(X, cell_type, batch, metric_set=metric_set, unintegrated=unintegrated)
        log.info("warm-up, metric set %s: %s", name, result["aggregates"])
    compute_umap(X, seed=0)
    log.info("caches filled in %.1f s; comparing with scib-metrics' own functions", time.perf_counter() - start)
    report = equivalence.compare(X, cell_type, batch, unintegrated, stock=False)
    equivalence.log_report(report)
    log.info("warm-up and check done in %.1f s", time.perf_counter() - start)
    if not report["ok"]:
        log.error("the fast kernels do not reproduce scib-metrics' values within tolerance: the image is not built")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(warmup())
