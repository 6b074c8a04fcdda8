"""The container contract, as constants both sides agree on.

Standard library only: the host orchestrator imports this module, and so does
the code inside every method image. ``docs/MODEL_CONTAINERS.md`` explains it.
"""

#: Bumped whenever the contract changes in a way that invalidates old results.
#: 2: ``--counts`` says where each modality's raw counts are; the container stops itself at its deadline.
CONTRACT_VERSION = 2

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
#: The container stopped itself at its own deadline (``DEADLINE_ENV``), as coreutils' timeout does.
EXIT_TIMEOUT = 124

#: Environment variable: seconds after start at which the container stops itself (a second line
#: behind the runner's own deadline, for when the runner is gone).
DEADLINE_ENV = "MULTIVERSE_DEADLINE_S"
#: Environment variable: the threads a method should use (its CPU share).
THREADS_ENV = "MULTIVERSE_THREADS"

#: Where a modality's raw counts are, as ``--counts`` says: a layer, the raw slot, or X itself.
COUNTS_LAYER_PREFIX = "layers/"
COUNTS_RAW = "raw/X"
COUNTS_X = "X"

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
