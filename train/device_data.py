"""The device-resident data path: the training set decoded once, held as uint8 on the training device.

Images are decoded and resized to the training size once (in parallel, joblib), texture targets
and provenance are read once from the texture set; all stay uint8 on the device (the GPU, or CPU
memory when training on the CPU). Each batch is augmented there as batched tensor ops, with the
worker path's own per-sample draws (:meth:`train.data.TrainImages.augmentation`, a function of
``(seed, epoch, slot)``): the same crops, flips, mirrored targets and erased rectangles. A batch
has the worker path's format (uint8 ``image``, ``target``, ``provenance``, and ``pid``), so
:func:`train.data.batch_to_device` prepares both alike.

Bytes: a sample that is not resize-cropped equals the worker path's byte for byte; a
resize-cropped one is enlarged from the training-size image (bilinear, on the device) instead of
from the original file, so its pixels differ slightly (re-sampling and rounding): the two paths
give the same augmentation draws and the same distribution, not the same bytes.
"""

import logging

import cv2
import numpy as np
import torch
from joblib import Parallel, delayed
from torch.nn import functional as F
from tqdm import tqdm

from densepose_textures.atlas import atlas_to_image, image_to_atlas_parts
from densepose_textures.errors import InputError
from densepose_textures.imageio import read_rgb

from .data import enlarged, make_loader, mirror_atlas

log = logging.getLogger(__name__)

LOADERS = ("worker", "device", "auto")
CHUNK = 256  # images per decoding task


def device_bytes(count, size, texture_size=None, target_size=None):
    """Bytes the device path holds for ``count`` images at ``size`` (H, W), with P = ``texture_size`` targets
    (or target images of ``target_size`` (H', W'), a foreign layout)."""
    per_image = 3 * size[0] * size[1]
    if target_size:
        per_image += 4 * target_size[0] * target_size[1]  # RGB target + provenance, one int32 per pixel
    elif texture_size:
        per_image += 4 * 24 * texture_size * texture_size  # RGB target + provenance, one int32 per texel
    return count * per_image


def _free_bytes(device):
    """Free memory of a CUDA device (None on the CPU: the budget alone decides there)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return free


def choose_loader(loader, need, budget_gb, device):
    """``worker`` or ``device``: ``auto`` and ``device`` take the device path when ``need`` bytes fit the budget
    (and half the GPU's free memory); otherwise one log line and the worker path."""
    if loader not in LOADERS:
        raise InputError(f"unknown train.data.loader {loader!r}; choose one of {', '.join(LOADERS)}")
    if loader == "worker":
        return "worker"
    free = _free_bytes(device)
    if need > budget_gb * 2**30:
        why = f"over train.data.device_budget_gb = {budget_gb:g}"
    elif free is not None and need > free / 2:
        why = f"over half the {free / 2**30:.1f} GB free on {device}"
    else:
        return "device"
    (log.warning if loader == "device" else log.info)(
        "device data path: the set needs %.2f GB, %s: using the worker path", need / 2**30, why)
    return "worker"


def mirror_pixels(mirror_index, texture_size):
    """(6P 4P,) flat pixel indices of the atlas image such that ``image.flat[perm]`` is the mirrored person's atlas."""
    p = texture_size
    pixel_of_texel = image_to_atlas_parts(np.arange(24 * p * p).reshape(6 * p, 4 * p, 1))  # (24, P, P, 1)
    mirrored = mirror_atlas(pixel_of_texel, np.asarray(mirror_index, dtype=np.int64).reshape(-1))
    return atlas_to_image(mirrored).reshape(-1)


def _decode(root, rels, size, textures, records):
    """Images (n, 3, H, W) at ``size`` (the worker path's plain resize), and their atlas images (n, 6P, 4P) with
    each texel's R, G, B and provenance packed in the bytes of one int32."""
    cv2.setNumThreads(1)
    h, w = size
    images = np.stack([cv2.resize(read_rgb(root / rel), (w, h), interpolation=cv2.INTER_LINEAR) for rel in rels])
    images = images.transpose(0, 3, 1, 2)
    if textures is None:
        return images, None
    recs = [textures[int(r)] for r in records]
    texels = np.concatenate([np.stack([r["texture"] for r in recs]), np.stack([r["provenance"] for r in recs])[..., None]],
                            axis=-1)  # (n, 24, P, P, 4); a foreign layout's images (n, H', W', 4)
    if textures.layout == "atlas":
        texels = atlas_to_image(texels)  # (n, 6P, 4P, 4)
    return images, np.ascontiguousarray(texels).view(np.int32)[..., 0]  # (n, 6P, 4P) or (n, H', W')


class DeviceImages:
    """The training set of a :class:`train.data.TrainImages` as uint8 tensors on ``device``; :meth:`batch`
    gives augmented batches for a list of ``(index, epoch, slot)`` keys."""

    def __init__(self, images, device, *, jobs=1, progress=True):
        self.source = images
        self.device = torch.device(device)
        n, (h, w), p = len(images), images.size, images.texture_size
        self.size, self.big = (h, w), enlarged(images.size, images.resize_crop)
        self.image = torch.empty((n, 3, h, w), dtype=torch.uint8, device=self.device)
        self.texels = None  # (N, 6P, 4P) int32: R, G, B, provenance of each atlas texel (or target pixel)
        self.mirror = None  # flat pixel of each target pixel's mirror; None: no mirror map (flipping off)
        if images.target_size:
            self.texels = torch.empty((n, *images.target_size), dtype=torch.int32, device=self.device)
            if images.layout == "atlas":
                self.mirror = torch.from_numpy(mirror_pixels(images.mirror_index, p)).to(self.device)
        self.pids = torch.from_numpy(images.pids).to(self.device)
        self.fill = torch.from_numpy(images.fill).view(1, 3, 1, 1).to(self.device)
        self._load(jobs, progress)
        log.info("device data path: %s images%s, %.0f MB on %s", f"{n:,}", " + targets" if images.target_size else "",
                 self.nbytes / 2**20, self.device)

    def _load(self, jobs, progress):
        src = self.source
        rels = [rel for rel, _, _ in src.items]
        records = src.record if src.textures is not None else [None] * len(rels)
        starts = range(0, len(rels), CHUNK)
        tasks = (delayed(_decode)(src.root, rels[a:a + CHUNK], self.size, src.textures, records[a:a + CHUNK])
                 for a in starts)
        bar = tqdm(total=len(rels), desc="decoding training set", unit="img", disable=not progress, leave=False)
        with bar:
            for a, (images, texels) in zip(starts, Parallel(n_jobs=max(jobs, 1), return_as="generator")(tasks)):
                b = a + len(images)
                self.image[a:b] = torch.from_numpy(images)
                if texels is not None:
                    self.texels[a:b] = torch.from_numpy(texels)
                bar.update(len(images))

    @property
    def nbytes(self):
        held = [t for t in (self.image, self.texels) if t is not None]
        return sum(t.numel() * t.element_size() for t in held)

    def __len__(self):
        return len(self.image)

    def batch(self, keys):
        """The augmented uint8 batch of ``keys`` on the device, in the worker path's format."""
        augs = [self.source.augmentation(epoch, slot) for _, epoch, slot in keys]
        cropped = [i for i, a in enumerate(augs) if a.crop is not None]
        flipped = [i for i, a in enumerate(augs) if a.flip]
        offsets = [v for i in cropped for v in augs[i].crop]
        boxes = [v for a in augs for v in (a.erase or (0, 0, 0, 0))]  # an empty rectangle: nothing erased
        packed = torch.tensor([k[0] for k in keys] + cropped + flipped + offsets + boxes, dtype=torch.int64)
        index, cropped_at, flipped_at, offsets, boxes = packed.to(self.device).split(
            [len(keys), len(cropped), len(flipped), len(offsets), len(boxes)])  # one copy to the device
        image = self.image.index_select(0, index)  # (B, 3, H, W)
        if cropped:
            image[cropped_at] = self._resize_crop(image.index_select(0, cropped_at), offsets.view(-1, 2))
        if flipped:
            image[flipped_at] = image.index_select(0, flipped_at).flip(-1)
        image = self._erase(image, boxes.view(-1, 4))
        sample = {"image": image, "pid": self.pids.index_select(0, index), "key": torch.tensor(keys)}  # key: on the host
        if self.texels is not None:
            texels = self.texels.index_select(0, index)  # (B, 6P, 4P)
            if flipped:
                if self.mirror is None:
                    raise ValueError("targets of a foreign layout cannot be mirrored: flipping must be off")
                mirrored = texels.index_select(0, flipped_at).flatten(1)  # (F, 6P 4P)
                mirrored = mirrored.gather(1, self.mirror.expand_as(mirrored))  # texel <- its mirror texel
                texels[flipped_at] = mirrored.view(-1, *texels.shape[1:])
            channels = texels.view(torch.uint8).view(*texels.shape, 4).permute(0, 3, 1, 2)  # (B, 4, 6P, 4P), a view
            sample["target"], sample["provenance"] = channels[:, :3], channels[:, 3:]
        return sample

    def _resize_crop(self, images, offsets):
        """(n, 3, H, W) uint8 enlarged by the resize-crop factor (bilinear), cut at ``offsets`` (n, 2) = (y, x)."""
        h, w = self.size
        if images.device.type == "cpu":  # uint8 arithmetic, as OpenCV; CUDA has no uint8 bilinear kernel
            big = F.interpolate(images, size=self.big, mode="bilinear", align_corners=False)
        else:
            big = F.interpolate(images.float(), size=self.big, mode="bilinear", align_corners=False)
            big = big.round_().clamp_(0, 255).to(torch.uint8)  # (n, 3, bh, bw)
        windows = big.unfold(2, h, 1).unfold(3, w, 1)  # (n, 3, bh - h + 1, bw - w + 1, h, w), a view
        return windows[torch.arange(len(big), device=big.device), :, offsets[:, 0], offsets[:, 1]]

    def _erase(self, image, boxes):
        """``image`` (n, 3, H, W) with each rectangle ``boxes`` (n, 4) = (y, x, height, width) set to the fill colour."""
        h, w = self.size
        y, x, eh, ew = boxes.unbind(1)
        ys, xs = torch.arange(h, device=self.device), torch.arange(w, device=self.device)
        rows = ((ys >= y[:, None]) & (ys < (y + eh)[:, None])).to(torch.uint8)  # (n, H)
        cols = ((xs >= x[:, None]) & (xs < (x + ew)[:, None])).to(torch.uint8)  # (n, W)
        inside = rows[:, None, :, None] * cols[:, None, None, :]  # (n, 1, H, W), 0 or 1
        return image * (1 - inside) + inside * self.fill  # uint8 arithmetic: far faster than torch.where on CPU


class DeviceLoader:
    """Batches of a :class:`DeviceImages` in the order of a batch ``sampler`` (``(index, epoch, slot)`` keys)."""

    def __init__(self, data, sampler):
        self.data, self.sampler = data, sampler

    def __iter__(self):
        return (self.data.batch(keys) for keys in self.sampler)

    def __len__(self):
        return len(self.sampler)


def build_loader(images, sampler, *, loader, budget_gb, workers, device, progress=True):
    """The training loader ``loader`` names (``worker``, ``device``, ``auto``; see :func:`choose_loader`)."""
    device = torch.device(device)
    need = device_bytes(len(images), images.size, images.texture_size, images.target_size)
    if choose_loader(loader, need, budget_gb, device) == "device":
        return DeviceLoader(DeviceImages(images, device, jobs=workers, progress=progress), sampler)
    return make_loader(images, sampler, workers=workers, device=device)
