"""Training with images as users have them: one that does not decode, one in which no person was found."""

import logging
import shutil

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from densepose_textures.errors import InputError
from pipeline.cli import main
from pipeline.commands.common import user_errors
from train_fixtures import TRAIN_SETTINGS, build_texture_set, one_thread, synth_items, train_set  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bad_set(train_set, tmp_path_factory):
    """(root, texture set, bad image): the synthetic set with one training image replaced by random bytes, which
    the texture set (built before) records as having no person, as the IUV stage does for an unreadable image."""
    source, _ = train_set
    base = tmp_path_factory.mktemp("badset")
    root = shutil.copytree(source, base / "synth")
    items = synth_items(root).train
    bad = items[5][0]
    textures = build_texture_set(root, items, base / "textures", 8, empty={bad})
    (root / bad).write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    return root, textures, bad


def command(root, textures, out, variant, *settings):
    args = ["train", "--dataset", "synth", "--root", str(root), "--variant", variant, "--epochs", "1",
            "--out", str(out)] + (["--textures", str(textures)] if variant == "san" else [])
    return args + [a for s in TRAIN_SETTINGS + ["eval_every=-1", *settings] for a in ("--set", s)]


@pytest.mark.parametrize("variant", ["baseline", "san"])
def test_an_unreadable_image_is_left_out_and_named_once(bad_set, tmp_path, caplog, variant):
    root, textures, bad = bad_set
    with caplog.at_level(logging.INFO):
        result = CliRunner().invoke(main, command(root, textures, tmp_path / variant, variant))
    assert result.exit_code == 0, result.output + repr(result.exception)
    left_out = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(left_out) == 1 and "left out 1 of 48 training images" in left_out[0] and bad in left_out[0]
    no_person = [r.getMessage() for r in caplog.records if "no person" in r.getMessage()]
    if variant == "san":  # the image left out was the only one without a person
        assert not no_person
    assert torch.load(tmp_path / variant / "last.pt", weights_only=True)["epoch"] == 1


def test_images_without_a_person_are_named_and_their_target_masked(train_set, tmp_path, caplog):
    root, _ = train_set
    items = synth_items(root).train
    empty = {items[3][0], items[9][0]}
    textures = build_texture_set(root, items, tmp_path / "textures", 8, empty=empty)
    with caplog.at_level(logging.INFO):
        result = CliRunner().invoke(main, command(root, textures, tmp_path / "san", "san"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    no_person = [r.getMessage() for r in caplog.records if "no person" in r.getMessage()]
    assert len(no_person) == 1 and "2 of 48 training images" in no_person[0] and "masked" in no_person[0]
    assert all(key in no_person[0] for key in empty)


def test_an_error_in_a_loader_worker_is_one_line(bad_set, tmp_path, monkeypatch):
    """An image that decoded when training started but not in a worker (replaced meanwhile): one clear line."""
    import train.run

    root, textures, bad = bad_set
    monkeypatch.setattr(train.run, "readable_items", lambda root, items: list(items))
    result = CliRunner().invoke(main, command(root, textures, tmp_path / "run", "baseline", "data.workers=1"))
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert "Traceback" not in result.output and result.output.count("Error") == 1  # above it: the progress bar
    assert result.output.strip().splitlines()[-1] == \
        f"Error: image {root / bad} cannot be decoded (corrupt or not an image): replace or remove it"


class Failing(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        try:
            raise KeyError(index)
        except KeyError as err:
            raise ValueError("shard 3 is\ncorrupt") from err


@click.command()
@user_errors
def load_all():
    list(torch.utils.data.DataLoader(Failing(), num_workers=1))


@click.command()
@user_errors
def refuse():
    raise InputError("the set is incomplete")


def test_any_worker_error_is_one_line_and_other_errors_are_untouched():
    result = CliRunner().invoke(load_all)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: ValueError in a DataLoader worker: shard 3 is corrupt (with 0 workers the traceback shows where)"]
    result = CliRunner().invoke(refuse)
    assert result.exit_code == 2 and result.output == "Error: the set is incomplete\n"
    with pytest.raises(ZeroDivisionError):
        user_errors(lambda: 1 / 0)()
