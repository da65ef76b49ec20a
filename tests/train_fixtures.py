"""Helpers of the trainer tests: a texture set built from the synthetic dataset with the project's own code."""

import numpy as np
import pytest

from densepose_textures.atlas import image_to_atlas
from densepose_textures.fill import fill_atlas
from densepose_textures.imageio import read_iuv, read_rgb
from densepose_textures.provenance import Provenance
from densepose_textures.shards import write_texture_set
from densepose_textures.synth import body_mirror_map, iuv_path


def synth_items(root):
    from pipeline.datasets import load

    return load("synth", root)


def build_texture_set(root, items, out, size, *, fill=True, empty=()):
    """Texture set of ``items`` (warp each image with its exact IUV, then fill); keys in ``empty`` get no person."""
    mirror = body_mirror_map()
    textures, observed, provenance = [], [], []
    for rel, _, _ in items:
        tex, obs = image_to_atlas(read_rgb(root / rel), read_iuv(iuv_path(root, rel)), size)
        if rel in empty:
            tex, obs = np.zeros_like(tex), np.zeros_like(obs)
        if fill:
            tex, prov = fill_atlas(tex, obs, mirror=mirror)
        else:
            prov = np.where(obs > 0, Provenance.OBSERVED, Provenance.NO_PERSON).astype(np.uint8)
        textures.append(tex), observed.append(obs), provenance.append(prov)
    return write_texture_set(out, np.stack(textures), np.stack(observed), np.stack(provenance),
                             [r for r, _, _ in items], [p for _, p, _ in items], [c for _, _, c in items],
                             mirror_index=mirror.texel_index(size), attrs={"dataset": "synth", "fill": "nearest"})


TRAIN_SETTINGS = [
    "model.backbone=resnet18", "data.height=64", "data.width=32", "data.ids_per_batch=3", "data.images_per_id=4",
    "data.workers=0", "optim.profile=faithful", "optim.warmup_epochs=0", "optim.texture_lr=0.001",
    "checkpoint_every=1", "picture_every=1",
]


@pytest.fixture(scope="session")
def train_set(tmp_path_factory):
    """(root, texture set) of a small synthetic dataset: 6 training ids x 8 images at 64x32, P = 8."""
    from densepose_textures.synth import write_dataset

    base = tmp_path_factory.mktemp("trainset")
    root = write_dataset(base / "synth", ids=12, images_per_id=8, cameras=3, seed=0, image_size=(64, 32),
                         texture_size=16, jobs=1)
    textures = build_texture_set(root, synth_items(root).train, base / "textures", 8)
    return root, textures


@pytest.fixture
def one_thread():
    """Torch on one thread during a test (two threads on a loaded 2-core machine spin far slower), restored after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def sigint_as_in_a_terminal():
    """``preexec_fn`` for a child that a test interrupts with SIGINT: Ctrl-C as a terminal delivers it.
    A job started in the background by a non-interactive shell (CI runners, ``cmd &``) inherits SIGINT
    ignored, and Python then never raises KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
