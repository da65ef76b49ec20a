"""Write the synthetic reID dataset: Market-1501 layout, exact IUV, ground-truth textures.

Layout of ``out``::

    bounding_box_train/PPPP_cCs1_FFFFFF_01.jpg   the training identities (pids 1..N - T)
    bounding_box_test/                             gallery: the T test identities (T: half by default)
    query/                                         queries of the test identities
    iuv/<same relative path>.png                   exact IUV of every image (DensePose encoding)
    textures.h5                                    ground-truth atlas per identity, mirror map, per-image facts

Every identity is seen by 2 or more cameras; each test identity has one query (two when it is
seen by 3 or more cameras and has 4 or more images), and is in the gallery under a camera other
than its query's. Every random draw comes from ``numpy.random.SeedSequence(seed)``: the identity,
camera and image seeds are spawned in a fixed order, so the bytes written do not depend on ``jobs``.
"""

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from ..errors import InputError
from ..imageio import write_iuv, write_rgb
from ..mirror import MirrorMap
from ..storage import AtomicWrite, partial_dir, plain_attrs, replace_dir
from .identity import make_identity
from .mirror_map import body_mirror_map
from .render import render_image
from .scene import make_camera

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
RENDERER_VERSION = 2  # bump when the pictures change for the same settings
TRUTH_FILE = "textures.h5"
FOLDERS = {"train": "bounding_box_train", "gallery": "bounding_box_test", "query": "query"}
MAX_CAMERAS = 9  # the file names hold one camera digit
JPEG_QUALITY = 92


@dataclass(frozen=True)
class ImagePlan:
    key: str  # relative path of the image
    pid: int
    camid: int  # 0-based
    split: str  # train | query | gallery


def iuv_path(root, key):
    """Where the IUV PNG of image ``key`` (relative path) lives under dataset ``root``."""
    return Path(root) / "iuv" / Path(key).with_suffix(".png")


def _check(ids, images_per_id, cameras, image_size, texture_size, jobs, test_ids=0):
    if test_ids and not 1 <= test_ids < ids:
        raise InputError(f"test_ids={test_ids}: use 1 to ids - 1 = {ids - 1} (0: half the identities)")
    if not 2 <= cameras <= MAX_CAMERAS:
        raise InputError(f"cameras={cameras}: the Market-1501 file names allow 2 to {MAX_CAMERAS} cameras")
    if ids < 2:
        raise InputError(f"ids={ids}: at least 2 identities are needed (half train, half test)")
    if not 2 <= images_per_id <= 10_000:
        raise InputError(f"images_per_id={images_per_id}: use 2 (a query and a gallery image) to 10000")
    if ids > 9999:
        raise InputError(f"ids={ids}: the file names hold 4-digit identities (at most 9999)")
    h, w = image_size
    if h < 16 or w < 8:
        raise InputError(f"image_size={image_size}: use at least 16x8 (H x W)")
    if not 2 <= texture_size <= 256:
        raise InputError(f"texture_size={texture_size}: use 2..256 (the mirror tables have 256 steps)")
    if jobs < 1:
        raise InputError(f"jobs={jobs}: use 1 or more")


def test_count(ids, test_ids=0):
    """How many of ``ids`` identities are test identities: ``test_ids``, or half (rounded up) when 0."""
    return test_ids or ids - ids // 2


def plan_images(ids, images_per_id, cameras, rng, test_ids=0):
    """The image list: (key, pid, camid, split) for every image, in a fixed order. The draws of an identity
    do not depend on its split, so a set with more test identities has the same training images."""
    plans = []
    n_train = ids - test_count(ids, test_ids)
    for pid in range(1, ids + 1):
        m = int(rng.integers(2, min(cameras, images_per_id) + 1))
        cams = rng.permutation(cameras)[:m]
        assigned = np.concatenate([cams, rng.choice(cams, images_per_id - m)])
        rng.shuffle(assigned)
        frames = (np.sort(rng.choice(199_999, images_per_id, replace=False)) + 1) * 5 + 1  # < 1e6
        if pid <= n_train:
            splits = ["train"] * images_per_id
        else:
            splits = ["gallery"] * images_per_id
            query_cams = cams[:2] if (m >= 3 and images_per_id >= 4) else cams[:1]
            for cam in query_cams:
                splits[int(np.flatnonzero(assigned == cam)[0])] = "query"
        for cam, frame, split in zip(assigned, frames, splits):
            name = f"{pid:04d}_c{int(cam) + 1}s1_{int(frame):06d}_01.jpg"
            plans.append(ImagePlan(f"{FOLDERS[split]}/{name}", pid, int(cam), split))
    return plans


def _render_identity(identity, cameras, plans, seeds, size, root):
    """Render and write the images of one identity; returns their facts (written in order)."""
    facts = []
    for plan, seed in zip(plans, seeds):
        image, iuv, info = render_image(identity, cameras[plan.camid], size, seed)
        write_rgb(root / plan.key, image, quality=JPEG_QUALITY)
        write_iuv(iuv_path(root, plan.key), iuv)
        facts.append(info)
    return identity.pid, facts


def fresh_work(out, settings, settings_of, overwrite, *, kept, other, alien, noun, folders=()):
    """The empty work folder ``<out>.partial`` (with ``folders`` in it) for rendering ``settings`` into
    ``out``, or None when ``out`` already holds them (``settings_of(out)``, logged as ``kept``). A folder
    holding anything else is refused (``alien``: not ours; ``other``: other settings) unless ``overwrite``."""
    if out.is_file():
        raise InputError(f"{out} is a file: --out must name a folder")
    if out.exists():
        found = settings_of(out)
        if found == settings:
            log.info("%s %s: kept", out, kept)
            return None
        if not overwrite:
            what = alien if found is None else f"{other} {found}"
            raise InputError(f"{out} {what}: remove it, choose another --out, or pass --force to replace it")
    work = partial_dir(out)
    try:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        for folder in folders:
            (work / folder).mkdir(parents=True)
    except OSError as err:
        raise InputError(f"cannot write {noun} beside {out} ({err}): choose another --out") from err
    return work


def write_dataset(out, *, ids, images_per_id, cameras, seed, image_size=(128, 64), texture_size=64,
                  jobs=1, overwrite=False, test_ids=0):
    """Render the synthetic dataset into ``out`` (see the module docstring); returns ``out``.

    The last ``test_ids`` identities are for testing (0: half of them, rounded up), the others for
    training; a larger ``test_ids`` at the same ``ids - test_ids`` keeps the training images. The work
    is written under ``<out>.partial`` and renamed when complete. A complete dataset already in
    ``out`` with the same settings is kept as it is; one with other settings is replaced only if
    ``overwrite``.
    """
    _check(ids, images_per_id, cameras, tuple(image_size), texture_size, jobs, test_ids)
    out = Path(out)
    settings = {"seed": seed, "ids": ids, "test_ids": test_count(ids, test_ids), "images_per_id": images_per_id,
                "cameras": cameras, "image_size": tuple(int(x) for x in image_size), "texture_size": texture_size}
    work = fresh_work(out, {**settings, "renderer_version": RENDERER_VERSION}, _settings_of, overwrite,
                      kept="is already rendered with these settings", other="was rendered with",
                      alien="is not a synthetic dataset", noun="the dataset", folders=FOLDERS.values())
    if work is None:
        return out

    root_seq = np.random.SeedSequence(seed)
    id_seq, cam_seq, img_seq, plan_seq = root_seq.spawn(4)
    plans = plan_images(ids, images_per_id, cameras, np.random.default_rng(plan_seq), test_ids)
    camera_list = [make_camera(c, s) for c, s in enumerate(cam_seq.spawn(cameras))]
    identities = [make_identity(pid, s, texture_size) for pid, s in zip(range(1, ids + 1), id_seq.spawn(ids))]
    image_seeds = img_seq.spawn(len(plans))
    size = tuple(int(x) for x in image_size)

    by_pid = {}
    for i, plan in enumerate(plans):
        by_pid.setdefault(plan.pid, []).append(i)
    tasks = []
    for identity in identities:
        index = by_pid[identity.pid]
        tasks.append(delayed(_render_identity)(
            identity, camera_list, [plans[i] for i in index], [image_seeds[i] for i in index], size, work))
    facts = {}
    bar = tqdm(total=len(plans), desc="synth", unit="img", leave=False)
    if jobs == 1:
        results = (task[0](*task[1], **task[2]) for task in tasks)
    else:
        results = Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks)
    for pid, info in results:
        facts[pid] = info
        bar.update(len(info))
    bar.close()

    _write_truth(work / TRUTH_FILE, identities, plans, facts, {**settings, "renderer_version": RENDERER_VERSION})
    replace_dir(work, out)
    log.info("wrote %d images of %d identities to %s", len(plans), ids, out)
    return out


def _settings_of(root):
    """The settings a complete dataset in ``root`` was rendered with, or None."""
    path = Path(root) / TRUTH_FILE
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            attrs = plain_attrs(f.attrs)
        found = {k: int(attrs[k]) for k in ("seed", "ids", "images_per_id", "cameras", "texture_size",
                                               "renderer_version")}
        found["image_size"] = tuple(int(x) for x in attrs["image_size"])
        found["test_ids"] = int(attrs.get("test_ids", test_count(found["ids"])))  # sets before test_ids: half
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return found


def _write_truth(path, identities, plans, facts, settings):
    mirror = body_mirror_map()
    per_image = []
    cursor = {pid: 0 for pid in facts}
    for plan in plans:  # facts of each identity are in plan order
        per_image.append(facts[plan.pid][cursor[plan.pid]])
        cursor[plan.pid] += 1
    with AtomicWrite(path) as tmp, h5py.File(tmp, "w") as f:
        p = identities[0].texture.shape[1]
        textures = f.create_dataset("texture", (len(identities), 24, p, p, 3), dtype=np.uint8,
                                    chunks=(1, 24, p, p, 3), compression="gzip", compression_opts=1)
        for i, identity in enumerate(identities):
            textures[i] = identity.texture
        f.create_dataset("pid", data=np.array([i.pid for i in identities], dtype=np.int32))
        f.create_dataset("body_shape", data=np.array(
            [[i.shape.height, i.shape.girth, i.shape.legs, i.shape.head, i.shape.depth] for i in identities],
            dtype=np.float32))
        f.create_dataset("mirror_u", data=mirror.u, compression="gzip", compression_opts=1)
        f.create_dataset("mirror_v", data=mirror.v, compression="gzip", compression_opts=1)
        images = f.create_group("images")
        images.create_dataset("key", data=np.array([p.key for p in plans], dtype=h5py.string_dtype()))
        images.create_dataset("pid", data=np.array([p.pid for p in plans], dtype=np.int32))
        images.create_dataset("camid", data=np.array([p.camid for p in plans], dtype=np.int32))
        for name, dtype in (("yaw", np.float32), ("occluded", np.float32), ("visible", np.float32),
                            ("truncated", bool)):
            images.create_dataset(name, data=np.array([x[name] for x in per_image], dtype=dtype))
        f.attrs.update({
            "format_version": FORMAT_VERSION, "generator": "densepose_textures.synth",
            "mirror_source": mirror.source, "mirror_digest": mirror.digest(),
            "body_shape_fields": "height,girth,legs,head,depth",
        })
        f.attrs.update({k: np.asarray(v) for k, v in settings.items()})


def read_truth(path):
    """Ground truth of a synthetic dataset: ({raw pid: (24, P, P, 3) uint8 atlas}, exact MirrorMap).

    ``path`` is the dataset root or its ``textures.h5``.
    """
    path = Path(path)
    if path.is_dir() or path.suffix != ".h5":
        path = path / TRUTH_FILE
    if not path.is_file():
        raise InputError(f"{path} not found: render the dataset with `sanreid synth --out DIR`")
    try:
        with h5py.File(path, "r") as f:
            if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
                raise InputError(f"{path}: format version {f.attrs.get('format_version')} is not "
                                 f"{FORMAT_VERSION}; render the dataset again with `sanreid synth`")
            textures = f["texture"][()]
            pids = f["pid"][()]
            mirror = MirrorMap.from_tables(f["mirror_u"][()], f["mirror_v"][()], str(f.attrs["mirror_source"]))
    except (OSError, KeyError) as err:
        raise InputError(f"{path} is not a synthetic ground-truth file ({err})") from err
    return {int(pid): tex for pid, tex in zip(pids, textures)}, mirror
