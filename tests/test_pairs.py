"""The texture generator's pairs (`sanreid synth --pairs`): each image with its own true atlas, identities
never those of a reID set, the same seed the same bytes."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from densepose_textures.errors import InputError
from densepose_textures.synth import Pairs, read_truth, write_dataset, write_pairs
from densepose_textures.synth.pairs import PAIRS_FILE
from densepose_textures.synth.render import sample_atlas
from pipeline.cli import main
from pipeline.params import PairsParams, SynthParams

SIZE = dict(image_size=(64, 32), texture_size=16)


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("pairs") / "pairs", count=8, seed=PairsParams.seed, jobs=1, **SIZE)


def test_each_image_has_its_own_identity_and_full_atlas(pairs_dir):
    pairs = Pairs(pairs_dir)
    assert len(pairs) == 8 and pairs.image_size == (64, 32) and pairs.texture_size == 16
    assert sorted(pairs.pids.tolist()) == list(range(1, 9))
    atlases = [pairs.texture(i) for i in range(8)]
    assert all(a.shape == (24, 16, 16, 3) for a in atlases)
    assert all(a.any(axis=(1, 2, 3)).all() for a in atlases)  # a full atlas: every part painted
    assert len({a.tobytes() for a in atlases}) == 8
    with h5py.File(pairs_dir / PAIRS_FILE, "r") as f:
        iuvs = f["iuv"][()]
    for i in range(8):  # the person's visible pixels follow the colours of its own atlas (under the camera's
        visible = iuvs[i][..., 0] > 0  # light and colour cast), not another's
        assert visible.sum() > 30
        seen = pairs.image(i)[visible].astype(np.float64).ravel()
        match = [np.corrcoef(seen, sample_atlas(a, iuvs[i])[visible].astype(np.float64).ravel())[0, 1] for a in atlases]
        assert int(np.argmax(match)) == i, match


@pytest.mark.parametrize("seed", [PairsParams.seed, SynthParams.seed], ids=["default-seeds", "same-seed"])
def test_pair_identities_are_never_those_of_a_reid_set(tmp_path, seed):
    """Pairs come from their own seed namespace: even rendered with the reID set's seed, no pair is one of its people."""
    assert PairsParams().seed != SynthParams().seed
    reid = write_dataset(tmp_path / "synth", ids=6, images_per_id=2, cameras=2, seed=SynthParams.seed, jobs=1, **SIZE)
    truth, _ = read_truth(reid)
    pairs = Pairs(write_pairs(tmp_path / "pairs", count=6, seed=seed, jobs=1, **SIZE))
    reid_atlases = {a.tobytes() for a in truth.values()}
    assert len(reid_atlases) == 6
    assert not any(pairs.texture(i).tobytes() in reid_atlases for i in range(len(pairs)))


def test_same_seed_same_bytes_whatever_the_jobs(pairs_dir, tmp_path):
    again = write_pairs(tmp_path / "again", count=8, seed=PairsParams.seed, jobs=2, **SIZE)
    assert (again / PAIRS_FILE).read_bytes() == (pairs_dir / PAIRS_FILE).read_bytes()
    other = Pairs(write_pairs(tmp_path / "other", count=8, seed=PairsParams.seed + 1, jobs=1, **SIZE))
    assert not np.array_equal(other.texture(0), Pairs(pairs_dir).texture(0))
    assert other.digest != Pairs(pairs_dir).digest


def test_pairs_are_kept_refused_or_replaced(pairs_dir, tmp_path):
    before = (pairs_dir / PAIRS_FILE).stat().st_mtime_ns
    assert write_pairs(pairs_dir, count=8, seed=PairsParams.seed, jobs=1, **SIZE) == pairs_dir
    assert (pairs_dir / PAIRS_FILE).stat().st_mtime_ns == before
    with pytest.raises(InputError, match="--force"):
        write_pairs(pairs_dir, count=9, seed=PairsParams.seed, jobs=1, **SIZE)
    with pytest.raises(InputError, match="ids=0"):
        write_pairs(tmp_path / "none", count=0, seed=1)


def test_cli_renders_pairs_and_refuses_reid_options(tmp_path):
    out = tmp_path / "p"
    runner = CliRunner()
    result = runner.invoke(main, ["synth", "--pairs", "--ids", "3", "--image-size", "32x16", "--texture-size", "8",
                                  "--jobs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 image/atlas pairs" in result.output and len(Pairs(out)) == 3
    assert Pairs(out).settings["seed"] == PairsParams().seed
    result = runner.invoke(main, ["synth", "--pairs", "--cameras", "3", "--out", str(tmp_path / "q")])
    assert result.exit_code == 2 and "--cameras" in result.output and "not for --pairs" in result.output


def test_a_reid_folder_is_not_pairs(tmp_path):
    reid = write_dataset(tmp_path / "synth", ids=2, images_per_id=2, cameras=2, seed=0, jobs=1, **SIZE)
    with pytest.raises(InputError, match="synthetic reID dataset, not image/atlas pairs"):
        Pairs(reid)
