"""`sanreid textures compare`: texture sources side by side with the true atlases."""

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from densepose_textures.atlas import atlas_to_image
from densepose_textures.errors import InputError
from densepose_textures.imageio import write_rgb
from densepose_textures.imported import import_texture_set
from densepose_textures.pictures import compare_keys, compare_picture, header_strip, record_atlas_image
from densepose_textures.quality import raw_pid, true_atlas
from densepose_textures.shards import TextureSet
from densepose_textures.synth import read_truth
from pipeline.cli import main
from test_textures_targets import build, split_labels

P = 16
HEIGHT = 6 * P * 2  # every atlas texel becomes 2x2 pixels
GAP = 4


@pytest.fixture(scope="module")
def sets(synth_root, synth_iuv_store, tmp_path_factory):
    base = tmp_path_factory.mktemp("compare")
    build(base / "warp", synth_iuv_store, synth_root, size=P)
    build(base / "truth", synth_iuv_store, synth_root, size=P, source="truth")
    return TextureSet(base / "warp"), TextureSet(base / "truth")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_picture_holds_image_each_set_and_the_true_atlas(sets, synth_root):
    truth, _ = read_truth(synth_root)
    keys = compare_keys(sets, truth, count=3, seed=1)
    assert len(keys) == 3 == len(set(keys)) and all(s.found[s.index(k)] for s in sets for k in keys)
    picture = compare_picture(sets, ["nearest", "truth"], truth, synth_root, keys, height=HEIGHT, gap=GAP)
    image_width, atlas_width = HEIGHT // 2, 4 * P * 2  # the 128x64 images and the 6P x 4P atlases at HEIGHT
    widths = [image_width, atlas_width, atlas_width, atlas_width]
    header = header_strip(["image", "nearest", "truth", "true"], widths, GAP)
    assert picture.shape == (header.shape[0] + 3 * HEIGHT + 2 * GAP, sum(widths) + 3 * GAP, 3)
    np.testing.assert_array_equal(picture[:header.shape[0]], header)
    assert (header < 128).any()  # the labels are written
    columns = np.cumsum([0] + [w + GAP for w in widths])
    for row, key in enumerate(keys):
        top = header.shape[0] + row * (HEIGHT + GAP)

        def panel(c):
            return picture[top:top + HEIGHT, columns[c]:columns[c] + widths[c]]

        def zoomed(atlas):
            return atlas.repeat(2, axis=0).repeat(2, axis=1)

        true = atlas_to_image(true_atlas(truth[raw_pid(key)], P))
        np.testing.assert_array_equal(panel(3), zoomed(true))
        np.testing.assert_array_equal(panel(1), zoomed(record_atlas_image(sets[0].get(key))))
        np.testing.assert_array_equal(panel(2), zoomed(record_atlas_image(sets[1].get(key))))
        np.testing.assert_array_equal(panel(2), panel(3))  # the truth set holds the same true atlas
        assert not np.array_equal(panel(1), panel(3))  # the warp does not
        image = cv2.imread(str(synth_root / key))[..., ::-1]
        np.testing.assert_array_equal(panel(0), cv2.resize(image, (image_width, HEIGHT),
                                                           interpolation=cv2.INTER_NEAREST))


def test_choice_is_reproducible_and_follows_the_seed(sets, synth_root):
    truth, _ = read_truth(synth_root)
    first = compare_keys(sets, truth, count=4, seed=3)
    assert first == compare_keys(sets[::-1], truth, count=4, seed=3)  # the same images whichever set comes first
    assert first == compare_keys(sets, truth, count=4, seed=3)
    assert first != compare_keys(sets, truth, count=4, seed=4)
    assert len(compare_keys(sets, truth, count=1000, seed=0)) == int(sets[0].found.sum())  # every shared image
    given = [sets[0].keys[5], sets[0].keys[2]]
    assert compare_keys(sets, truth, keys=given) == given
    one = compare_picture(sets, ["a", "b"], truth, synth_root, first, height=48)
    two = compare_picture(sets, ["a", "b"], truth, synth_root, first, height=48)
    np.testing.assert_array_equal(one, two)


def test_bad_inputs_are_named(sets, synth_root, synth_iuv_store, tmp_path):
    truth, _ = read_truth(synth_root)
    with pytest.raises(InputError, match="is not in texture set"):
        compare_keys(sets, truth, keys=["nope.jpg"])
    with pytest.raises(InputError, match="has no true atlas"):
        compare_keys(sets, {}, keys=[sets[0].keys[0]])
    with pytest.raises(InputError, match="none of the 32 images the sets share has a true atlas"):
        compare_keys(sets, {999: truth[raw_pid(sets[0].keys[0])]})
    # sets of other images: no key in common
    labels, _ = split_labels(synth_root)
    apart = []
    for split in ("query", "gallery"):
        store = _store(synth_root, split, tmp_path / f"{split}.h5")
        build(tmp_path / split, store, synth_root, size=P, fused_keys=[])
        apart.append(TextureSet(tmp_path / split))
    with pytest.raises(InputError, match="share no image with a person"):
        compare_keys(apart, truth)
    # another P
    build(tmp_path / "p8", synth_iuv_store, synth_root, size=8)
    result = run("textures", "compare", sets[0].path, tmp_path / "p8", "--truth", synth_root)
    assert result.exit_code == 2 and "different atlas sizes" in result.output and "P=8" in result.output
    # an imported set (foreign layout)
    folder = tmp_path / "released"
    for n, key in enumerate(labels):
        write_rgb(folder / f"{key.rsplit('/', 1)[-1].rsplit('.', 1)[0]}.png", np.full((20, 14, 3), n, np.uint8))
    import_texture_set(tmp_path / "imported", folder=folder, dataset="synth", labels=labels, progress=False)
    result = run("textures", "compare", sets[0].path, tmp_path / "imported", "--truth", synth_root)
    assert result.exit_code == 2 and "foreign layout" in result.output and "not atlases" in result.output
    # missing ground truth
    result = run("textures", "compare", *(s.path for s in sets), "--truth", tmp_path / "nowhere")
    assert result.exit_code == 2 and "textures.h5 not found" in result.output
    assert "Traceback" not in result.output


def _store(root, split, out):
    """The IUV store of one split of the synthetic dataset at ``root``."""
    from densepose_textures.iuv.run import run_iuv
    from densepose_textures.iuv.synth_backend import SynthBackend
    from pipeline import datasets
    from pipeline.params import IUVParams

    keys = [key for key, _, _ in datasets.load("synth", root).split(split)]
    run_iuv(SynthBackend(root), root, keys, out, size=IUVParams().size, progress=False,
            extra_attrs={"dataset": "synth", "splits": split})
    return out


def test_cli_writes_the_picture_and_names_the_images(sets, synth_root, tmp_path):
    out = tmp_path / "compare.png"
    args = ["textures", "compare", *(s.path for s in sets), "--truth", synth_root / "textures.h5", "--root",
            synth_root, "--n", "2", "--seed", "5", "--height", HEIGHT, "--out", out]
    result = run(*args)
    assert result.exit_code == 0, result.output
    truth, _ = read_truth(synth_root)
    keys = compare_keys(sets, truth, count=2, seed=5)
    assert result.output.startswith(f"wrote {out} (") and ", ".join(keys) in result.output
    picture = cv2.imread(str(out))[..., ::-1]
    np.testing.assert_array_equal(picture, compare_picture(sets, ["nearest", "truth"], truth, synth_root, keys,
                                                           height=HEIGHT))
    given = run(*args[:-2], "--keys", ",".join(keys[::-1]), "--out", tmp_path / "given.png")
    assert given.exit_code == 0, given.output
    assert ", ".join(keys[::-1]) in given.output
    same = run("textures", "compare", sets[0].path, sets[0].path, "--truth", synth_root, "--root", synth_root,
               "--n", "1", "--out", tmp_path / "same.png")
    assert same.exit_code == 0, same.output  # two sets reading alike are told apart by their folders
    empty = run(*args[:-2], "--keys", " , ", "--out", tmp_path / "x.png")
    assert empty.exit_code == 2 and "--keys names no image" in empty.output
    no_root = run(*args[:2], sets[0].path, "--truth", synth_root, "--root", tmp_path / "absent")
    assert no_root.exit_code == 2 and "dataset root" in no_root.output
