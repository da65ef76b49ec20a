import numpy as np
import pytest
import torch

from densepose_textures.errors import InputError
from densepose_textures.mirror import MirrorMap
from densepose_textures.parts import MIRROR_PART


def test_approximation_follows_design():
    m = MirrorMap.approximate()
    assert not m.exact
    part, u, v = m.map_uv(np.array([1, 3, 7, 23]), np.array([0.2, 0.2, 0.2, 0.2]), np.array([0.9, 0.9, 0.9, 0.9]))
    assert part.tolist() == [1, 4, 8, 24]
    np.testing.assert_allclose(u, [0.2, 0.8, 0.2, 0.8], atol=1 / 255)
    np.testing.assert_allclose(v, [0.1, 0.9, 0.9, 0.9], atol=1 / 255)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_approximate_texel_map_is_an_involution(size):
    index = MirrorMap.approximate().texel_index(size)
    flat = index.reshape(-1)
    np.testing.assert_array_equal(flat[flat], np.arange(flat.size))


def test_flip_atlas_swaps_mirror_parts_numpy_and_torch():
    m = MirrorMap.approximate()
    texture = np.zeros((24, 8, 8, 3), np.uint8)
    texture[..., 0] = np.arange(1, 25)[:, None, None]
    flipped = m.flip_atlas(texture)
    assert (flipped[..., 0] == MIRROR_PART[1:, None, None]).all()
    np.testing.assert_array_equal(m.flip_atlas(flipped), texture)
    np.testing.assert_array_equal(m.flip_atlas(torch.from_numpy(texture)[None])[0].numpy(), flipped)


def write_mat(path, u, v):
    """Tables in DensePose's .mat form: 1 x 24 cell arrays ``U_transforms``, ``V_transforms``."""
    from scipy.io import savemat

    cells = {}
    for name, table in (("U_transforms", u), ("V_transforms", v)):
        cell = np.empty((1, 24), dtype=object)
        for i in range(24):
            cell[0, i] = table[i].astype(np.float64)
        cells[name] = cell
    savemat(path, cells)


def test_mat_round_trip(tmp_path):
    m = MirrorMap.approximate()
    path = tmp_path / "UV_symmetry_transforms.mat"
    write_mat(path, m.u, m.v)
    loaded = MirrorMap.from_mat(path)
    assert loaded.exact and loaded.source == "densepose-mat"
    np.testing.assert_allclose(loaded.u, m.u)
    np.testing.assert_allclose(loaded.v, m.v)


def test_bad_mat_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        MirrorMap.from_mat(tmp_path / "missing.mat")
    from scipy.io import savemat

    savemat(tmp_path / "other.mat", {"x": np.zeros(3)})
    with pytest.raises(InputError, match="not a DensePose UV_symmetry_transforms.mat"):
        MirrorMap.from_mat(tmp_path / "other.mat")
