"""HDF5 texture sets: a directory of shards ``shard-00000.h5``, ... and an index ``index.h5``.

Each shard holds, for consecutive records, ``texture`` (N, 24, P, P, 3) uint8,
``observed`` (N, 24, P, P) uint8, ``provenance`` (N, 24, P, P) uint8 (fill step of each
texel, :class:`~densepose_textures.provenance.Provenance`), ``key``, ``pid``, ``camid``;
one image per chunk, gzip level 1. The index holds the set attributes, every record's key, pid, camid,
the shard each record lives in, each shard's byte size (a truncated or missing
shard is refused), and ``mirror_index`` (24, P, P), the flat texel index of each
texel's left/right mirror, so readers can flip targets without the .mat file.

The attribute ``layout`` says what a record's texture is: ``atlas`` (the above; implied for sets
written before it existed) or ``image``, a texture image of a foreign layout (an imported
release, :mod:`densepose_textures.imported`): ``texture`` (N, H, W, 3), ``observed`` and
``provenance`` (N, H, W), ``image_height`` and ``image_width`` attributes, ``size`` 0 and an
empty ``mirror_index`` (0,): nobody knows which texel mirrors which.

A set is written by :class:`TextureSetWriter` into a sibling work directory
``<set>.partial``: every shard goes to a temporary name and is renamed when
complete, so a killed run leaves finished shards behind and resumes from them;
when all shards are written the index is added and the work directory is
renamed to the set's name. Nothing is ever opened for writing in place.
"""

import logging
from pathlib import Path

import h5py
import numpy as np

from .errors import InputError
from .parts import NUM_PARTS
from .provenance import Provenance
from .storage import AtomicWrite, H5Reader, WorkDir, array_digest, image_list_digest, open_h5, partial_dir, plain_attrs

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
INDEX_FILE = "index.h5"
LAYOUTS = ("atlas", "image")  # a texture is a 24-part atlas, or an image of a foreign layout

_COMPRESSION = dict(compression="gzip", compression_opts=1)


def shard_name(number):
    return f"shard-{number:05d}.h5"


class MissingKey(InputError, KeyError):
    """A key that is not in the set."""

    def __str__(self):
        return InputError.__str__(self)


class TextureSet(H5Reader):
    """Read-only random access to a texture set, by index (``ts[i]``) and by key (``ts.get(key)``).

    The index is read when the set is opened (and shards checked for presence and size);
    shard files are opened lazily, once per process (:class:`~densepose_textures.storage.H5Reader`),
    so the object can be pickled and handed to DataLoader workers before or after first use.
    """

    what = "texture shard"
    fix = "copy or `dvc pull` it again"

    def __init__(self, path):
        path = Path(path)
        if path.name == INDEX_FILE and path.is_file():
            path = path.parent
        self.path = path
        index = path / INDEX_FILE
        if not index.is_file():
            hint = " (an interrupted build: rerun gen-textures to finish it)" if partial_dir(path).is_dir() else ""
            raise InputError(
                f"{path} is not a texture set: {index} is missing{hint}; build it with `sanreid gen-textures` "
                "or copy / `dvc pull` the whole directory"
            )
        with open_h5(index, "texture set index", "rebuild or re-copy it") as f:
            self.attrs = plain_attrs(f.attrs)
            self.keys = list(f["key"].asstr()[()])
            self.pids = f["pid"][()].astype(np.int64)
            self.camids = f["camid"][()].astype(np.int64)
            self.found = f["found"][()].astype(bool)
            self.mirror_index = f["mirror_index"][()].astype(np.int64)
            self._shard_of = f["shard"][()].astype(np.int64)
            self._row_of = f["row"][()].astype(np.int64)
            self._shard_files = list(f["shard_files"].asstr()[()])
            shard_bytes = f["shard_bytes"][()].astype(np.int64)
        if self.attrs.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"{path} has texture-set format {self.attrs.get('format_version')}, this software reads "
                f"format {FORMAT_VERSION}: rebuild it with `sanreid gen-textures --force`"
            )
        for name, size in zip(self._shard_files, shard_bytes):
            shard = path / name
            if not shard.is_file():
                raise InputError(f"texture set {path}: shard {shard} is missing; copy or `dvc pull` it again")
            if shard.stat().st_size != size:
                raise InputError(
                    f"texture set {path}: shard {shard} has {shard.stat().st_size} bytes, the index says {size} "
                    "(truncated or replaced); copy or `dvc pull` it again"
                )
        self.size = int(self.attrs["size"])  # P; 0 for an image layout
        self.layout = self.attrs.get("layout", "atlas")
        if self.layout not in LAYOUTS:
            raise InputError(f"{path} has texture layout {self.layout!r}, this software reads "
                             f"{', '.join(LAYOUTS)}: update the software or rebuild the set")
        self._positions = {k: i for i, k in enumerate(self.keys)}

    @property
    def target_shape(self):
        """(height, width) of a record's texture drawn as one image: (6P, 4P) for an atlas, the image's own
        size for an image layout."""
        if self.layout == "image":
            return int(self.attrs["image_height"]), int(self.attrs["image_width"])
        return 6 * self.size, 4 * self.size

    @property
    def mirrorable(self):
        """Whether a flipped person's target can be made: an atlas with a mirror map. Not for a foreign
        layout, nor for a set built without mirroring (``--no-mirror``), whose map sends every texel to
        itself: its flipped person would meet an unmirrored target."""
        if self.layout != "atlas":
            return False
        return not np.array_equal(self.mirror_index.reshape(-1), np.arange(self.mirror_index.size))

    def __len__(self):
        return len(self.keys)

    @property
    def shard_files(self):
        """Paths of the set's shard files, in record order."""
        return [self.path / name for name in self._shard_files]

    def __repr__(self):
        shape = f"P={self.size}" if self.layout == "atlas" else "image {}x{}".format(*self.target_shape)
        return f"TextureSet({str(self.path)!r}, n={len(self)}, {shape})"

    def index(self, key):
        try:
            return self._positions[key]
        except KeyError:
            raise MissingKey(f"{key!r} is not in texture set {self.path}") from None

    def get(self, key):
        return self[self.index(key)]

    def _shard(self, number):
        return self.h5(self.path / self._shard_files[number])

    def __getitem__(self, i):
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"record {i} out of range for a texture set of {n}")
        i = int(i) % n
        number, row = self._shard_of[i], self._row_of[i]
        f = self._shard(number)
        try:
            return {
                "texture": f["texture"][row],
                "observed": f["observed"][row],
                "provenance": f["provenance"][row],
                "key": self.keys[i],
                "pid": int(self.pids[i]),
                "camid": int(self.camids[i]),
            }
        except OSError as err:
            raise InputError(f"texture shard {f.filename} is damaged ({err}): copy or `dvc pull` it again") from err

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def batches(self, fields=("texture", "observed", "provenance"), batch_size=256):
        """Yield ``(first record index, {field: array})`` over all records in order, read in slices."""
        for number in range(len(self._shard_files)):
            rows = np.flatnonzero(self._shard_of == number)
            if not len(rows):
                continue
            f = self._shard(number)
            for a in range(0, len(rows), batch_size):
                try:
                    yield int(rows[a]), {name: f[name][a:a + batch_size] for name in fields}
                except OSError as err:
                    raise InputError(f"texture shard {f.filename} is damaged ({err}): copy or `dvc pull` it again") from err


class _ShardFile:
    """One shard being written atomically; :meth:`close` renames it into place."""

    def __init__(self, path, first, count, shape, attrs):
        self.first, self.count = first, count
        self.target = AtomicWrite(path)
        self.file = h5py.File(self.target.tmp, "w")
        for name, value in attrs.items():
            self.file.attrs[name] = value
        self.file.attrs["first_record"] = first
        shape = tuple(shape)  # a record's (24, P, P), or (H, W) of an image layout
        self.texture = self._dataset("texture", count, shape + (3,))
        self.observed = self._dataset("observed", count, shape)
        self.provenance = self._dataset("provenance", count, shape)
        self.written = 0

    def _dataset(self, name, count, record_shape):
        """(count, *record_shape) uint8, one record per chunk, gzip 1 (an empty one stays resizable)."""
        maxshape = (count if count else None,) + record_shape
        return self.file.create_dataset(name, (count,) + record_shape, np.uint8, chunks=(1,) + record_shape,
                                        maxshape=maxshape, **_COMPRESSION)

    def write(self, texture, observed, provenance):
        row = self.written
        self.texture[row] = texture
        self.observed[row] = observed
        self.provenance[row] = provenance
        self.written += 1

    def close(self, keys, pids, camids):
        self.file.create_dataset("key", data=np.array(keys, dtype=object), dtype=h5py.string_dtype())
        self.file.create_dataset("pid", data=np.asarray(pids, dtype=np.int64))
        self.file.create_dataset("camid", data=np.asarray(camids, dtype=np.int64))
        self.file.close()
        self.target.commit()

    def abandon(self):
        self.file.close()
        self.target.discard()


class TextureSetWriter:
    """Writes a texture set, resumably; records may arrive in any order, they are written in order.

    ``attrs`` is everything that determines the set's content. A work directory
    ``<path>.partial`` left by an interrupted run with the same attrs, image list and shard
    size is resumed (its finished shards are kept); any other is started afresh.
    :attr:`todo` lists the record indices still to compute; pass each to :meth:`put` inside ``with writer:``
    (an error there abandons the open shard, finished ones stay for a resume), then call :meth:`finish`.
    ``layout="image"``: records are images of a foreign layout, ``size`` their (H, W), ``mirror_index`` None.
    """

    def __init__(self, path, keys, pids, camids, *, size, attrs, mirror_index, shard_size=1024, layout="atlas"):
        self.path = Path(path)
        self.keys = list(keys)
        self.pids = np.asarray(pids, dtype=np.int64)
        self.camids = np.asarray(camids, dtype=np.int64)
        if not (len(self.keys) == len(self.pids) == len(self.camids)):
            raise ValueError("keys, pids and camids must have the same length")
        if len(set(self.keys)) != len(self.keys):
            raise InputError("the image list of a texture set has duplicate keys")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.attrs = dict(attrs)
        if layout == "image":
            if mirror_index is not None:
                raise ValueError("an image layout has no mirror map: pass mirror_index=None")
            self.size, self.shape = 0, tuple(int(s) for s in size)
            self.mirror_index = np.zeros(0, dtype=np.int64)
            self.attrs.update(layout=layout, image_height=self.shape[0], image_width=self.shape[1])
        else:
            self.size = int(size)
            self.shape = (NUM_PARTS, self.size, self.size)
            self.mirror_index = np.asarray(mirror_index, dtype=np.int64)
            if self.mirror_index.shape != self.shape:
                raise ValueError(f"mirror_index must be (24, {size}, {size}), got {self.mirror_index.shape}")
        self.shard_size = int(shard_size)
        self.attrs.update(format_version=FORMAT_VERSION, size=self.size, records=len(self.keys),
                          image_list_digest=image_list_digest(self.keys, self.pids, self.camids))
        n = len(self.keys)
        self.bounds = [(s, min(s + self.shard_size, n)) for s in range(0, n, self.shard_size)] or [(0, 0)]
        self._found = np.zeros(n, dtype=bool)
        self.work = WorkDir(self.path, {"attrs": self.attrs, "shard_size": self.shard_size,
                                        "mirror_index_digest": array_digest(self.mirror_index)})
        done = self._finished_shards() if self.work.resumed else set()
        self.todo = [i for k, (a, b) in enumerate(self.bounds) if k not in done for i in range(a, b)]
        self._pending = {}
        self._next = 0  # position in self.todo of the next record to write
        self._open = None

    def _finished_shards(self):
        """Numbers of the shards an interrupted run finished (their records' ``found`` read back)."""
        done = set()
        for k, (a, b) in enumerate(self.bounds):
            shard = self.work / shard_name(k)
            if shard.is_file():
                done.add(k)
                with h5py.File(shard, "r") as f:
                    provenance = f["provenance"][()]
                self._found[a:b] = (provenance.reshape(b - a, -1) != Provenance.NO_PERSON).any(axis=1)
        log.info("resuming %s: %d of %d shards already written", self.work.path, len(done), len(self.bounds))
        return done

    # -- records --------------------------------------------------------------------------------
    def put(self, index, texture, observed, provenance):
        """Hand over record ``index`` (any order); written as soon as all before it are."""
        self._pending[int(index)] = (texture, observed, provenance)
        while self._next < len(self.todo) and self.todo[self._next] in self._pending:
            i = self.todo[self._next]
            self._write(i, *self._pending.pop(i))
            self._next += 1

    def _write(self, i, texture, observed, provenance):
        number = i // self.shard_size
        if self._open is None:
            first, last = self.bounds[number]
            self._open = _ShardFile(self.work / shard_name(number), first, last - first, self.shape, self.attrs)
        self._open.write(texture, observed, provenance)
        self._found[i] = bool(np.any(np.asarray(provenance) != Provenance.NO_PERSON))
        if self._open.written == self._open.count:
            a, b = self.bounds[number]
            self._open.close(self.keys[a:b], self.pids[a:b], self.camids[a:b])
            self._open = None

    @property
    def complete(self):
        return self._next == len(self.todo)

    def finish(self, replace=False):
        """Write the index and move the finished set to its path (replacing an old one if ``replace``)."""
        if not self.complete:
            raise RuntimeError(f"{len(self.todo) - self._next} records were never handed to the writer")
        if self.path.exists() and not replace:
            raise InputError(f"{self.path} already exists: remove it or rebuild with --force")
        if self.bounds == [(0, 0)]:
            _ShardFile(self.work / shard_name(0), 0, 0, self.shape, self.attrs).close([], [], [])
        files = [shard_name(k) for k in range(len(self.bounds))]
        shard_of = np.concatenate([np.full(b - a, k) for k, (a, b) in enumerate(self.bounds)]).astype(np.int32)
        row_of = np.concatenate([np.arange(b - a) for a, b in self.bounds]).astype(np.int32)
        with AtomicWrite(self.work / INDEX_FILE) as tmp, h5py.File(tmp, "w") as f:
            for name, value in self.attrs.items():
                f.attrs[name] = value
            f.create_dataset("key", data=np.array(self.keys, dtype=object), dtype=h5py.string_dtype())
            f.create_dataset("pid", data=self.pids)
            f.create_dataset("camid", data=self.camids)
            f.create_dataset("found", data=self._found)
            f.create_dataset("shard", data=shard_of)
            f.create_dataset("row", data=row_of)
            f.create_dataset("shard_files", data=np.array(files, dtype=object), dtype=h5py.string_dtype())
            f.create_dataset("shard_bytes", data=np.array([(self.work / s).stat().st_size for s in files], np.int64))
            f.create_dataset("mirror_index", data=self.mirror_index)
        self.work.move_to(self.path, replace=replace)
        log.info("wrote texture set %s (%d records, %d shards)", self.path, len(self.keys), len(files))
        return self.path

    def abandon(self):
        """Close an open shard without keeping it (finished shards stay for a resume)."""
        if self._open is not None:
            self._open.abandon()
            self._open = None

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if kind is not None:
            self.abandon()
        return False


def write_texture_set(path, textures, observed, provenance, keys, pids, camids, *, mirror_index,
                      attrs=None, shard_size=1024, replace=False, layout="atlas"):
    """Write a whole set from arrays in memory (tests, small tools). Returns the set's path.
    ``layout="image"``: ``textures`` (N, H, W, 3) images of a foreign layout, ``mirror_index`` None."""
    textures = np.asarray(textures, dtype=np.uint8)
    if layout == "image":
        size = textures.shape[1:3]
    else:
        size = textures.shape[2] if textures.ndim == 5 else int(np.asarray(mirror_index).shape[-1])
    writer = TextureSetWriter(path, keys, pids, camids, size=size, attrs=attrs or {},
                              mirror_index=mirror_index, shard_size=shard_size, layout=layout)
    for i in writer.todo:
        writer.put(i, textures[i], observed[i], provenance[i])
    return writer.finish(replace=replace)
