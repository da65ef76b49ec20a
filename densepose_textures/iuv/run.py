"""The IUV stage: every image through a backend into one store, in resumable chunks.

Images are decoded (in threads, one chunk ahead) whatever the backend, handed to it in batches,
their IUV resized nearest-neighbour to the canonical size, and each chunk of ``chunk_size`` images
is committed as its own file in ``<store>.partial/`` (a :class:`~densepose_textures.storage.WorkDir`).
A rerun after ``kill -9`` reuses the committed chunks and writes the same store as one
uninterrupted run; the store itself is assembled at the end into a new file and renamed.
"""

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from ..errors import InputError
from ..imageio import read_rgb, resize_iuv
from ..storage import WorkDir
from .store import IUVWriter, assemble, encode_iuv, store_attrs

log = logging.getLogger(__name__)


class ImageStatus(IntEnum):
    """What the IUV stage made of one image (the ``status`` column of its chunk files).

    Not a provenance code: a texel with no person behind it is ``Provenance.NO_PERSON`` (255).
    """

    FOUND = 0  # readable, and the backend labelled some pixels as body
    UNREADABLE = 1  # the image could not be decoded
    NOTHING_FOUND = 2  # readable, but the backend found no person


@dataclass
class IUVSummary:
    path: Path
    images: int
    found: int
    unreadable: list = field(default_factory=list)  # keys of images that could not be decoded
    no_person: list = field(default_factory=list)  # keys of readable images where no person was found
    resumed: int = 0  # images taken from chunks committed by an earlier, interrupted run
    seconds: float = 0.0

    @property
    def images_per_second(self):
        return (self.images - self.resumed) / self.seconds if self.seconds > 0 else 0.0


def parse_shard(text):
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise InputError(f"--shard expects i/n (for example 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {text}: need 0 <= i < n")
    return i, n


def shard_from_env(environ=os.environ):
    """(RANK, WORLD_SIZE) under torchrun (or any launcher setting them) when WORLD_SIZE > 1, else None."""
    world = int(environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    return parse_shard(f"{environ.get('RANK', '0')}/{world}")


def shard_range(count, i, n):
    """Contiguous, deterministic slice [start, stop) of ``count`` items for shard ``i`` of ``n``."""
    return i * count // n, (i + 1) * count // n


def shard_path(out, i, n):
    """``data/iuv/market1501.h5`` -> ``data/iuv/market1501.shard-1-of-4.h5``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.shard-{i}-of-{n}{out.suffix}")


def _decode(root, key):
    try:
        return read_rgb(root / key), None
    except InputError as err:
        return None, str(err)


def _chunk_file(work, c):
    """The committed chunk ``c`` of a run's work directory."""
    return work / f"chunk-{c:06d}.h5"


def _committed(path, keys):
    """Whether the chunk file ``path`` is there, complete, and holds exactly ``keys``."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return list(f["key"].asstr()[()]) == keys
    except (OSError, KeyError):
        return False


def run_iuv(backend, root, keys, out, *, size=(256, 128), chunk_size=256, batch_size=16, strict=False,
            shard=None, extra_attrs=None, workers=2, progress=True):
    """Write the IUV store of images ``keys`` (relative to ``root``) to ``out`` and return an :class:`IUVSummary`.

    ``shard=(i, n)`` writes only the i-th contiguous part of ``keys`` to ``shard_path(out, i, n)``
    (joined by :func:`densepose_textures.iuv.merge.merge_shards`). ``strict`` stops at the first
    image that cannot be read or has no person (chunks already committed are kept).
    """
    root, keys, size = Path(root), list(keys), (int(size[0]), int(size[1]))
    if not keys:
        raise InputError(f"no images to process under {root}")
    if len(set(keys)) != len(keys):
        raise InputError("the image list names some images twice")
    if chunk_size < 1 or batch_size < 1:
        raise InputError(f"chunk_size and batch_size must be >= 1 (got {chunk_size}, {batch_size})")
    attrs = store_attrs(backend.name, backend.settings(), size, keys, **(extra_attrs or {}))
    start, stop, path = 0, len(keys), Path(out)
    if shard is not None:
        i, n = shard
        start, stop = shard_range(len(keys), i, n)
        path = shard_path(out, i, n)
        attrs.update(shard_index=i, shard_count=n, shard_start=start)
    mine = keys[start:stop]
    chunks = [mine[c:c + chunk_size] for c in range(0, len(mine), chunk_size)]
    work = WorkDir(path, {**attrs, "chunk_size": chunk_size})

    todo = [c for c, chunk_keys in enumerate(chunks) if not _committed(_chunk_file(work, c), chunk_keys)]
    resumed = len(mine) - sum(len(chunks[c]) for c in todo)
    if resumed:
        log.info("resuming %s: %d of %d images already committed", path, resumed, len(mine))
    began = time.perf_counter()
    with ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(mine), initial=resumed, unit="img", desc=path.name, disable=not progress) as bar:
        def submit(c):
            return [pool.submit(_decode, root, key) for key in chunks[c]]

        pending = submit(todo[0]) if todo else None
        for t, c in enumerate(todo):
            decoded = [f.result() for f in pending]
            pending = submit(todo[t + 1]) if t + 1 < len(todo) else None
            _process_chunk(backend, chunks[c], decoded, size, batch_size, strict, _chunk_file(work, c), bar, pool)
    seconds = time.perf_counter() - began

    sources = [_chunk_file(work, c) for c in range(len(chunks))]
    summary = _summarise(sources, path, resumed, seconds)
    if strict and (summary.unreadable or summary.no_person):
        raise _strict_error(summary.unreadable, summary.no_person)
    assemble(sources, path, size, attrs)
    work.remove()
    return summary


def _process_chunk(backend, keys, decoded, size, batch_size, strict, chunk_path, bar, pool):
    """Run the backend over one chunk's decoded images and commit the chunk file."""
    n = len(keys)
    iuvs = [None] * n
    scores = np.zeros(n, np.float32)
    status = np.full(n, ImageStatus.NOTHING_FOUND, np.uint8)
    readable = []
    for j, (image, error) in enumerate(decoded):
        if image is None:
            status[j] = ImageStatus.UNREADABLE
            log.warning("%s", error)
        else:
            readable.append(j)
    bar.update(n - len(readable))
    for b in range(0, len(readable), batch_size):
        batch = readable[b:b + batch_size]
        predictions = backend.predict([decoded[j][0] for j in batch], [keys[j] for j in batch])
        if len(predictions) != len(batch):
            raise RuntimeError(f"backend {backend.name} returned {len(predictions)} results for {len(batch)} images")
        for j, (iuv, score) in zip(batch, predictions):
            scores[j] = score
            if iuv is None:
                continue
            expected = (*decoded[j][0].shape[:2], 3)
            if iuv.shape != expected or iuv.dtype != np.uint8:
                raise RuntimeError(f"backend {backend.name} gave IUV {iuv.shape} {iuv.dtype} for {keys[j]}, "
                                   f"expected {expected} uint8")
            if iuv[..., 0].any():
                iuvs[j] = resize_iuv(iuv, size)
                status[j] = ImageStatus.FOUND
        bar.update(len(batch))
    if strict and (status != ImageStatus.FOUND).any():
        raise _strict_error([keys[j] for j in np.flatnonzero(status == ImageStatus.UNREADABLE)],
                            [keys[j] for j in np.flatnonzero(status == ImageStatus.NOTHING_FOUND)])
    empty = np.zeros((*size, 3), np.uint8)
    encoded = pool.map(encode_iuv, [empty if iuv is None else iuv for iuv in iuvs])
    with IUVWriter(chunk_path, n, size, {}, extra_columns=("status",)) as writer:
        for j, data in enumerate(encoded):
            writer.append(data, keys[j], status[j] == ImageStatus.FOUND, scores[j], status=status[j])


def _summarise(sources, path, resumed, seconds):
    keys, status = [], [np.zeros(0, np.uint8)]
    for source in sources:
        with h5py.File(source, "r") as f:
            keys += list(f["key"].asstr()[()])
            status.append(f["status"][()])
    status = np.concatenate(status)
    return IUVSummary(
        path=path, images=len(keys), found=int((status == ImageStatus.FOUND).sum()),
        unreadable=[keys[j] for j in np.flatnonzero(status == ImageStatus.UNREADABLE)],
        no_person=[keys[j] for j in np.flatnonzero(status == ImageStatus.NOTHING_FOUND)],
        resumed=resumed, seconds=seconds,
    )


def _strict_error(unreadable, no_person, limit=20):
    parts = []
    for what, names in (("cannot be read", unreadable), ("have no person", no_person)):
        if names:
            shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
            parts.append(f"{len(names)} image(s) {what}: {shown}")
    return InputError("--strict: " + "; ".join(parts) + ". Fix or remove them, or run without --strict "
                      "(they are then stored with found = False); committed chunks are kept for the rerun.")
