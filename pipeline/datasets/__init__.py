"""Readers of reID datasets: ``load(name, root, **options) -> ReidDataset``.

One small module per family; each registers its names with :func:`register`.
"""

from .base import DatasetError, ReidDataset, SPLITS
from .registry import REGISTRY, load, names, register, reader_options
from . import market1501, synth  # noqa: F401  (register the readers)

__all__ = ["DatasetError", "ReidDataset", "SPLITS", "REGISTRY", "load", "names", "register", "reader_options"]
