"""The IUV backend interface and the registry of backends by name (imported lazily).

A backend has:

- ``name: str``;
- ``settings() -> dict``: JSON-serialisable, recorded in the store's attributes. Keys
  ``config_digest`` and ``weights_digest`` (or ``config_sha256``, ``weights_sha256``: sha256 hex
  of the files, where there are any) and ``mode`` are also lifted into attributes of their own;
- ``predict(images, keys) -> list of (iuv or None, score)``: ``images`` uint8 RGB (H, W, 3),
  ``keys`` their relative paths; ``iuv`` uint8 (H, W, 3) covering the whole image in image
  pixels (docs/design.md encoding), ``None`` when no person was found; ``score`` a float.
"""

import importlib
from typing import Protocol

import numpy as np

from ..errors import InputError

BACKENDS = {
    "synth": ("densepose_textures.iuv.synth_backend", "SynthBackend"),
    "densepose": ("densepose_textures.iuv.densepose", "DensePoseBackend"),
    "dump": ("densepose_textures.iuv.dump", "DumpBackend"),
}


class IUVBackend(Protocol):
    name: str

    def settings(self) -> dict: ...

    def predict(self, images: list[np.ndarray], keys: list[str]) -> list[tuple[np.ndarray | None, float]]: ...


def names():
    return sorted(BACKENDS)


def make_backend(name, **options):
    """The backend called ``name``, constructed with ``options``; its module is imported only now."""
    if name not in BACKENDS:
        raise InputError(f"unknown IUV backend {name!r}; known: {', '.join(names())}")
    module, attr = BACKENDS[name]
    return getattr(importlib.import_module(module), attr)(**options)
