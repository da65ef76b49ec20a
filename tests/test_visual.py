"""Training pictures: labelled columns, the input as the person looks (before random erasing)."""

import numpy as np
import torch

from densepose_textures.imageio import read_rgb
from train.data import TrainImages, batch_to_device
from train.run import TexturePictures
from train.visual import texture_rows, to_uint8_image
from train_fixtures import synth_items, train_set  # noqa: F401  (fixtures)


def atlases(count, size, seed):
    """(count, 3, 6P, 4P) atlases in [-1, 1] and an evidence mask with a hole in each."""
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(count, 3, 6 * size, 4 * size, generator=g) * 2 - 1
    mask = torch.ones(count, 1, 6 * size, 4 * size)
    mask[:, :, :size, :size] = 0
    return values, mask


def test_columns_are_labelled_and_show_the_images_as_given():
    images = [np.random.default_rng(i).integers(0, 256, (192, 96, 3), dtype=np.uint8) for i in range(2)]
    predicted, _ = atlases(2, 32, 0)
    target, mask = atlases(2, 32, 1)
    picture = texture_rows(images, predicted, target, mask, gap=4)
    strip = picture.shape[0] - (2 * 192 + 4)
    assert 10 <= strip <= 40 and picture.shape[1] == 96 + 4 + 128 + 4 + 128
    columns = [(0, 96), (100, 228), (232, 360)]
    for x0, x1 in columns:  # a label in each column: dark text on white
        label = picture[:strip, x0:x1]
        assert (label < 100).all(-1).sum() > 20 and (label == 255).all(-1).mean() > 0.5
    for row, y in enumerate((strip, strip + 192 + 4)):
        assert np.array_equal(picture[y:y + 192, 0:96], images[row])
        assert np.array_equal(picture[y:y + 192, 100:228], to_uint8_image(predicted[row]))
        shown_target = picture[y:y + 192, 232:360]
        assert (shown_target[:32, :32] == 128).all()  # no evidence: grey
        assert np.array_equal(shown_target[32:], to_uint8_image(target[row])[32:])


def test_small_atlases_are_enlarged_texel_by_texel():
    predicted, mask = atlases(1, 8, 0)  # a 48 x 32 atlas: three times larger, the image scaled to its height
    picture = texture_rows([np.zeros((64, 32, 3), np.uint8)], predicted, predicted, mask, gap=4)
    strip = picture.shape[0] - 144
    assert picture.shape[1] == 72 + 4 + 96 + 4 + 96
    shown = picture[strip:, 76:172]
    assert np.array_equal(shown, to_uint8_image(predicted[0]).repeat(3, axis=0).repeat(3, axis=1))


class Images:
    def __init__(self):
        self.saved = []

    def image(self, name, array):
        self.saved.append(name)


def test_pictures_show_the_input_before_random_erasing(train_set, tmp_path):
    root, textures = train_set
    data = TrainImages(root, synth_items(root).train, textures, height=64, width=32, flip=True, resize_crop=1.125,
                       resize_crop_prob=0.5, erasing=1.0, seed=2)
    keys = [(index, 3, slot) for slot, index in enumerate((0, 9, 17, 30))]
    batch = torch.utils.data.default_collate([data[key] for key in keys])
    inputs = batch_to_device(batch, "cpu")
    erased = [image.permute(1, 2, 0).numpy() for image in batch["image"]]
    whole = [data.image(*key, erase=False)[0] for key in keys]
    for e, w in zip(erased, whole):  # the same augmented image but for one rectangle filled with the mean
        ys, xs = np.nonzero((e != w).any(-1))
        assert len(ys) > 0
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        assert (e[box] == data.fill).all()

    predicted, _ = atlases(4, 8, 0)
    logger = Images()
    TexturePictures(tmp_path, logger, 1, 1, data)(0, {}, (inputs, predicted, batch))
    picture = read_rgb(tmp_path / "textures-epoch0001.png")
    assert np.array_equal(picture, texture_rows(whole, predicted, inputs["target"], inputs["mask"]))
    assert not np.array_equal(picture, texture_rows(erased, predicted, inputs["target"], inputs["mask"]))
    assert logger.saved == ["textures.png"]
