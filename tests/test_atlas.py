import numpy as np
import pytest

from densepose_textures.atlas import image_to_atlas, images_to_atlas, uv_to_texel


def reference_warp(image, iuv, size):
    """DensePose notebook style: per part, nearest texel, last write wins."""
    texture = np.zeros((24, size, size, 3), np.uint8)
    for part in range(1, 25):
        mask = iuv[..., 0] == part
        row, col = uv_to_texel(iuv[..., 1][mask] / 255.0, iuv[..., 2][mask] / 255.0, size)
        texture[part - 1, row, col] = image[mask]
    return texture


def random_pair(rng, h=40, w=24, fg=0.6):
    iuv = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    iuv[..., 0] = np.where(rng.random((h, w)) < fg, rng.integers(1, 25, (h, w)), 0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), iuv


def test_each_pixel_lands_on_its_nearest_texel():
    size = 9
    iuv = np.array([[[3, 0, 255], [7, 255, 0], [24, 128, 64], [0, 50, 50]]], np.uint8)
    image = np.array([[[10, 20, 30], [40, 50, 60], [70, 80, 90], [1, 2, 3]]], np.uint8)
    texture, observed = image_to_atlas(image, iuv, size)
    assert texture.shape == (24, size, size, 3) and observed.dtype == bool
    assert observed.sum() == 3  # the background pixel goes nowhere
    for (part, u, v), colour in zip(iuv[0, :3], image[0, :3]):
        row, col = uv_to_texel(u / 255, v / 255, size)
        assert observed[part - 1, row, col]
        np.testing.assert_array_equal(texture[part - 1, row, col], colour)
    assert (texture[~observed] == 0).all()


def test_texels_hit_by_several_pixels_take_the_rounded_mean():
    iuv = np.array([[[5, 100, 100], [5, 100, 100], [5, 101, 101]]], np.uint8)  # same texel at P = 8
    image = np.array([[[0, 10, 255], [1, 20, 255], [4, 30, 0]]], np.uint8)
    texture, observed = image_to_atlas(image, iuv, 8)
    assert observed.sum() == 1
    np.testing.assert_array_equal(texture[observed][0], [2, 20, 170])  # (5/3, 60/3, 510/3) rounded


def test_nearest_matches_the_reference_where_no_texel_is_shared():
    rng = np.random.default_rng(1)
    image, iuv = random_pair(rng, 64, 32)
    size = 64
    texture, observed = image_to_atlas(image, iuv, size)
    ref = reference_warp(image, iuv, size)
    part = iuv[..., 0].astype(int) - 1
    row, col = uv_to_texel(iuv[..., 1] / 255, iuv[..., 2] / 255, size)
    flat = ((part * size + row) * size + col)[part >= 0]
    counts = np.bincount(flat, minlength=24 * size * size).reshape(24, size, size)
    single = counts == 1
    np.testing.assert_array_equal(texture[single], ref[single])
    np.testing.assert_array_equal(observed, counts > 0)


def test_bilinear_spreads_over_four_texels():
    size = 5  # 255 / 4 apart; U = 32 and V = 223 fall midway-ish between texels
    iuv = np.array([[[1, 0, 255], [2, 32, 223]]], np.uint8)
    image = np.array([[[200, 100, 50], [9, 9, 9]]], np.uint8)
    texture, observed = image_to_atlas(image, iuv, size, splat="bilinear")
    assert observed[0].sum() == 1 and observed[0, 0, 0]  # exactly on a texel centre: one texel
    np.testing.assert_array_equal(texture[0, 0, 0], [200, 100, 50])
    assert observed[1].sum() == 4 and observed[1, :2, :2].all()
    assert (texture[1][observed[1]] == 9).all()


def test_batched_form_equals_single_images():
    rng = np.random.default_rng(2)
    pairs = [random_pair(rng) for _ in range(3)]
    for splat in ("nearest", "bilinear"):
        texture, observed = images_to_atlas(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), 16, splat)
        for i, (image, iuv) in enumerate(pairs):
            t, o = image_to_atlas(image, iuv, 16, splat)
            np.testing.assert_array_equal(texture[i], t)
            np.testing.assert_array_equal(observed[i], o)


def test_bad_input_is_refused():
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="resize_iuv"):
        image_to_atlas(image, np.zeros((8, 4, 3), np.uint8), 8)
    bad = np.zeros((4, 4, 3), np.uint8)
    bad[0, 0, 0] = 25
    with pytest.raises(ValueError, match="0..24"):
        image_to_atlas(image, bad, 8)
    with pytest.raises(ValueError, match="splat"):
        image_to_atlas(image, bad, 8, splat="cubic")
