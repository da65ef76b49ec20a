"""`sanreid textures import`: a released texture folder as a texture set, and training on its foreign-layout images."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from densepose_textures.errors import InputError
from densepose_textures.imageio import read_rgb, write_rgb
from densepose_textures.imported import import_texture_set, match_textures
from densepose_textures.provenance import Provenance
from densepose_textures.shards import TextureSet
from densepose_textures.storage import partial_dir
from pipeline import datasets
from pipeline.cli import main
from test_datasets_cuhk03 import expected_names, write_protocol, write_raw_mat
from train_fixtures import TRAIN_SETTINGS, one_thread, train_set  # noqa: F401  (fixtures)

SIZE = (20, 14)  # (H, W) of the released textures: not an atlas (6P x 4P)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def all_keys(ds):
    return list(dict.fromkeys(key for split in ("train", "query", "gallery") for key, _, _ in ds.split(split)))


def write_textures(folder, keys, size=SIZE, seed=0):
    """One lossless texture per key, named by the image's file name: PNGs at the top, BMPs in a sub-folder (as
    releases split them); returns {key: texture}."""
    rng = np.random.default_rng(seed)
    textures = {}
    for n, key in enumerate(keys):
        texture = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        name = Path(key).stem
        write_rgb(Path(folder) / (f"{name}.png" if n % 2 else f"part2/{name}.bmp"), texture)
        textures[key] = texture
    return textures


@pytest.fixture(scope="module")
def cuhk03(tmp_path_factory):
    """A tiny CUHK03 (labeled) tree and a texture folder for every image of it."""
    base = tmp_path_factory.mktemp("import")
    root = base / "cuhk03"
    write_raw_mat(root / "cuhk03_release" / "cuhk-03.mat", variants=("labeled",))
    datasets.prepare_cuhk03(root, variants=("labeled",))
    write_protocol(root, "labeled")
    keys = all_keys(datasets.load("cuhk03", root))
    folder = base / "released"
    return root, folder, write_textures(folder, keys)


def test_import_builds_a_readable_set_of_the_released_images(cuhk03, tmp_path):
    root, folder, textures = cuhk03
    out = tmp_path / "set"
    result = run("textures", "import", "--dataset", "cuhk03", "--root", root, "--folder", folder, "--out", out,
                 "--shard-size", "7")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: {len(textures)} imported textures" in result.output
    ds = datasets.load("cuhk03", root)
    ts = TextureSet(out)
    assert ts.keys == list(textures) and len(ts) == len(expected_names()) == 30 and len(ts.shard_files) == 5
    assert (ts.layout, ts.target_shape, ts.size, ts.mirrorable) == ("image", SIZE, 0, False)
    assert ts.attrs["source"] == "import" and ts.attrs["dataset"] == "cuhk03_labeled" and not ts.attrs["mirror"]
    assert len(ts.attrs["import_digest"]) == 16 and ts.found.all()
    labels = {key: (pid, camid) for split in ("train", "query", "gallery") for key, pid, camid in ds.split(split)}
    for key in (ts.keys[0], ts.keys[13], ts.keys[-1]):
        record = ts.get(key)
        assert np.array_equal(record["texture"], textures[key])  # the released image, at its own size
        assert (record["provenance"] == Provenance.IMPORTED).all() and record["provenance"].shape == SIZE
        assert not record["observed"].any()
        assert (record["pid"], record["camid"]) == labels[key]
    info = run("textures", "info", out)
    assert info.exit_code == 0, info.output
    assert "20x14 images of a foreign layout" in info.output and "imported       100.00%" in info.output
    picture = run("textures", "atlas", out, "--key", ts.keys[3], "--out", tmp_path / "t.png")
    assert picture.exit_code == 0 and np.array_equal(read_rgb(tmp_path / "t.png"), textures[ts.keys[3]])
    show = run("textures", "show", out, "--n", "2", "--root", root, "--out", tmp_path / "g.png")
    assert show.exit_code == 0 and read_rgb(tmp_path / "g.png").shape[0] > 192, show.output
    quality = run("textures", "quality", out, "--truth", tmp_path)  # no true atlas fits a foreign layout
    assert quality.exit_code == 2


def test_images_without_a_texture_file_are_named_before_anything_is_written(cuhk03, tmp_path):
    root, folder, textures = cuhk03
    partial = tmp_path / "partial"
    keys = list(textures)
    for n, key in enumerate(keys):
        if n not in (4, 9, 11):
            write_rgb(partial / f"{Path(key).stem}.png", textures[key])
    out = tmp_path / "set"
    result = run("textures", "import", "--dataset", "cuhk03", "--root", root, "--folder", partial, "--out", out)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"3 of {len(keys)} images of dataset cuhk03_labeled have no texture file" in result.output
    assert all(keys[n] in result.output for n in (4, 9, 11))
    assert not out.exists() and not partial_dir(out).exists()
    many = [f"x/{n}.png" for n in range(8)]
    with pytest.raises(InputError, match=r"8 of 8 images have no texture file .*x/4.png and 3 more"):
        match_textures(partial, many)


def test_the_file_name_rule_prefers_the_image_folder_and_refuses_ties(tmp_path):
    image = np.zeros((4, 3, 3), np.uint8)
    for rel in ("a/img.png", "b/img.jpg", "other.JPG"):
        write_rgb(tmp_path / rel, image)
    assert match_textures(tmp_path, ["b/img.jpg", "query/other.jpg"]) == [tmp_path / "b/img.jpg", tmp_path / "other.JPG"]
    with pytest.raises(InputError, match="match several texture files"):
        match_textures(tmp_path, ["c/img.png"])


def test_reuse_when_unchanged_refusal_when_a_file_changes_and_force(cuhk03, tmp_path):
    root, folder, textures = cuhk03
    mine = tmp_path / "released"
    write_textures(mine, list(textures))
    out = tmp_path / "set"
    common = ("textures", "import", "--dataset", "cuhk03", "--root", root, "--folder", mine, "--out", out)
    assert run(*common).exit_code == 0
    again = run(*common)
    assert again.exit_code == 0 and "reused" in again.output
    key = list(textures)[1]  # an odd position: a PNG at the top of the folder
    changed = np.full((*SIZE, 3), 7, np.uint8)
    write_rgb(mine / f"{Path(key).stem}.png", changed)
    refused = run(*common)
    assert refused.exit_code == 2 and "was built with import_digest=" in refused.output, refused.output
    assert "--force" in refused.output and np.array_equal(TextureSet(out).get(key)["texture"], textures[key])
    forced = run(*common, "--force")
    assert forced.exit_code == 0, forced.output
    assert np.array_equal(TextureSet(out).get(key)["texture"], changed)
    write_rgb(mine / f"{Path(key).stem}.png", np.zeros((10, 10, 3), np.uint8))
    other_size = run(*common, "--force")
    assert other_size.exit_code == 2 and "is 10x10 (HxW)" in other_size.output and "one size" in other_size.output


@pytest.fixture(scope="module")
def imported_synth(train_set, tmp_path_factory):
    """The trainer fixture's synthetic dataset with released textures of 20x12 for every image, imported."""
    root, _ = train_set
    base = tmp_path_factory.mktemp("imported-synth")
    keys = all_keys(datasets.load("synth", root))
    write_textures(base / "released", keys, size=(20, 12), seed=1)
    ds = datasets.load("synth", root)
    labels = {key: (pid, camid) for split in ("train", "query", "gallery") for key, pid, camid in ds.split(split)}
    import_texture_set(base / "set", folder=base / "released", dataset="synth", labels=labels, progress=False)
    return root, base / "set"


def test_targets_of_a_foreign_layout_keep_their_size_and_are_never_flipped(imported_synth, caplog):
    from train.data import TrainImages, batch_to_device
    from train.device_data import DeviceImages

    root, textures = imported_synth
    items = datasets.load("synth", root).train[:12]
    with caplog.at_level(logging.INFO, logger="train.data"):
        images = TrainImages(root, items, textures, height=64, width=32, flip=True, resize_crop=1.125,
                             resize_crop_prob=0.5, erasing=0.5)
    assert not images.flip and images.target_size == (20, 12) and images.texture_size is None
    assert sum("horizontal flipping is off" in r.message for r in caplog.records) == 1
    keys = [(i, epoch, slot) for epoch in range(4) for slot, i in enumerate(range(12))]
    assert not any(images.augmentation(epoch, slot).flip for _, epoch, slot in keys)
    worker = torch.utils.data.default_collate([images[k] for k in keys[:12]])
    ts = TextureSet(textures)
    stored = np.stack([ts.get(rel)["texture"] for rel, _, _ in items])
    assert np.array_equal(worker["target"].numpy(), stored.transpose(0, 3, 1, 2))  # as stored, never mirrored
    device = DeviceImages(images, "cpu", progress=False).batch(keys[:12])
    assert torch.equal(device["target"], worker["target"]) and torch.equal(device["provenance"], worker["provenance"])
    assert batch_to_device(worker, "cpu")["mask"].all()  # every imported texel is evidence
    flipping = TrainImages(root, items, None, height=64, width=32, flip=True, resize_crop=1.0, resize_crop_prob=0.0,
                           erasing=0.0)
    assert flipping.flip and any(flipping.augmentation(epoch, slot).flip for _, epoch, slot in keys)  # the draw exists


@pytest.mark.usefixtures("one_thread")
def test_san_trains_on_an_imported_set_of_a_non_atlas_size(imported_synth, tmp_path):
    from train.export import load_encoder
    from train.model import SAN

    root, textures = imported_synth
    out = tmp_path / "san"
    settings = TRAIN_SETTINGS + ["epochs=1", "eval_every=-1", "data.flip=true", "model.decoder_width=0.25"]
    result = run("train", "--dataset", "synth", "--root", root, "--textures", textures, "--variant", "san",
                 "--out", out, *[arg for s in settings for arg in ("--set", s)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    record = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert record["model_args"]["texture_size"] is None and record["model_args"]["target_size"] == [20, 12]
    model = SAN(**record["model_args"])
    model.load_state_dict(record["model"])
    texture = model.train()(torch.zeros(2, 3, 64, 32))["texture"]
    assert texture.shape == (2, 3, 20, 12)  # the decoder predicts the targets' own size
    assert sorted((out / "pictures").glob("textures-epoch*.png"))
    encoder, _ = load_encoder(out / "last.pt")  # the inference encoder drops the decoder and its size
    assert encoder(torch.zeros(1, 3, 64, 32)).shape[0] == 1
