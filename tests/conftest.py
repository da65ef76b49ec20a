"""Shared fixtures. Datasets come from the project's own renderer or tiny trees the tests build."""

import pytest


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A tiny synthetic dataset in the Market-1501 layout, with exact IUV and true textures."""
    from densepose_textures.synth import write_dataset

    root = tmp_path_factory.mktemp("synth") / "synth"
    write_dataset(root, ids=8, images_per_id=4, cameras=3, seed=0, image_size=(128, 64), texture_size=32, jobs=1)
    return root


@pytest.fixture(scope="session")
def synth_iuv_store(synth_root, tmp_path_factory):
    """IUV store of every split of ``synth_root`` by the synth backend (what `sanreid iuv --splits all` writes)."""
    from densepose_textures.iuv.run import run_iuv
    from densepose_textures.iuv.synth_backend import SynthBackend
    from pipeline import datasets
    from pipeline.params import IUVParams

    ds = datasets.load("synth", synth_root)
    keys = [path for split in ("train", "query", "gallery") for path, _, _ in ds.split(split)]
    out = tmp_path_factory.mktemp("iuv") / "synth.h5"
    run_iuv(SynthBackend(synth_root), synth_root, keys, out, size=IUVParams().size, progress=False,
            extra_attrs={"dataset": "synth", "splits": "all"})
    return out
