"""Paired data for a texture generator (SAN-PG): person images, each with its own full true atlas.

One identity per image: every pair is a fresh procedural person rendered once, by the reID
set's renderer (:func:`.render.render_image`), in a random pose, viewpoint (each image has a
camera of its own: walking direction, tilt, light, colours, background), scale and crop jitter,
with the renderer's truncation (12 %), occluders (20 %), passers-by and bags. Images go through
the reID set's JPEG quality, so they look like its images.

Identities never meet those of a reID set: their seeds come from their own namespace of
``numpy.random.SeedSequence`` (spawn key ``(PAIRS_NAMESPACE, ...)``), which
:func:`.dataset.write_dataset` never reaches whatever its seed (its identities are spawn key
``(0, i)``); the default seed differs from the reID set's as well.

One HDF5 file, ``<out>/pairs.h5`` (loose files are slow under DVC): ``image`` (N, H, W, 3) uint8 RGB,
``iuv`` (N, H, W, 3) the exact IUV of the person's visible pixels, ``texture`` (N, 24, P, P, 3)
uint8 the true atlas, ``pid`` (N,) the pair's identity number 1..N, per-image facts (``yaw``,
``truncated``, ``occluded``, ``visible``), the body's exact mirror tables (``mirror_u``,
``mirror_v``); attributes: the settings, ``kind = "pairs"``, format and renderer versions.
"""

import hashlib
import json
import logging
from pathlib import Path

import cv2
import h5py
import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from ..errors import InputError
from ..mirror import MirrorMap
from ..storage import AtomicWrite, H5Reader, plain_attrs, replace_dir
from .dataset import JPEG_QUALITY, RENDERER_VERSION, TRUTH_FILE, fresh_work
from .identity import make_identity
from .mirror_map import body_mirror_map
from .render import render_image
from .scene import make_camera

log = logging.getLogger(__name__)

PAIRS_FILE = "pairs.h5"
FORMAT_VERSION = 1
PAIRS_NAMESPACE = 0x50414952  # "PAIR": the first spawn key of every pair seed; a reID set's start at 0..3
IDENTITY, CAMERA, IMAGE = 0, 1, 2  # the second spawn key: what the seed draws
CHUNK = 32  # pairs per rendering task
MAX_PAIRS = 1_000_000
FACTS = (("yaw", np.float32), ("occluded", np.float32), ("visible", np.float32), ("truncated", bool))


def pair_seed(seed, kind, index):
    """The SeedSequence of pair ``index``'s identity, camera or image (``kind``), in the pairs namespace."""
    return np.random.SeedSequence(seed, spawn_key=(PAIRS_NAMESPACE, kind, index))


def render_pair(seed, index, image_size, texture_size):
    """(image (H, W, 3) uint8 as after a JPEG round trip, iuv, true atlas (24, P, P, 3), facts) of pair ``index``."""
    identity = make_identity(index + 1, pair_seed(seed, IDENTITY, index), texture_size)
    camera = make_camera(index, pair_seed(seed, CAMERA, index))
    image, iuv, info = render_image(identity, camera, image_size, pair_seed(seed, IMAGE, index))
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    image = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return image, iuv, identity.texture, info


def _render_chunk(seed, indices, image_size, texture_size):
    return [(i, *render_pair(seed, i, image_size, texture_size)) for i in indices]


def _check(count, image_size, texture_size, jobs):
    if not 1 <= count <= MAX_PAIRS:
        raise InputError(f"pairs: ids={count}: use 1 to {MAX_PAIRS} pairs (one identity each)")
    h, w = image_size
    if h < 16 or w < 8:
        raise InputError(f"pairs: image_size={image_size}: use at least 16x8 (H x W)")
    if not 2 <= texture_size <= 256:
        raise InputError(f"pairs: texture_size={texture_size}: use 2..256 (the mirror tables have 256 steps)")
    if jobs < 1:
        raise InputError(f"pairs: jobs={jobs}: use 1 or more")


def write_pairs(out, *, count, seed, image_size=(128, 64), texture_size=64, jobs=1, overwrite=False):
    """Render ``count`` image/atlas pairs into ``out/pairs.h5`` (see the module docstring); returns ``out``.

    Written under ``<out>.partial`` and renamed when complete. Pairs already in ``out`` with the same
    settings are kept; other ones are replaced only if ``overwrite``. The bytes depend on the settings
    alone, not on ``jobs``.
    """
    image_size = tuple(int(x) for x in image_size)
    _check(count, image_size, texture_size, jobs)
    out = Path(out)
    settings = {"seed": int(seed), "count": int(count), "image_size": image_size, "texture_size": int(texture_size),
                "renderer_version": RENDERER_VERSION}
    work = fresh_work(out, settings, _settings_of, overwrite, kept="already holds these pairs",
                      other="holds pairs rendered with", alien="does not hold synthetic pairs", noun="the pairs")
    if work is None:
        return out

    chunks = [range(s, min(s + CHUNK, count)) for s in range(0, count, CHUNK)]
    tasks = [delayed(_render_chunk)(seed, list(c), image_size, texture_size) for c in chunks]
    results = (t[0](*t[1], **t[2]) for t in tasks) if jobs == 1 else \
        Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks)
    facts = {name: np.zeros(count, dtype) for name, dtype in FACTS}
    h, w = image_size
    p = texture_size
    mirror = body_mirror_map()
    with AtomicWrite(work / PAIRS_FILE) as tmp, h5py.File(tmp, "w") as f:
        images = f.create_dataset("image", (count, h, w, 3), np.uint8, chunks=(1, h, w, 3))
        iuvs = f.create_dataset("iuv", (count, h, w, 3), np.uint8, chunks=(1, h, w, 3), compression="gzip",
                                compression_opts=1)
        textures = f.create_dataset("texture", (count, 24, p, p, 3), np.uint8, chunks=(1, 24, p, p, 3),
                                    compression="gzip", compression_opts=1)
        with tqdm(total=count, desc="pairs", unit="pair", leave=False) as bar:
            for chunk in results:
                for i, image, iuv, texture, info in chunk:
                    images[i], iuvs[i], textures[i] = image, iuv, texture
                    for name, _ in FACTS:
                        facts[name][i] = info[name]
                bar.update(len(chunk))
        f.create_dataset("pid", data=np.arange(1, count + 1, dtype=np.int32))
        for name, values in facts.items():
            f.create_dataset(name, data=values)
        f.create_dataset("mirror_u", data=mirror.u, compression="gzip", compression_opts=1)
        f.create_dataset("mirror_v", data=mirror.v, compression="gzip", compression_opts=1)
        f.attrs.update({"format_version": FORMAT_VERSION, "kind": "pairs", "generator": "densepose_textures.synth.pairs",
                        "identity_namespace": PAIRS_NAMESPACE, "jpeg_quality": JPEG_QUALITY,
                        "mirror_source": mirror.source, "mirror_digest": mirror.digest()})
        f.attrs.update({k: np.asarray(v) for k, v in settings.items()})
    replace_dir(work, out)
    log.info("wrote %d image/atlas pairs to %s", count, out)
    return out


def _settings_of(root):
    """The settings of the complete pairs in ``root``, or None."""
    path = Path(root) / PAIRS_FILE
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            attrs = plain_attrs(f.attrs)
        found = {k: int(attrs[k]) for k in ("seed", "count")}
        found["image_size"] = tuple(int(x) for x in attrs["image_size"])
        found.update({k: int(attrs[k]) for k in ("texture_size", "renderer_version")})
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return found


class Pairs(H5Reader):
    """The pairs of ``pairs.h5`` (``path``: the folder or the file), read lazily (one handle per process).

    ``len(pairs)``, ``pairs.image(i)`` (H, W, 3), ``pairs.iuv(i)`` (H, W, 3), ``pairs.texture(i)``
    (24, P, P, 3), ``pairs.mirror`` (the exact :class:`~densepose_textures.mirror.MirrorMap`),
    ``pairs.settings`` and ``pairs.digest`` (what they were rendered with). InputError, saying how to make pairs, for anything else.
    """

    what = "pairs file"
    make = "render pairs with `sanreid synth --pairs --out DIR`"
    fix = "render the pairs again with `sanreid synth --pairs --force`"
    required = ("image", "texture", "pid", "mirror_u", "mirror_v")

    def __init__(self, path):
        path = Path(path)
        if path.is_dir():
            if not (path / PAIRS_FILE).is_file() and (path / TRUTH_FILE).is_file():
                raise InputError(f"{path} is a synthetic reID dataset, not image/atlas pairs: {self.make}")
            path = path / PAIRS_FILE
        elif not path.exists() and path.suffix != ".h5":
            raise InputError(f"pairs folder {path} not found: {self.make}")
        super().__init__(path)

    def read_header(self, f):
        if self.attrs.get("kind") != "pairs" or int(self.attrs.get("format_version", -1)) != FORMAT_VERSION:
            raise InputError(f"{self.path} is not a pairs file of format {FORMAT_VERSION} "
                             f"(kind {self.attrs.get('kind')!r}, format {self.attrs.get('format_version')!r}): {self.fix}")
        count = len(f["pid"])
        if f["image"].shape[0] != count or f["texture"].shape[0] != count or count == 0:
            raise InputError(f"{self.path} holds {f['image'].shape[0]} images, {f['texture'].shape[0]} atlases and "
                             f"{count} identities: {self.fix}")
        self.count = count
        self.image_size = tuple(int(x) for x in f["image"].shape[1:3])
        self.texture_size = int(f["texture"].shape[2])
        self.pids = f["pid"][()]
        self.mirror = MirrorMap.from_tables(f["mirror_u"][()], f["mirror_v"][()], str(self.attrs["mirror_source"]))
        self.settings = {k: self.attrs[k] for k in ("seed", "count", "image_size", "texture_size", "renderer_version")
                         if k in self.attrs}

    @property
    def digest(self):
        """16 hex digits naming what the pairs were rendered with (a run continues only on the same pairs)."""
        return hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]

    def __len__(self):
        return self.count

    def image(self, index):
        return self.h5(self.path)["image"][index]

    def texture(self, index):
        return self.h5(self.path)["texture"][index]

    def iuv(self, index):
        return self.h5(self.path)["iuv"][index]
