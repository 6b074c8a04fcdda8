"""The input: checked on the host before anything starts (``inspect.py``), converted to .h5mu when the
file is a 10x matrix or a mixed-feature .h5ad (``convert.py``)."""

from multiverse.inputs.inspect import SUFFIXES, InputData, Modality, inspect_input, read_obs_names

__all__ = ["SUFFIXES", "InputData", "Modality", "inspect_input", "read_obs_names"]
