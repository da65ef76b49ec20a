"""The texture atlas: 24 P x P patches, one per DensePose part, and its one-image layout.

Inside a patch, column = U * (P - 1) and row = (1 - V) * (P - 1), rounded to the
nearest texel. Drawn as one image, the atlas uses DensePose's layout (6P tall,
4P wide, filled column by column: part I at patch row (I-1) % 6, column (I-1) // 6),
so it works as ``--texture_atlas`` in DensePose's ``apply_net.py``.
"""

import numpy as np

from .parts import NUM_PARTS

ATLAS_ROWS, ATLAS_COLS = 6, 4


def uv_to_texel(u, v, size):
    """Nearest texel (row, col) of chart coordinates u, v in [0, 1] (numpy arrays)."""
    col = np.rint(np.asarray(u, dtype=np.float64) * (size - 1)).astype(np.int64)
    row = np.rint((1.0 - np.asarray(v, dtype=np.float64)) * (size - 1)).astype(np.int64)
    return row, col


def texel_to_uv(row, col, size):
    """Chart coordinates (u, v) of texel centres; inverse of :func:`uv_to_texel`."""
    u = np.asarray(col, dtype=np.float64) / (size - 1)
    v = 1.0 - np.asarray(row, dtype=np.float64) / (size - 1)
    return u, v


def _permute(x, axes):
    return x.permute(*axes) if hasattr(x, "permute") else np.transpose(x, axes)


def atlas_to_image(texture):
    """(..., 24, P, P, C) patches -> (..., 6P, 4P, C) DensePose atlas image. numpy or torch."""
    *lead, parts, p, p2, c = texture.shape
    if parts != NUM_PARTS or p != p2:
        raise ValueError(f"expected (..., {NUM_PARTS}, P, P, C) patches, got shape {tuple(texture.shape)}")
    n = len(lead)
    x = texture.reshape(*lead, ATLAS_COLS, ATLAS_ROWS, p, p, c)
    axes = tuple(range(n)) + (n + 1, n + 2, n, n + 3, n + 4)  # (..., rows, P, cols, P, C)
    return _permute(x, axes).reshape(*lead, ATLAS_ROWS * p, ATLAS_COLS * p, c)


def image_to_atlas_parts(image):
    """(..., 6P, 4P, C) DensePose atlas image -> (..., 24, P, P, C) patches. numpy or torch."""
    *lead, h, w, c = image.shape
    p = h // ATLAS_ROWS
    if h != ATLAS_ROWS * p or w != ATLAS_COLS * p:
        raise ValueError(f"an atlas image is 6P x 4P, got {h} x {w}")
    n = len(lead)
    x = image.reshape(*lead, ATLAS_ROWS, p, ATLAS_COLS, p, c)
    axes = tuple(range(n)) + (n + 2, n, n + 1, n + 3, n + 4)  # (..., cols, rows, P, P, C)
    return _permute(x, axes).reshape(*lead, NUM_PARTS, p, p, c)
