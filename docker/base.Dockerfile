# Offline equivalent of python:3.11-slim-bookworm, built by scripts/build-base-image.sh
# from a debootstrapped Debian bookworm root file system (no registry needed).
ARG ROOTFS_IMAGE=multiverse/debian:bookworm-minbase
FROM ${ROOTFS_IMAGE}
ENV LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
 && python3 -m venv /opt/venv
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["python3"]
