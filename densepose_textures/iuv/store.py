"""HDF5 IUV stores (DESIGN.md, "HDF5 IUV stores"): one file per dataset.

Datasets: ``iuv`` (N, H, W, 3) uint8, one image per chunk, gzip level 1; ``key`` (N,) relative
image paths (UTF-8 strings); ``found`` (N,) bool; ``score`` (N,) float32. Attributes: ``backend``,
``backend_settings`` (JSON), ``config_digest``, ``weights_digest`` (sha256, "" when none), ``mode``, ``size`` (H, W),
``format_version``, ``image_list_digest`` (plus ``dataset`` and ``splits``; shard files also
carry ``shard_index``, ``shard_count``, ``shard_start``).

Files are written whole to a temporary name and renamed (:func:`assemble`), never opened in place.
"""

import hashlib
import json
import os
import zlib
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError

FORMAT_VERSION = 1
SHARD_ATTRS = ("shard_index", "shard_count", "shard_start")


def image_list_digest(keys):
    """sha256 (hex) of the ordered relative paths joined by newlines."""
    return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()


def file_digest(path, block=1 << 20):
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


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


def _plain(value):
    """An HDF5 attribute value as a plain Python value (str, int, float, list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


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
    """Write a complete store (or a work file of the same layout) to ``path`` via ``path.tmp`` + rename.

    Records are written in order with :meth:`append`; :meth:`close` checks all N were written and
    renames. Leaving the ``with`` block on an exception removes the temporary file.
    """

    def __init__(self, path, n, size, attrs, extra_columns=()):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.n, self.size, self.attrs = n, tuple(size), attrs
        self.file = h5py.File(self.tmp, "w")
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
        os.replace(self.tmp, self.path)

    def abort(self):
        self.file.close()
        self.tmp.unlink(missing_ok=True)

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


class IUVStore:
    """Read-only IUV store: ``.keys``, ``.found``, ``.score``, ``.attrs``, ``len()``, ``.read(i)``, ``.index(key)``.

    The file is opened lazily, so a store is picklable until first read.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"IUV store {self.path} not found: run `sanreid iuv` first")
        try:
            with h5py.File(self.path, "r") as f:
                missing = [name for name in ("iuv", "key", "found", "score") if name not in f]
                if missing:
                    raise InputError(f"{self.path} is not an IUV store (missing {', '.join(missing)})")
                self.keys = list(f["key"].asstr()[()])
                self.found = f["found"][()].astype(bool)
                self.score = f["score"][()].astype(np.float32)
                self.attrs = {name: _plain(value) for name, value in f.attrs.items()}
                self.size = tuple(f["iuv"].shape[1:3])
        except OSError as err:
            raise InputError(f"{self.path} cannot be read as HDF5 ({err}): delete it and rerun `sanreid iuv`") from err
        self._index = {key: i for i, key in enumerate(self.keys)}
        self._file = None

    def __len__(self):
        return len(self.keys)

    def index(self, key):
        try:
            return self._index[key]
        except KeyError:
            raise InputError(f"image {key} is not in IUV store {self.path}") from None

    def read(self, i):
        """uint8 IUV (H, W, 3) of record ``i`` at the store's canonical size."""
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file["iuv"][i]

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self):
        return {**self.__dict__, "_file": None}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
