"""Shared fixtures. Datasets come from the project's own renderer or tiny trees the tests build."""

import pytest


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A tiny synthetic dataset in the Market-1501 layout, with exact IUV and true textures."""
    from densepose_textures.synth import write_dataset

    root = tmp_path_factory.mktemp("synth") / "synth"
    write_dataset(root, ids=8, images_per_id=4, cameras=3, seed=0, image_size=(128, 64), texture_size=32, jobs=1)
    return root
