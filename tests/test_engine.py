import json

import numpy as np
import torch
from click.testing import CliRunner

from pipeline.cli import main
from train.export import load_encoder
from train_fixtures import TRAIN_SETTINGS, train_set  # noqa: F401  (session fixture)


def sets(*extra):
    return [arg for s in TRAIN_SETTINGS + list(extra) for arg in ("--set", s)]


def losses(out, name):
    lines = (out / "dvclive" / "plots" / "metrics" / "loss" / f"{name}.tsv").read_text().splitlines()[1:]
    return [float(line.split("\t")[1]) for line in lines]


def test_two_epochs_of_san_lower_the_losses_and_write_outputs(train_set, tmp_path):
    torch.set_num_threads(1)
    root, textures = train_set
    out = tmp_path / "san"
    result = CliRunner().invoke(main, ["train", "--dataset", "synth", "--root", str(root), "--textures", str(textures),
                                       "--variant", "san", "--epochs", "2", "--out", str(out)] + sets())
    assert result.exit_code == 0, result.output + repr(result.exception)
    # the ID and texture losses fall from the first epoch to the second (triplet and TR start from collapsed
    # decoder maps, where TR is 4 x margin, and are not monotone over two tiny epochs)
    for name in ("id", "texture"):
        first, second = losses(out, name)
        assert second < first, (name, first, second)
    assert losses(out, "texture")[1] < 0.95 * losses(out, "texture")[0]
    record = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert record["epoch"] == 2 and record["model_args"]["texture_size"] == 8
    assert any(k.startswith("decoder.") for k in record["model"])
    assert set(record["optim"]["optimizers"]) == {"reid", "texture_encoder", "texture_decoder"}
    encoder, preprocess = load_encoder(out / "last.pt")
    assert preprocess["height"] == 64 and encoder(torch.zeros(2, 3, 64, 32)).shape == (2, 512)
    assert sorted(p.name for p in (out / "pictures").iterdir()) == ["textures-epoch0001.png", "textures-epoch0002.png"]
    metrics = json.loads((out / "dvclive" / "metrics.json").read_text())
    assert metrics["step"] == 1 and set(metrics["loss"]) == {"id", "triplet", "texture", "tr"}
    assert 0 <= metrics["test"]["rank1"] <= 1 and 0 <= metrics["test"]["mAP"] <= 1
    assert metrics["images_per_s"] > 0 and metrics["lr"]["reid"] == 8e-4


def test_baseline_trains_without_textures_with_warmup_and_joint_profile(train_set, tmp_path):
    torch.set_num_threads(1)
    root, _ = train_set
    out = tmp_path / "baseline"
    result = CliRunner().invoke(main, ["train", "--dataset", "synth", "--root", str(root), "--variant", "baseline",
                                       "--epochs", "0", "--out", str(out)]
                                + sets("optim.warmup_epochs=1", "optim.profile=joint"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    record = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert record["epoch"] == 1 and record["model_args"]["texture_size"] is None
    assert not any(k.startswith("decoder.") for k in record["model"])
    assert set(record["optim"]["optimizers"]) == {"joint"}
    assert np.isclose(record["optim"]["optimizers"]["joint"]["param_groups"][0]["lr"], 8e-6)
    assert not (out / "pictures").exists()


def test_user_errors_are_clean(train_set, tmp_path):
    root, textures = train_set
    base = ["train", "--dataset", "synth", "--root", str(root), "--out", str(tmp_path / "x")] + sets()
    result = CliRunner().invoke(main, base + ["--variant", "san", "--textures", str(tmp_path / "none")])
    assert result.exit_code == 2 and "is not a texture set" in result.output
    result = CliRunner().invoke(main, base + ["--variant", "san", "--textures", str(textures),
                                              "--set", "data.ids_per_batch=16"])
    assert result.exit_code == 2 and "fewer than the 16 identities per batch" in result.output
    result = CliRunner().invoke(main, base + ["--variant", "baseline", "--set", "optim.profile=fancy"])
    assert result.exit_code == 2 and "unknown optimisation profile" in result.output
    result = CliRunner().invoke(main, base + ["--variant", "baseline", "--set", "nope=1"])
    assert result.exit_code == 2 and "unknown setting" in result.output
