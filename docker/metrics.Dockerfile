# Evaluation image: scores embeddings against cell-type and batch labels
# (scib-metrics on CPU jax) and draws their UMAPs. Not a method: the host runs
# `python -m multiverse_methods.evaluate` in it. Built by `multiverse build metrics`
# on the shared scverse base.
ARG BASE_IMAGE=multiverse/scverse-base:latest
FROM ${BASE_IMAGE}

# Dependencies first (cached), the code last: a code change rebuilds in seconds.
COPY docker/requirements-metrics.txt /opt/multiverse/requirements/
RUN --mount=type=bind,source=build/wheelhouse/metrics,target=/wheels \
    pip install --no-index --no-deps --find-links /wheels \
        -r /opt/multiverse/requirements/requirements-metrics.txt \
 && pip check

# jax on CPU only; caches go to the writable /tmp (the root is read-only at run time).
ENV JAX_PLATFORMS=cpu \
    JAX_COMPILATION_CACHE_DIR=/tmp/jax-cache \
    MPLBACKEND=Agg \
    PYTHONPATH=/opt/multiverse

# Compile umap-learn's and pynndescent's numba kernels once, here, and check that
# every metric value with the fast kernels equals scib-metrics' own (the build
# stops if not): evaluate copies these caches to NUMBA_CACHE_DIR and MPLCONFIGDIR
# at start instead of compiling for a minute or more. Only the scoring package,
# the contract's constants and the synthetic generator the check scores come in
# first: a change to the rest of the code does not redo this (about 2 minutes).
COPY multiverse_methods/__init__.py multiverse_methods/protocol.py /opt/multiverse/multiverse_methods/
COPY multiverse_methods/scoring /opt/multiverse/multiverse_methods/scoring
COPY multiverse/__init__.py multiverse/synthetic.py /opt/multiverse/multiverse/
RUN NUMBA_CACHE_DIR=/opt/multiverse/caches/numba MPLCONFIGDIR=/opt/multiverse/caches/matplotlib HOME=/tmp \
        python -m multiverse_methods.scoring.warmup \
 && chmod -R a+rX /opt/multiverse/caches \
 && rm -rf /tmp/* /opt/multiverse/multiverse/__pycache__ /opt/multiverse/multiverse_methods/__pycache__ \
        /opt/multiverse/multiverse_methods/scoring/__pycache__

COPY multiverse_methods /opt/multiverse/multiverse_methods
ENTRYPOINT ["python", "-m", "multiverse_methods.evaluate"]
