import numpy as np
import pytest

from densepose_textures.atlas import image_to_atlas
from densepose_textures.errors import InputError
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


def test_errors_split_into_the_texels_an_image_shows_and_the_rest(tmp_path):
    truth = np.random.default_rng(1).integers(20, 200, (24, 4, 4, 3), dtype=np.uint8)
    observed = np.zeros((2, 24, 4, 4), np.uint8)
    observed[0, :6] = 1  # image 0 shows a quarter of the parts, image 1 nothing (no person)
    texture = np.stack([truth + 10 * (1 - observed[0, ..., None]), np.zeros_like(truth)]).astype(np.uint8)
    provenance = np.where(observed > 0, 0, 2).astype(np.uint8)
    provenance[1] = 255
    keys = ["bounding_box_train/0004_c1s1_000001_01.jpg", "bounding_box_train/0004_c2s1_000002_01.jpg"]
    write_texture_set(tmp_path / "set", texture, observed, provenance, keys, [0, 0], [0, 1],
                      mirror_index=np.arange(24 * 16).reshape(24, 4, 4), attrs={"fill": "nearest", "fuse": "identity"})
    result = measure_quality(TextureSet(tmp_path / "set"), {4: truth})
    assert list(result) == ["nearest, fused by identity (as stored)"]
    regions = {row["region"]: row for row in result["nearest, fused by identity (as stored)"]["regions"]}
    assert result["nearest, fused by identity (as stored)"]["images"] == 1
    assert regions["observed in the image"]["mae"] == 0 and regions["observed in the image"]["share"] == 0.25
    assert regions["not observed"]["mae"] == 10 and regions["not observed"]["psnr"] == pytest.approx(28.13, abs=0.01)
    assert regions["all"]["mae"] == 7.5 and regions["all"]["texels"] == 24 * 16
    with pytest.raises(InputError, match="only be re-run on a per-image set"):
        measure_quality(TextureSet(tmp_path / "set"), {4: truth}, methods=["nearest"])
