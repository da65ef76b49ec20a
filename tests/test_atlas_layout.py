import numpy as np
import torch

from densepose_textures.atlas import atlas_to_image, image_to_atlas_parts, texel_to_uv, uv_to_texel


def test_atlas_image_layout_is_column_major():
    p = 4
    texture = np.zeros((24, p, p, 3), np.uint8)
    texture[:, :, :, 0] = np.arange(1, 25)[:, None, None]
    image = atlas_to_image(texture)
    assert image.shape == (6 * p, 4 * p, 3)
    for part in range(1, 25):
        row, col = (part - 1) % 6, (part - 1) // 6
        assert (image[row * p:(row + 1) * p, col * p:(col + 1) * p, 0] == part).all()


def test_layout_round_trip_numpy_and_torch_batched():
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (2, 24, 5, 5, 3), dtype=np.uint8)
    image = atlas_to_image(texture)
    np.testing.assert_array_equal(image_to_atlas_parts(image), texture)
    t_image = atlas_to_image(torch.from_numpy(texture))
    np.testing.assert_array_equal(t_image.numpy(), image)
    np.testing.assert_array_equal(image_to_atlas_parts(t_image).numpy(), texture)


def test_texel_rule():
    # column = U (P-1), row = (1 - V)(P-1), nearest texel.
    row, col = uv_to_texel(np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 0.5]), 33)
    assert row.tolist() == [0, 32, 16] and col.tolist() == [0, 32, 16]
    u, v = texel_to_uv(row, col, 33)
    np.testing.assert_allclose(u, [0, 1, 0.5])
    np.testing.assert_allclose(v, [1, 0, 0.5])
