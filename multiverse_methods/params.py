"""Every method's parameters, their defaults and their limits.

The host validates a user's config against these classes before any container
starts (through pydantic), and the code inside each image builds the same class
from the JSON it is given; ``registry.py`` says which method takes which.
Standard library only, so the host can import it without the methods' heavy
dependencies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar, Literal, Optional

#: Read by pydantic when the host validates a config: unknown keys are errors.
_FORBID_EXTRA = {"extra": "forbid"}


def _require(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{name} {message}")


@dataclass
class MethodParams:
    """Parameters every method takes."""

    __pydantic_config__ = _FORBID_EXTRA

    #: Named sets of values for the fields a user leaves unset. "default" is the
    #: dataclass defaults themselves (the authors' recipe); a method may add others,
    #: e.g. "fast" for smoke tests and quick looks. Resolved on the host (``resolve``).
    PRESETS: ClassVar[dict[str, dict]] = {"default": {}}

    #: Random seed: the same seed on the same input gives the same embedding.
    seed: int = 0
    #: Which preset filled the parameters not set explicitly (see PRESETS).
    preset: str = "default"

    def __post_init__(self) -> None:
        _require(self.seed >= 0, "seed", "must be >= 0")
        _require(
            self.preset in self.PRESETS,
            "preset",
            f"must be one of {', '.join(repr(p) for p in self.PRESETS)} (got {self.preset!r})",
        )

    @classmethod
    def resolve(cls, raw: dict) -> dict:
        """The user's parameters with the chosen preset's values for every field left unset.

        An explicit value always wins over the preset. An unknown preset name is left
        in place for validation to reject with the list of known ones.
        """
        return {**cls.PRESETS.get(raw.get("preset", "default"), {}), **raw}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_docs(cls) -> dict[str, object]:
        """Default value of every parameter, for `multiverse models --params`."""
        return {f.name: getattr(cls(), f.name) for f in fields(cls)}


@dataclass
class PcaParams(MethodParams):
    """PCA on the concatenated, per-modality normalised and balanced features."""

    #: Number of principal components kept as the embedding.
    n_components: int = 30
    #: Genes of highest dispersion kept for RNA (0 keeps all genes).
    n_top_genes: int = 2000
    #: Most frequently open peaks kept for ATAC (0 keeps all peaks).
    n_top_peaks: int = 20000
    #: "balanced": every modality contributes the same total variance;
    #: "none": features are concatenated as they are after scaling.
    weighting: Literal["balanced", "none"] = "balanced"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(2 <= self.n_components <= 500, "n_components", "must be between 2 and 500")
        _require(self.n_top_genes >= 0, "n_top_genes", "must be >= 0 (0 keeps all)")
        _require(self.n_top_peaks >= 0, "n_top_peaks", "must be >= 0 (0 keeps all)")


@dataclass
class MofaParams(MethodParams):
    """MOFA+ (mofapy2): a factor model with one likelihood per modality.

    Training options are mofapy2's ``entry_point`` defaults (10 factors, at most
    1000 iterations, "fast" convergence, no view scaling).
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        "default": {},
        #: A rough look in seconds: a tenth of the iterations, and fewer features.
        "fast": {"max_iter": 100, "n_top_genes": 500, "n_top_peaks": 1000},
    }

    #: Number of latent factors.
    n_factors: int = 10
    #: Upper bound on training iterations (training stops earlier on convergence).
    max_iter: int = 1000
    #: mofapy2's convergence criterion: "fast", "medium" or "slow".
    convergence_mode: Literal["fast", "medium", "slow"] = "fast"
    #: Likelihood of each modality kind (gaussian, mofapy2's default, on RNA
    #: log-normalised, ATAC TF-IDF, ADT CLR); poisson on RNA counts; bernoulli on
    #: binarised ATAC (it lost the ATAC-only cell types of the synthetic data).
    likelihood_rna: Literal["gaussian", "poisson"] = "gaussian"
    likelihood_atac: Literal["gaussian", "bernoulli"] = "gaussian"
    likelihood_adt: Literal["gaussian"] = "gaussian"
    #: Genes of highest dispersion kept for RNA (0 keeps all).
    n_top_genes: int = 2000
    #: Most frequently open peaks kept for ATAC (0 keeps all).
    n_top_peaks: int = 5000
    #: Scale every view to unit variance (mofapy2's scale_views; its default and
    #: muon's are False).
    scale_views: bool = False
    #: Train in float32 (mofapy2's use_float32, "to decrease memory usage and improve
    #: speed"; its default is False). null: float32 from FLOAT32_FROM_CELLS cells on,
    #: float64 (mofapy2's default) below.
    use_float32: Optional[bool] = None

    #: Cells from which ``use_float32: null`` means float32 (multiverse's rule, not mofapy2's).
    FLOAT32_FROM_CELLS: ClassVar[int] = 20_000

    def float32_for(self, n_cells: int) -> bool:
        return self.use_float32 if self.use_float32 is not None else n_cells >= self.FLOAT32_FROM_CELLS

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(1 <= self.n_factors <= 100, "n_factors", "must be between 1 and 100")
        _require(self.max_iter >= 1, "max_iter", "must be >= 1")
        _require(self.n_top_genes >= 0, "n_top_genes", "must be >= 0 (0 keeps all)")
        _require(self.n_top_peaks >= 0, "n_top_peaks", "must be >= 0 (0 keeps all)")


@dataclass
class MultiviParams(MethodParams):
    """MultiVI (scvi-tools 1.4) on raw counts; training as ``MULTIVI.train``'s defaults.

    Runs on the CPU only: the image holds the CPU build of torch.
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        "default": {},
        #: A rough look in a minute or two: 20 epochs at a ten times larger learning rate.
        "fast": {"max_epochs": 20, "lr": 1e-3, "early_stopping": False},
    }

    #: Dimension of the latent space; null: scvi-tools' default, the square root of
    #: the hidden layer width, itself min(128, sqrt(number of peaks, else of genes))
    #: (4 on the 600-peak multiome starter file, 11 with 14,641 peaks or more).
    n_latent: Optional[int] = None
    #: Upper bound on training epochs (scvi-tools' default for MultiVI: 500; early
    #: stopping may stop sooner).
    max_epochs: int = 500
    #: Learning rate of the AdamW optimiser (scvi-tools' default for MultiVI).
    lr: float = 1e-4
    #: Stop when the validation reconstruction loss has not improved for 50 epochs
    #: (scvi-tools' default for MultiVI).
    early_stopping: bool = True
    #: obs column with the batch of each cell; ignored when absent from the input.
    batch_key: Optional[str] = "batch"
    #: Keep features detected in at least this fraction of cells (1 %, as in the
    #: MultiVI tutorial).
    min_cells_fraction: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.n_latent is None or 2 <= self.n_latent <= 200, "n_latent", "must be null or between 2 and 200")
        _require(self.max_epochs >= 1, "max_epochs", "must be >= 1")
        _require(0 < self.lr < 1, "lr", "must be between 0 and 1")
        _require(0 <= self.min_cells_fraction < 1, "min_cells_fraction", "must be in [0, 1)")


@dataclass
class MowgliParams(MethodParams):
    """Mowgli: integrative NMF with optimal transport (cantinilab `mowgli` 0.4.0).

    Defaults are Mowgli's own (``MowgliModel`` and ``MowgliModel.train``), with the
    latent dimension of its README and the feature counts of its PBMC vignette.
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        "default": {},
        #: Smoke tests and quick looks: a fifth of the inner LBFGS steps, at most 20
        #: outer iterations and fewer features; see docs/METHODS.md for what it costs.
        "fast": {"max_iter_inner": 200, "max_iter_outer": 20, "n_top_genes": 300, "n_top_peaks": 300},
    }

    #: Number of latent dimensions (columns of W); 15 as in Mowgli's README.
    latent_dim: int = 15
    #: Outer iterations of the alternating optimisation of W and H (Mowgli: 100).
    #: Training stops earlier when the loss settles (tol_outer) or rises again.
    max_iter_outer: int = 100
    #: LBFGS steps of each inner optimisation, one for W and one for H per outer
    #: iteration (Mowgli: 1000).
    max_iter_inner: int = 1000
    #: Entropic regularisation of the optimal transport problems.
    eps: float = 0.05
    #: Entropic regularisation of the dictionaries H, per modality kind
    #: (Mowgli's defaults: RNA and ADT 0.01, ATAC 0.1).
    h_regularization_rna: float = 0.01
    h_regularization_atac: float = 0.1
    h_regularization_adt: float = 0.01
    #: Entropic regularisation of the embedding W.
    w_regularization: float = 0.001
    #: Ground cost between features (a scipy cdist metric).
    cost: Literal["cosine", "correlation", "euclidean"] = "cosine"
    #: Highly variable genes (scanpy, flavour "seurat") kept for RNA (0 keeps all); the
    #: cost of every LBFGS step grows with the square of the features kept (800 as in
    #: Mowgli's PBMC vignette).
    n_top_genes: int = 800
    #: Highly variable peaks kept for ATAC (0 keeps all; 800 as in that vignette).
    n_top_peaks: int = 800
    #: Tolerance on the change of the loss between outer iterations.
    tol_outer: float = 1e-4
    #: Tolerance on the change of the loss within an inner optimisation.
    tol_inner: float = 1e-12

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(2 <= self.latent_dim <= 200, "latent_dim", "must be between 2 and 200")
        _require(self.max_iter_outer >= 1, "max_iter_outer", "must be >= 1")
        _require(self.max_iter_inner >= 1, "max_iter_inner", "must be >= 1")
        _require(self.eps > 0, "eps", "must be > 0")
        for kind in ("rna", "atac", "adt"):
            name = f"h_regularization_{kind}"
            _require(getattr(self, name) > 0, name, "must be > 0")
        _require(self.w_regularization > 0, "w_regularization", "must be > 0")
        _require(self.n_top_genes >= 0, "n_top_genes", "must be >= 0 (0 keeps all)")
        _require(self.n_top_peaks >= 0, "n_top_peaks", "must be >= 0 (0 keeps all)")
        _require(self.tol_outer > 0, "tol_outer", "must be > 0")
        _require(self.tol_inner > 0, "tol_inner", "must be > 0")


@dataclass
class CoboltParams(MethodParams):
    """Cobolt (Gong, Zhou & Purdom 2021), reimplemented in PyTorch; defaults are the authors' tutorial settings."""

    #: Dimension K of the latent topic space (10 in the paper's tutorials).
    n_latent: int = 10
    #: Training epochs, each one pass per modality subset (100 in the paper's tutorials).
    n_epochs: int = 100
    #: Adam learning rate (0.005 in the paper's tutorials).
    lr: float = 0.005
    #: Mini-batch size (128, the authors' default).
    batch_size: int = 128
    #: Dirichlet prior concentration per topic; null means 50 / n_latent.
    alpha: Optional[float] = None
    #: Epochs over which the KL term is annealed from 0 to 1.
    annealing_epochs: int = 30
    #: Widths of the encoder's hidden layers.
    hidden_dims: list[int] = field(default_factory=lambda: [128, 64])
    #: obs column naming each cell's batch, Cobolt's "dataset" (per-batch decoder slope and intercept).
    batch_key: Optional[str] = "batch"
    #: Highly variable genes kept for RNA (0 keeps all).
    n_top_genes: int = 0
    #: Most frequently open peaks kept for ATAC (0 keeps all).
    n_top_peaks: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(2 <= self.n_latent <= 200, "n_latent", "must be between 2 and 200")
        _require(self.n_epochs >= 1, "n_epochs", "must be >= 1")
        _require(0 < self.lr < 1, "lr", "must be between 0 and 1")
        _require(self.batch_size >= 2, "batch_size", "must be >= 2")
        _require(self.alpha is None or self.alpha > 0, "alpha", "must be > 0")
        _require(self.annealing_epochs >= 0, "annealing_epochs", "must be >= 0")
        _require(
            len(self.hidden_dims) >= 1 and all(h >= 1 for h in self.hidden_dims),
            "hidden_dims",
            "must be a non-empty list of positive widths",
        )
        _require(self.n_top_genes >= 0, "n_top_genes", "must be >= 0 (0 keeps all)")
        _require(self.n_top_peaks >= 0, "n_top_peaks", "must be >= 0 (0 keeps all)")


@dataclass
class RandomControlParams(MethodParams):
    """Control: a random Gaussian embedding, the floor any method should beat."""

    #: Dimensions of the random embedding.
    n_dims: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(1 <= self.n_dims <= 500, "n_dims", "must be between 1 and 500")


@dataclass
class LabelControlParams(MethodParams):
    """Control: an embedding built from the cell-type labels themselves, the ceiling."""

    #: obs column with the cell types; null: the run's labels.cell_type.
    label_key: Optional[str] = None
    #: Standard deviation of the Gaussian noise added to the one-hot label code.
    noise: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.noise >= 0, "noise", "must be >= 0")

