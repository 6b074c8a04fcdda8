"""What the host adds to the method registry: image tags and how images build on each other.

Methods themselves (parameters, modalities, which image runs them) are defined
once, in ``multiverse_methods/registry.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from multiverse import __version__
from multiverse_methods.registry import METHODS, Method

IMAGE_PREFIX = "multiverse"
#: The tag of every image multiverse builds; MULTIVERSE_IMAGE_TAG sets another, so that
#: two checkouts (or versions) keep their images apart on one engine.
IMAGE_TAG = os.environ.get("MULTIVERSE_IMAGE_TAG") or __version__


@dataclass(frozen=True)
class ImageSpec:
    """One image multiverse builds: ``docker/<name>.Dockerfile`` (or a shared ``template``) +
    ``docker/requirements-<name>.txt``."""

    name: str
    #: The image it is built on: another ImageSpec's name, or None for the Python base image.
    base: str | None = None
    #: A Dockerfile shared by several images (``docker/<template>.Dockerfile``, built with METHOD=<name>).
    template: str | None = None

    @property
    def tag(self) -> str:
        return f"{IMAGE_PREFIX}/{self.name}:{IMAGE_TAG}"

    @property
    def dockerfile(self) -> str:
        return f"docker/{self.template or self.name}.Dockerfile"

    @property
    def build_args(self) -> dict[str, str]:
        return {"METHOD": self.name} if self.template else {}

    @property
    def requirements(self) -> str:
        return f"docker/requirements-{self.name}.txt"


IMAGES: dict[str, ImageSpec] = {
    image.name: image
    for image in (
        ImageSpec("scverse-base"),
        ImageSpec("pca", base="scverse-base", template="method"),
        ImageSpec("mofa", base="scverse-base", template="method"),
        ImageSpec("multivi", base="scverse-base", template="method"),
        ImageSpec("mowgli"),
        ImageSpec("cobolt", base="scverse-base", template="method"),
        #: The evaluation image (scib-metrics; ``python -m multiverse_methods.evaluate``): not a model.
        ImageSpec("metrics", base="scverse-base"),
    )
}
METRICS_IMAGE = IMAGES["metrics"]
#: Images that belong to no method; ``multiverse build NAME`` builds one, ``multiverse build`` all.
EXTRA_IMAGES: dict[str, ImageSpec] = {METRICS_IMAGE.name: METRICS_IMAGE}


@dataclass(frozen=True)
class ExternalImage:
    """A user's own method image, named by its full tag; multiverse never builds (nor pulls) it."""

    tag: str

    @property
    def name(self) -> str:
        return self.tag


def image_of(method: Method):
    """The image a method runs in: ours (an ImageSpec), or a user's own image's tag (ExternalImage).

    An image outside ``IMAGES`` (e.g. a test's) builds on nothing here."""
    if method.params is None:
        return ExternalImage(method.image)
    return IMAGES.get(method.image) or ImageSpec(method.image)


def images_for(methods: list[Method], extra: list[ImageSpec] = ()) -> list[ImageSpec]:
    """The images these methods (and the ``extra`` images) need, bases before the images built on them."""
    ordered: list[ImageSpec] = []

    def add(image: ImageSpec) -> None:
        if image.base:
            add(IMAGES[image.base])
        if image not in ordered:
            ordered.append(image)

    for method in methods:
        if method.params is not None:
            add(image_of(method))
    for image in extra:
        add(image)
    return ordered


__all__ = ["EXTRA_IMAGES", "IMAGES", "METHODS", "METRICS_IMAGE", "ImageSpec", "Method", "image_of", "images_for"]
