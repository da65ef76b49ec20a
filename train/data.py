"""Training data: images from the dataset root, texture targets from a texture set, joined by key.

A sample is ``image`` (3, H, W) uint8, ``pid``, ``key`` (index, epoch, slot; -1 when not
augmented), and with a texture set ``target`` (3, 6P, 4P) uint8, the atlas drawn as one
image, and ``provenance`` (1, 6P, 4P) uint8 (255 where the target has no evidence). A set of
foreign-layout images (``layout: image``, an imported release) gives its images as they are,
(3, H', W') and (1, H', W'); the decoder predicts that size (:attr:`TrainImages.target_size`).
Tensors stay uint8 until :func:`batch_to_device`, which normalises on the device (a
quarter of the host-to-device traffic of float batches).

Augmentation (torchreid's recipe): random 1.125x resize-crop, horizontal flip,
random erasing (image only). A flipped image shows the mirrored person, so its
target is the mirrored atlas: texels move to their mirror texels (left and right
parts swapped) through the set's ``mirror_index``. A foreign layout has no mirror map, so
with such a set horizontal flipping is turned off (logged once). Randomness comes from
``(seed, epoch, slot)`` of each sample (see :mod:`train.sampler`), never from
worker state, so runs are identical whatever the number of workers and resume.

Images that do not decode are left out before training (:func:`readable_items`).
"""

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.utils.data

from densepose_textures.atlas import atlas_to_image
from densepose_textures.errors import InputError
from densepose_textures.imageio import read_rgb
from densepose_textures.provenance import Provenance
from densepose_textures.shards import TextureSet

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def first_names(names, shown=5):
    """``a, b, c and 4 more``: the first ``shown`` of ``names`` and how many others."""
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _decodes(path):
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else np.zeros(0, np.uint8)
    return data.size > 0 and cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8) is not None


def readable_items(root, items, threads=8):
    """The ``items`` whose image file decodes; the others are left out, with one warning naming the first few."""
    root = Path(root)
    with ThreadPoolExecutor(min(threads, os.cpu_count() or 1)) as pool:  # OpenCV decodes without the GIL
        ok = list(pool.map(lambda item: _decodes(root / item[0]), items))
    bad = [rel for (rel, _, _), good in zip(items, ok) if not good]
    if bad:
        log.warning("left out %d of %d training images that cannot be read (corrupt, empty or not images): %s",
                    len(bad), len(items), first_names(bad))
    return [item for item, good in zip(items, ok) if good]


def join_textures(items, textures):
    """Record index in ``textures`` of each training item; InputError naming the images without one."""
    where = {key: i for i, key in enumerate(textures.keys)}
    missing = [rel for rel, _, _ in items if rel not in where]
    if missing:
        raise InputError(
            f"{len(missing)} training image(s) have no record in the texture set {textures.path}: "
            f"{first_names(missing)}; "
            "rebuild the set for this dataset (sanreid gen-textures --dataset NAME) or pass the right --textures"
        )
    return np.array([where[rel] for rel, _, _ in items], dtype=np.int64)


class Augmentation(NamedTuple):
    """One sample's augmentation draws: what both data paths apply (:mod:`train.device_data` too)."""

    crop: tuple | None  # (y, x) of the crop in the image enlarged by resize_crop; None: plain resize
    flip: bool
    erase: tuple | None  # (y, x, height, width) of the erased rectangle, after the flip


def erasing_box(rng, h, w, area=(0.02, 0.4), min_aspect=0.3, attempts=100):
    """torchreid's RandomErasing rectangle ``(y, x, height, width)``: random area and aspect; None when none fits."""
    for _ in range(attempts):
        target = rng.uniform(*area) * h * w
        aspect = rng.uniform(min_aspect, 1.0 / min_aspect)
        eh, ew = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < eh < h and 0 < ew < w:
            y, x = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
            return int(y), int(x), eh, ew
    return None


def draw_augmentation(rng, size, *, flip, resize_crop, resize_crop_prob, erasing):
    """The :class:`Augmentation` of one sample at training ``size`` (H, W), drawn from ``rng`` in a fixed order."""
    h, w = size
    crop = None
    if resize_crop > 1 and rng.random() < resize_crop_prob:
        bh, bw = enlarged(size, resize_crop)
        crop = (int(rng.integers(0, bh - h + 1)), int(rng.integers(0, bw - w + 1)))
    flipped = bool(flip and rng.random() < 0.5)
    erase = erasing_box(rng, h, w) if rng.random() < erasing else None
    return Augmentation(crop, flipped, erase)


def augment_image(image, aug, size, resize_crop, fill=None):
    """(H, W, 3) uint8 ``image`` at training ``size`` (H, W) with :class:`Augmentation` ``aug``: a plain resize or
    its crop of the image enlarged ``resize_crop`` times, its flip, and its erased rectangle painted ``fill``
    (None: not erased)."""
    h, w = size
    if aug.crop is None:
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        bh, bw = enlarged(size, resize_crop)
        y, x = aug.crop
        image = cv2.resize(image, (bw, bh), interpolation=cv2.INTER_LINEAR)[y:y + h, x:x + w]
    if aug.flip:
        image = image[:, ::-1]
    image = np.ascontiguousarray(image)
    if aug.erase is not None and fill is not None:
        y, x, eh, ew = aug.erase
        image[y:y + eh, x:x + ew] = fill
    return image


def enlarged(size, factor):
    """(H, W) of the image the resize-crop cuts from."""
    return int(round(size[0] * factor)), int(round(size[1] * factor))


class TrainImages(torch.utils.data.Dataset):
    """Augmented training images (and texture targets when ``textures`` is given).

    ``items``: ``(relative_path, pid, camid)`` with pids 0..N-1. Indexed by ``(index, epoch, slot)``
    as :class:`train.sampler.IdentitySampler` yields, or by a plain index (no augmentation).
    """

    def __init__(self, root, items, textures=None, *, height, width, flip, resize_crop, resize_crop_prob,
                 erasing, seed=0, mean=IMAGENET_MEAN):
        self.root = Path(root)
        self.items = list(items)
        self.pids = np.array([pid for _, pid, _ in self.items], dtype=np.int64)
        self.size = (height, width)
        self.flip, self.resize_crop, self.resize_crop_prob, self.erasing = flip, resize_crop, resize_crop_prob, erasing
        self.seed = seed
        self.fill = np.rint(np.asarray(mean) * 255).astype(np.uint8)
        self.textures = None if textures is None else TextureSet(textures)  # shards opened lazily per worker
        self.texture_size = None  # P of atlas targets
        self.target_size = None  # (H, W) of a target image: (6P, 4P) for atlases
        self.layout = None
        self.empty_records = 0
        if self.textures is not None:
            self.record = join_textures(self.items, self.textures)
            self.layout = self.textures.layout
            self.target_size = self.textures.target_shape
            if self.layout == "atlas":
                self.texture_size = int(self.textures.size)
            self.mirror_index = np.asarray(self.textures.mirror_index, dtype=np.int64).reshape(-1)  # (24 P P,)
            if not self.textures.mirrorable and self.flip:
                why = (f"holds {self.target_size[0]}x{self.target_size[1]} images of a foreign layout (source "
                       f"{self.textures.attrs.get('source', '?')})" if self.layout == "image"
                       else "was built without mirroring (--no-mirror)")
                log.info("texture set %s %s, so it has no mirror map: horizontal flipping is off for this run "
                         "(a flipped person would not match its target)", self.textures.path, why)
                self.flip = False
            empty = [rel for (rel, _, _), found in zip(self.items, self.textures.found[self.record]) if not found]
            self.empty_records = len(empty)
            if empty:
                log.info("%d of %d training images have no person in the texture set (their texture loss is masked): "
                         "%s", len(empty), len(self.items), first_names(empty))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, key):
        index, epoch, slot = key if isinstance(key, tuple) else (key, None, None)
        image, flipped = self.image(index, epoch, slot)
        sample = {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                  "pid": int(self.pids[index]), "key": torch.tensor([index, -1 if epoch is None else epoch,
                                                                     -1 if slot is None else slot])}
        if self.textures is not None:
            sample.update(self.target(index, flipped))
        return sample

    def image(self, index, epoch=None, slot=None, *, erase=True):
        """(H, W, 3) uint8 image of sample ``(index, epoch, slot)`` and whether it is flipped; only resized when
        ``epoch`` is None (or -1, as in a sample's ``key``). ``erase=False``: the same augmented image before
        random erasing (what pictures show)."""
        aug = Augmentation(None, False, None) if epoch is None or epoch < 0 else self.augmentation(epoch, slot)
        image = augment_image(read_rgb(self.root / self.items[index][0]), aug, self.size, self.resize_crop,
                              self.fill if erase else None)
        return image, aug.flip

    def augmentation(self, epoch, slot):
        """The :class:`Augmentation` of the sample at ``slot`` of ``epoch``: a function of ``(seed, epoch, slot)``."""
        return draw_augmentation(np.random.default_rng([self.seed, epoch, slot]), self.size, flip=self.flip,
                                 resize_crop=self.resize_crop, resize_crop_prob=self.resize_crop_prob,
                                 erasing=self.erasing)

    def target(self, index, flipped):
        """Target atlas image (3, 6P, 4P) and provenance (1, 6P, 4P), mirrored when the image is flipped;
        a foreign-layout image (3, H', W') and (1, H', W') as stored (never flipped)."""
        rec = self.textures[int(self.record[index])]
        texture, provenance = rec["texture"], rec["provenance"]  # (24, P, P, 3), (24, P, P); or (H', W', 3), (H', W')
        if self.layout == "image":
            if flipped:
                raise ValueError("a target of a foreign layout cannot be mirrored: flipping must be off")
            image, prov = texture, provenance[..., None]
        else:
            if flipped:
                texture = mirror_atlas(texture, self.mirror_index)
                provenance = mirror_atlas(provenance, self.mirror_index)
            image = atlas_to_image(texture)  # (6P, 4P, 3)
            prov = atlas_to_image(provenance[..., None])  # (6P, 4P, 1)
        return {
            "target": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "provenance": torch.from_numpy(np.ascontiguousarray(prov.transpose(2, 0, 1))),
        }


def mirror_atlas(atlas, mirror_index):
    """The atlas of the mirrored person: texel t takes the value of texel ``mirror_index[t]``.

    ``atlas`` (24, P, P) or (24, P, P, C); ``mirror_index`` flat (24 P P,) indices.
    """
    flat = atlas.reshape(mirror_index.size, -1)
    return flat[mirror_index].reshape(atlas.shape)


def _quiet_worker(_):
    """One torch thread per DataLoader worker: the workers are the parallelism (no oversubscription)."""
    torch.set_num_threads(1)


def make_loader(dataset, sampler, *, workers, device):
    """DataLoader over an identity batch sampler; pinned memory on CUDA, persistent workers.

    With workers, OpenCV is set to one thread in this process, before they fork, and so in them: a worker
    that resizes the OpenCV thread pool of a parent that has used it hangs (the pool's threads are not forked).
    """
    if workers > 0:
        cv2.setNumThreads(1)
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        worker_init_fn=_quiet_worker if workers > 0 else None,
        pin_memory=torch.device(device).type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def batch_to_device(batch, device, *, mean=IMAGENET_MEAN, std=IMAGENET_STD, channels_last=False):
    """uint8 batch -> float inputs on ``device``: normalised images, targets in [-1, 1], evidence mask."""
    device = torch.device(device)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
    images = (batch["image"].to(device, non_blocking=True).float() - mean_t) / std_t
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    out = {"images": images, "pids": batch["pid"].to(device, non_blocking=True)}
    if "target" in batch:
        out["target"] = batch["target"].to(device, non_blocking=True).float() / 127.5 - 1.0  # (B, 3, 6P, 4P)
        provenance = batch["provenance"].to(device, non_blocking=True)  # (B, 1, 6P, 4P) uint8
        out["mask"] = (provenance != Provenance.NO_PERSON).float()
        out["provenance"] = provenance
    if "warp" in batch:  # a warp-input generator's second input: the image's warp + fill and its fill steps
        out["warp"] = {"filled": batch["warp"].to(device, non_blocking=True).float() / 127.5 - 1.0,
                       "steps": batch["warp_steps"].to(device, non_blocking=True)}
    return out
