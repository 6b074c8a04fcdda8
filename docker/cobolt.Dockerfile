# Method image: cobolt. Built by `multiverse build cobolt` on the shared scverse base.
ARG BASE_IMAGE=multiverse/scverse-base:latest
FROM ${BASE_IMAGE}

# Dependencies first (cached), the method code last: a code change rebuilds in seconds.
COPY docker/requirements-cobolt.txt /opt/multiverse/requirements/
RUN --mount=type=bind,source=build/wheelhouse/cobolt,target=/wheels \
    if grep -qv '^#' /opt/multiverse/requirements/requirements-cobolt.txt; then \
        pip install --no-index --no-deps --find-links /wheels \
            -r /opt/multiverse/requirements/requirements-cobolt.txt; \
    fi \
 && pip check

COPY multiverse_methods /opt/multiverse/multiverse_methods
ENV PYTHONPATH=/opt/multiverse
ENTRYPOINT ["python", "-m", "multiverse_methods", "cobolt"]
