"""Retrieval features of dataset items or of any folder of images, batched, optionally flip-averaged."""

import logging
import re
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
from tqdm import tqdm

from densepose_textures.errors import InputError
from densepose_textures.imageio import read_rgb
from densepose_textures.storage import AtomicWrite, H5Reader

from ..settings import EvalParams

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")


def image_items(folder):
    """``(relative_path, pid, camid)`` of every image under ``folder`` (sorted); pid and 0-based camid
    read from Market-1501 style names (``0002_c1s1_...``), -1 where the name does not say."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"image folder {folder} not found")
    items = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        match = _MARKET_NAME.match(path.name)
        pid, camid = (int(match.group(1)), int(match.group(2)) - 1) if match else (-1, -1)
        items.append((path.relative_to(folder).as_posix(), pid, camid))
    if not items:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return items


class _Images(torch.utils.data.Dataset):
    """Images resized (bilinear) to the model's input and normalised, as (3, H, W) float tensors."""

    def __init__(self, root, items, preprocess):
        self.root, self.paths = Path(root), [item[0] for item in items]
        self.size = (int(preprocess["width"]), int(preprocess["height"]))  # cv2 order
        self.mean = np.asarray(preprocess["mean"], dtype=np.float32) * 255
        self.std = np.asarray(preprocess["std"], dtype=np.float32) * 255

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        image = cv2.resize(read_rgb(self.root / self.paths[i]), self.size, interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(((image - self.mean) / self.std).transpose(2, 0, 1).copy())


def extract_features(model, root, items, preprocess, *, flip=EvalParams.flip, batch_size=EvalParams.batch_size,
                     device="cpu", workers=0, progress=True):
    """(N, D) float32 CPU features of ``items`` (``(relative_path, pid, camid)`` under ``root``).

    ``model`` maps normalised (B, 3, H, W) images to (B, D) features; it is put in eval mode (callers
    restore the mode they need). ``flip``: the mean of the image's and its mirror image's features.
    ``workers``: image-loading processes (0: this one, as the training monitor needs; the CLI passes
    ``eval.workers``).
    """
    items = list(items)
    if not items:
        raise InputError(f"no images to extract features from (under {root})")
    device = torch.device(device)
    model.eval()
    loader = torch.utils.data.DataLoader(_Images(root, items, preprocess), batch_size=batch_size,
                                         num_workers=workers, pin_memory=device.type == "cuda")
    chunks = []
    with torch.no_grad():
        for batch in tqdm(loader, desc="features", unit="batch", disable=not progress, leave=False):
            batch = batch.to(device, non_blocking=True)
            feats = model(batch).float()
            if flip:
                feats = (feats + model(batch.flip(3)).float()) / 2
            chunks.append(feats.cpu())
    features = torch.cat(chunks)
    log.info("extracted %d x %d features from %s", *features.shape, root)
    return features


def write_features(path, features, items, **attrs):
    """Write ``features.h5``: ``features`` (N, D) float32, ``keys``, ``pids``, ``camids``; ``attrs`` as attributes."""
    features = torch.as_tensor(features).float().cpu().numpy()
    if len(features) != len(items):
        raise InputError(f"{len(features)} features for {len(items)} images")
    with AtomicWrite(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("features", data=features)
        f.create_dataset("keys", data=[item[0] for item in items], dtype=h5py.string_dtype())
        f.create_dataset("pids", data=np.array([item[1] for item in items], dtype=np.int64))
        f.create_dataset("camids", data=np.array([item[2] for item in items], dtype=np.int64))
        for key, value in attrs.items():
            f.attrs[key] = value
    return Path(path)


class FeaturesFile(H5Reader):
    """A ``features.h5``: ``.items`` ((key, pid, camid) list), ``.attrs``, ``len()``; the (N, D) matrix
    is read on demand (:meth:`features`, all or some rows), through a handle opened once per process."""

    what = "features file"
    make = "write it with `sanreid extract`"
    fix = "write it again with `sanreid extract`"
    required = ("features", "keys", "pids", "camids")

    def read_header(self, f):
        self.items = list(zip(f["keys"].asstr()[()], f["pids"][()].tolist(), f["camids"][()].tolist()))
        shape = f["features"].shape
        if len(shape) != 2 or shape[0] != len(self.items):
            raise InputError(f"{self.path}: features {tuple(shape)} do not match its {len(self.items)} keys")

    def __len__(self):
        return len(self.items)

    def features(self, rows=slice(None)):
        """(N, D) float32 tensor of the features of ``rows`` (default: all)."""
        return torch.from_numpy(self.h5(self.path)["features"][rows].astype(np.float32))


def read_features(path):
    """(features (N, D) float32 tensor, items list of (key, pid, camid), attrs dict) of a ``features.h5``."""
    with FeaturesFile(path) as f:
        return f.features(), f.items, f.attrs
