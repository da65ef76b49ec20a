"""``--source sanpg``: texture sets predicted by a SAN-PG generator (a SAN checkpoint with a decoder)."""

import hashlib

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from densepose_textures.atlas import image_to_atlas, image_to_atlas_parts
from densepose_textures.errors import InputError
from densepose_textures.imageio import read_rgb, resize_iuv
from densepose_textures.iuv.store import IUVStore, IUVWriter
from densepose_textures.mirror import MirrorMap
from densepose_textures.provenance import Provenance
from densepose_textures.quality import measure_quality
from densepose_textures.shards import TextureSet, partial_dir, shard_name
from densepose_textures.textures import IMPLIED, build_texture_set, differences
from pipeline.cli import main
from train.generator import load_generator
from train.model import SAN

P = 16
PREPROCESS = {"height": 64, "width": 32, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
SETTINGS = dict(size=P, shard_size=10, chunk_size=4, progress=False)


def save_generator(path, seed, texture_size=P):
    """A freshly initialised tiny SAN (PyTorch's default decoder init, so that its atlases vary), saved as
    `sanreid train` saves checkpoints (model, model_args, preprocess)."""
    torch.manual_seed(seed)
    model = SAN(num_classes=4, backbone="resnet18", texture_size=texture_size, decoder_init="standard",
                decoder_width=0.25)
    torch.save({"model": model.state_dict(), "model_args": model.model_args, "preprocess": PREPROCESS,
                "epoch": 0}, path)
    return path


def labels_of(root):
    from pipeline import datasets

    ds = datasets.load("synth", root)
    return {key: (pid, camid) for split in ("train", "query", "gallery") for key, pid, camid in ds.split(split)}


def digests(path):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}


def build(out, store, root, generator, **changes):
    options = {**SETTINGS, "mirror": MirrorMap.approximate(), "source": "sanpg", "generator": generator, **changes}
    return build_texture_set(out, store_path=store, image_root=root, dataset="synth", labels=labels_of(root), **options)


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    return save_generator(tmp_path_factory.mktemp("generator") / "pg.pt", seed=0)


@pytest.fixture(scope="module")
def generator(generator_file):
    torch.set_num_threads(1)
    return load_generator(generator_file, "cpu")


@pytest.fixture(scope="module")
def lossy_store(synth_iuv_store, tmp_path_factory):
    """The synth IUV store with records 3 and 17 found by nobody."""
    store = IUVStore(synth_iuv_store)
    out = tmp_path_factory.mktemp("lossy") / "store.h5"
    with IUVWriter(out, len(store), store.size, store.attrs) as writer:
        for i, key in enumerate(store.keys):
            lost = i in (3, 17)
            writer.append(store.read(i) * (not lost), key, store.found[i] and not lost, 0.0 if lost else 1.0)
    return out


@pytest.fixture(scope="module")
def sanpg_set(generator, lossy_store, synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("sanpg") / "set"
    build(out, lossy_store, synth_root, generator)
    return out


def reference_atlas(generator_file, image):
    """The generator's atlas for one image, computed here from the checkpoint (no code of train.generator)."""
    record = torch.load(generator_file, weights_only=True)
    model = SAN(**record["model_args"])
    model.load_state_dict(record["model"])
    model.eval()
    resized = cv2.resize(image, (PREPROCESS["width"], PREPROCESS["height"]), interpolation=cv2.INTER_LINEAR)
    x = (resized - np.array(PREPROCESS["mean"]) * 255) / (np.array(PREPROCESS["std"]) * 255)
    with torch.no_grad():
        x = torch.from_numpy(x.transpose(2, 0, 1)[None]).float()
        atlas = model.decoder(model.encoder.forward_stages(x)[0])[0][0].numpy()  # (3, 6P, 4P), targets' [-1, 1]
    atlas = np.clip(np.rint((atlas + 1) * 127.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return image_to_atlas_parts(atlas)  # (24, P, P, 3)


def test_sanpg_set_holds_the_generators_prediction(sanpg_set, generator, generator_file, lossy_store, synth_root):
    ts, store = TextureSet(sanpg_set), IUVStore(lossy_store)
    assert ts.keys == store.keys and len(ts) == 32 and ts.size == P
    assert ts.attrs["source"] == "sanpg" and ts.attrs["generator_digest"] == generator.digest
    assert ts.attrs["keep_observed"] is False and len(generator.digest) == 64
    np.testing.assert_array_equal(ts.mirror_index, MirrorMap.approximate().texel_index(P))  # flips as any set
    for i in (0, 5, 22):
        record = ts[i]
        assert record["texture"].shape == (24, P, P, 3) and record["texture"].dtype == np.uint8
        image = read_rgb(synth_root / record["key"])
        _, observed = image_to_atlas(image, resize_iuv(store.read(i), image.shape[:2]), P)
        np.testing.assert_array_equal(record["observed"], observed)  # what the IUV showed
        assert (record["provenance"] == Provenance.GENERATED).all()
        expected = reference_atlas(generator_file, image)
        assert expected.std() > 5  # a varied atlas: a wrong layout or scale could not match
        diff = np.abs(record["texture"].astype(int) - expected)
        assert diff.max() <= 1 and (diff == 0).mean() > 0.999  # batched vs one image: float rounding only
    lost = ts[3]
    assert not ts.found[3] and ts.found.sum() == 30
    assert (lost["provenance"] == Provenance.NO_PERSON).all() and not lost["texture"].any()


def test_keep_observed_keeps_the_warped_texels(sanpg_set, generator, lossy_store, synth_root, tmp_path):
    build(tmp_path / "kept", lossy_store, synth_root, generator, keep_observed=True)
    kept, plain = TextureSet(tmp_path / "kept"), TextureSet(sanpg_set)
    assert kept.attrs["keep_observed"] is True
    store = IUVStore(lossy_store)
    for i in (1, 12):
        record, predicted = kept[i], plain[i]["texture"]
        image = read_rgb(synth_root / record["key"])
        warped, observed = image_to_atlas(image, resize_iuv(store.read(i), image.shape[:2]), P)
        assert 0 < observed.mean() < 1
        np.testing.assert_array_equal(record["observed"], observed)
        np.testing.assert_array_equal(record["texture"][observed], warped[observed])
        np.testing.assert_array_equal(record["texture"][~observed], predicted[~observed])
        assert (record["provenance"][observed] == Provenance.OBSERVED).all()
        assert (record["provenance"][~observed] == Provenance.GENERATED).all()
    assert (kept[17]["provenance"] == Provenance.NO_PERSON).all()


def test_reused_when_unchanged_refused_when_the_generator_changes(sanpg_set, generator, lossy_store, synth_root,
                                                                  tmp_path):
    before = digests(sanpg_set)
    assert build(sanpg_set, lossy_store, synth_root, generator).reused
    other = load_generator(save_generator(tmp_path / "other.pt", seed=1), "cpu")
    assert other.digest != generator.digest
    with pytest.raises(InputError, match=r"generator_digest='[0-9a-f]{64}', this run asks for generator_digest="):
        build(sanpg_set, lossy_store, synth_root, other)
    with pytest.raises(InputError, match=r"keep_observed=False, this run asks for keep_observed=True"):
        build(sanpg_set, lossy_store, synth_root, generator, keep_observed=True)
    with pytest.raises(InputError, match=r"this run asks for generator_digest='' \(and 1 more: source\)"):
        build(sanpg_set, lossy_store, synth_root, None, source="warp")
    assert digests(sanpg_set) == before
    # sets written before these fields existed were neither: they match a warp run's attributes
    old = {k: v for k, v in TextureSet(sanpg_set).attrs.items() if k not in ("generator_digest", "keep_observed")}
    expected = {**old, "generator_digest": "", "keep_observed": False}
    assert IMPLIED["generator_digest"] == "" and not differences(old, expected)


def test_an_interrupted_build_resumes_with_the_same_bytes(generator, lossy_store, synth_root, tmp_path):
    class Failing:  # the generator dies on its 4th batch, in the second shard (chunks of 4 in shards of 10)
        texture_size, input_size, digest, path = generator.texture_size, generator.input_size, generator.digest, None
        calls = 0

        def predict(self, images):
            Failing.calls += 1
            if Failing.calls == 4:
                raise RuntimeError("out of memory")
            return generator.predict(images)

    out = tmp_path / "set"
    with pytest.raises(RuntimeError, match="out of memory"):
        build(out, lossy_store, synth_root, Failing())
    assert (partial_dir(out) / shard_name(0)).is_file() and not (partial_dir(out) / shard_name(1)).exists()
    summary = build(out, lossy_store, synth_root, generator)
    assert summary.resumed == 10
    build(tmp_path / "straight", lossy_store, synth_root, generator)
    assert digests(out) == digests(tmp_path / "straight")


def test_generator_errors(generator, synth_iuv_store, synth_root, tmp_path):
    with pytest.raises(InputError, match="needs a texture generator"):
        build(tmp_path / "a", synth_iuv_store, synth_root, None)
    with pytest.raises(InputError, match=r"predicts P=16 atlases, this run asks for texture size 8: give --size 16"):
        build(tmp_path / "a", synth_iuv_store, synth_root, generator, size=8)
    with pytest.raises(InputError, match="predicts each image's own atlas: use fuse 'none'"):
        build(tmp_path / "a", synth_iuv_store, synth_root, generator, fuse="identity")
    with pytest.raises(InputError, match="belong to source 'sanpg'"):
        build(tmp_path / "a", synth_iuv_store, synth_root, None, source="warp", keep_observed=True)
    with pytest.raises(InputError, match="not found"):
        load_generator(tmp_path / "nope.pt", "cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_generator(tmp_path / "junk.pt", "cpu")
    baseline = SAN(num_classes=4, texture_size=None)
    torch.save({"model": baseline.state_dict(), "model_args": baseline.model_args, "preprocess": PREPROCESS},
               tmp_path / "baseline.pt")
    with pytest.raises(InputError, match="has no decoder"):
        load_generator(tmp_path / "baseline.pt", "cpu")
    torch.save({"encoder": baseline.encoder.state_dict(), "model_args": baseline.model_args, "preprocess": PREPROCESS},
               tmp_path / "exported.pt")
    with pytest.raises(InputError, match="is not a SAN checkpoint"):
        load_generator(tmp_path / "exported.pt", "cpu")
    record = torch.load(save_generator(tmp_path / "g8.pt", seed=0, texture_size=8), weights_only=True)
    record["model_args"]["decoder_width"] = 0.5  # weights of another decoder
    torch.save(record, tmp_path / "mismatch.pt")
    with pytest.raises(InputError, match="do not build the SAN of its model_args"):
        load_generator(tmp_path / "mismatch.pt", "cpu")


def test_cli_builds_a_sanpg_set_beside_the_others_and_measures_it(generator_file, synth_root, synth_iuv_store,
                                                                  tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["gen-textures", "--dataset", "synth", "--root", str(synth_root), "--iuv", str(synth_iuv_store),
              "--size", str(P), "--jobs", "1"]
    runner = CliRunner()
    missing = runner.invoke(main, [*common, "--source", "sanpg"])
    assert missing.exit_code == 2 and "--source sanpg needs the generator" in missing.output
    assert "Traceback" not in missing.output
    stray = runner.invoke(main, [*common, "--generator", str(generator_file)])
    assert stray.exit_code == 2 and "--generator belongs to --source sanpg" in stray.output
    absent = runner.invoke(main, [*common, "--source", "sanpg", "--generator", "nope.pt"])
    assert absent.exit_code == 2 and "generator nope.pt not found" in absent.output
    sized = runner.invoke(main, [*common[:-4], "--size", "8", "--source", "sanpg", "--generator", str(generator_file)])
    assert sized.exit_code == 2 and "give --size 16" in sized.output

    result = runner.invoke(main, [*common, "--source", "sanpg", "--generator", str(generator_file), "--keep-observed",
                                  "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "wrote data/textures/synth-sanpg: 32 images, 32 with a person" in result.output
    ts = TextureSet(tmp_path / "data/textures/synth-sanpg")
    assert ts.attrs["source"] == "sanpg" and ts.attrs["keep_observed"] is True
    assert ts.attrs["mirror_source"] == "synthetic"
    again = runner.invoke(main, [*common, "--source", "sanpg", "--generator", str(generator_file), "--keep-observed"])
    assert again.exit_code == 0 and "reused" in again.output

    from densepose_textures.synth import read_truth

    results = measure_quality(ts, read_truth(synth_root)[0])
    result = results["sanpg, observed kept (as stored)"]
    steps = {row["step"]: row for row in result["rows"]}
    regions = {row["region"]: row for row in result["regions"]}
    assert result["images"] == 32
    assert steps["observed"]["texels"] == regions["observed in the image"]["texels"] > 0
    assert steps["generated"]["texels"] == regions["not observed"]["texels"] > 0
    assert regions["all"]["texels"] == 32 * 24 * P * P
    table = runner.invoke(main, ["textures", "quality", "data/textures/synth-sanpg", "--truth", str(synth_root)])
    assert table.exit_code == 0, table.output
    for region in ("observed in the image", "not observed", "all"):
        assert f"| sanpg, observed kept (as stored) | {region} |" in table.output
    assert "| sanpg, observed kept (as stored) | generated |" in table.output

    assert runner.invoke(main, common).exit_code == 0  # the per-image warp + fill set: data/textures/synth
    warp = TextureSet(tmp_path / "data/textures/synth")
    split = measure_quality(ts, read_truth(synth_root)[0], steps_of=warp)["sanpg, observed kept (as stored)"]
    by_fill = {row["step"]: row for row in split["rows"]}
    own = {row["step"]: row for row in measure_quality(warp, read_truth(synth_root)[0])["nearest (as stored)"]["rows"]}
    assert by_fill["generated"]["texels"] == 0 and by_fill["all"]["mae"] == pytest.approx(steps["all"]["mae"])
    for step in ("observed", "mirror", "in-part"):  # the sanpg set's error on the texels each fill step set
        assert by_fill[step]["texels"] == own[step]["texels"] > 0
    assert by_fill["observed"]["mae"] == pytest.approx(own["observed"]["mae"])  # observed kept: the same texels
    assert by_fill["in-part"]["mae"] != pytest.approx(own["in-part"]["mae"])
    table = runner.invoke(main, ["textures", "quality", "data/textures/synth-sanpg", "--truth", str(synth_root),
                                 "--steps-of", "data/textures/synth"])
    assert table.exit_code == 0, table.output
    assert "by the fill steps of data/textures/synth" in table.output
    assert "| sanpg, observed kept (as stored) | in-part |" in table.output
    shuffled = type("Other", (), {"keys": list(reversed(warp.keys)), "path": "other"})()
    with pytest.raises(InputError, match="does not hold the images of"):
        measure_quality(ts, read_truth(synth_root)[0], steps_of=shuffled)


def test_cli_takes_the_generator_and_keep_observed_from_params(generator_file, synth_root, synth_iuv_store,
                                                               tmp_path, monkeypatch):
    """textures.generator and textures.keep_observed are the defaults of --generator and --keep-observed (the
    pipeline's textures-sanpg stage gives neither); the options override them. The pipeline's `textures`
    stage, which does not depend on the generator, refuses sanpg targets."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        f"textures: {{size: {P}, jobs: 1, generator: {generator_file}, keep_observed: true}}\n")
    common = ["gen-textures", "--dataset", "synth", "--root", str(synth_root), "--iuv", str(synth_iuv_store)]
    runner = CliRunner()
    result = runner.invoke(main, [*common, "--targets", "sanpg"], env={"DVC_STAGE": "textures-sanpg@synth"})
    assert result.exit_code == 0, result.output
    assert "wrote data/textures/synth-sanpg: 32 images" in result.output
    ts = TextureSet(tmp_path / "data/textures/synth-sanpg")
    assert ts.attrs["source"] == "sanpg" and ts.attrs["keep_observed"] is True
    assert ts.attrs["generator_digest"] == load_generator(generator_file, "cpu").digest
    from pipeline.report import texture_quality_sections  # the report measures the sanpg set beside the others

    (tmp_path / "data" / "raw").mkdir()
    (tmp_path / "data" / "raw" / "synth").symlink_to(synth_root)
    section = texture_quality_sections({"synth": None})[0]
    assert "| sanpg, observed kept (as stored) | not observed |" in section, section
    plain = runner.invoke(main, [*common, "--targets", "sanpg", "--no-keep-observed", "--out", "plain"])
    assert plain.exit_code == 0, plain.output
    assert TextureSet(tmp_path / "plain").attrs["keep_observed"] is False
    warp = runner.invoke(main, [*common, "--out", "warp"])  # textures.generator and keep_observed: sanpg only
    assert warp.exit_code == 0, warp.output
    assert TextureSet(tmp_path / "warp").attrs["source"] == "warp"

    refused = runner.invoke(main, [*common, "--targets", "sanpg", "--out", "stage"], env={"DVC_STAGE": "textures@synth"})
    assert refused.exit_code == 2 and "the pipeline's `textures` stage does not depend on the generator" \
        in refused.output, refused.output
    assert not (tmp_path / "stage").exists()
    (tmp_path / "params.yaml").write_text(f"textures: {{size: {P}, jobs: 1}}\n")
    missing = runner.invoke(main, [*common, "--targets", "sanpg", "--out", "none"])
    assert missing.exit_code == 2 and "--generator PATH or textures.generator in params.yaml" in missing.output


def test_a_warp_input_generator_corrects_each_images_warp_and_fill(lossy_store, synth_root, tmp_path):
    """A generator that reads the warp + fill gets each image's own (made by the worker with the set's splat, fill
    and mirror map); a run with another fill is refused, and predict() without the warp is an error."""
    from densepose_textures.atlas import atlas_to_image
    from densepose_textures.fill import fill_atlas

    torch.manual_seed(1)
    model = SAN(num_classes=4, backbone="resnet18", texture_size=P, decoder_init="standard", decoder_width=0.25,
                warp_input={"splat": "nearest", "fill": "nearest"})
    with torch.no_grad():
        model.refiner.residual.weight.normal_(0, 0.5)  # a refiner that changes the fill
    torch.save({"model": model.state_dict(), "model_args": model.model_args, "preprocess": PREPROCESS, "epoch": 0},
               tmp_path / "warp.pt")
    generator = load_generator(tmp_path / "warp.pt", "cpu")
    assert generator.warp_input == {"splat": "nearest", "fill": "nearest"}
    build(tmp_path / "set", lossy_store, synth_root, generator)
    ts, store, mirror = TextureSet(tmp_path / "set"), IUVStore(lossy_store), MirrorMap.approximate().texel_index(P)
    model.eval()
    for i in (0, 9):
        image = read_rgb(synth_root / ts.keys[i])
        filled, steps = fill_atlas(*image_to_atlas(image, resize_iuv(store.read(i), image.shape[:2]), P), mirror)
        resized = cv2.resize(image, (PREPROCESS["width"], PREPROCESS["height"]), interpolation=cv2.INTER_LINEAR)
        x = (resized - np.array(PREPROCESS["mean"]) * 255) / (np.array(PREPROCESS["std"]) * 255)
        with torch.no_grad():
            predicted = model.decoder(model.encoder.forward_stages(torch.from_numpy(x.transpose(2, 0, 1)[None])
                                                                   .float())[0])[0]
            fill_image = torch.from_numpy(atlas_to_image(filled).transpose(2, 0, 1)[None].copy()).float() / 127.5 - 1
            step_image = torch.from_numpy(atlas_to_image(steps[..., None]).transpose(2, 0, 1)[None].copy())
            atlas = model.refiner(predicted, fill_image, step_image)[0].numpy()
        expected = image_to_atlas_parts(np.clip(np.rint((atlas + 1) * 127.5), 0, 255).astype(np.uint8)
                                        .transpose(1, 2, 0))
        diff = np.abs(ts[i]["texture"].astype(int) - expected)
        assert diff.max() <= 1 and (diff == 0).mean() > 0.999
        assert np.abs(expected.astype(int) - filled).mean() > 3  # the refiner changed the fill
    with pytest.raises(InputError, match="reads the warp \\+ fill made with splat 'nearest' and fill 'nearest'"):
        build(tmp_path / "other", lossy_store, synth_root, generator, fill="pushpull")
    with pytest.raises(ValueError, match="warp_input"):
        generator.predict(np.zeros((1, PREPROCESS["height"], PREPROCESS["width"], 3), np.uint8))
