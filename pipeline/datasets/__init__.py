"""Readers of reID datasets: ``load(name, root, **options) -> ReidDataset``.

One small module per family; each registers its names with :func:`register`.
"""

from .base import DatasetError, ReidDataset, SPLITS
from .registry import REGISTRY, load, names, reader_options, register
from . import market1501, dukemtmcreid, cuhk03, msmt17, partial, custom, synth  # noqa: F401  (register)
from .cuhk03 import prepare_cuhk03

__all__ = ["DatasetError", "ReidDataset", "SPLITS", "REGISTRY", "load", "names", "register", "reader_options",
           "prepare_cuhk03"]
