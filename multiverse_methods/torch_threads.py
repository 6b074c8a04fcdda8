"""torch's thread count from the container's CPU share (for the torch-based methods)."""

from __future__ import annotations

import logging
import os


def set_torch_threads(log: logging.Logger) -> None:
    """``torch.set_num_threads(MULTIVERSE_THREADS)``, which the runner sets from the CPU limit."""
    import torch

    threads = os.environ.get("MULTIVERSE_THREADS")
    if threads:
        try:
            torch.set_num_threads(max(1, int(float(threads))))
        except ValueError:
            log.warning("MULTIVERSE_THREADS=%r is not a number; torch keeps its default", threads)
    log.info("torch %s on CPU, %d threads", torch.__version__, torch.get_num_threads())
