"""runner_config.yaml: its schema, loading, and validation.

Every problem is reported as one :class:`ConfigError` naming the file and the
key, before anything is started. Relative paths in the file are relative to
the file's folder; paths given on the command line are relative to the
working directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from multiverse.catalog import METHODS, Method
from multiverse.errors import ConfigError

DEFAULT_CONFIG = Path("runner_config.yaml")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
#: Names of multiverse's own files and folders in the output root and the report folder.
RESERVED_NAMES = ("report", "manifest.json", "embeddings.h5ad", "embeddings.h5mu", "scores.json", "report.html",
                  "overall.json", "overall.csv", "stability.json", "stability.csv", "summary.png")
_ENTRY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$", re.IGNORECASE)


def parse_size(value: Union[int, str]) -> int:
    """Bytes in ``8g``, ``512m``, ``8GiB`` or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 8g or 512m")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size such as 8g or 512m")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** "bkmgt".index(unit or "b"))


def parse_duration(value: Union[int, float, str]) -> float:
    """Seconds in ``90``, ``90s``, ``30m`` or ``2h``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 600, 30m or 2h")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration such as 600, 30m or 2h")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[(match.group(2) or "s").lower()]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(_Strict):
    """Resources of one model's container. Unset fields fall back to ``defaults``."""

    timeout: Optional[float] = Field(None, description="seconds before the container is killed")
    memory: Optional[int] = Field(None, description="memory limit in bytes (config: 8g, 512m)")
    cpus: Optional[float] = Field(None, gt=0, description="CPUs the container may use")
    pids: Optional[int] = Field(None, gt=0, description="processes/threads the container may start")
    gpus: Optional[int] = Field(None, ge=0, description="GPUs to request (0: none)")

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value):
        return None if value is None else parse_duration(value)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value):
        return None if value is None else parse_size(value)

    @field_validator("timeout", "memory")
    @classmethod
    def _positive(cls, value):
        if value is not None and value <= 0:
            raise ValueError("must be positive")
        return value


class Defaults(Limits):
    """Limits and seed applied to every model unless the model overrides them."""

    timeout: Optional[float] = 7200.0  # 2 h, as runner_config.yaml: MOFA+ and the deep models on large data need it
    memory: Optional[int] = 8 * 1024**3
    cpus: Optional[float] = None  # None: the host's CPUs shared equally among parallel jobs
    pids: Optional[int] = 4096
    gpus: Optional[int] = 0
    seed: int = Field(0, ge=0)


class EntrySettings(Limits):
    #: The method this entry runs; defaults to the entry's name. Naming entries lets
    #: one config compare settings of one method, e.g. pca_10 and pca_50.
    method: Optional[str] = None
    #: A user's own method image that follows docs/MODEL_CONTAINERS.md (e.g. lab/mymethod:1.2);
    #: its parameters are passed through as given.
    image: Optional[str] = None
    #: Parameters; a list where the parameter takes one value is a grid (one entry per value).
    params: dict[str, Any] = Field(default_factory=dict)
    #: Seeds of this entry (default: the top-level ``seeds``, else ``defaults.seed``).
    seeds: Optional[list[int]] = None

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value):
        if value is not None and (not value or any(s < 0 for s in value) or len(set(value)) != len(value)):
            raise ValueError("must be a non-empty list of distinct seeds >= 0")
        return value


class Labels(_Strict):
    """obs columns with each cell's type and batch. The batch column is also the one every method
    that corrects for batch is given (unless a model sets its own ``batch_key``)."""

    cell_type: Optional[str] = "cell_type"
    batch: Optional[str] = "batch"

    def explicit(self) -> dict[str, str]:
        """The columns the user named (a missing one is an error), as opposed to the defaults."""
        return {role: getattr(self, role) for role in self.model_fields_set if getattr(self, role)}


Kind = Literal["rna", "atac", "adt"]
CountsLayer = Union[str, dict[str, str], None]


class DatasetSettings(_Strict):
    """One input of a campaign, with what differs from the top-level settings."""

    path: Path
    labels: Optional[Labels] = None
    modalities: dict[str, Kind] = Field(default_factory=dict)
    counts_layer: CountsLayer = None


class EvaluationSettings(Limits):
    """The evaluation container's limits and seed (``multiverse report`` and ``run --report``)."""

    timeout: Optional[float] = 3600.0
    memory: Optional[int] = 8 * 1024**3
    cpus: Optional[float] = None  # None: every CPU of the host
    pids: Optional[int] = 4096
    gpus: Optional[int] = 0
    seed: int = Field(0, ge=0)


class SlurmSettings(_Strict):
    """``backend: slurm``: each model becomes one Slurm job (docs/CLUSTER.md)."""

    partition: Optional[str] = None
    account: Optional[str] = None
    #: More sbatch options, as on its command line (e.g. ["--qos=short"]); they override multiverse's.
    options: list[str] = Field(default_factory=list)
    #: The container engine on the nodes, and its API address there (default: its usual socket).
    engine: Literal["docker", "podman"] = "docker"
    engine_url: Optional[str] = None
    #: Image archives on shared storage (multiverse images save DIR): nodes lacking an image load it.
    images: Optional[Path] = None
    #: The Python that has multiverse installed, as the nodes see it (default: the one running multiverse).
    python: Optional[str] = None
    #: Seconds between two looks at the queue (one squeue call for all jobs).
    poll: float = Field(2.0, gt=0)


class RunnerConfig(_Strict):
    #: One input file; or several under ``datasets:`` (a campaign).
    input: Optional[Path] = None
    #: Dataset name -> its file, or a mapping with the file and what differs for it.
    datasets: dict[str, Union[Path, DatasetSettings]] = Field(default_factory=dict)
    output: Path = Path("results")
    models: dict[str, Optional[EntrySettings]] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    #: Every model is run once per seed (a model's own ``seeds`` win).
    seeds: Optional[list[int]] = None
    jobs: int = Field(1, ge=1)
    #: Modality name (or feature type) -> kind, for names multiverse does not recognise.
    modalities: dict[str, Kind] = Field(default_factory=dict)
    labels: Labels = Field(default_factory=Labels)
    #: Where the raw counts are when not in layers["counts"]: a layer's name (or "raw", "X") for
    #: every modality, or a mapping modality -> layer.
    counts_layer: CountsLayer = None
    #: Evaluate the results and write <output>/report/report.html at the end of a run.
    report: bool = False
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    #: Where the containers run: this machine's Docker or Podman, or Slurm jobs (the ``slurm:`` section).
    backend: Literal["docker", "podman", "slurm"] = "docker"
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value):
        return EntrySettings._seeds(value)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One input of the run, resolved: its file and the labels, kinds and counts layer that apply to it."""

    name: str
    path: Path
    labels: Labels
    modalities: dict
    counts_layer: CountsLayer


class Entry(BaseModel):
    """One model entry (one grid point), resolved: its method, parameters, seeds and limits."""

    name: str  # the entry's name (with its grid point, e.g. multivi[n_latent=20]): a folder name
    spec: Any  # the registry's Method
    #: Parameters as the user gave them (the grid point applied), before labels and seed are added.
    raw_params: dict[str, Any]
    #: The effective parameters with the top-level labels and the first seed (each job re-resolves).
    params: dict[str, Any]
    limits: Limits
    seeds: list[int]
    #: The grid point this entry is (empty when the entry has no grid).
    grid: dict[str, Any] = Field(default_factory=dict)
    #: The entry's name in the config (without its grid point).
    base: str = ""

    @property
    def external(self) -> bool:
        return self.spec.params is None

    def resolve(self, labels: Labels, seed: int, source: str = "config") -> tuple[dict, dict]:
        """(effective parameters, obs columns they name that must exist) for one dataset's labels and a seed."""
        params = {**self.raw_params, "seed": seed}
        if self.external:
            return params, {}
        params = self.spec.params.resolve(params)  # a preset fills what the user did not set
        fields = {f.name for f in dataclasses.fields(self.spec.params)}
        # One batch, one label: the run's columns reach every method that takes them, unless the entry sets its own.
        for param, role in LABEL_PARAMS.items():
            if param in fields and param not in params:
                params[param] = getattr(labels, role)
        try:
            resolved = TypeAdapter(self.spec.params).validate_python(params).to_dict()
        except ValidationError as exc:
            known = ", ".join(f.name for f in dataclasses.fields(self.spec.params))
            raise ConfigError(
                _describe(exc, source, ("models", self.base or self.name, "params")) + f"\n({self.base or self.name} parameters: {known})"
            ) from None
        columns = {
            param: resolved[param]
            for param in LABEL_PARAMS
            if resolved.get(param) and (param in self.raw_params or LABEL_PARAMS[param] in labels.model_fields_set)
        }
        return resolved, columns


def _where(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _describe(error: ValidationError, source: str, prefix: tuple = ()) -> str:
    lines = []
    for item in error.errors():
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            msg = "unknown key"
        lines.append(f"{source}: {_where(prefix + tuple(item['loc']))}: {msg}")
    return "\n".join(lines)


def _unknown_model(name: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(name, METHODS, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"{source}: unknown model '{name}' (known: {', '.join(METHODS)}).{hint}")


def read_config_file(path: Path) -> RunnerConfig:
    """Parse and validate a runner config file; relative paths become relative to its folder."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (input, output, models, ...)")
    try:
        config = RunnerConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path))) from None
    base = path.parent

    def near(target: Path) -> Path:
        """A path relative to the config file's folder, written without ../ detours."""
        return target if target.is_absolute() else Path(os.path.normpath(base / target))

    if config.input is not None:
        config.input = near(config.input)
    config.output = near(config.output)
    for name, dataset in config.datasets.items():
        if isinstance(dataset, DatasetSettings):
            dataset.path = near(dataset.path)
        else:
            config.datasets[name] = near(Path(dataset))
    if config.slurm.images is not None and not config.slurm.images.is_absolute():
        config.slurm.images = base / config.slurm.images
    return config


def load_config(
    path: Optional[Path],
    *,
    models: Optional[list[str]] = None,
    input: Optional[Path] = None,
    output: Optional[Path] = None,
    jobs: Optional[int] = None,
    catalog: dict[str, Method] = METHODS,
) -> tuple[RunnerConfig, list[Entry]]:
    """The config file (if any) with command-line overrides, and every model entry resolved
    (grids expanded). Every problem is reported at once.

    ``path`` None means: use ./runner_config.yaml when it exists, else built-in defaults.
    """
    if path is None:
        path = DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None
    config = read_config_file(path) if path else RunnerConfig()
    source = str(path) if path else "command line"
    if input is not None:
        config.input = input
        config.datasets = {}  # --input names the one file of this run
    if output is not None:
        config.output = output
    if jobs is not None:
        if jobs < 1:
            raise ConfigError("--jobs must be at least 1")
        config.jobs = jobs
    if config.input is not None and config.datasets:
        raise ConfigError(f"{source}: give either 'input:' (one file) or 'datasets:' (several), not both")

    selected = list(models) if models else list(config.models)
    if not selected:
        raise ConfigError(f"{source}: no models to run; name them with --models or under 'models:'")
    if len(set(selected)) != len(selected):
        raise ConfigError(f"{source}: a model is named twice in {selected}")
    entries, problems = [], []
    for name in selected:
        try:
            entries += _resolve_model(name, config, catalog, source)
        except ConfigError as exc:
            problems.append(exc.message)
    for name in _dataset_names(config):
        try:
            _check_folder_name(name, source, "dataset")
        except ConfigError as exc:
            problems.append(exc.message)
    if problems:
        raise ConfigError("\n".join(problems))
    return config, entries


def _dataset_names(config: RunnerConfig) -> list[str]:
    return list(config.datasets)


def dataset_name_of(path: Path) -> str:
    """The dataset name of a single input file: its stem, made a safe folder name."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem) or "input"
    return name if name not in RESERVED_NAMES and not name.startswith(".") else f"data_{name}"


def datasets_of(config: RunnerConfig) -> list[Dataset]:
    """Every input of the run with the settings that apply to it (a dataset's own win)."""
    if config.input is not None:
        return [Dataset(dataset_name_of(config.input), Path(config.input), config.labels,
                        dict(config.modalities), config.counts_layer)]
    datasets = []
    for name, value in config.datasets.items():
        own = value if isinstance(value, DatasetSettings) else DatasetSettings(path=value)
        labels = config.labels
        if own.labels is not None:
            fields = config.labels.model_dump() | {k: getattr(own.labels, k) for k in own.labels.model_fields_set}
            labels = Labels(**fields)  # every column given here counts as named by the user
        datasets.append(Dataset(name, own.path, labels, {**config.modalities, **own.modalities},
                                own.counts_layer if own.counts_layer is not None else config.counts_layer))
    return datasets


def _check_folder_name(name: str, source: str, what: str = "model") -> None:
    """An entry's (or dataset's) name becomes a folder: it must stay inside the output root."""
    if name in RESERVED_NAMES:
        raise ConfigError(f"{source}: '{name}' is reserved for multiverse's own output; name the {what} otherwise")
    if not _ENTRY_NAME.match(name) or name in (".", ".."):
        raise ConfigError(
            f"{source}: {what} name {name!r} cannot be a folder name: use letters, digits, "
            "'_', '-' and '.', with no '/' (results must stay inside the output folder)"
        )


#: Parameters that name an obs column, and the label each falls back to.
LABEL_PARAMS = {"label_key": "cell_type", "batch_key": "batch"}


def _list_typed(params_class, name: str) -> bool:
    """Whether a parameter takes a list itself (then only a list of lists is a grid)."""
    import typing

    hint = typing.get_type_hints(params_class).get(name)
    origins = {typing.get_origin(hint)} | {typing.get_origin(a) for a in typing.get_args(hint)}
    return bool(origins & {list, tuple})


def _grid_axes(spec: Method, params: dict) -> dict[str, list]:
    """Parameter -> its values, for every parameter given as a grid."""
    axes = {}
    for key, value in params.items():
        if not isinstance(value, list):
            continue
        if spec.params is not None and _list_typed(spec.params, key):
            if value and all(isinstance(v, list) for v in value):
                axes[key] = value
        else:
            axes[key] = value
    return axes


def _fmt_value(value) -> str:
    text = json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else str(value)
    return text.replace("/", "_")


def grid_name(base: str, point: dict) -> str:
    """``multivi[n_latent=20]``: the entry name of one grid point (keys sorted)."""
    return f"{base}[{','.join(f'{k}={_fmt_value(v)}' for k, v in sorted(point.items()))}]" if point else base


def external_method(name: str, image: str) -> Method:
    """A user's own image, run under the same contract and sandbox; its parameters are not checked."""
    return Method(name, f"the user's own method image {image}", None, image, control=False)


def _resolve_model(name: str, config: RunnerConfig, catalog: dict[str, Method], source: str) -> list[Entry]:
    _check_folder_name(name, source)
    settings = config.models.get(name) or EntrySettings()
    if settings.image:
        if settings.method:
            raise ConfigError(f"{source}: models.{name}: give either 'method:' or 'image:', not both")
        spec = external_method(name, settings.image)
    else:
        method = settings.method or name
        if method not in catalog:
            raise _unknown_model(method, source)
        spec = catalog[method]
    if "seed" in settings.params and (settings.seeds or config.seeds):
        raise ConfigError(f"{source}: models.{name}: set the seed in 'seeds:' or in 'params:', not both")
    seeds = settings.seeds or config.seeds or [int(settings.params.get("seed", config.defaults.seed))]
    raw = {k: v for k, v in settings.params.items() if k != "seed"}
    limits = {
        key: getattr(settings, key) if getattr(settings, key) is not None else getattr(config.defaults, key)
        for key in Limits.model_fields
    }
    if limits["cpus"] is None:
        limits["cpus"] = float(max(1, (os.cpu_count() or 1) // config.jobs))
    if limits["gpus"] and not spec.gpu:
        raise ConfigError(
            f"{source}: models.{name}: {spec.name} runs on the CPU only in its image (no GPU build of its "
            f"libraries is shipped), so it cannot use 'gpus: {limits['gpus']}'; set gpus: 0 for it"
        )
    axes = _grid_axes(spec, raw)
    points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())] if axes else [{}]
    entries = []
    for point in points:
        entry = Entry(name=grid_name(name, point), spec=spec, raw_params={**raw, **point}, params={},
                      limits=Limits(**limits), seeds=seeds, grid=point, base=name)
        entry.params, _ = entry.resolve(config.labels, seeds[0], source)
        entries.append(entry)
    return entries
