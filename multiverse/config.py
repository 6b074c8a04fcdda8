"""runner_config.yaml: its schema, loading, and validation.

Every problem is reported as one :class:`ConfigError` naming the file and the
key, before anything is started. Relative paths in the file are relative to
the file's folder; paths given on the command line are relative to the
working directory.
"""

from __future__ import annotations

import dataclasses
import difflib
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
RESERVED_NAMES = ("report", "manifest.json", "embeddings.h5ad", "embeddings.h5mu")
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

    timeout: Optional[float] = 3600.0
    memory: Optional[int] = 8 * 1024**3
    cpus: Optional[float] = None  # None: the host's CPUs shared equally among parallel jobs
    pids: Optional[int] = 4096
    gpus: Optional[int] = 0
    seed: int = Field(0, ge=0)


class ModelSettings(Limits):
    #: The method this entry runs; defaults to the entry's name. Naming entries lets
    #: one config compare settings of one method, e.g. pca_10 and pca_50.
    method: Optional[str] = None
    params: dict[str, Any] = Field(default_factory=dict)


class Labels(_Strict):
    cell_type: Optional[str] = "cell_type"
    batch: Optional[str] = "batch"


class RunnerConfig(_Strict):
    input: Optional[Path] = None
    output: Path = Path("results")
    models: dict[str, Optional[ModelSettings]] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    jobs: int = Field(1, ge=1)
    #: Modality name -> kind, for names multiverse does not recognise.
    modalities: dict[str, Literal["rna", "atac", "adt"]] = Field(default_factory=dict)
    labels: Labels = Field(default_factory=Labels)
    #: Evaluate the results and write <output>/report/report.html at the end of a run.
    report: bool = False


class ModelConfig(BaseModel):
    """One model entry, fully resolved: its method, effective parameters and limits."""

    name: str  # the entry's name, also its output folder
    spec: Any  # Method of the method
    params: dict[str, Any]
    limits: Limits


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
    if config.input is not None and not config.input.is_absolute():
        config.input = base / config.input
    if not config.output.is_absolute():
        config.output = base / config.output
    return config


def load_config(
    path: Optional[Path],
    *,
    models: Optional[list[str]] = None,
    input: Optional[Path] = None,
    output: Optional[Path] = None,
    jobs: Optional[int] = None,
    catalog: dict[str, Method] = METHODS,
) -> tuple[RunnerConfig, list[ModelConfig]]:
    """The config file (if any) with command-line overrides, and every model resolved.

    ``path`` None means: use ./runner_config.yaml when it exists, else built-in defaults.
    """
    if path is None:
        path = DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None
    config = read_config_file(path) if path else RunnerConfig()
    source = str(path) if path else "command line"
    if input is not None:
        config.input = input
    if output is not None:
        config.output = output
    if jobs is not None:
        if jobs < 1:
            raise ConfigError("--jobs must be at least 1")
        config.jobs = jobs

    selected = list(models) if models else list(config.models)
    if not selected:
        raise ConfigError(f"{source}: no models to run; name them with --models or under 'models:'")
    if len(set(selected)) != len(selected):
        raise ConfigError(f"{source}: a model is named twice in {selected}")
    resolved = [_resolve_model(name, config, catalog, source) for name in selected]
    return config, resolved


def _check_entry_name(name: str, source: str) -> None:
    """An entry's name becomes its output folder: it must stay inside the output root."""
    if name in RESERVED_NAMES:
        raise ConfigError(f"{source}: '{name}' is reserved for multiverse's own output; name the model otherwise")
    if not _ENTRY_NAME.match(name) or name in (".", ".."):
        raise ConfigError(
            f"{source}: model name {name!r} cannot be an output folder name: use letters, digits, "
            "'_', '-' and '.', with no '/' (results must stay inside the output folder)"
        )


def _resolve_model(name: str, config: RunnerConfig, catalog: dict[str, Method], source: str) -> ModelConfig:
    _check_entry_name(name, source)
    settings = config.models.get(name) or ModelSettings()
    method = settings.method or name
    if method not in catalog:
        raise _unknown_model(method, source)
    spec = catalog[method]
    params = spec.params.resolve({"seed": config.defaults.seed, **settings.params})
    if "label_key" in {f.name for f in dataclasses.fields(spec.params)} and "label_key" not in params:
        params["label_key"] = config.labels.cell_type
    try:
        effective = TypeAdapter(spec.params).validate_python(params)
    except ValidationError as exc:
        known = ", ".join(f.name for f in dataclasses.fields(spec.params))
        raise ConfigError(
            _describe(exc, source, ("models", name, "params")) + f"\n({name} parameters: {known})"
        ) from None
    limits = {
        key: getattr(settings, key) if getattr(settings, key) is not None else getattr(config.defaults, key)
        for key in Limits.model_fields
    }
    if limits["cpus"] is None:
        limits["cpus"] = float(max(1, (os.cpu_count() or 1) // config.jobs))
    if getattr(effective, "accelerator", "cpu") == "gpu" and not limits["gpus"]:
        raise ConfigError(f"{source}: models.{name}: accelerator is gpu, so also set 'gpus: 1' (or more) for it")
    return ModelConfig(name=name, spec=spec, params=effective.to_dict(), limits=Limits(**limits))
