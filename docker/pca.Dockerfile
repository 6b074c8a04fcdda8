# Method image: pca. Built by `multiverse build pca` on the shared scverse base.
ARG BASE_IMAGE=multiverse/scverse-base:latest
FROM ${BASE_IMAGE}

# Dependencies first (cached), the method code last: a code change rebuilds in seconds.
COPY docker/requirements-pca.txt /opt/multiverse/requirements/
RUN --mount=type=bind,source=build/wheelhouse/pca,target=/wheels \
    if grep -qv '^#' /opt/multiverse/requirements/requirements-pca.txt; then \
        pip install --no-index --no-deps --find-links /wheels \
            -r /opt/multiverse/requirements/requirements-pca.txt; \
    fi \
 && pip check

COPY multiverse_methods /opt/multiverse/multiverse_methods
ENV PYTHONPATH=/opt/multiverse
ENTRYPOINT ["python", "-m", "multiverse_methods", "pca"]
