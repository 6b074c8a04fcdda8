# Method image: multivi. Built by `multiverse build multivi` on the shared scverse base.
ARG BASE_IMAGE=multiverse/scverse-base:latest
FROM ${BASE_IMAGE}

# Dependencies first (cached), the method code last: a code change rebuilds in seconds.
COPY docker/requirements-multivi.txt /opt/multiverse/requirements/
RUN --mount=type=bind,source=build/wheelhouse/multivi,target=/wheels \
    if grep -qv '^#' /opt/multiverse/requirements/requirements-multivi.txt; then \
        pip install --no-index --no-deps --find-links /wheels \
            -r /opt/multiverse/requirements/requirements-multivi.txt; \
    fi \
 && pip check

COPY multiverse_methods /opt/multiverse/multiverse_methods
ENV PYTHONPATH=/opt/multiverse
ENTRYPOINT ["python", "-m", "multiverse_methods", "multivi"]
