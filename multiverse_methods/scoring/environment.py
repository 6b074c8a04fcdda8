"""The evaluation container's environment: writable caches, thread counts, quiet libraries.

The root file system is read-only at run time, so every cache goes to /tmp; the
numba and matplotlib caches filled at image build (``warmup``) are copied there
at start instead of being rebuilt (a minute or more of numba compilation).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

#: Caches filled at image build (``numba/``, ``matplotlib/``), copied to NUMBA_CACHE_DIR and MPLCONFIGDIR at start.
PREWARMED_CACHES = Path(os.environ.get("MULTIVERSE_PREWARMED_CACHES", "/opt/multiverse/caches"))


def threads_from_env() -> int:
    try:
        return max(1, int(os.environ.get("MULTIVERSE_THREADS", "")))
    except ValueError:
        return max(1, len(os.sched_getaffinity(0)))


def prepare_environment(threads: int) -> None:
    """Caches under /tmp (the root is read-only), thread counts, jax on CPU: before heavy imports."""
    tmp = Path(tempfile.gettempdir())
    defaults = {
        "HOME": str(tmp),
        "NUMBA_CACHE_DIR": str(tmp / "numba-cache"),
        "MPLCONFIGDIR": str(tmp / "matplotlib"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(tmp / "jax-cache"),
        "MPLBACKEND": "Agg",
    }
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        defaults[name] = str(threads)
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    if not os.access(os.environ["HOME"], os.W_OK):
        os.environ["HOME"] = str(tmp)
    if threads == 1 and "intra_op_parallelism_threads" not in os.environ.get("XLA_FLAGS", ""):
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()
    seed_caches()


def seed_caches() -> None:
    """Copy the numba and matplotlib caches made at image build to NUMBA_CACHE_DIR and MPLCONFIGDIR."""
    for name, variable in (("numba", "NUMBA_CACHE_DIR"), ("matplotlib", "MPLCONFIGDIR")):
        source, target = PREWARMED_CACHES / name, os.environ.get(variable)
        if not target or not source.is_dir() or Path(target).resolve() == source.resolve():
            continue
        try:
            shutil.copytree(source, target, dirs_exist_ok=True)
        except OSError as exc:  # a cold cache only costs time
            print(f"could not copy the {name} cache to {target}: {exc}", file=sys.stderr)


def enable_numba_caching() -> int:
    """Let umap-learn's numba kernels use the on-disk cache; returns how many were switched.

    umap-learn declares most kernels without ``cache=True``, so a fresh
    container compiles them again (10-20 s here). ``Dispatcher.enable_caching``
    is what ``cache=True`` does; it is called before anything is compiled.
    """
    import umap.layouts
    import umap.spectral
    import umap.umap_
    import umap.utils
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    count, seen = 0, set()
    for module in (umap.umap_, umap.layouts, umap.utils, umap.spectral):
        for obj in list(vars(module).values()):
            if isinstance(obj, Dispatcher) and id(obj) not in seen:
                seen.add(id(obj))
                if isinstance(obj._cache, NullCache):
                    obj.enable_caching()
                    count += 1
    return count


def quiet_libraries() -> None:
    import scib_metrics

    scib_metrics.settings.verbosity = logging.WARNING
    for name in ("jax", "absl", "numba", "h5py", "matplotlib", "PIL", "umap", "pynndescent"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*(n_jobs|random_state|cannot cache).*")
    try:
        from numba.core.errors import NumbaWarning

        warnings.filterwarnings("ignore", category=NumbaWarning)
    except ImportError:  # pragma: no cover
        pass
