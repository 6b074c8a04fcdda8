"""multiverse: run multimodal single-cell integration methods in their own containers."""

__version__ = "0.1.0"
