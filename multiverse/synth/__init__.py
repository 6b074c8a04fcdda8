"""Synthetic paired data at any size, fitted to a real dataset (``multiverse synth --cells/--preset``).

``model`` fits the reference, ``sample`` draws counts for any number of
features, ``writer`` streams them into an .h5mu, ``generate`` ties them
together and ``presets`` names sizes and default references. The small toy
dataset of the tests is ``multiverse.synthetic``. Nothing is imported here,
so the command line can read the presets without loading numpy or anndata.
"""
