import numpy as np

from densepose_textures.atlas import image_to_atlas
from densepose_textures.fill import fill_atlases
from densepose_textures.imageio import resize_iuv
from densepose_textures.quality import measure_quality, raw_pid, resample_truth
from densepose_textures.shards import TextureSet, write_texture_set
from densepose_textures.synth import body_mirror_map, read_truth
from densepose_textures.synth.body import walking_pose
from densepose_textures.synth.identity import make_identity
from densepose_textures.synth.render import place, render_person


def clean_renders(identity, n, size=(256, 128), seed=0):
    """Noiseless renders (no lighting, background, blur or noise): colour = the atlas texel of each pixel."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        pose = walking_pose(rng, yaw=rng.uniform(0, 2 * np.pi), pitch=0.1)
        placement, _ = place(identity.shape, pose, size, rng)
        person = render_person(identity.shape, pose, identity.texture, size, placement)
        out.append((person.clean, person.iuv))
    return out


def test_warping_a_noiseless_render_reproduces_the_true_texels():
    identity = make_identity(1, 7, 32)
    for image, iuv in clean_renders(identity, 3):
        texture, observed = image_to_atlas(image, iuv, 32)
        assert observed.mean() > 0.1
        np.testing.assert_array_equal(texture[observed], identity.texture[observed])
        # through the IUV store: stored at 256x128, resized (nearest) to a 128x64 image and back
        small = resize_iuv(resize_iuv(iuv[::2, ::2], (256, 128)), (128, 64))
        texture, observed = image_to_atlas(image[::2, ::2], small, 32)
        np.testing.assert_array_equal(texture[observed], identity.texture[observed])


def test_resample_truth():
    truth = np.random.default_rng(0).integers(0, 256, (24, 9, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resample_truth(truth, 9), truth)
    half = resample_truth(truth, 5)  # 9 -> 5 texels: texel k of 5 gathers true texels 2k-1 .. 2k+1 of 9
    np.testing.assert_allclose(half[0, 2, 2], truth[0, 3:6, 3:6].reshape(-1, 3).mean(0))
    assert resample_truth(truth, 17).shape == (24, 17, 17, 3)


def test_quality_of_clean_renders_is_exact_where_observed(tmp_path):
    identity = make_identity(3, 11, 32)
    pairs = clean_renders(identity, 4, seed=1)
    texture, observed = zip(*(image_to_atlas(image, iuv, 32) for image, iuv in pairs))
    mirror = body_mirror_map()
    filled, provenance = fill_atlases(np.stack(texture), np.stack(observed), mirror)
    keys = [f"bounding_box_train/0003_c1s1_00000{i}_01.jpg" for i in range(4)]
    write_texture_set(tmp_path / "set", filled, np.stack(observed), provenance, keys, [0] * 4, [0] * 4,
                      mirror_index=mirror.texel_index(32), attrs={"fill": "nearest", "mirror": True})
    result = measure_quality(TextureSet(tmp_path / "set"), {3: identity.texture})
    rows = {row["step"]: row for row in next(iter(result.values()))["rows"]}
    assert rows["observed"]["mae"] == 0 and rows["observed"]["psnr"] == float("inf")
    assert 0 < rows["in-part"]["mae"] < 40 and abs(sum(r["share"] for s, r in rows.items() if s != "all") - 1) < 1e-9


def test_quality_of_a_built_set_and_refilled_methods(synth_root, synth_iuv_store, tmp_path):
    from densepose_textures.textures import build_texture_set
    from pipeline import datasets

    ds = datasets.load("synth", synth_root)
    labels = {k: (p, c) for s in ("train", "query", "gallery") for k, p, c in ds.split(s)}
    truth, mirror = read_truth(synth_root)
    build_texture_set(tmp_path / "set", store_path=synth_iuv_store, image_root=synth_root, dataset="synth",
                      labels=labels, size=16, mirror=mirror, progress=False)
    ts = TextureSet(tmp_path / "set")
    stored = measure_quality(ts, truth)
    refilled = measure_quality(ts, truth, methods=["nearest", "pushpull", "telea"], limit=20)
    assert list(stored) == ["nearest (as stored)"] and stored["nearest (as stored)"]["images"] == 32
    assert refilled["nearest"]["images"] == 20
    rows = {r["step"]: r for r in stored["nearest (as stored)"]["rows"]}
    assert 0 < rows["observed"]["mae"] < 40 and rows["observed"]["share"] > 0.02  # lighting, blur, noise, JPEG
    assert rows["all"]["share"] == 1.0
    again = measure_quality(ts, truth, methods=["nearest"])  # refilling with the set's own method: same numbers
    for a, b in zip(again["nearest"]["rows"], stored["nearest (as stored)"]["rows"]):
        assert a["step"] == b["step"] and a["texels"] == b["texels"]
        np.testing.assert_array_equal([a["mae"], a["psnr"]], [b["mae"], b["psnr"]])  # nan == nan here
    assert raw_pid("bounding_box_test/0012_c4s1_094106_01.jpg") == 12 and raw_pid("x.jpg") is None
