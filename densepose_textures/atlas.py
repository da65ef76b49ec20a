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


SPLATS = ("nearest", "bilinear")


def _texel_tables(size):
    """Texel row and column of every encoded V and U value 0..255 (the :func:`uv_to_texel` rule)."""
    codes = np.arange(256) / 255.0
    row, col = uv_to_texel(codes, codes, size)
    return row, col


def _check_pair(image, iuv):
    if image.dtype != np.uint8 or iuv.dtype != np.uint8:
        raise ValueError(f"image and IUV must be uint8, got {image.dtype} and {iuv.dtype}")
    if image.ndim != 3 or image.shape[-1] != 3 or iuv.shape != image.shape:
        raise ValueError(
            f"image {image.shape} and IUV {iuv.shape} must both be (H, W, 3) of the same size: resize the IUV "
            "to the image with densepose_textures.imageio.resize_iuv (nearest)"
        )


def _warp(image, iuv, size, splat, texture, observed):
    """Warp one image into preallocated ``texture`` (24, P, P, 3) and ``observed`` (24, P, P)."""
    bins = NUM_PARTS * size * size
    iuv_flat = iuv.reshape(-1, 3)
    pixels = np.flatnonzero(iuv_flat[:, 0])  # foreground
    fg = np.take(iuv_flat, pixels, axis=0)  # (N, 3): I, 255 U, 255 V
    if fg.size and fg[:, 0].max() > NUM_PARTS:
        raise ValueError(f"IUV part labels must be 0..{NUM_PARTS}, found {int(fg[:, 0].max())}")
    colours = np.take(image.reshape(-1, 3), pixels, axis=0).T.astype(np.float64)  # (3, N)
    patch = (fg[:, 0].astype(np.intp) - 1) * (size * size)  # first texel of each pixel's patch
    if splat == "nearest":
        rows, cols = _texel_tables(size)
        texel = patch + rows[fg[:, 2]] * size + cols[fg[:, 1]]
        weight = np.bincount(texel, minlength=bins).astype(np.float64)
    elif splat == "bilinear":
        row_f = (1.0 - fg[:, 2] / 255.0) * (size - 1)
        col_f = fg[:, 1] / 255.0 * (size - 1)
        r0, c0 = np.floor(row_f).astype(np.intp), np.floor(col_f).astype(np.intp)
        fr, fc = row_f - r0, col_f - c0
        r1, c1 = np.minimum(r0 + 1, size - 1), np.minimum(c0 + 1, size - 1)
        texel = np.concatenate([patch + r0 * size + c0, patch + r0 * size + c1,
                                patch + r1 * size + c0, patch + r1 * size + c1])
        w = np.concatenate([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc])
        colours = np.tile(colours, 4) * w
        weight = np.bincount(texel, w, minlength=bins)
    else:
        raise ValueError(f"unknown splat {splat!r}; choose one of {', '.join(SPLATS)}")
    sums = np.empty((3, bins))
    for c in range(3):
        sums[c] = np.bincount(texel, colours[c], minlength=bins)
    seen = weight > 0
    # rounded mean (half up); division, not a reciprocal product, so exact halves stay exact
    texture.reshape(bins, 3)[:] = (sums / np.where(seen, weight, 1.0) + 0.5).astype(np.uint8).T
    observed.reshape(bins)[:] = seen


def images_to_atlas(images, iuvs, size, splat="nearest"):
    """Warp a batch of images into the atlas: (B, H, W, 3) uint8 images and IUV -> texture, observed.

    ``texture`` is (B, 24, P, P, 3) uint8, the (weighted) mean colour of the pixels that land
    on each texel, rounded; ``observed`` (B, 24, P, P) bool marks texels that received weight.
    ``nearest`` sends each foreground pixel to its nearest texel (``rint``, docs/design.md);
    ``bilinear`` spreads it over the four surrounding texels with bilinear weights. Images may
    also be a list of (H, W, 3) arrays of different sizes, each with its IUV.
    """
    if splat not in SPLATS:
        raise ValueError(f"unknown splat {splat!r}; choose one of {', '.join(SPLATS)}")
    texture = np.empty((len(images), NUM_PARTS, size, size, 3), np.uint8)
    observed = np.empty((len(images), NUM_PARTS, size, size), bool)
    # one image at a time: per-image bins stay in cache (a single bincount over the batch is 5x slower)
    for i, (image, iuv) in enumerate(zip(images, iuvs, strict=True)):
        image, iuv = np.asarray(image), np.asarray(iuv)
        _check_pair(image, iuv)
        _warp(image, iuv, size, splat, texture[i], observed[i])
    return texture, observed


def image_to_atlas(image, iuv, size, splat="nearest"):
    """Warp one uint8 RGB image (H, W, 3) with its IUV of the same size into (24, P, P, 3) texels.

    Returns ``(texture, observed)``; see :func:`images_to_atlas`. IUV is in DensePose's
    encoding (I, round(255 U), round(255 V)); no colour conversion is made.
    """
    texture, observed = images_to_atlas([image], [iuv], size, splat)
    return texture[0], observed[0]
