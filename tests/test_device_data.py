import logging

import numpy as np
import pytest
import torch

from densepose_textures.errors import InputError
from train.data import TrainImages, mirror_atlas
from train.device_data import DeviceImages, DeviceLoader, build_loader, choose_loader, device_bytes, mirror_pixels
from train.sampler import IdentitySampler
from train_fixtures import build_texture_set, one_thread, synth_items, train_set  # noqa: F401  (fixtures)

P = 16
AUGMENTED = dict(height=128, width=64, flip=True, resize_crop=1.125, resize_crop_prob=0.5, erasing=0.5)


@pytest.fixture(scope="module")
def train_images(synth_root, tmp_path_factory):
    """Fully augmented training images of the synthetic set (rendered at the training size, 128x64), P = 16."""
    ds = synth_items(synth_root)
    path = build_texture_set(synth_root, ds.train, tmp_path_factory.mktemp("tex") / "set", P)
    return TrainImages(synth_root, ds.train, path, seed=5, **AUGMENTED)


@pytest.fixture(scope="module")
def held(train_images):
    return DeviceImages(train_images, "cpu", progress=False)


def test_batches_have_the_worker_paths_draws_and_bytes(train_images, held):
    keys = [(slot % len(train_images), 3, slot) for slot in range(48)]
    batch = held.batch(keys)
    kinds = set()
    for row, key in enumerate(keys):
        sample, aug = train_images[key], train_images.augmentation(*key[1:])
        for name in ("target", "provenance"):  # targets are mirrored with the flip, never cropped
            assert torch.equal(batch[name][row], sample[name])
        assert batch["pid"][row] == sample["pid"] and torch.equal(batch["key"][row], sample["key"])  # pictures use it
        image, diff = batch["image"][row], (batch["image"][row].int() - sample["image"].int()).abs()
        if aug.crop is None:
            assert torch.equal(image, sample["image"])
        else:  # enlarged from the training-size image instead of the file: rounding apart, the same pixels
            assert diff.max() <= 1 and diff.float().mean() < 0.5
            plain = train_images[key[0]]["image"]
            assert (image.int() - plain.int()).abs().float().mean() > 5  # the crop did move the picture
        if aug.erase is not None:
            y, x, h, w = aug.erase
            assert (image[:, y:y + h, x:x + w] == torch.tensor([124, 116, 104])[:, None, None]).all()
        kinds.add((aug.crop is not None, aug.flip, aug.erase is not None))
    assert len(kinds) >= 6  # crops, flips and erasing, alone and together


def test_a_batch_stays_intact_until_the_batch_after_next(train_images, held):
    keys = [[(slot % len(train_images), 1, slot) for slot in range(start, start + 16)] for start in (0, 16, 32)]
    first = held.batch(keys[0])
    kept = {name: t.clone() for name, t in first.items()}
    second = held.batch(keys[1])  # the trainer's batch while ``first`` may still be an epoch's ``last``
    assert all(torch.equal(first[name], kept[name]) for name in kept)
    assert not torch.equal(second["image"], kept["image"])
    held.batch(keys[2])  # the buffers of ``first``, reused
    assert not torch.equal(first["image"], kept["image"])
    fresh = DeviceImages(train_images, "cpu", progress=False)
    for small in (keys[0][:5], keys[1][3:16], keys[2][:1]):  # shorter batches in the same buffers
        batch, alone = held.batch(small), fresh.batch(small)
        assert all(torch.equal(batch[name], alone[name]) for name in alone) and len(batch["image"]) == len(small)
    assert torch.equal(held.batch(keys[0])["target"], kept["target"])  # full length again


def test_mirror_pixels_mirror_the_atlas_image(train_images):
    from densepose_textures.atlas import atlas_to_image

    atlas = np.random.default_rng(0).integers(0, 256, (24, P, P, 3), dtype=np.uint8)
    flat = atlas_to_image(atlas).reshape(-1, 3)
    expected = atlas_to_image(mirror_atlas(atlas, train_images.mirror_index.reshape(-1))).reshape(-1, 3)
    assert np.array_equal(flat[mirror_pixels(train_images.mirror_index, P)], expected)
    assert not np.array_equal(flat, expected)


def test_batches_depend_on_their_keys_only_whatever_the_resume_point(train_images, held):
    def epoch_batches(loader, epoch):
        loader.sampler.set_epoch(epoch)
        return [{name: t.clone() for name, t in batch.items()} for batch in loader]  # buffers are reused

    running = DeviceLoader(held, IdentitySampler(train_images.pids, 2, 4, seed=1))
    epoch_batches(running, 0)
    after_epoch_0 = epoch_batches(running, 1)
    resumed = DeviceLoader(DeviceImages(train_images, "cpu", progress=False),
                           IdentitySampler(train_images.pids, 2, 4, seed=1))
    fresh = epoch_batches(resumed, 1)
    assert len(fresh) == len(after_epoch_0) == len(resumed) > 1
    for a, b in zip(after_epoch_0, fresh):
        assert all(torch.equal(a[name], b[name]) for name in ("image", "pid", "target", "provenance"))
    other = epoch_batches(resumed, 2)
    assert not torch.equal(other[0]["image"], fresh[0]["image"])


def test_auto_takes_the_device_path_when_the_set_fits(caplog):
    cpu = torch.device("cpu")
    assert choose_loader("worker", 1, 1.0, cpu) == "worker"
    assert choose_loader("auto", 2**30, 1.0, cpu) == "device"
    with caplog.at_level(logging.INFO, logger="train.device_data"):
        assert choose_loader("auto", 2**30 + 1, 1.0, cpu) == "worker"
        assert choose_loader("device", 3 * 2**30, 1.0, cpu) == "worker"
    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING"]
    assert "needs 3.00 GB, over train.data.device_budget_gb = 1: using the worker path" in caplog.text
    with pytest.raises(InputError, match="unknown train.data.loader 'gpu'"):
        choose_loader("gpu", 1, 1.0, cpu)


def test_build_loader_states_the_memory_it_holds(train_images, caplog):
    sampler = IdentitySampler(train_images.pids, 2, 4, seed=0)
    need = device_bytes(len(train_images), (128, 64), P)
    with caplog.at_level(logging.INFO, logger="train.device_data"):
        loader = build_loader(train_images, sampler, loader="auto", budget_gb=need / 2**30, workers=1, device="cpu",
                              progress=False)
    assert isinstance(loader, DeviceLoader) and loader.data.nbytes == need
    assert f"device data path: {len(train_images)} images + targets, {need / 2**20:.0f} MB on cpu" in caplog.text
    small = build_loader(train_images, sampler, loader="auto", budget_gb=need / 2**30 * 0.99, workers=0, device="cpu")
    assert isinstance(small, torch.utils.data.DataLoader)


@pytest.mark.slow  # one epoch of san: about 8 s on the loaded 2-core machine
@pytest.mark.usefixtures("one_thread")
def test_a_run_on_the_device_path_trains_and_records_what_the_worker_path_records(train_set, tmp_path, caplog):
    from types import SimpleNamespace

    from densepose_textures.shards import TextureSet
    from pipeline.params import override
    from train.run import run_record, train_model
    from train.settings import TrainParams
    from train_fixtures import TRAIN_SETTINGS

    root, textures = train_set
    common = TRAIN_SETTINGS + ["epochs=1", "eval_every=-1", "picture_every=0"]
    with caplog.at_level(logging.INFO, logger="train.device_data"):
        last = train_model(override(TrainParams(), common + ["data.loader=device"]), variant="san",
                           dataset=synth_items(root), textures=textures, out_dir=tmp_path, progress=False)
    assert "device data path: 48 images + targets" in caplog.text
    record = torch.load(last, map_location="cpu", weights_only=True)
    assert record["epoch"] == 1 and all(torch.isfinite(v).all() for v in record["model"].values())
    on_workers = run_record(override(TrainParams(), common + ["data.loader=worker", "data.device_budget_gb=9"]), "san",
                            SimpleNamespace(images=SimpleNamespace(textures=TextureSet(textures))))
    assert record["run"] == on_workers  # a resume may switch data paths
