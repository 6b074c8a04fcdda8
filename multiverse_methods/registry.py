"""Every method multiverse knows, defined once: parameters, image, modalities, controls.

Standard library only: the host orchestrator reads it to validate configs and to
pick images, and the code inside every image reads it to build the parameters
from the JSON it is given. ``multiverse/catalog.py`` adds what only the host
needs (image tags, how images build on each other).
"""

from __future__ import annotations

from dataclasses import dataclass

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
from multiverse_methods.protocol import MODALITY_KINDS


@dataclass(frozen=True)
class Method:
    """A method: what it is, which image runs it, which modalities it accepts."""

    name: str
    summary: str
    params: type[MethodParams]
    #: The image that runs it: ``docker/<image>.Dockerfile`` (see multiverse/catalog.py).
    image: str
    #: Modality kinds the method can model.
    accepts: frozenset = frozenset(MODALITY_KINDS)
    #: The input must hold at least one modality of these kinds (empty: no such rule).
    requires_any: frozenset = frozenset()
    #: A control (random or label-derived embedding) rather than a real method.
    control: bool = False
    #: The entry point reads the input's matrices into memory before ``fit``. False for the
    #: controls (they need no values) and for the methods that read them block by block
    #: (``Dataset.matrix``): all but Mowgli.
    reads_matrices: bool = True
    #: The method can train on a GPU in its image. None can today: every image holds
    #: CPU builds of torch/jax, so a ``gpus:`` request is refused before start.
    gpu: bool = False

    @property
    def entrypoint(self) -> list[str] | None:
        """Controls run on another method's image, so they name the method explicitly."""
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


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("pca", "PCA of per-modality normalised, balanced features (scanpy); the baseline.", PcaParams, "pca",
               reads_matrices=False),
        Method("mofa", "MOFA+ factor analysis with per-modality likelihoods (mofapy2).", MofaParams, "mofa",
               reads_matrices=False),
        Method(
            "multivi",
            "MultiVI deep generative model of paired counts (scvi-tools, CPU torch).",
            MultiviParams,
            "multivi",
            requires_any=frozenset({"rna", "atac"}),
            reads_matrices=False,
        ),
        Method("mowgli", "Mowgli integrative NMF with optimal transport (mowgli, torch<2 stack).", MowgliParams, "mowgli"),
        Method(
            "cobolt",
            "Cobolt multimodal topic model (Gong et al. 2021), reimplemented in PyTorch.",
            CoboltParams,
            "cobolt",
            reads_matrices=False,
        ),
        Method("control_random", "Control: a random Gaussian embedding (the floor).", RandomControlParams, "pca",
               control=True, reads_matrices=False),
        Method(
            "control_labels",
            "Control: one-hot cell-type labels plus noise (the ceiling).",
            LabelControlParams,
            "pca",
            control=True,
            reads_matrices=False,
        ),
    )
}
