# The scverse core stack (numpy, scipy, pandas, anndata, mudata, scanpy) shared
# by the PCA, MOFA+, MultiVI and Cobolt images. Built by `multiverse build`.
#
# Wheels come from the host-side wheelhouse build/wheelhouse/scverse-base
# (bind-mounted, installed with --no-index): no network is needed in the build.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# The offline base already has /opt/venv; the official image gets one here.
RUN [ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv

COPY docker/requirements-scverse-base.txt /opt/multiverse/requirements/
RUN --mount=type=bind,source=build/wheelhouse/scverse-base,target=/wheels \
    pip install --no-index --no-deps --find-links /wheels \
        -r /opt/multiverse/requirements/requirements-scverse-base.txt \
 && pip check
