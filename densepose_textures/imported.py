"""Import a released texture folder (one texture image per reID image, e.g. SAN's pseudo full textures
of CUHK03-labeled) as a texture set in the shard format of :mod:`.shards`.

File-name rule: the texture of image ``a/b/NAME.ext`` is the file ``NAME.<image extension>``
(:data:`IMAGE_EXTENSIONS`, any case) anywhere under the folder; when several files have that
stem, the one in the folder's ``a/b/`` is taken, and any other tie is an error naming the files.
Every image of the dataset needs one: the images without are named (first few and a count)
before anything is written.

A released texture's layout is unknown here, so it is stored as it is, at its own size
(``layout: image``; all textures of a folder must share one size), with no mirror map; every
texel's provenance is :attr:`~.provenance.Provenance.IMPORTED`, ``observed`` is 0 (this software
saw none of it in the image). The set records ``source: import`` and ``import_digest``, the digest
of every image's texture file (name and bytes), and is reused, refused (naming the differing
field) or rebuilt with ``force`` as a warped set is (:func:`.textures.check_reusable`).
"""

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import InputError
from .imageio import read_rgb
from .provenance import Provenance
from .shards import TextureSetWriter
from .storage import file_digest
from .textures import BuildSummary, check_reusable, set_attributes

log = logging.getLogger(__name__)

SOURCE = "import"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
CHUNK = 64  # textures decoded at a time


def _first_names(names, shown=5):
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def texture_files(folder):
    """{stem: [relative paths]} of the image files under ``folder`` (recursive, hidden files left out)."""
    folder = Path(folder)
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.suffix.lower() in IMAGE_EXTENSIONS and not any(p.startswith(".") for p in rel.parts) and path.is_file():
            found.setdefault(path.stem, []).append(rel)
    return found


def match_textures(folder, keys, dataset=""):
    """The texture file (a path under ``folder``) of each image key, by the module's file-name rule.

    :class:`InputError` naming the images without a texture file (first few, and how many), or the
    images whose name matches several files, before anything is read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"texture folder {folder} does not exist: give the folder of the released textures "
                         "with --folder")
    by_stem = texture_files(folder)
    files, missing, ambiguous = [], [], []
    for key in keys:
        key = Path(key)
        candidates = by_stem.get(key.stem, [])
        if len(candidates) > 1:
            candidates = [c for c in candidates if c.parent == key.parent]
            if len(candidates) != 1:
                ambiguous.append(f"{key} ({', '.join(str(c) for c in by_stem[key.stem])})")
                continue
        if not candidates:
            missing.append(str(key))
            continue
        files.append(folder / candidates[0])
    if missing:
        of = f" of dataset {dataset}" if dataset else ""
        raise InputError(
            f"{len(missing)} of {len(keys)} images{of} have no texture file in {folder}: {_first_names(missing)}; "
            f"a texture is found by the image's file name without its extension (NAME.png, NAME.jpg, ... "
            f"anywhere under the folder): add the missing files, or check --dataset, --variant and --folder")
    if ambiguous:
        raise InputError(
            f"{len(ambiguous)} images match several texture files in {folder} and none in the image's own "
            f"sub-folder: {_first_names(ambiguous, 3)}; keep one file per image name")
    return files


def folder_digest(keys, files, folder):
    """sha256 (16 hex digits) of one ``key<TAB>texture file<TAB>file sha256`` line per image, in record order."""
    h = hashlib.sha256()
    for key, path in zip(keys, files, strict=True):
        h.update(f"{key}\t{Path(path).relative_to(folder).as_posix()}\t{file_digest(path)}\n".encode())
    return h.hexdigest()[:16]


def import_texture_set(out, *, folder, dataset, labels, shard_size=1024, jobs=1, force=False, software_version="",
                       progress=True):
    """Build (or reuse) the texture set of every image of ``labels`` ({key: (pid, camid)}, in record order)
    from the released texture images in ``folder``; returns a :class:`~.textures.BuildSummary`."""
    out, folder = Path(out), Path(folder)
    start = time.perf_counter()
    keys = list(labels)
    pids = np.array([labels[k][0] for k in keys], dtype=np.int64)
    camids = np.array([labels[k][1] for k in keys], dtype=np.int64)
    files = match_textures(folder, keys, dataset)
    digest = folder_digest(keys, files, folder)
    shape = read_rgb(files[0]).shape[:2] if files else (1, 1)
    attrs = set_attributes(dataset=dataset, keys=keys, pids=pids, camids=camids, store_attrs={}, size=0, splat="",
                           fill="", mirror=None, source=SOURCE, fuse="none", layout="image", import_digest=digest,
                           image_size=shape, software_version=software_version, shard_size=shard_size)
    if out.exists() and not force:
        check_reusable(out, attrs)
        log.info("reusing texture set %s: it matches the dataset and the texture folder", out)
        return BuildSummary(out, len(keys), len(keys), reused=True)

    writer = TextureSetWriter(out, keys, pids, camids, size=shape, attrs=attrs, mirror_index=None,
                              shard_size=shard_size, layout="image")
    resumed = len(keys) - len(writer.todo)
    observed = np.zeros(shape, np.uint8)  # nothing of a released texture was seen by this software
    provenance = np.full(shape, Provenance.IMPORTED, np.uint8)
    with writer, tqdm(total=len(writer.todo), desc="importing textures", unit="img", disable=not progress,
                      leave=False) as bar:
        with ThreadPoolExecutor(max(1, jobs)) as pool:  # OpenCV decodes without the GIL
            for a in range(0, len(writer.todo), CHUNK):
                chunk = writer.todo[a:a + CHUNK]
                for i, texture in zip(chunk, pool.map(read_rgb, [files[i] for i in chunk])):
                    if texture.shape[:2] != tuple(shape):
                        raise InputError(
                            f"texture {files[i]} is {texture.shape[0]}x{texture.shape[1]} (HxW), the folder's first, "
                            f"{files[0]}, is {shape[0]}x{shape[1]}: a set holds textures of one size; resize them "
                            "to one size first")
                    writer.put(i, texture, observed, provenance)
                    bar.update()
    writer.finish(replace=force)
    summary = BuildSummary(out, len(keys), len(keys), resumed=resumed, seconds=time.perf_counter() - start)
    log.info("texture set %s: %d imported textures of %dx%d (%d resumed) in %.1f s", out, summary.records,
             shape[0], shape[1], resumed, summary.seconds)
    return summary
