# Method image: mowgli. Built by `multiverse build mowgli` directly on the Python base,
# not on the scverse base: Mowgli 0.4.0 needs torch<2, numpy<2, anndata 0.8 and
# mudata 0.2 (docker/requirements-mowgli.in), which conflict with that base.
#
# Two stages so that nothing removed from the install ever lands in a layer: the
# build stage installs the wheelhouse (bind-mounted, never copied) and trims it, the
# final stage copies only the finished /opt/venv. Both stages use the same base,
# because the venv links that base's interpreter.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The offline base already has /opt/venv; the official image gets one here.
RUN [ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv

COPY docker/requirements-mowgli.txt /opt/multiverse/requirements/
RUN --mount=type=bind,source=build/wheelhouse/mowgli,target=/wheels \
    pip install --no-index --no-deps --find-links /wheels \
        -r /opt/multiverse/requirements/requirements-mowgli.txt \
 && pip check

# torch 1.13.1 exists only as the CUDA 11.7 build, which runs on the CPU. Files that
# the CPU code path never loads are removed (about 1.2 GB); everything the dynamic
# linker needs to `import torch` stays (libtorch_cuda*.so, libcublas*.so.11,
# libcudnn.so.8: DT_NEEDED of libtorch/libtorch_python/libtorch_global_deps):
#  - cuDNN's sub-libraries libcudnn_{ops,cnn,adv}_{infer,train}.so.8 (~900 MB):
#    libcudnn.so.8 is a small dispatcher that dlopens them on the first cuDNN call,
#    which only a convolution or RNN on a GPU makes;
#  - torch/lib/libtorch_cuda_linalg.so (~215 MB): dlopened by ATen on the first
#    linear-algebra call on a CUDA tensor (CPU linear algebra is in libtorch_cpu.so);
#  - nvidia/cuda_nvrtc (libnvrtc*, ~53 MB): needed only by libcaffe2_nvrtc.so,
#    which ATen dlopens to compile kernels at run time on a GPU;
#  - torch/include (~45 MB): C++ headers, for building extensions only.
# The check below imports torch and runs an LBFGS fit (Mowgli's optimiser) on CPU.
RUN cd /opt/venv/lib/python3*/site-packages \
 && rm -f nvidia/cudnn/lib/libcudnn_ops_infer.so.8 nvidia/cudnn/lib/libcudnn_ops_train.so.8 \
          nvidia/cudnn/lib/libcudnn_cnn_infer.so.8 nvidia/cudnn/lib/libcudnn_cnn_train.so.8 \
          nvidia/cudnn/lib/libcudnn_adv_infer.so.8 nvidia/cudnn/lib/libcudnn_adv_train.so.8 \
          torch/lib/libtorch_cuda_linalg.so \
 && rm -rf nvidia/cuda_nvrtc/lib torch/include \
 && python -c "import torch, mowgli; x = torch.randn(50, 5, dtype=torch.double); w = torch.zeros(5, 1, dtype=torch.double, requires_grad=True); y = x @ torch.ones(5, 1, dtype=torch.double); opt = torch.optim.LBFGS([w], max_iter=50, line_search_fn='strong_wolfe'); loss = lambda: ((x @ w - y) ** 2).mean(); opt.step(lambda: (opt.zero_grad(), loss().backward(), loss())[2]); assert loss().item() < 1e-6, loss().item(); print('torch', torch.__version__, 'LBFGS ok on CPU')"

FROM ${BASE_IMAGE}
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/multiverse/requirements /opt/multiverse/requirements

COPY multiverse_methods /opt/multiverse/multiverse_methods
ENV PYTHONPATH=/opt/multiverse
ENTRYPOINT ["python", "-m", "multiverse_methods", "mowgli"]
