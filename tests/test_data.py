import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from densepose_textures.atlas import atlas_to_image, image_to_atlas
from densepose_textures.errors import InputError
from densepose_textures.imageio import read_iuv, read_rgb
from densepose_textures.parts import MIRROR_PART
from densepose_textures.synth import body_mirror_map, iuv_path
from train.data import TrainImages, batch_to_device, make_loader
from train.sampler import IdentitySampler
from train_fixtures import build_texture_set, synth_items

P = 16
PLAIN = dict(height=128, width=64, flip=True, resize_crop=1.0, resize_crop_prob=0.0, erasing=0.0)


@pytest.fixture(scope="module")
def observed_set(synth_root, tmp_path_factory):
    """Texture set of the synthetic train split holding only observed texels (no fill)."""
    ds = synth_items(synth_root)
    path = build_texture_set(synth_root, ds.train, tmp_path_factory.mktemp("tex") / "observed", P, fill=False)
    return ds, path


def mirrored_view(image, iuv):
    """The horizontally flipped image and the IUV a perfect DensePose would give on it:
    the IUV flipped, each part relabelled as its mirror and (U, V) mapped through the mirror map."""
    image, iuv = image[:, ::-1], iuv[:, ::-1].copy()
    fg = iuv[..., 0] > 0
    part, u, v = body_mirror_map().map_uv(iuv[fg, 0], iuv[fg, 1] / 255.0, iuv[fg, 2] / 255.0)
    assert np.array_equal(part, MIRROR_PART[iuv[fg, 0]])
    iuv[fg, 0], iuv[fg, 1], iuv[fg, 2] = part, np.rint(u * 255), np.rint(v * 255)
    return np.ascontiguousarray(image), iuv


def test_flipped_target_is_the_texture_of_the_flipped_person(observed_set, synth_root):
    ds, path = observed_set
    data = TrainImages(synth_root, ds.train, path, **PLAIN)
    checked = 0
    for index in range(0, len(ds.train), 3):
        rel = ds.train[index][0]
        image, iuv = read_rgb(synth_root / rel), read_iuv(iuv_path(synth_root, rel))
        truth, seen = image_to_atlas(*mirrored_view(image, iuv), P)  # what the flipped image shows
        truth, seen = atlas_to_image(truth), atlas_to_image(seen[..., None])[..., 0] > 0
        flipped = data.target(index, flipped=True)
        target = flipped["target"].permute(1, 2, 0).numpy().astype(int)
        evidence = (flipped["provenance"][0].numpy() == 0) & seen
        assert evidence.sum() > 100
        err = np.abs(target[evidence] - truth[evidence]).max(axis=1)
        assert np.mean(err <= 8) > 0.97, np.mean(err <= 8)
        # control: the unflipped target does not match the flipped person
        plain = data.target(index, flipped=False)["target"].permute(1, 2, 0).numpy().astype(int)
        both = evidence & (plain.sum(-1) >= 0)
        assert np.mean(np.abs(plain[both] - truth[both]).max(axis=1) <= 8) < 0.8
        checked += 1
    assert checked >= 5


def test_samples_flip_image_and_target_together(observed_set, synth_root):
    ds, path = observed_set
    data = TrainImages(synth_root, ds.train, path, seed=1, **PLAIN)
    seen = set()
    for slot in range(40):
        index = slot % len(ds.train)
        sample = data[(index, 0, slot)]
        image = read_rgb(synth_root / ds.train[index][0])
        flipped = bool(np.array_equal(sample["image"].permute(1, 2, 0).numpy(), image[:, ::-1]))
        if not flipped:
            assert np.array_equal(sample["image"].permute(1, 2, 0).numpy(), image)
        expected = data.target(index, flipped)
        assert torch.equal(sample["target"], expected["target"])
        assert torch.equal(sample["provenance"], expected["provenance"])
        assert sample["target"].shape == (3, 6 * P, 4 * P) and sample["provenance"].shape == (1, 6 * P, 4 * P)
        assert sample["pid"] == ds.train[index][1]
        seen.add(flipped)
        assert torch.equal(data[(index, 0, slot)]["image"], sample["image"])  # a pure function of its key
    assert seen == {True, False}


def test_augmentation_crops_and_erases_the_image_only(observed_set, synth_root):
    ds, path = observed_set
    data = TrainImages(synth_root, ds.train, path, height=64, width=32, flip=False, resize_crop=1.125,
                       resize_crop_prob=1.0, erasing=1.0)
    plain = TrainImages(synth_root, ds.train, path, height=64, width=32, flip=False, resize_crop=1.0,
                        resize_crop_prob=0.0, erasing=0.0)
    a, b = data[(0, 0, 0)], plain[(0, 0, 0)]
    assert a["image"].shape == b["image"].shape == (3, 64, 32)
    assert not torch.equal(a["image"], b["image"])
    filled = (a["image"].permute(1, 2, 0) == torch.tensor([124, 116, 104], dtype=torch.uint8)).all(-1)
    assert filled.sum() >= 0.02 * 64 * 32  # the erased rectangle holds the ImageNet mean colour
    assert torch.equal(a["target"], b["target"])


def test_missing_record_is_named_before_training(observed_set, synth_root):
    ds, path = observed_set
    extra = ds.train + [("bounding_box_train/9999_c1s1_000000_00.jpg", 0, 0)]
    with pytest.raises(InputError, match="9999_c1s1_000000_00.jpg"):
        TrainImages(synth_root, extra, path, **PLAIN)


def test_images_without_a_person_are_masked_and_counted(synth_root, tmp_path, caplog):
    ds = synth_items(synth_root)
    items = ds.train[:8]
    path = build_texture_set(synth_root, items, tmp_path / "set", 8, empty={items[2][0], items[5][0]})
    with caplog.at_level(logging.INFO, logger="train.data"):
        data = TrainImages(synth_root, items, path, **PLAIN)
    assert data.empty_records == 2
    assert "2 of 8 training images have no person" in caplog.text
    batch = batch_to_device(torch.utils.data.default_collate([data[i] for i in range(4)]), "cpu")
    assert batch["mask"].shape == (4, 1, 48, 32)
    assert batch["mask"][2].sum() == 0 and batch["mask"][[0, 1, 3]].min() == 1  # filled: evidence everywhere
    assert batch["target"].min() >= -1 and batch["target"].max() <= 1
    image = data[0]["image"].float()
    mean, std = torch.tensor([0.485, 0.456, 0.406]) * 255, torch.tensor([0.229, 0.224, 0.225]) * 255
    torch.testing.assert_close(batch["images"][0], (image - mean[:, None, None]) / std[:, None, None])


def test_worker_processes_give_the_same_batches(observed_set, synth_root):
    ds, path = observed_set
    data = TrainImages(synth_root, ds.train, path, height=64, width=32, flip=True, resize_crop=1.125,
                       resize_crop_prob=0.5, erasing=0.5)
    sampler = IdentitySampler(data.pids, 2, 4, seed=0)
    serial = [b for b in make_loader(data, sampler, workers=0, device="cpu")]
    parallel = [b for b in make_loader(data, sampler, workers=2, device="cpu")]
    assert len(serial) == len(parallel) > 1
    for a, b in zip(serial, parallel):
        for key in ("image", "pid", "target", "provenance"):
            assert torch.equal(a[key], b[key])


FORK_AFTER_OPENCV_THREADS = """
import cv2, numpy as np, torch
from train.data import make_loader

class Sizes(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return cv2.resize(np.zeros((100, 100, 3), np.uint8), (200, 200)).shape[0] + cv2.getNumThreads()

for _ in range(20):
    cv2.resize(np.zeros((1000, 1000, 3), np.uint8), (2000, 2000))  # OpenCV's thread pool at work in the parent
    print([b.tolist() for b in make_loader(Sizes(), [[0, 1], [2, 3]], workers=2, device="cpu")])
"""


def test_workers_start_after_opencv_used_its_threads_here():
    """OpenCV's thread pool does not survive a fork: workers that resized it often hung (most runs of this test
    did, on 2 cores), so it runs apart, where a hang fails."""
    result = subprocess.run([sys.executable, "-c", FORK_AFTER_OPENCV_THREADS], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[[201, 201], [201, 201]]"] * 20  # one OpenCV thread in each worker
