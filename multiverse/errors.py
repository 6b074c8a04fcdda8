"""Every error multiverse raises, under one root.

The CLI catches :class:`MultiverseError` once, prints its message and exits
with its ``exit_code``:

- ``UsageError`` (exit 2): the config or the input is wrong; nothing was started.
    - ``ConfigError``: runner_config.yaml or a flag is invalid.
    - ``InputError``: the input file is missing, unreadable or unsuitable.
- ``InfrastructureError`` (exit 3): the Docker engine or an image is not usable.
    - ``EngineUnavailable``: no Docker engine answers.
    - ``ImageMissing``: a method's image is not built (multiverse never pulls it).
- ``BuildError`` (exit 1): building an image or its wheelhouse failed.
- ``Interrupted`` (exit 130): the user stopped the run (Ctrl-C, SIGTERM, SIGHUP)
  before any model started, e.g. while an input was being converted.

A model that fails while the run goes on is not an exception: it is a
``JobResult`` with a failure status, and ``multiverse run`` exits 1.
"""

from __future__ import annotations


class MultiverseError(Exception):
    """Root of every error multiverse raises on purpose."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UsageError(MultiverseError):
    """The user's config or input is wrong; nothing has been started."""

    exit_code = 2


class ConfigError(UsageError):
    """runner_config.yaml or a command-line flag is invalid."""


class InputError(UsageError):
    """The input data cannot be used."""


class InfrastructureError(MultiverseError):
    """The container engine or an image is not usable."""

    exit_code = 3


class EngineUnavailable(InfrastructureError):
    """No Docker engine answers."""


class ImageMissing(InfrastructureError):
    """A method's image has not been built."""


class BuildError(MultiverseError):
    """Building an image or its wheelhouse failed."""


class Interrupted(MultiverseError):
    """The user stopped the run before any model started (e.g. while converting an input)."""

    exit_code = 130
