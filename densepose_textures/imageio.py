"""Reading and writing images and IUV PNGs. Images are handed around as uint8 RGB arrays.

Files are encoded in memory and written atomically (:class:`~densepose_textures.storage.AtomicWrite`),
so a killed run never leaves half an image behind.
"""

from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .storage import AtomicWrite


def read_rgb(path):
    """uint8 RGB (H, W, 3) of an image file; :class:`InputError` naming the file if it cannot be read."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise InputError(f"image {path} not found")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"image {path} cannot be decoded (corrupt or not an image): replace or remove it")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _write_encoded(path, array, params, what):
    """Encode ``array`` as OpenCV's writer for the file's suffix would, then write it atomically."""
    path = Path(path)
    try:
        ok, data = cv2.imencode(path.suffix, array, params)
    except cv2.error as err:
        raise InputError(f"cannot write {what} {path}: {err}") from err
    if not ok:
        raise InputError(f"cannot write {what} {path}")
    with AtomicWrite(path) as tmp:
        data.tofile(tmp)


def write_rgb(path, image, quality=95):
    """Write a uint8 RGB array (JPEG quality ``quality`` for .jpg files)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if str(path).lower().endswith((".jpg", ".jpeg")) else []
    _write_encoded(path, cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR), params, "image")


def read_iuv(path):
    """An IUV PNG as DensePose writes it (channel 0 = I, 1 = 255 U, 2 = 255 V, as ``cv2.imread`` gives)."""
    iuv = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if iuv is None or iuv.ndim != 3 or iuv.shape[2] != 3 or iuv.dtype != np.uint8:
        raise InputError(f"IUV image {path} is missing or not a 3-channel 8-bit PNG")
    return iuv


def write_iuv(path, iuv):
    """Write an IUV array with OpenCV, so that ``cv2.imread`` gives the same array back."""
    _write_encoded(path, np.ascontiguousarray(iuv, dtype=np.uint8), [], "IUV image")


def resize_iuv(iuv, size):
    """Resize an IUV image to (H, W), nearest-neighbour (never blend labels or UV across parts)."""
    h, w = size
    if iuv.shape[:2] == (h, w):
        return iuv
    return cv2.resize(iuv, (w, h), interpolation=cv2.INTER_NEAREST)
