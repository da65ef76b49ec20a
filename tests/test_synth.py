"""The synthetic renderer: the IUV/atlas convention, the exact mirror map, the dataset contract."""

import numpy as np
import pytest

from densepose_textures.atlas import uv_to_texel
from densepose_textures.errors import InputError
from densepose_textures.imageio import read_iuv, read_rgb
from densepose_textures.parts import MIRROR_PART, NUM_PARTS
from densepose_textures.synth import body_mirror_map, iuv_path, read_truth, write_dataset
from densepose_textures.synth.body import walking_pose
from densepose_textures.synth.identity import make_identity
from densepose_textures.synth.render import mirror_scene, place, render_person


def _scene(seed, size=(128, 64), texture_size=64):
    rng = np.random.default_rng(seed)
    ident = make_identity(seed, seed, texture_size)
    pose = walking_pose(rng, yaw=rng.uniform(-np.pi, np.pi), pitch=rng.uniform(0.0, 0.3))
    placement, _ = place(ident.shape, pose, size, rng)
    return ident, pose, placement


@pytest.mark.parametrize("size,texture_size", [((128, 64), 64), ((256, 128), 32), ((96, 48), 256)])
def test_body_pixel_colour_is_the_texel_its_iuv_names(size, texture_size):
    views = 0
    for seed in range(6):
        ident, pose, placement = _scene(seed, size, texture_size)
        person = render_person(ident.shape, pose, ident.texture, size, placement)
        iuv = person.iuv
        fg = iuv[..., 0] > 0
        assert fg.sum() > 0.1 * fg.size
        part = iuv[..., 0][fg].astype(np.int64)
        row, col = uv_to_texel(iuv[..., 1][fg] / 255.0, iuv[..., 2][fg] / 255.0, texture_size)
        np.testing.assert_array_equal(person.clean[fg], ident.texture[part - 1, row, col])
        assert (person.clean[~fg] == 0).all() and (iuv[~fg] == 0).all()
        views += len(np.unique(part))
    assert views >= 6 * 12  # every view shows many parts


def test_all_parts_appear_and_charts_cover_their_patch():
    seen = np.zeros((NUM_PARTS, 8, 8), dtype=bool)
    for seed in range(40):
        ident, pose, placement = _scene(seed, (256, 128))
        iuv = render_person(ident.shape, pose, ident.texture, (256, 128), placement).iuv
        fg = iuv[..., 0] > 0
        row, col = uv_to_texel(iuv[..., 1][fg] / 255.0, iuv[..., 2][fg] / 255.0, 8)
        seen[iuv[..., 0][fg].astype(int) - 1, row, col] = True
    coverage = seen.mean(axis=(1, 2))
    assert (coverage > 0.5).all(), coverage  # each chart spans most of its patch, no part missing


def test_mirror_map_is_an_exact_involution():
    mirror = body_mirror_map()
    assert mirror.source == "synthetic" and mirror.exact
    for p in (2, 16, 32, 64, 100, 256):  # tolerance: none, for every P <= 256 (no rounding ties)
        index = mirror.texel_index(p).reshape(-1)
        np.testing.assert_array_equal(index[index], np.arange(index.size))
    parts = np.repeat(np.arange(1, NUM_PARTS + 1), 256)
    u = np.tile(np.arange(256) / 255.0, NUM_PARTS)
    v = np.random.default_rng(0).integers(0, 256, parts.size) / 255.0
    mp, mu, mv = mirror.map_uv(parts, u, v)
    np.testing.assert_array_equal(mp, MIRROR_PART[parts])
    back = mirror.map_uv(mp, mu, mv)
    np.testing.assert_array_equal(back[0], parts)
    np.testing.assert_allclose(back[1], u, atol=1e-6)
    np.testing.assert_allclose(back[2], v, atol=1e-6)


def test_mirrored_pose_with_flipped_atlas_renders_the_flipped_image():
    mirror = body_mirror_map()
    skirts = long_hair = 0
    for seed in range(11):  # seeds 5 and 10 wear skirts, 8 has long hair
        ident, pose, placement = _scene(seed)
        skirts += ident.shape.skirt > 0
        long_hair += ident.shape.hair > 0
        a = render_person(ident.shape, pose, ident.texture, (128, 64), placement)
        m_pose, m_place = mirror_scene(pose, placement)
        b = render_person(ident.shape, m_pose, mirror.flip_atlas(ident.texture), (128, 64), m_place)
        flipped_iuv, flipped = b.iuv[:, ::-1], b.clean[:, ::-1]
        fg = a.iuv[..., 0] > 0
        np.testing.assert_array_equal(flipped_iuv[..., 0], MIRROR_PART[a.iuv[..., 0]])
        _, mu, mv = mirror.map_uv(np.maximum(a.iuv[..., 0], 1), a.iuv[..., 1] / 255.0, a.iuv[..., 2] / 255.0)
        np.testing.assert_array_equal(flipped_iuv[..., 1][fg], np.rint(mu * 255)[fg])
        np.testing.assert_array_equal(flipped_iuv[..., 2][fg], np.rint(mv * 255)[fg])
        np.testing.assert_array_equal(flipped, a.clean)
    assert skirts >= 2 and long_hair >= 1


def test_dataset_layout_and_contract(synth_root):
    import pipeline.datasets as datasets

    ds = datasets.load("synth", synth_root)
    assert ds.stats("train")[0] == 4 and len(ds.train) == 16
    assert len(ds.query) + len(ds.gallery) == 16
    gallery = {(pid, cam) for _, pid, cam in ds.gallery}
    for _, pid, cam in ds.query:
        assert any(p == pid and c != cam for p, c in gallery), "query id missing from other cameras"
    test_cams = {}
    for _, pid, cam in ds.query + ds.gallery:
        test_cams.setdefault(pid, set()).add(cam)
    assert all(len(c) >= 2 for c in test_cams.values())
    truth, mirror = read_truth(synth_root)
    assert sorted(truth) == list(range(1, 9)) and mirror.exact
    assert all(t.shape == (24, 32, 32, 3) and t.dtype == np.uint8 for t in truth.values())
    for key, pid, _ in ds.train[:4] + ds.query + ds.gallery[:4]:
        image, iuv = read_rgb(synth_root / key), read_iuv(iuv_path(synth_root, key))
        assert image.shape == iuv.shape == (128, 64, 3)
        assert iuv[..., 0].max() <= NUM_PARTS and (iuv[..., 0] > 0).mean() > 0.05


def test_written_images_show_the_true_texture_where_the_iuv_says(synth_root):
    import pipeline.datasets as datasets

    ds = datasets.load("synth", synth_root)
    truth, _ = read_truth(synth_root)
    for key, _, _ in ds.query + ds.gallery:
        pid = int(key.split("/")[-1].split("_")[0])
        image, iuv = read_rgb(synth_root / key).astype(float), read_iuv(iuv_path(synth_root, key))
        fg = iuv[..., 0] > 0
        row, col = uv_to_texel(iuv[..., 1][fg] / 255.0, iuv[..., 2][fg] / 255.0, 32)
        texel = truth[pid][iuv[..., 0][fg].astype(int) - 1, row, col].astype(float)
        corr = np.corrcoef(texel.ravel(), image[fg].ravel())[0, 1]
        assert corr > 0.6, (key, corr)  # shading, cast, blur and noise keep the texels recognisable


def test_write_dataset_is_deterministic_whatever_jobs(tmp_path):
    a = write_dataset(tmp_path / "a", ids=4, images_per_id=3, cameras=2, seed=3, image_size=(64, 32),
                      texture_size=16, jobs=1)
    b = write_dataset(tmp_path / "b", ids=4, images_per_id=3, cameras=2, seed=3, image_size=(64, 32),
                      texture_size=16, jobs=2)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.suffix != ".h5")
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.suffix != ".h5")
    assert files_a == files_b and len(files_a) == 2 * 12
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    ta, ma = read_truth(a)
    tb, _ = read_truth(b)
    assert all((ta[k] == tb[k]).all() for k in ta) and ma.digest() == body_mirror_map().digest()


def test_more_test_identities_keep_the_training_images(tmp_path):
    settings = dict(images_per_id=3, cameras=2, seed=5, image_size=(64, 32), texture_size=16)
    half = write_dataset(tmp_path / "half", ids=4, **settings)  # pids 1-2 train, 3-4 test
    more = write_dataset(tmp_path / "more", ids=7, test_ids=5, **settings)  # pids 1-2 train, 3-7 test

    def files(root, folder):
        return {p.name: p.read_bytes() for p in (root / folder).glob("*.jpg")}

    assert files(half, "bounding_box_train") == files(more, "bounding_box_train")
    assert {int(name[:4]) for name in files(more, "bounding_box_test")} == {3, 4, 5, 6, 7}
    assert {int(name[:4]) for name in files(more, "query")} == {3, 4, 5, 6, 7}
    assert write_dataset(tmp_path / "more", ids=7, test_ids=5, **settings) == tmp_path / "more"  # kept
    with pytest.raises(InputError, match="rendered with"):
        write_dataset(tmp_path / "more", ids=7, test_ids=4, **settings)


@pytest.mark.parametrize("kwargs,match", [
    ({"test_ids": 4}, "test_ids=4"),
    ({"cameras": 10}, "cameras=10"),
    ({"cameras": 1}, "cameras=1"),
    ({"images_per_id": 1}, "images_per_id=1"),
    ({"ids": 1}, "ids=1"),
])
def test_write_dataset_refuses_bad_settings(tmp_path, kwargs, match):
    settings = dict(ids=4, images_per_id=3, cameras=2, seed=0, image_size=(64, 32), texture_size=16)
    settings.update(kwargs)
    with pytest.raises(InputError, match=match):
        write_dataset(tmp_path / "x", **settings)
    assert not (tmp_path / "x").exists()


def test_write_dataset_refuses_a_file_or_an_unwritable_place(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        write_dataset(tmp_path / "file", ids=2, images_per_id=2, cameras=2, seed=0)
    with pytest.raises(InputError, match="cannot write"):
        write_dataset(tmp_path / "file" / "below", ids=2, images_per_id=2, cameras=2, seed=0)


def test_read_truth_names_the_missing_file(tmp_path):
    with pytest.raises(InputError, match="textures.h5"):
        read_truth(tmp_path)


def test_identities_share_colours_and_show_different_things_front_and_back():
    people = [make_identity(i, i, 32) for i in range(100)]
    pairs = [(p.traits["top_index"], p.traits["bottom_index"]) for p in people]
    twins = np.mean([pairs.count(pair) > 1 for pair in pairs])
    assert len({top for top, _ in pairs}) <= 15 and twins >= 0.2  # many look alike from afar

    def front_back_change(p):  # fraction of torso texels that differ clearly, front vs back
        diff = np.abs(p.texture[1].astype(int) - p.texture[0].astype(int)).sum(-1)
        return (diff > 60).mean()

    marked = [front_back_change(p) for p in people if p.traits["backpack"] is not None]
    plain = [front_back_change(p) for p in people if p.traits["backpack"] is None and p.traits["logo"] is None
             and p.traits["bag"] is None and not p.traits["long_hair"] and p.traits["top_kind"] != "jacket"]
    assert len(marked) >= 20 and len(plain) >= 8
    assert np.mean(marked) > 4 * np.mean(plain) and min(marked) > 0.1
    assert np.std([p.shape.height for p in people]) > 0.02 and np.std([p.shape.girth for p in people]) > 0.03


def test_left_parts_are_on_the_persons_left_and_the_front_faces_the_camera():
    from densepose_textures.synth.body import Pose
    from densepose_textures.synth.render import Placement

    ident = make_identity(0, 0, 16)
    lefts = (4, 5, 8, 10, 12, 14, 15, 17, 19, 21, 24)  # DensePose's "left ..." parts and head left
    for yaw, front, back in ((0.0, 2, 1), (np.pi, 1, 2)):
        iuv = render_person(ident.shape, Pose(yaw=yaw, abduct=(0.3, 0.3)), ident.texture, (256, 128),
                            Placement(ppm=240.0, cx=0.0, cy=0.5)).iuv
        part = iuv[..., 0]
        cols = np.arange(part.shape[1])[None].repeat(part.shape[0], 0)
        assert (part == front).sum() > 0 and (part == back).sum() == 0
        compared = 0
        for left in lefts:
            right = MIRROR_PART[left]
            if (part == left).any() and (part == right).any():
                # facing the camera, the person's left is on the image's right
                assert (cols[part == left].mean() > cols[part == right].mean()) == (yaw == 0.0), (left, yaw)
                compared += 1
        assert compared >= 7
