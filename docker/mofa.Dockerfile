# Method image: mofa. Built by `multiverse build mofa` on the shared scverse base.
ARG BASE_IMAGE=multiverse/scverse-base:latest
FROM ${BASE_IMAGE}

# Dependencies first (cached), the method code last: a code change rebuilds in seconds.
COPY docker/requirements-mofa.txt /opt/multiverse/requirements/
RUN --mount=type=bind,source=build/wheelhouse/mofa,target=/wheels \
    if grep -qv '^#' /opt/multiverse/requirements/requirements-mofa.txt; then \
        pip install --no-index --no-deps --find-links /wheels \
            -r /opt/multiverse/requirements/requirements-mofa.txt; \
    fi \
 && pip check

COPY multiverse_methods /opt/multiverse/multiverse_methods
ENV PYTHONPATH=/opt/multiverse
ENTRYPOINT ["python", "-m", "multiverse_methods", "mofa"]
