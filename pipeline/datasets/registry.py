"""The registry of dataset readers: ``load(name, root, **options)`` and ``names()``."""

from dataclasses import dataclass
import inspect
import logging

from .. import paths
from .base import DatasetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    name: str
    reader: object  # reader(root, **options) -> ReidDataset
    fixed: dict  # options fixed by an alias (cuhk03_detected: variant="detected")
    stats: dict  # standard statistics: split -> (ids, images), plus "cameras"
    summary: str


REGISTRY = {}


def register(name, *, stats=None, summary="", **fixed):
    """Register ``reader`` under ``name``; ``fixed`` options make an alias (``cuhk03_labeled``)."""

    def decorate(reader):
        REGISTRY[name] = Entry(name, reader, fixed, stats or {}, summary or reader.__doc__.strip().splitlines()[0])
        return reader

    return decorate


def names():
    """Every registered dataset name, sorted."""
    return sorted(REGISTRY)


def entry(name):
    if name not in REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}: expected one of {', '.join(names())}")
    return REGISTRY[name]


def reader_options(name):
    """Option names the reader of ``name`` accepts (besides the root)."""
    e = entry(name)
    params = list(inspect.signature(e.reader).parameters)[1:]
    return [p for p in params if p not in e.fixed]


def load(name, root=None, **options):
    """Read dataset ``name`` from ``root`` (default ``data/raw/<family>``) into a :class:`ReidDataset`.

    ``options`` go to the reader (``variant`` for ``cuhk03``, ``train_val`` for
    ``msmt17``); ``None`` values mean "the reader's default".
    """
    e = entry(name)
    options = {k: v for k, v in options.items() if v is not None}
    for key, value in e.fixed.items():
        given = options.pop(key, value)
        if given != value:
            raise DatasetError(f"{name} means {key}={value!r}; got {key}={given!r}")
    allowed = reader_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DatasetError(
            f"{name}: unknown option(s) {', '.join(unknown)}; it accepts {', '.join(allowed) or 'no options'}"
        )
    root = paths.raw_root(name) if root is None else root
    ds = e.reader(root, **{**options, **e.fixed})
    log.debug("%s: %d train, %d query, %d gallery images from %s",
             ds.name, len(ds.train), len(ds.query), len(ds.gallery), ds.root)
    return ds
