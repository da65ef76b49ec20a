"""HDF5 IUV stores (docs/design.md, "HDF5 IUV stores"): one file per dataset.

Datasets: ``iuv`` (N, H, W, 3) uint8, one image per chunk, gzip level 1; ``key`` (N,) relative
image paths (UTF-8 strings); ``found`` (N,) bool; ``score`` (N,) float32. Attributes: ``backend``,
``backend_settings`` (JSON), ``config_digest``, ``weights_digest`` (sha256, "" when none), ``mode``, ``size`` (H, W),
``format_version``, ``image_list_digest`` (plus ``dataset`` and ``splits``; shard files also
carry ``shard_index``, ``shard_count``, ``shard_start``).

Files are written whole to a temporary name and renamed (:func:`assemble`), never opened in place.
"""

import json
import zlib
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from ..storage import AtomicWrite, H5Reader, image_list_digest

FORMAT_VERSION = 1
SHARD_ATTRS = ("shard_index", "shard_count", "shard_start")


def store_attrs(backend_name, settings, size, keys, **extra):
    """The attributes of a store written by ``backend_name`` with ``settings`` over ``keys``."""
    attrs = {
        "format_version": FORMAT_VERSION,
        "backend": backend_name,
        "backend_settings": json.dumps(settings, sort_keys=True),
        "config_digest": _digest(settings, "config"),
        "weights_digest": _digest(settings, "weights"),
        "mode": str(settings.get("mode", "")),
        "size": [int(size[0]), int(size[1])],
        "image_list_digest": image_list_digest(keys),
    }
    attrs.update(extra)
    return attrs


def _digest(settings, what):
    """A backend's ``<what>_digest`` (or ``<what>_sha256``) setting, "" when it has none."""
    return str(settings.get(f"{what}_digest", settings.get(f"{what}_sha256", "")))


def encode_iuv(iuv):
    """The stored chunk of one IUV image: its bytes through HDF5's gzip filter at level 1 (zlib format).

    Compressing here rather than inside h5py lets callers compress many images in threads.
    """
    return zlib.compress(np.ascontiguousarray(iuv, dtype=np.uint8).tobytes(), 1)


def _create(h5, n, size):
    h, w = size
    # maxshape lets a store hold 0 images (a shard of a short list) with the same chunk layout
    h5.create_dataset("iuv", (n, h, w, 3), maxshape=(None, h, w, 3), dtype=np.uint8, chunks=(1, h, w, 3),
                      compression="gzip", compression_opts=1)


class IUVWriter:
    """Write a complete store (or a work file of the same layout) to ``path``, atomically.

    Records are written in order with :meth:`append`; :meth:`close` checks all N were written and
    renames. Leaving the ``with`` block on an exception removes the temporary file.
    """

    def __init__(self, path, n, size, attrs, extra_columns=()):
        self.path = Path(path)
        self.target = AtomicWrite(self.path)
        self.n, self.size, self.attrs = n, tuple(size), attrs
        self.file = h5py.File(self.target.tmp, "w")
        _create(self.file, n, size)
        self.keys, self.found, self.score = [], np.zeros(n, bool), np.zeros(n, np.float32)
        self.columns = {name: np.zeros(n, np.uint8) for name in extra_columns}
        self.count = 0

    def append(self, iuv, key, found, score, **columns):
        """One record; ``iuv`` (H, W, 3) uint8 at the store size, or its :func:`encode_iuv` bytes."""
        if not isinstance(iuv, bytes):
            if iuv.shape != (*self.size, 3) or iuv.dtype != np.uint8:
                raise ValueError(f"IUV of {key} is {iuv.shape} {iuv.dtype}, expected {(*self.size, 3)} uint8")
            iuv = encode_iuv(iuv)
        self.file["iuv"].id.write_direct_chunk((self.count, 0, 0, 0), iuv, 0)
        self._meta(self.count, key, found, score, columns)

    def append_file(self, source):
        """Every record of the open h5py file ``source`` (same layout), copying compressed chunks as they are."""
        keys = source["key"].asstr()[()]
        found, score = source["found"][()], source["score"][()]
        columns = {name: source[name][()] for name in self.columns}
        src, dst = source["iuv"].id, self.file["iuv"].id
        for i, key in enumerate(keys):
            mask, data = src.read_direct_chunk((i, 0, 0, 0))
            dst.write_direct_chunk((self.count, 0, 0, 0), data, mask)
            self._meta(self.count, key, found[i], score[i], {name: values[i] for name, values in columns.items()})

    def _meta(self, i, key, found, score, columns):
        if i >= self.n:
            raise ValueError(f"more than {self.n} records written to {self.path}")
        self.keys.append(key)
        self.found[i], self.score[i] = bool(found), score
        for name, value in columns.items():
            self.columns[name][i] = value
        self.count += 1

    def close(self):
        if self.count != self.n:
            raise ValueError(f"{self.path}: {self.count} of {self.n} records written")
        f = self.file
        f.create_dataset("key", data=np.array(self.keys, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("found", data=self.found)
        f.create_dataset("score", data=self.score)
        for name, values in self.columns.items():
            f.create_dataset(name, data=values)
        for name in sorted(self.attrs):  # sorted: the same bytes whatever order they were given in
            f.attrs[name] = self.attrs[name]
        f.close()
        self.target.commit()

    def abort(self):
        self.file.close()
        self.target.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def assemble(sources, path, size, attrs, extra_columns=()):
    """Join the records of store-layout files ``sources`` in order into a new store at ``path``."""
    n = 0
    for source in sources:
        with h5py.File(source, "r") as f:
            n += len(f["key"])
    with IUVWriter(path, n, size, attrs, extra_columns) as writer:
        for source in sources:
            with h5py.File(source, "r") as f:
                writer.append_file(f)
    return path


class IUVStore(H5Reader):
    """Read-only IUV store: ``.keys``, ``.found``, ``.score``, ``.attrs``, ``len()``, ``.read(i)``, ``.index(key)``.

    The file is opened lazily, once per process (:class:`~densepose_textures.storage.H5Reader`),
    so a store can be pickled into workers before or after its first read.
    """

    what = "IUV store"
    make = "run `sanreid iuv` first"
    fix = "delete it and rerun `sanreid iuv`"
    required = ("iuv", "key", "found", "score")

    def read_header(self, f):
        self.keys = list(f["key"].asstr()[()])
        self.found = f["found"][()].astype(bool)
        self.score = f["score"][()].astype(np.float32)
        self.size = tuple(f["iuv"].shape[1:3])
        self._index = {key: i for i, key in enumerate(self.keys)}

    def __len__(self):
        return len(self.keys)

    def index(self, key):
        try:
            return self._index[key]
        except KeyError:
            raise InputError(f"image {key} is not in IUV store {self.path}") from None

    def read(self, i):
        """uint8 IUV (H, W, 3) of record ``i`` at the store's canonical size."""
        return self.h5(self.path)["iuv"][i]
