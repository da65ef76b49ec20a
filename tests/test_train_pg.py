"""`sanreid train-pg`: SAN-PG trained on image/atlas pairs by the train engine; its checkpoint contract, exact
resume, and clear errors for a bad pairs folder."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from densepose_textures.storage import partial_dir
from densepose_textures.synth import write_dataset, write_pairs
from pipeline.cli import main
from train.model import SAN
from train.sampler import ShuffleSampler
from train_fixtures import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

P = 8
SETTINGS = ["data.workers=0", "data.batch_size=4", "data.height=32", "data.width=16", "data.holdout=0.25",
            "model.decoder_width=0.25", f"texture_size={P}", "checkpoint_every=1", "picture_every=1", "eval_every=1"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """16 pairs at 32x16 with P = 16 atlases: 12 train (3 batches of 4), 4 held out."""
    return write_pairs(tmp_path_factory.mktemp("pg") / "pairs", count=16, seed=1, image_size=(32, 16),
                       texture_size=16, jobs=1)


def command(pairs, out, *extra, epochs=2):
    return (["train-pg", "--pairs", str(pairs), "--out", str(out), "--epochs", str(epochs), "--seed", "3"]
            + [a for s in SETTINGS for a in ("--set", s)] + list(extra))


def run(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def weights(out):
    return torch.load(out / "last.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def straight(pairs, tmp_path_factory):
    """An uninterrupted two-epoch run: its folder."""
    out = tmp_path_factory.mktemp("straight") / "run"
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(command(pairs, out))
    finally:
        torch.set_num_threads(previous)
    return out


def assert_same_weights(a, b):
    assert a["epoch"] == b["epoch"] == 2
    assert a["model"].keys() == b["model"].keys()
    for name, tensor in a["model"].items():
        assert torch.equal(b["model"][name], tensor), name
    sa, sb = a["optim"]["optimizers"]["joint"]["state"], b["optim"]["optimizers"]["joint"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) for k in sa)


def test_the_checkpoint_loads_as_a_san_whose_decoder_gives_the_atlas(straight):
    record = weights(straight)
    assert record["model_args"]["texture_size"] == P and record["model_args"]["num_classes"] == 1
    assert record["preprocess"]["height"] == 32 and record["preprocess"]["width"] == 16
    assert set(record["preprocess"]) == {"height", "width", "mean", "std"}
    net = SAN(**record["model_args"])
    net.load_state_dict(record["model"])
    net.eval()
    with torch.no_grad():
        atlas = net.decoder(net.encoder.forward_stages(torch.randn(2, 3, 32, 16))[0])[0]
    assert atlas.shape == (2, 3, 6 * P, 4 * P) and torch.isfinite(atlas).all()
    assert (straight / "pictures" / "textures-epoch0002.png").is_file()
    for metric in ("loss/texture", "heldout/texture"):
        rows = (straight / "dvclive" / "plots" / "metrics" / f"{metric}.tsv").read_text().splitlines()[1:]
        assert [int(r.split("\t")[0]) for r in rows] == [0, 1]
    assert not partial_dir(straight).exists()


def test_the_reconstruction_loss_falls(pairs):
    """A few steps of the generator's objective on a fixed batch of true pairs lower its texture loss."""
    from densepose_textures.synth import Pairs
    from torch.utils.data import default_collate
    from train.data import batch_to_device
    from train.objective import GeneratorObjective
    from train.optim import Optimization
    from train.pg import PairImages, build_generator
    from train.settings import ModelParams, PGParams

    settings = PGParams(texture_size=P, model=ModelParams(decoder_width=0.25))
    images = PairImages(Pairs(pairs), texture_size=P, height=32, width=16, flip=False, resize_crop=1.0,
                        resize_crop_prob=0.0)
    inputs = batch_to_device(default_collate([images[i] for i in range(4)]), "cpu")
    assert inputs["mask"].all()  # every texel of a true atlas is evidence
    net = build_generator(settings, P, "cpu")
    objective = GeneratorObjective(net)
    optim = Optimization(net, profile="joint", lr=1e-3, weight_decay=0.0, amsgrad=False, step_size=100, gamma=0.5,
                         warmup_epochs=0, warmup_lr=0.0, warmup_factor=1.0, texture_lr=0.0, texture_betas=(0.5, 0.999))
    optim.set_epoch(0)
    losses = []
    for _ in range(10):
        loss, _ = objective(**inputs)
        losses.append(loss["texture"].item())
        optim.step(loss)
    assert set(loss) == {"texture"}
    assert losses[-1] < 0.9 * losses[0] and np.mean(losses[-3:]) < np.mean(losses[:3]), losses
    assert all(p.grad is None for p in net.encoder.head.parameters())  # the reID head takes no part


def test_an_interrupted_run_continues_to_the_weights_of_an_uninterrupted_one(pairs, straight, tmp_path, monkeypatch):
    out = tmp_path / "run"
    batches = ShuffleSampler.__iter__

    def interrupted(self):  # ctrl-c after the first batch of epoch 2, once epoch 1's checkpoint is written
        for i, batch in enumerate(batches(self)):
            if self.epoch == 1 and i == 1:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(ShuffleSampler, "__iter__", interrupted)
    result = CliRunner().invoke(main, command(pairs, out))
    assert result.exit_code != 0  # click turns the KeyboardInterrupt into "Aborted!"
    assert weights(partial_dir(out))["epoch"] == 1 and not out.exists()
    monkeypatch.setattr(ShuffleSampler, "__iter__", batches)

    run(command(pairs, out))  # the same command: it continues the unfinished work
    assert_same_weights(weights(straight), weights(out))
    assert not partial_dir(out).exists()


def test_resume_continues_a_finished_run_exactly_and_refuses_other_settings(pairs, straight, tmp_path):
    out = tmp_path / "run"
    run(command(pairs, out, epochs=1))
    result = CliRunner().invoke(main, command(pairs, out, "--resume", "--set", "optim.lr=0.1"))
    assert result.exit_code == 2 and "cannot resume" in result.output and "lr" in result.output
    run(command(pairs, out, "--resume"))
    assert_same_weights(weights(straight), weights(out))


def test_a_bad_pairs_folder_is_a_clear_error(tmp_path):
    reid = write_dataset(tmp_path / "synth", ids=2, images_per_id=2, cameras=2, seed=0, image_size=(32, 16),
                         texture_size=8, jobs=1)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "pairs.h5").write_bytes(b"not hdf5")
    for folder, message in ((tmp_path / "absent", "not found"), (reid, "not image/atlas pairs"),
                            (junk, "cannot be read"), (tmp_path, "synth --pairs")):
        result = CliRunner().invoke(main, ["train-pg", "--pairs", str(folder), "--out", str(tmp_path / "out")])
        assert result.exit_code == 2, (folder, result.output)
        assert message in result.output and "Traceback" not in result.output, result.output


def test_too_few_pairs_for_a_batch(pairs, tmp_path):
    result = CliRunner().invoke(main, command(pairs, tmp_path / "out", "--set", "data.batch_size=32"))
    assert result.exit_code == 2 and "batch" in result.output


def test_shuffle_sampler_epochs_are_reproducible_and_ranks_split_each_batch():
    whole = ShuffleSampler(np.arange(10), 4, seed=5)
    whole.set_epoch(2)
    batches = list(whole)
    assert len(batches) == len(whole) == 2
    assert batches == list(whole) and all(e == 2 for b in batches for _, e, _ in b)
    assert sorted(s for b in batches for _, _, s in b) == list(range(8))
    whole.set_epoch(3)
    assert list(whole) != batches
    whole.set_epoch(2)
    ranks = [ShuffleSampler(np.arange(10), 4, seed=5, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    assert [a + b for a, b in zip(*map(list, ranks))] == batches


def test_the_warp_input_follows_the_pair_and_its_flip(pairs):
    """A warp-input sample carries the pair's own warp + fill (its image through its exact IUV), mirrored with the
    target when the image is flipped."""
    from densepose_textures.atlas import image_to_atlas, image_to_atlas_parts
    from densepose_textures.fill import fill_atlas
    from densepose_textures.synth import Pairs
    from train.data import mirror_atlas
    from train.pg import PairImages

    pairs = Pairs(pairs)
    images = PairImages(pairs, texture_size=P, height=32, width=16, flip=True, resize_crop=1.0, resize_crop_prob=0.0,
                        warp={"splat": "nearest", "fill": "nearest"})
    mirror = pairs.mirror.texel_index(P)
    texture, observed = image_to_atlas(pairs.image(5), pairs.iuv(5), P)
    filled, steps = fill_atlas(texture, observed, mirror)
    assert 0 < observed.mean() < 1
    plain = images[5]
    np.testing.assert_array_equal(image_to_atlas_parts(plain["warp"].permute(1, 2, 0).numpy()), filled)
    np.testing.assert_array_equal(image_to_atlas_parts(plain["warp_steps"].permute(1, 2, 0).numpy())[..., 0], steps)
    epoch, slot = next((e, s) for e in range(20) for s in range(4) if images.augmentation(e, s).flip)
    flipped = images[(5, epoch, slot)]
    np.testing.assert_array_equal(image_to_atlas_parts(flipped["warp"].permute(1, 2, 0).numpy()),
                                  mirror_atlas(filled, mirror.reshape(-1)))
    np.testing.assert_array_equal(image_to_atlas_parts(flipped["target"].permute(1, 2, 0).numpy()),
                                  mirror_atlas(image_to_atlas_parts(plain["target"].permute(1, 2, 0).numpy()),
                                               mirror.reshape(-1)))


def test_a_warp_input_generator_starts_at_the_fill_and_trains_from_the_cli(pairs, tmp_path):
    """Before training, a warp-input generator's held-out loss is the warp + fill's own L1 against the truth (its
    refiner starts at the fill); `--set warp_input=true` trains one whose checkpoint names the warp it reads."""
    from torch.utils.data import default_collate
    from densepose_textures.synth import Pairs
    from train.data import batch_to_device
    from train.pg import PairImages, build_generator, heldout_loss
    from train.settings import ModelParams, PGParams

    warp = {"splat": "nearest", "fill": "nearest"}
    images = PairImages(Pairs(pairs), texture_size=P, height=32, width=16, flip=False, resize_crop=1.0,
                        resize_crop_prob=0.0, warp=warp)
    held = np.arange(12, 16)
    net = build_generator(PGParams(texture_size=P, model=ModelParams(decoder_width=0.25)), P, "cpu", warp)
    inputs = batch_to_device(default_collate([images[int(i)] for i in held]), "cpu")
    fill_l1 = (inputs["warp"]["filled"] - inputs["target"]).abs().mean().item()
    assert fill_l1 > 0.05
    assert heldout_loss(net, images, held, device="cpu") == pytest.approx(fill_l1, rel=1e-5)

    out = tmp_path / "run"
    run(command(pairs, out, "--set", "warp_input=true", epochs=1))
    record = weights(out)
    assert record["model_args"]["warp_input"] == warp
    assert any(name.startswith("refiner.") for name in record["model"])
    result = CliRunner().invoke(main, command(pairs, out, "--resume", epochs=2))  # without warp input: other model
    assert result.exit_code == 2 and "cannot resume" in result.output
