"""The methods multiverse knows: their images, Dockerfiles, modalities and parameters."""

from __future__ import annotations

from dataclasses import dataclass

from multiverse import __version__
from multiverse_methods.params import (
    CoboltParams,
    LabelControlParams,
    MethodParams,
    MofaParams,
    MowgliParams,
    MultiviParams,
    PcaParams,
    RandomControlParams,
)

IMAGE_PREFIX = "multiverse"


@dataclass(frozen=True)
class ImageSpec:
    """One image multiverse builds: ``docker/<name>.Dockerfile`` + ``docker/requirements-<name>.txt``."""

    name: str
    #: The image it is built on: another ImageSpec's name, or None for the Python base image.
    base: str | None = None

    @property
    def tag(self) -> str:
        return f"{IMAGE_PREFIX}/{self.name}:{__version__}"

    @property
    def dockerfile(self) -> str:
        return f"docker/{self.name}.Dockerfile"

    @property
    def requirements(self) -> str:
        return f"docker/requirements-{self.name}.txt"


@dataclass(frozen=True)
class ModelSpec:
    """A method: what it is, which image runs it, which modalities it accepts."""

    name: str
    summary: str
    params: type[MethodParams]
    image: ImageSpec
    #: Modality kinds the method can model.
    accepts: frozenset[str] = frozenset({"rna", "atac", "adt"})
    #: The input must hold at least one modality of these kinds (empty: no such rule).
    requires_any: frozenset[str] = frozenset()
    #: A control (random or label-derived embedding) rather than a real method.
    control: bool = False

    @property
    def entrypoint(self) -> list[str] | None:
        """Controls run on another method's image, so name the method explicitly."""
        return ["python", "-m", "multiverse_methods", self.name] if self.control else None

    def check_modalities(self, kinds: dict[str, str]) -> str | None:
        """Why this method cannot run on modalities of these kinds, or None if it can."""
        refused = sorted(f"{name} ({kind})" for name, kind in kinds.items() if kind not in self.accepts)
        if refused:
            return (
                f"{self.name} does not model {', '.join(refused)}; "
                f"it accepts {', '.join(sorted(self.accepts))}"
            )
        if self.requires_any and not self.requires_any & set(kinds.values()):
            return f"{self.name} needs a modality of kind {' or '.join(sorted(self.requires_any))}"
        return None


SCVERSE_BASE = ImageSpec("scverse-base")
PCA_IMAGE = ImageSpec("pca", base="scverse-base")

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "pca",
            "PCA of per-modality normalised, balanced features (scanpy); the baseline.",
            PcaParams,
            PCA_IMAGE,
        ),
        ModelSpec(
            "mofa",
            "MOFA+ factor analysis with per-modality likelihoods (mofapy2).",
            MofaParams,
            ImageSpec("mofa", base="scverse-base"),
        ),
        ModelSpec(
            "multivi",
            "MultiVI deep generative model of paired counts (scvi-tools, CPU torch).",
            MultiviParams,
            ImageSpec("multivi", base="scverse-base"),
            requires_any=frozenset({"rna", "atac"}),
        ),
        ModelSpec(
            "mowgli",
            "Mowgli integrative NMF with optimal transport (mowgli, torch<2 stack).",
            MowgliParams,
            ImageSpec("mowgli"),
        ),
        ModelSpec(
            "cobolt",
            "Cobolt multimodal topic model (Gong et al. 2021), reimplemented in PyTorch.",
            CoboltParams,
            ImageSpec("cobolt", base="scverse-base"),
        ),
        ModelSpec(
            "control_random",
            "Control: a random Gaussian embedding (the floor).",
            RandomControlParams,
            PCA_IMAGE,
            control=True,
        ),
        ModelSpec(
            "control_labels",
            "Control: one-hot cell-type labels plus noise (the ceiling).",
            LabelControlParams,
            PCA_IMAGE,
            control=True,
        ),
    )
}

#: The evaluation image (scib-metrics; ``python -m multiverse_methods.evaluate``): not a model.
METRICS_IMAGE = ImageSpec("metrics", base="scverse-base")
#: Images that belong to no model; ``multiverse build NAME`` builds one, ``multiverse build`` all.
EXTRA_IMAGES: dict[str, ImageSpec] = {METRICS_IMAGE.name: METRICS_IMAGE}

IMAGES: dict[str, ImageSpec] = (
    {SCVERSE_BASE.name: SCVERSE_BASE}
    | {spec.image.name: spec.image for spec in MODELS.values()}
    | EXTRA_IMAGES
)


def images_for(models: list[ModelSpec], extra: list[ImageSpec] = ()) -> list[ImageSpec]:
    """The images these models (and the ``extra`` images) need, bases before the images built on them."""
    ordered: list[ImageSpec] = []

    def add(image: ImageSpec) -> None:
        if image.base:
            add(IMAGES[image.base])
        if image not in ordered:
            ordered.append(image)

    for model in models:
        add(model.image)
    for image in extra:
        add(image)
    return ordered
