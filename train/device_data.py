"""The device-resident data path: the training set decoded once, held as uint8 on the training device.

Images are decoded and resized to the training size once (in parallel, joblib), texture targets
and provenance are read once from the texture set; all stay uint8 on the device (the GPU, or CPU
memory when training on the CPU). Each batch is augmented there, sample by sample into two reused
output buffers (no batch-size temporaries: fresh large allocations cost page faults on the CPU), with the
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
        self.fill = torch.from_numpy(images.fill).view(3, 1, 1).to(self.device)
        self._ring, self._turn = [None, None], 1  # output buffers, see _buffers
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
        """The augmented uint8 batch of ``keys`` on the device, in the worker path's format. Its tensors are
        overwritten two batches later (:meth:`_buffers`; the trainer makes floats of them at once): copy to keep."""
        augs = [self.source.augmentation(epoch, slot) for _, epoch, slot in keys]
        if self.texels is not None and self.mirror is None and any(a.flip for a in augs):
            raise ValueError("targets of a foreign layout cannot be mirrored: flipping must be off")
        rows = [k[0] for k in keys]
        out = self._buffers(len(keys))
        image, h, w = out["image"], *self.size
        cropped = [b for b, a in enumerate(augs) if a.crop is not None]
        big = dict(zip(cropped, self._enlarge([rows[b] for b in cropped], out.get("scratch")))) if cropped else {}
        for b, (row, aug) in enumerate(zip(rows, augs)):  # per sample: no batch-size temporaries
            src = self.image[row]
            if aug.crop is not None:
                y, x = aug.crop
                src = big[b][:, y:y + h, x:x + w]
            image[b].copy_(src.flip(-1) if aug.flip else src)
            if aug.erase is not None:
                y, x, eh, ew = aug.erase
                image[b, :, y:y + eh, x:x + ew] = self.fill
        sample = {"image": image, "pid": self.pids[rows], "key": torch.tensor(keys)}  # key: on the host
        if self.texels is not None:
            texels = out["texels"]  # (B, 6P, 4P)
            for b, (row, aug) in enumerate(zip(rows, augs)):
                if aug.flip:  # texel <- its mirror texel
                    torch.index_select(self.texels[row].view(-1), 0, self.mirror, out=texels[b].view(-1))
                else:
                    texels[b].copy_(self.texels[row])
            channels = texels.view(torch.uint8).view(*texels.shape, 4).permute(0, 3, 1, 2)  # (B, 4, 6P, 4P), a view
            sample["target"], sample["provenance"] = channels[:, :3], channels[:, 3:]
        return sample

    def _buffers(self, n):
        """The next of two output buffer sets (uint8 images, int32 texels), ``n`` samples long: a batch's tensors
        live until the batch after next, so the trainer's batch and the one before it (``last``) stay intact."""
        self._turn = 1 - self._turn
        held = self._ring[self._turn]
        if held is None or len(held["image"]) < n:
            held = {"image": torch.empty((n, 3, *self.size), dtype=torch.uint8, device=self.device)}
            if self.device.type == "cpu":  # the images to enlarge (in _enlarge), channels-last
                held["scratch"] = torch.empty_like(held["image"], memory_format=torch.channels_last)
            if self.texels is not None:
                held["texels"] = torch.empty((n, *self.texels.shape[1:]), dtype=torch.int32, device=self.device)
            self._ring[self._turn] = held
        return {name: t[:n] for name, t in held.items()}

    def _enlarge(self, rows, scratch):
        """The images at ``rows`` (n, 3, H, W) enlarged by the resize-crop factor (bilinear), uint8."""
        index = torch.tensor(rows, device=self.device)
        if self.device.type == "cpu":  # uint8 arithmetic, as OpenCV; channels-last: the CPU's fast uint8 kernel
            images = torch.index_select(self.image, 0, index, out=scratch[:len(rows)])
            return F.interpolate(images, size=self.big, mode="bilinear", align_corners=False)
        big = F.interpolate(self.image.index_select(0, index).float(), size=self.big, mode="bilinear",
                            align_corners=False)
        return big.round_().clamp_(0, 255).to(torch.uint8)  # CUDA has no uint8 bilinear kernel


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
