# Test-only image: a fake method that misbehaves on request (see faulty.py).
# Built on the PCA image for its anndata/mudata; only the tests build it.
ARG BASE_IMAGE=multiverse/pca:latest
FROM ${BASE_IMAGE}
COPY faulty.py /opt/faulty.py
ENTRYPOINT ["python", "/opt/faulty.py"]
