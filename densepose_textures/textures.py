"""Build a texture set from an IUV store and the images: warp, fill, write shards.

Work is split into chunks of images run by a joblib process pool (or any joblib backend, such
as Dask's, set by the caller with ``joblib.parallel_config``); results stream back unordered
into one :class:`~densepose_textures.shards.TextureSetWriter`, which writes them in order, so
the bytes do not depend on the number of workers or the backend. An interrupted build resumes
from its finished shards; a finished set is reused only when everything that determines it
matches, and refused otherwise, naming the field that differs.
"""

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from .atlas import SPLATS, images_to_atlas
from .errors import InputError
from .fill import FILL_METHODS, fill_atlases
from .imageio import read_rgb, resize_iuv
from .iuv.store import IUVStore
from .parts import NUM_PARTS
from .provenance import Provenance
from .shards import FORMAT_VERSION, TextureSet, TextureSetWriter
from .storage import image_list_digest

log = logging.getLogger(__name__)

# Recorded in every set but not compared when deciding whether a set can be reused.
INFORMATIONAL = ("software_version", "shard_size")


@dataclass
class BuildSummary:
    path: Path
    records: int
    found: int
    reused: bool = False  # an existing set matched and was kept
    resumed: int = 0  # records taken from an interrupted run's finished shards
    seconds: float = 0.0

    @property
    def images_per_second(self):
        built = self.records - self.resumed
        return built / self.seconds if self.seconds > 0 and not self.reused else 0.0


def set_attributes(*, dataset, keys, pids, camids, store_attrs, size, splat, fill, mirror, software_version="",
                   shard_size=1024):
    """Every attribute of the set: what determines it (dataset, images, IUV, texture settings,
    mirror map) plus :data:`INFORMATIONAL` fields. ``mirror`` is a MirrorMap or None (no mirroring)."""
    attrs = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "records": len(keys),
        "image_list_digest": image_list_digest(keys, pids, camids),
        "size": int(size),
        "splat": splat,
        "fill": fill,
        "mirror": mirror is not None,
        "mirror_source": mirror.source if mirror is not None else "",
        "mirror_digest": mirror.digest() if mirror is not None else "",
        "software_version": software_version,
        "shard_size": int(shard_size),
    }
    for name, value in sorted(store_attrs.items()):
        if name not in ("shard_index", "shard_count", "shard_start"):
            attrs[f"iuv_{name}"] = value if not isinstance(value, (list, tuple)) else "x".join(map(str, value))
    return attrs


def differences(existing, expected):
    """Names of the determining fields whose values differ, with both values."""
    names = sorted((set(existing) | set(expected)) - set(INFORMATIONAL))
    return [(n, existing.get(n), expected.get(n)) for n in names if existing.get(n) != expected.get(n)]


def check_reusable(path, expected):
    """True when the finished set at ``path`` was built exactly as ``expected`` says;
    :class:`InputError` naming the first differing field (or the damage) otherwise."""
    try:
        existing = TextureSet(path).attrs
    except InputError as err:
        raise InputError(f"{err}; or rebuild it with --force") from err
    diff = differences(existing, expected)
    if diff:
        name, have, want = diff[0]
        more = f" (and {len(diff) - 1} more: {', '.join(d[0] for d in diff[1:])})" if len(diff) > 1 else ""
        raise InputError(
            f"texture set {path} was built with {name}={have!r}, this run asks for {name}={want!r}{more}: "
            "rebuild it with --force, or write elsewhere with --out"
        )
    return True


@functools.lru_cache(maxsize=4)
def _open_store(path, stamp):
    return IUVStore(path)  # once per worker process and version of the file (``stamp``: mtime, size)


def build_chunk(store_path, image_root, indices, keys, size, splat, fill, mirror_index):
    """Textures of store records ``indices`` (all with a person): (indices, texture, observed, provenance)."""
    stat = Path(store_path).stat()
    store = _open_store(str(store_path), (stat.st_mtime_ns, stat.st_size))
    images, iuvs = [], []
    for i, key in zip(indices, keys):
        image = read_rgb(Path(image_root) / key)
        images.append(image)
        iuvs.append(resize_iuv(store.read(i), image.shape[:2]))
    texture, observed = images_to_atlas(images, iuvs, size, splat)
    texture, provenance = fill_atlases(texture, observed, mirror_index, fill)
    return indices, texture, observed.astype(np.uint8), provenance


def build_texture_set(out, *, store_path, image_root, dataset, labels, size=32, splat="nearest", fill="nearest",
                      mirror=None, shard_size=1024, chunk_size=64, jobs=1, force=False, software_version="",
                      progress=True):
    """Build (or reuse) the texture set of every image of the IUV store at ``store_path``.

    ``labels`` maps each store key to ``(pid, camid)``; ``mirror`` is a MirrorMap (None: no
    mirroring). Parallel work runs in ``jobs`` joblib workers of the backend in force
    (processes by default; wrap the call in ``joblib.parallel_config(backend="dask")`` for Dask).
    """
    if splat not in SPLATS:
        raise InputError(f"splat {splat!r}: choose one of {', '.join(SPLATS)}")
    if fill not in FILL_METHODS:
        raise InputError(f"fill {fill!r}: choose one of {', '.join(FILL_METHODS)}")
    if size < 2:
        raise InputError(f"texture size {size}: use 2 or more texels per side")
    out, image_root = Path(out), Path(image_root)
    start = time.perf_counter()
    store = IUVStore(store_path)
    keys = store.keys
    missing = [k for k in keys if k not in labels]
    if missing:
        raise InputError(f"{len(missing)} images of IUV store {store_path} are not in dataset {dataset} "
                         f"(first: {missing[0]}): the store was made for another dataset or root")
    pids = np.array([labels[k][0] for k in keys], dtype=np.int64)
    camids = np.array([labels[k][1] for k in keys], dtype=np.int64)
    attrs = set_attributes(dataset=dataset, keys=keys, pids=pids, camids=camids, store_attrs=store.attrs, size=size,
                           splat=splat, fill=fill, mirror=mirror, software_version=software_version,
                           shard_size=shard_size)
    if out.exists() and not force:
        check_reusable(out, attrs)
        log.info("reusing texture set %s: it matches the dataset and settings", out)
        return BuildSummary(out, len(keys), int(store.found.sum()), reused=True)

    mirror_index = mirror.texel_index(size) if mirror is not None else np.arange(NUM_PARTS * size * size).reshape(
        NUM_PARTS, size, size)  # no mirroring: every texel its own mirror
    writer = TextureSetWriter(out, keys, pids, camids, size=size, attrs=attrs, mirror_index=mirror_index,
                              shard_size=shard_size)
    resumed = len(keys) - len(writer.todo)
    empty = (np.zeros((NUM_PARTS, size, size, 3), np.uint8), np.zeros((NUM_PARTS, size, size), np.uint8),
             np.full((NUM_PARTS, size, size), Provenance.NO_PERSON, np.uint8))
    todo = [i for i in writer.todo if store.found[i]]
    chunks = [todo[a:a + chunk_size] for a in range(0, len(todo), chunk_size)]
    bar = tqdm(total=len(writer.todo), desc="textures", unit="img", disable=not progress, leave=False)
    try:
        for i in writer.todo:
            if not store.found[i]:
                writer.put(i, *empty)
                bar.update()
        tasks = (delayed(build_chunk)(store.path, image_root, chunk, [keys[i] for i in chunk], size, splat, fill,
                                      mirror_index if mirror is not None else None) for chunk in chunks)
        for indices, texture, observed, provenance in Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks):
            for j, i in enumerate(indices):
                writer.put(i, texture[j], observed[j], provenance[j])
            bar.update(len(indices))
    except BaseException:
        writer.abandon()
        raise
    finally:
        bar.close()
    writer.finish(replace=force)
    summary = BuildSummary(out, len(keys), int(store.found.sum()), resumed=resumed,
                           seconds=time.perf_counter() - start)
    log.info("texture set %s: %d images (%d with a person, %d resumed) in %.1f s", out, summary.records,
             summary.found, resumed, summary.seconds)
    return summary
