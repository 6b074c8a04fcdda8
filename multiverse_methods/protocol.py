"""The container contract, as constants both sides agree on.

Standard library only: the host orchestrator imports this module, and so does
the code inside every method image. ``docs/MODEL_CONTAINERS.md`` explains it.
"""

#: Bumped whenever the contract changes in a way that invalidates old results.
CONTRACT_VERSION = 1

#: The input file is mounted read-only inside this folder.
INPUT_DIR = "/data/input"
#: The model's own (staging) output folder, mounted writable.
OUTPUT_DIR = "/data/output"

EMBEDDINGS_FILE = "embeddings.h5ad"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.txt"
REQUIRED_OUTPUTS = (EMBEDDINGS_FILE, METRICS_FILE, LOG_FILE)

#: ``obsm`` key holding the embedding in ``embeddings.h5ad``.
EMBEDDING_KEY = "X_emb"
#: ``uns`` key holding the effective parameters in ``embeddings.h5ad``.
PARAMS_KEY = "multiverse_params"

#: Exit codes of the method container.
EXIT_OK = 0
EXIT_METHOD_ERROR = 1
#: The method cannot be applied to this input (e.g. a modality it does not model).
EXIT_NOT_APPLICABLE = 3
#: The parameters given to the container are invalid.
EXIT_BAD_PARAMS = 4

#: Modality kinds the methods know about.
MODALITY_KINDS = ("rna", "atac", "adt")

#: Lower-case modality names (as in ``mdata.mod``) and what kind they are.
MODALITY_ALIASES = {
    "rna": "rna",
    "gex": "rna",
    "gene expression": "rna",
    "expression": "rna",
    "atac": "atac",
    "peaks": "atac",
    "chromatin": "atac",
    "accessibility": "atac",
    "adt": "adt",
    "prot": "adt",
    "protein": "adt",
    "proteins": "adt",
    "antibody capture": "adt",
    "cite": "adt",
}


def modality_kind(name: str) -> str | None:
    """The kind (``rna``, ``atac`` or ``adt``) of a modality name, or None."""
    return MODALITY_ALIASES.get(name.strip().lower())
