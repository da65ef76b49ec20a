import json
import logging
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from densepose_textures.storage import partial_dir
from pipeline.cli import main
from train.data import TrainImages, batch_to_device
from train.engine import Logger, rewind_log
from train.export import load_encoder
from train.model import SAN
from train.objective import SANObjective
from pipeline.params import override
from train.run import LogStats, Monitor, SaveCheckpoint, TexturePictures, due, initial_model, train_model
from train.settings import TrainParams
from train_fixtures import TRAIN_SETTINGS, synth_items, one_thread, train_set  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("one_thread")


def sets(*extra):
    return [arg for s in TRAIN_SETTINGS + list(extra) for arg in ("--set", s)]


def fixed_batch_losses(model, root, textures, items):
    """Losses of ``model`` on every training image, without augmentation (BN on batch statistics)."""
    data = TrainImages(root, items, textures, height=64, width=32, flip=False, resize_crop=1.0, resize_crop_prob=0.0,
                       erasing=0.0)
    batch = batch_to_device(torch.utils.data.default_collate([data[i] for i in range(len(items))]), "cpu")
    objective = SANObjective(model, label_smoothing=0.1, triplet_margin=0.3, texture_weight=1.0, tr_weight=1.0,
                             tr_margin=0.3).train()
    with torch.no_grad():
        return {name: value.item() for name, value in objective(**batch)[0].items()}


def test_two_epochs_of_san_lower_the_losses_and_write_outputs(train_set, tmp_path):
    root, textures = train_set
    out = tmp_path / "san"
    result = CliRunner().invoke(main, ["train", "--dataset", "synth", "--root", str(root), "--textures", str(textures),
                                       "--variant", "san", "--epochs", "2", "--out", str(out)] + sets())
    assert result.exit_code == 0, result.output + repr(result.exception)
    record = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    trained = SAN(**record["model_args"])
    trained.load_state_dict(record["model"])
    items = sorted(synth_items(root).train, key=lambda item: item[1])
    before = fixed_batch_losses(initial_model(0, **record["model_args"]), root, textures, items)
    after = fixed_batch_losses(trained, root, textures, items)
    # ID and texture losses fall; the triplet and TR hinges start low (features near the origin, decoder
    # maps collapsed: TR = 4 x margin) and grow as the features spread before they fall, on such short runs
    assert after["id"] < before["id"], (before, after)
    assert after["texture"] < 0.9 * before["texture"], (before, after)
    assert record["epoch"] == 2 and record["model_args"]["texture_size"] == 8
    assert any(k.startswith("decoder.") for k in record["model"])
    assert set(record["optim"]["optimizers"]) == {"reid", "texture_encoder", "texture_decoder"}
    encoder, preprocess = load_encoder(out / "last.pt")
    assert preprocess["height"] == 64 and encoder(torch.zeros(2, 3, 64, 32)).shape == (2, 512)
    assert sorted(p.name for p in (out / "pictures").iterdir()) == ["textures-epoch0001.png", "textures-epoch0002.png"]
    assert not partial_dir(out).exists()  # the work directory became the output
    metrics = json.loads((out / "dvclive" / "metrics.json").read_text())
    assert metrics["step"] == 1 and set(metrics["loss"]) == {"id", "triplet", "texture", "tr"}
    assert 0 <= metrics["test"]["rank1"] <= 1 and 0 <= metrics["test"]["mAP"] <= 1
    assert metrics["images_per_s"] > 0 and metrics["lr"]["reid"] == 8e-4


def test_baseline_trains_without_textures_with_warmup_and_joint_profile(train_set, tmp_path):
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


class PlainImages:
    """Stands for TrainImages in the picture callback: a grey image per sample."""

    def image(self, index, epoch, slot, erase):
        return np.full((16, 8, 3), 100, np.uint8), False


class RecordingLogger:
    def __init__(self):
        self.metrics, self.images = [], []

    def log(self, metrics):
        self.metrics.append(dict(metrics))

    def image(self, name, array):
        self.images.append((name, array.shape))


def test_due_every_n_epochs_and_after_the_last():
    assert [e for e in range(7) if due(e, 3, 7)] == [2, 5, 6]
    assert [e for e in range(7) if due(e, 0, 7)] == [6]  # 0: only after the last epoch
    assert [e for e in range(3) if due(e, 1, 3)] == [0, 1, 2]


def test_end_of_epoch_callbacks(monkeypatch, tmp_path):
    import train.run as run

    logger = RecordingLogger()
    saved = []
    monkeypatch.setattr(run.ckpt, "save_checkpoint", lambda path, *, epoch, **state: saved.append((path, epoch, state)))
    images = torch.zeros(3, 3, 16, 8)
    batch = ({"images": images, "target": torch.zeros(3, 3, 12, 8), "mask": torch.ones(3, 1, 12, 8)},
             torch.zeros(3, 3, 12, 8), {"key": torch.tensor([[0, 0, 0], [1, 0, 1], [2, 0, 2]])})
    callbacks = [LogStats(logger), Monitor(lambda model: {"test/rank1": 0.5, "test/mAP": 0.25}, "net", logger, 2, 3),
                 TexturePictures(tmp_path / "pictures", logger, 0, 3, PlainImages()),
                 SaveCheckpoint(tmp_path / "last.pt", 1, 3, run=1)]
    for epoch in range(3):
        for callback in callbacks:
            callback(epoch, {"loss/id": float(epoch)}, batch)
    assert logger.metrics == [{"loss/id": 0.0}, {"loss/id": 1.0}, {"test/rank1": 0.5, "test/mAP": 0.25},
                              {"loss/id": 2.0}, {"test/rank1": 0.5, "test/mAP": 0.25}]
    assert [p.name for p in (tmp_path / "pictures").iterdir()] == ["textures-epoch0003.png"]
    assert [name for name, _ in logger.images] == ["textures.png"]
    assert [(path.name, epoch, state) for path, epoch, state in saved] == [("last.pt", e, {"run": 1}) for e in (1, 2, 3)]
    TexturePictures(tmp_path / "baseline", logger, 1, 3, PlainImages())(0, {}, (batch[0], None, batch[2]))  # no decoder
    assert not (tmp_path / "baseline").exists()


def test_the_library_trains_exactly_as_the_cli(train_set, tmp_path):
    root, _ = train_set
    settings = override(TrainParams(), TRAIN_SETTINGS + ["epochs=1", "optim.warmup_epochs=0", "eval_every=-1"])
    dataset = synth_items(root)
    direct = train_model(settings, variant="baseline", dataset=dataset, out_dir=tmp_path / "direct", progress=False)
    result = CliRunner().invoke(main, ["train", "--dataset", "synth", "--root", str(root), "--variant", "baseline",
                                       "--out", str(tmp_path / "cli")] + sets("epochs=1", "optim.warmup_epochs=0",
                                                                             "eval_every=-1"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    a, b = (torch.load(p, map_location="cpu", weights_only=True) for p in (direct, tmp_path / "cli" / "last.pt"))
    assert a["run"] == b["run"] and a["model_args"] == b["model_args"] and a["epoch"] == b["epoch"] == 1
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_training_logs_nothing_without_dvclive(monkeypatch, tmp_path, caplog):
    monkeypatch.setitem(sys.modules, "dvclive", None)  # import dvclive raises ImportError
    with caplog.at_level(logging.INFO, logger="train.engine"):
        logger = Logger(tmp_path / "dvclive", resume=False, step=0)
    logger.log({"loss/id": 1.0})
    logger.image("textures.png", np.zeros((4, 4, 3), np.uint8))
    logger.next_step()
    logger.end()
    assert logger.live is None and "dvclive is not installed" in caplog.text
    assert not (tmp_path / "dvclive").exists()


def test_rewind_log_keeps_whole_rows_before_the_step(tmp_path):
    metrics = tmp_path / "plots" / "metrics"
    (metrics / "loss").mkdir(parents=True)
    (metrics / "loss" / "id.tsv").write_text("step\tid\n0\t3.0\n1\t2.5\n2\t2.0\n3\t1.")
    (metrics / "images_per_s.tsv").write_text("step\timages_per_s\n0\t10.0\n1\t12")  # last row cut
    (metrics / "test").mkdir()
    (metrics / "test" / "rank1.tsv").write_text("step\tra")  # killed while writing the header
    (tmp_path / "metrics.json").write_text('{"loss": {"id"')
    rewind_log(tmp_path, 2)
    assert (metrics / "loss" / "id.tsv").read_text() == "step\tid\n0\t3.0\n1\t2.5\n"
    assert (metrics / "images_per_s.tsv").read_text() == "step\timages_per_s\n0\t10.0\n"
    assert not (metrics / "test" / "rank1.tsv").exists()
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"loss": {"id": 2.5}, "images_per_s": 10.0,
                                                                    "step": 1}
