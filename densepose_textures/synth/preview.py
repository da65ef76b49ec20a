"""A picture of a synthetic dataset: per identity, its images, their IUV coloured by part, and
its ground-truth atlas (DensePose layout)."""

from itertools import zip_longest
from pathlib import Path

import cv2
import h5py
import numpy as np

from ..atlas import atlas_to_image
from ..errors import InputError
from ..imageio import read_iuv, read_rgb, write_rgb
from ..storage import AtomicWrite
from .dataset import TRUTH_FILE, iuv_path, read_truth

# one colour per part (0 = background), spread around the hue circle, neighbours distinct
_HUES = (np.arange(24) * 7 % 24) / 24.0


def part_palette():
    """(25, 3) uint8 RGB: black, then a distinct colour per part."""
    hsv = np.stack([_HUES * 179, np.full(24, 200), np.full(24, 255)], axis=1).astype(np.uint8)
    rgb = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]
    return np.concatenate([np.zeros((1, 3), np.uint8), rgb])


def colour_iuv(iuv):
    """(H, W, 3) uint8 RGB picture of an IUV image: hue = part, brightness rises with V, a U ripple."""
    part = iuv[..., 0].astype(np.int64)
    base = part_palette()[part].astype(np.float32)
    v = iuv[..., 2].astype(np.float32) / 255.0
    u = iuv[..., 1].astype(np.float32) / 255.0
    shade = 0.45 + 0.45 * v + 0.1 * np.cos(u * 6 * np.pi)
    return np.clip(base * shade[..., None], 0, 255).astype(np.uint8)


def _keys_by_pid(root):
    with h5py.File(Path(root) / TRUTH_FILE, "r") as f:
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f["images/key"][()]]
        pids = f["images/pid"][()]
        cams = f["images/camid"][()]
    out = {}
    for key, pid, cam in zip(keys, pids, cams):
        out.setdefault(int(pid), []).append((int(cam), key))
    return out


def preview_grid(root, *, ids=6, images=4, pids=None):
    """(H, W, 3) uint8 grid: a row per identity (``images`` views from distinct cameras first,
    then their IUV, then the atlas). ``pids`` picks identities, else the first test ones."""
    root = Path(root)
    truth, _ = read_truth(root)
    by_pid = _keys_by_pid(root)
    if pids is None:
        ordered = sorted(by_pid)
        test = ordered[len(ordered) // 2:]
        pids = (test + ordered)[:ids]
    rows = []
    for pid in pids:
        if pid not in by_pid:
            raise InputError(f"identity {pid} is not in {root / TRUTH_FILE}")
        by_cam = {}
        for cam, key in sorted(by_pid[pid]):
            by_cam.setdefault(cam, []).append(key)
        # one image per camera first, then the second of each camera, ...
        chosen = [k for group in zip_longest(*by_cam.values()) for k in group if k][:images]
        pics = [read_rgb(root / k) for k in chosen]
        iuvs = [colour_iuv(read_iuv(iuv_path(root, k))) for k in chosen]
        h, w = pics[0].shape[:2]
        atlas = atlas_to_image(truth[pid])  # (6P, 4P, 3)
        atlas = cv2.resize(atlas, (h * 2 // 3, h), interpolation=cv2.INTER_NEAREST)
        blank = [np.zeros((h, w, 3), np.uint8)] * (images - len(chosen))
        gap = np.full((h, 4, 3), 255, np.uint8)
        rows.append(np.concatenate(pics + blank + [gap] + iuvs + blank + [gap, atlas], axis=1))
    sep = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([x for r in rows for x in (r, sep)][:-1], axis=0)


def write_png(path, grid, colours=0):
    """Write the grid as PNG; ``colours`` > 0 stores a palette of that many colours (a smaller file)."""
    if not colours:
        write_rgb(path, grid)
        return
    if not 2 <= colours <= 256:
        raise InputError(f"colours={colours}: a PNG palette holds 2 to 256 colours (0: full colour)")
    from PIL import Image

    image = Image.fromarray(grid).quantize(colors=colours, method=Image.Quantize.MEDIANCUT,
                                           dither=Image.Dither.NONE)
    with AtomicWrite(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
