"""Build a texture set from an IUV store and the images: warp, fill, write shards.

Four kinds of targets (``source`` and ``fuse``): each image's own warped texels, filled
(``warp``, ``none``); the identity-fused atlas (``warp``, ``identity``: :mod:`.fuse`; the images
of one identity travel in one chunk); the renderer's true atlas resampled to P (``truth``,
synthetic sets only); a SAN-PG generator's prediction from the image (``sanpg``; with
``keep_observed`` the warped texels where the IUV saw the person; a warp-input generator also reads
the image's warp + fill). ``observed`` always says what each image's IUV showed.

Work is split into chunks of images run by a joblib process pool (or any joblib backend, such
as Dask's, set by the caller with ``joblib.parallel_config``); results stream back unordered
into one :class:`~densepose_textures.shards.TextureSetWriter`, which writes them in order, so
the bytes do not depend on the number of workers or the backend. An interrupted build resumes
from its finished shards; a finished set is reused only when everything that determines it
matches, and refused otherwise, naming the field that differs.

A ``sanpg`` build runs the generator in this process, one batch per chunk, while the workers read,
warp and resize the next chunks; its chunks never span two shards, so a resumed build gives the
generator the same batches as a straight one.
"""

import bisect
import functools
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from .atlas import SPLATS, images_to_atlas
from .errors import InputError
from .fill import FILL_METHODS, fill_atlases
from .fuse import fuse_identities
from .imageio import read_rgb, resize_iuv
from .iuv.store import IUVStore
from .parts import NUM_PARTS
from .provenance import Provenance
from .quality import raw_pid, true_atlas
from .shards import FORMAT_VERSION, TextureSet, TextureSetWriter
from .storage import array_digest, image_list_digest

log = logging.getLogger(__name__)

SOURCES = ("warp", "truth", "sanpg")
FUSES = ("none", "identity")

# Recorded in every set but not compared when deciding whether a set can be reused.
INFORMATIONAL = ("software_version", "shard_size")
# Determining fields added after sets were first shared: what a set without them was built with.
IMPLIED = {"source": "warp", "fuse": "none", "truth_digest": "", "generator_digest": "", "keep_observed": False,
           "layout": "atlas", "import_digest": ""}


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


def set_attributes(*, dataset, keys, pids, camids, store_attrs, size, splat, fill, mirror, source="warp", fuse="none",
                   truth_digest="", generator_digest="", keep_observed=False, software_version="", shard_size=1024,
                   layout="atlas", import_digest="", image_size=None):
    """Every attribute of the set: what determines it (dataset, images, IUV, texture settings,
    mirror map, target source and fusion) plus :data:`INFORMATIONAL` fields. ``mirror`` is a
    MirrorMap or None (no mirroring); ``truth_digest`` names the true atlases of a truth set,
    ``generator_digest`` the generator of a sanpg set (``keep_observed``: observed texels kept);
    ``layout``, ``import_digest`` and ``image_size`` (H, W) describe an imported set of images
    (:mod:`.imported`)."""
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
        "source": source,
        "fuse": fuse,
        "truth_digest": truth_digest,
        "generator_digest": generator_digest,
        "keep_observed": bool(keep_observed),
        "layout": layout,
        "import_digest": import_digest,
        "software_version": software_version,
        "shard_size": int(shard_size),
    }
    if layout == "image":
        attrs.update(image_height=int(image_size[0]), image_width=int(image_size[1]))
    for name, value in sorted(store_attrs.items()):
        if name not in ("shard_index", "shard_count", "shard_start"):
            attrs[f"iuv_{name}"] = value if not isinstance(value, (list, tuple)) else "x".join(map(str, value))
    return attrs


def differences(existing, expected):
    """Names of the determining fields whose values differ, with both values."""
    existing = {**IMPLIED, **existing}
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


@dataclass(frozen=True)
class Recipe:
    """How a record's target is made from its image: warp settings, fill, mirror, source, fusion."""

    size: int
    splat: str = "nearest"
    fill: str = "nearest"
    mirror_index: np.ndarray | None = None  # (24, P, P) flat mirror texel index; None: no mirroring
    source: str = "warp"
    fuse: str = "none"
    input_size: tuple | None = None  # sanpg: the generator's (height, width), what the workers resize images to
    keep_observed: bool = False  # sanpg: keep the observed texels of the warp
    warp_input: bool = False  # sanpg: the generator also reads the warp + fill (the workers fill it)


def true_targets(observed, atlases):
    """Truth targets: observed (B, 24, P, P), atlases (B, 24, P, P, 3) uint8 -> (textures, provenance):
    the atlas and code 6 for an image with an observed texel, zeros and 255 (no person) otherwise."""
    person = np.asarray(observed).reshape(len(observed), -1).any(axis=1)
    texture = np.where(person[:, None, None, None, None], atlases, np.uint8(0))
    provenance = np.where(person[:, None, None, None], np.uint8(Provenance.TRUE), np.uint8(Provenance.NO_PERSON))
    return texture, np.broadcast_to(provenance, np.shape(observed)).copy()


def generated_targets(predicted, warped, observed, keep_observed=False):
    """sanpg targets: predicted (B, 24, P, P, 3) uint8 atlases, the warp's texels and ``observed``
    (B, 24, P, P) -> (textures, provenance): the prediction, code 7 (generated), except observed
    texels with ``keep_observed`` (the warped colour, code 0); zeros and 255 for an image with no
    observed texel (no person), as for the truth source."""
    observed = np.asarray(observed) > 0
    person = observed.reshape(len(observed), -1).any(axis=1)
    keep = observed & bool(keep_observed)
    texture = np.where(keep[..., None], warped, predicted)
    provenance = np.where(keep, np.uint8(Provenance.OBSERVED), np.uint8(Provenance.GENERATED))
    texture = np.where(person[:, None, None, None, None], texture, np.uint8(0))
    provenance = np.where(person[:, None, None, None], provenance, np.uint8(Provenance.NO_PERSON))
    return texture.astype(np.uint8), provenance.astype(np.uint8)


def _warp_chunk(store_path, image_root, indices, keys, recipe):
    """The images of store records ``indices`` and their warp: (images, texture, observed)."""
    stat = Path(store_path).stat()
    store = _open_store(str(store_path), (stat.st_mtime_ns, stat.st_size))
    images, iuvs = [], []
    for i, key in zip(indices, keys):
        image = read_rgb(Path(image_root) / key)
        images.append(image)
        iuvs.append(resize_iuv(store.read(i), image.shape[:2]))
    texture, observed = images_to_atlas(images, iuvs, recipe.size, recipe.splat)
    return images, texture, observed


def generator_inputs(store_path, image_root, indices, keys, recipe):
    """What a sanpg chunk needs from a worker: (indices, warped texture, observed, the generator's inputs:
    ``images`` resized bilinearly to its input (B, H, W, 3) uint8, as the trainer resizes them, and for a
    warp-input generator the warp's fill ``filled`` and fill steps ``steps``)."""
    images, texture, observed = _warp_chunk(store_path, image_root, indices, keys, recipe)
    h, w = recipe.input_size
    inputs = {"images": np.stack([cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR) for image in images])}
    if recipe.warp_input:
        inputs["filled"], inputs["steps"] = fill_atlases(texture, observed, recipe.mirror_index, recipe.fill)
    return indices, texture, observed.astype(np.uint8), inputs


def build_chunk(store_path, image_root, indices, keys, recipe, identities=None, truth=None):
    """Targets of store records ``indices`` (all with a person): (indices, texture, observed, provenance).

    ``identities`` (one per record) fuse the chunk's records by identity, each identity whole;
    ``truth`` ({identity: (24, P, P, 3) uint8}) gives a truth recipe its atlases. A sanpg recipe's
    chunks go through :func:`generator_inputs` and the generator instead."""
    images, texture, observed = _warp_chunk(store_path, image_root, indices, keys, recipe)
    if recipe.source == "truth":
        texture, provenance = true_targets(observed, np.stack([truth[p] for p in identities]))
    elif identities is not None:
        texture, provenance = fuse_identities(texture, observed, identities, recipe.mirror_index, recipe.fill)
    else:
        texture, provenance = fill_atlases(texture, observed, recipe.mirror_index, recipe.fill)
    return indices, texture, observed.astype(np.uint8), provenance


def plan_chunks(todo, identity_of, chunk_size):
    """Work units ``(indices, identities or None)``: the ``todo`` records (all with a person) in runs of
    ``chunk_size``, except those in ``identity_of`` ({record: identity}, every record with a person that
    needs its identity), which travel with all records of their identity, finished ones included."""
    single = [i for i in todo if i not in identity_of]
    units = [(single[a:a + chunk_size], None) for a in range(0, len(single), chunk_size)]
    members = {}
    for i, identity in identity_of.items():
        members.setdefault(identity, []).append(i)
    batch = []
    for identity in dict.fromkeys(identity_of[i] for i in todo if i in identity_of):
        batch += members[identity]
        if len(batch) >= chunk_size:
            units.append((batch, [identity_of[i] for i in batch]))
            batch = []
    if batch:
        units.append((batch, [identity_of[i] for i in batch]))
    return units


def _check_choices(splat, fill, size, source, fuse, truth, generator=None, keep_observed=False):
    for name, value, choices in (("splat", splat, SPLATS), ("fill", fill, FILL_METHODS), ("source", source, SOURCES),
                                 ("fuse", fuse, FUSES)):
        if value not in choices:
            raise InputError(f"{name} {value!r}: choose one of {', '.join(choices)}")
    if size < 2:
        raise InputError(f"texture size {size}: use 2 or more texels per side")
    if source == "truth" and truth is None:
        raise InputError("source 'truth' needs the true atlases, which only a synthetic dataset has "
                         "(its textures.h5): use source 'warp' for this dataset")
    if source == "truth" and fuse != "none":
        raise InputError("source 'truth' is already one atlas per identity: use fuse 'none' with it")
    if source == "sanpg":
        if generator is None:
            raise InputError("source 'sanpg' needs a texture generator: give its checkpoint with --generator PATH "
                             "(`sanreid train-pg`, or a SAN training checkpoint)")
        if fuse != "none":
            raise InputError("source 'sanpg' predicts each image's own atlas: use fuse 'none' with it")
        if generator.texture_size != size:
            where = f" {generator.path}" if getattr(generator, "path", None) else ""
            raise InputError(f"generator{where} predicts P={generator.texture_size} atlases, this run asks for "
                             f"texture size {size}: give --size {generator.texture_size} (or a generator trained "
                             f"at P={size})")
        warp = getattr(generator, "warp_input", None)
        if warp and (warp["splat"], warp["fill"]) != (splat, fill):
            where = f" {generator.path}" if getattr(generator, "path", None) else ""
            raise InputError(f"generator{where} reads the warp + fill made with splat {warp['splat']!r} and fill "
                             f"{warp['fill']!r}, this run asks for splat {splat!r} and fill {fill!r}: give "
                             f"--splat {warp['splat']} --fill {warp['fill']}")
    elif generator is not None or keep_observed:
        raise InputError(f"a generator and keep_observed belong to source 'sanpg', not {source!r}: "
                         "use --source sanpg, or leave out --generator and --keep-observed")


def build_texture_set(out, *, store_path, image_root, dataset, labels, size=32, splat="nearest", fill="nearest",
                      mirror=None, source="warp", fuse="none", fused_keys=None, truth=None, generator=None,
                      keep_observed=False, shard_size=1024, chunk_size=64, jobs=1, force=False, software_version="",
                      progress=True):
    """Build (or reuse) the texture set of every image of the IUV store at ``store_path``.

    ``labels`` maps each store key to ``(pid, camid)``; ``mirror`` is a MirrorMap (None: no
    mirroring). ``source``: ``warp`` (each image's texels) or ``truth`` (``truth``: {pid: true
    atlas} by the raw identity of the file names, any P); ``fuse``: ``none`` or ``identity`` (the
    records of ``fused_keys``, None: all, get the fused atlas of their ``labels`` pid; the others
    their own). ``sanpg``: ``generator`` (:class:`train.generator.TextureGenerator` or anything with
    its ``texture_size``, ``input_size``, ``warp_input``, ``digest`` and ``predict``) predicts every
    atlas, in this process (a ``warp_input`` generator, ``{"splat", "fill"}``, also reads the warp +
    fill: ``splat`` and ``fill`` must be its own); ``keep_observed`` keeps the warped texels the IUV
    saw. Parallel work runs in ``jobs``
    joblib workers of the backend in force (processes by default; wrap the call in
    ``joblib.parallel_config(backend="dask")`` for Dask).
    """
    _check_choices(splat, fill, size, source, fuse, truth, generator, keep_observed)
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
    if source == "truth":  # true atlases are named by the raw identity of the file names
        absent = sorted({str(raw_pid(k)) for k, found in zip(keys, store.found) if found and raw_pid(k) not in truth})
        if absent:
            raise InputError(f"no true atlas for identity {absent[0]} ({len(absent)} in all): the ground truth "
                             f"is not that of dataset {dataset}; render it again with `sanreid synth`")
        truth = {p: np.asarray(truth[p]) for p in sorted({raw_pid(k) for k in keys} & set(truth))}
    truth_digest = array_digest(np.array(list(truth)), *truth.values()) if source == "truth" else ""
    attrs = set_attributes(dataset=dataset, keys=keys, pids=pids, camids=camids, store_attrs=store.attrs, size=size,
                           splat=splat, fill=fill, mirror=mirror, source=source, fuse=fuse, truth_digest=truth_digest,
                           generator_digest=generator.digest if source == "sanpg" else "",
                           keep_observed=keep_observed, software_version=software_version, shard_size=shard_size)
    if out.exists() and not force:
        check_reusable(out, attrs)
        log.info("reusing texture set %s: it matches the dataset and settings", out)
        return BuildSummary(out, len(keys), int(store.found.sum()), reused=True)

    mirror_index = mirror.texel_index(size) if mirror is not None else np.arange(NUM_PARTS * size * size).reshape(
        NUM_PARTS, size, size)  # no mirroring: every texel its own mirror
    writer = TextureSetWriter(out, keys, pids, camids, size=size, attrs=attrs, mirror_index=mirror_index,
                              shard_size=shard_size)
    resumed = len(keys) - len(writer.todo)
    recipe = Recipe(size, splat, fill, mirror_index if mirror is not None else None, source, fuse,
                    tuple(generator.input_size) if source == "sanpg" else None, bool(keep_observed),
                    source == "sanpg" and bool(getattr(generator, "warp_input", None)))
    units = _work_units(writer.todo, keys, pids, store.found, recipe, fused_keys, chunk_size, writer.bounds)
    truth = {p: true_atlas(a, size) for p, a in truth.items()} \
        if source == "truth" else None
    empty = (np.zeros((NUM_PARTS, size, size, 3), np.uint8), np.zeros((NUM_PARTS, size, size), np.uint8),
             np.full((NUM_PARTS, size, size), Provenance.NO_PERSON, np.uint8))
    todo = set(writer.todo)
    with writer, tqdm(total=len(writer.todo), desc="textures", unit="img", disable=not progress, leave=False) as bar:
        for i in writer.todo:
            if not store.found[i]:
                writer.put(i, *empty)
                bar.update()
        if source == "sanpg":
            tasks = (delayed(generator_inputs)(store.path, image_root, chunk, [keys[i] for i in chunk], recipe)
                     for chunk, _ in units)
        else:
            tasks = (delayed(build_chunk)(store.path, image_root, chunk, [keys[i] for i in chunk], recipe, identities,
                                          None if truth is None else {p: truth[p] for p in set(identities)})
                     for chunk, identities in units)
        for indices, texture, observed, last in Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks):
            if source == "sanpg":  # ``last``: the generator's inputs; the network runs here, once per chunk
                texture, provenance = generated_targets(generator.predict(**last), texture, observed, keep_observed)
            else:
                provenance = last
            for j, i in enumerate(indices):
                if i in todo:  # a fused identity brings its records of finished shards too
                    writer.put(i, texture[j], observed[j], provenance[j])
                    bar.update()
    writer.finish(replace=force)
    summary = BuildSummary(out, len(keys), int(store.found.sum()), resumed=resumed,
                           seconds=time.perf_counter() - start)
    log.info("texture set %s: %d images (%d with a person, %d resumed) in %.1f s", out, summary.records,
             summary.found, resumed, summary.seconds)
    return summary


def _work_units(todo, keys, pids, found, recipe, fused_keys, chunk_size, bounds=None):
    """The chunks of :func:`plan_chunks` for a recipe: fused records grouped by identity; a truth
    recipe's chunks carry every record's identity (to look its atlas up); a sanpg recipe's chunks
    (the generator's batches) stay within the shards of ``bounds`` ((first, end) pairs)."""
    todo = [i for i in todo if found[i]]
    if recipe.source == "sanpg":
        starts = [a for a, _ in bounds or [(0, len(keys))]]
        units = []
        for _, shard in itertools.groupby(todo, key=lambda i: bisect.bisect_right(starts, i)):
            shard = list(shard)
            units += [(shard[c:c + chunk_size], None) for c in range(0, len(shard), chunk_size)]
        return units
    identity_of = {}
    if recipe.fuse == "identity":
        fused = set(keys) if fused_keys is None else set(fused_keys)
        identity_of = {i: int(pids[i]) for i in range(len(keys)) if found[i] and keys[i] in fused}
    units = plan_chunks(todo, identity_of, chunk_size)
    if recipe.source == "truth":
        units = [(chunk, [raw_pid(keys[i]) for i in chunk]) for chunk, _ in units]
    return units
