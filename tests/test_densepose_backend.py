"""The densepose backend's parts that need no detectron2: install message, box choice, argument checks."""

import importlib.util

import pytest
import torch

from densepose_textures.errors import InputError
from densepose_textures.iuv.densepose import DensePoseBackend, covering_box_index

HAVE_DETECTRON2 = importlib.util.find_spec("detectron2") is not None and importlib.util.find_spec("densepose") is not None


@pytest.mark.skipif(HAVE_DETECTRON2, reason="detectron2 is installed here: the install message is not shown")
def test_missing_detectron2_says_how_to_install(tmp_path):
    config, weights = tmp_path / "c.yaml", tmp_path / "w.pkl"
    config.write_text("MODEL: {}\n")
    weights.write_bytes(b"x")
    with pytest.raises(InputError) as err:
        DensePoseBackend(config, weights)
    message = str(err.value)
    assert "pip install --no-build-isolation -e SRC" in message
    assert "--no-build-isolation --no-deps -e SRC/projects/DensePose" in message
    assert "--backend dump" in message and "import failed" in message


def test_missing_files_and_bad_arguments_are_named(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("MODEL: {}\n")
    with pytest.raises(InputError, match="weights file .*missing.pkl not found"):
        DensePoseBackend(config, tmp_path / "missing.pkl")
    with pytest.raises(InputError, match="needs --config"):
        DensePoseBackend("", tmp_path / "w.pkl")
    with pytest.raises(InputError, match="mode 'boxes'"):
        DensePoseBackend(config, config, mode="boxes")


def test_covering_box_keeps_the_box_covering_most_of_the_crop():
    boxes = torch.tensor([[10.0, 10.0, 30.0, 60.0], [-20.0, -5.0, 70.0, 140.0], [0.0, 0.0, 64.0, 100.0]])
    scores = torch.tensor([0.99, 0.6, 0.9])
    # box 1 covers the whole 128x64 crop once clipped; box 2 covers 100 rows of it
    assert covering_box_index(boxes, scores, (128, 64)) == 1
    # equal cover: the higher score wins
    same = torch.tensor([[0.0, 0.0, 64.0, 128.0], [-5.0, -5.0, 70.0, 130.0]])
    assert covering_box_index(same, torch.tensor([0.5, 0.8]), (128, 64)) == 1
    assert covering_box_index(torch.zeros(0, 4), torch.zeros(0), (128, 64)) is None
    assert covering_box_index(torch.tensor([[70.0, 0.0, 90.0, 50.0]]), torch.tensor([0.9]), (128, 64)) is None


@pytest.mark.skipif(HAVE_DETECTRON2, reason="detectron2 is installed here: the install message is not shown")
def test_cli_without_detectron2_exits_2_with_the_recipe(synth_root, tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import main

    config, weights = tmp_path / "c.yaml", tmp_path / "w.pkl"
    config.write_text("MODEL: {}\n")
    weights.write_bytes(b"x")
    result = CliRunner().invoke(main, ["iuv", "--dataset", "synth", "--root", str(synth_root), "--backend", "densepose",
                                       "--config", str(config), "--weights", str(weights), "--out", str(tmp_path / "o.h5")])
    assert result.exit_code == 2, result.output
    assert "--no-build-isolation --no-deps" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.h5").exists()
