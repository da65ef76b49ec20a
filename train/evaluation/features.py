"""Retrieval features of dataset items or of any folder of images, batched, optionally flip-averaged."""

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from densepose_textures.errors import InputError
from densepose_textures.imageio import read_rgb

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


def extract_features(model, root, items, preprocess, *, flip=True, batch_size=128, device="cpu", workers=0,
                     progress=True):
    """(N, D) float32 CPU features of ``items`` (``(relative_path, pid, camid)`` under ``root``).

    ``model`` maps normalised (B, 3, H, W) images to (B, D) features; it is put in eval mode (callers
    restore the mode they need). ``flip``: the mean of the image's and its mirror image's features.
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
    import h5py

    features = torch.as_tensor(features).float().cpu().numpy()
    if len(features) != len(items):
        raise InputError(f"{len(features)} features for {len(items)} images")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("features", data=features)
        f.create_dataset("keys", data=[item[0] for item in items], dtype=h5py.string_dtype())
        f.create_dataset("pids", data=np.array([item[1] for item in items], dtype=np.int64))
        f.create_dataset("camids", data=np.array([item[2] for item in items], dtype=np.int64))
        for key, value in attrs.items():
            f.attrs[key] = value
    tmp.replace(path)
    return path


def read_features(path):
    """(features (N, D) float32 tensor, items list of (key, pid, camid), attrs dict) of a ``features.h5``."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"features file {path} not found: write it with `sanreid extract`")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("features", "keys", "pids", "camids") if k not in f]
            if missing:
                raise InputError(f"{path} lacks {', '.join(missing)}: not a `sanreid extract` features file")
            features = torch.from_numpy(f["features"][()].astype(np.float32))
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f["keys"][()]]
            items = list(zip(keys, f["pids"][()].tolist(), f["camids"][()].tolist()))
            attrs = dict(f.attrs)
    except OSError as err:
        raise InputError(f"cannot read features file {path}: {err}") from err
    if features.ndim != 2 or len(features) != len(items):
        raise InputError(f"{path}: features {tuple(features.shape)} do not match its {len(items)} keys")
    return features, items, attrs
