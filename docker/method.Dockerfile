# A method image on the shared scverse base: `multiverse build <method>` builds it with
# --build-arg METHOD=<method> (pca, mofa, multivi, cobolt). Mowgli has its own Dockerfile (its stack
# conflicts with the base); the evaluation image too.
ARG BASE_IMAGE=multiverse/scverse-base:latest
FROM ${BASE_IMAGE}
ARG METHOD

# Dependencies first (cached), the method code last: a code change rebuilds in seconds.
# (This BuildKit frontend does not expand variables in a mount's source, so the whole
# wheelhouse folder is mounted and the method's part of it named in the shell.)
COPY docker/requirements-${METHOD}.txt /opt/multiverse/requirements/
RUN --mount=type=bind,source=build/wheelhouse,target=/wheels \
    if grep -qv '^#' /opt/multiverse/requirements/requirements-${METHOD}.txt; then \
        pip install --no-index --no-deps --find-links /wheels/${METHOD} \
            -r /opt/multiverse/requirements/requirements-${METHOD}.txt; \
    fi \
 && pip check

COPY multiverse_methods /opt/multiverse/multiverse_methods
ENV PYTHONPATH=/opt/multiverse \
    MULTIVERSE_METHOD=${METHOD}
ENTRYPOINT ["python", "-m", "multiverse_methods"]
