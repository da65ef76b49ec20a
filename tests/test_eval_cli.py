"""Feature extraction and the ``sanreid extract`` / ``sanreid evaluate`` commands on the tiny synthetic set."""

import csv
import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import main
from pipeline.datasets import load
from train.evaluation import evaluate_rank
from train.evaluation.distance import pairwise_distance
from train.evaluation.features import extract_features, image_items, read_features
from train.evaluation.report import read_per_query

PREPROCESS = {"height": 64, "width": 32, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


class LeftRight(torch.nn.Module):
    """Features that see left from right: mean colour of the left and right halves."""

    def forward(self, x):
        half = x.shape[3] // 2
        return torch.cat([x[..., :half].mean((2, 3)), x[..., half:].mean((2, 3))], 1)


def test_extract_features_flip_and_normalisation(synth_root):
    ds = load("synth", synth_root)
    items = ds.query[:5]
    plain = extract_features(LeftRight(), ds.root, items, PREPROCESS, flip=False, batch_size=2)
    flipped = extract_features(LeftRight(), ds.root, items, PREPROCESS, flip=True, batch_size=3)
    assert plain.shape == (5, 6) and plain.dtype == torch.float32
    swapped = torch.cat([plain[:, 3:], plain[:, :3]], 1)  # the mirror image swaps the halves
    torch.testing.assert_close(flipped, (plain + swapped) / 2, atol=1e-5, rtol=0)
    # ImageNet normalisation: a mid-grey image would give (0.5 - mean) / std; ours are coloured, not zero-mean
    assert not torch.allclose(plain, torch.zeros_like(plain), atol=1e-3)


def test_image_items_parse_market_names(synth_root):
    items = image_items(synth_root / "query")
    ds = load("synth", synth_root)
    assert sorted((f"query/{k}", p, c) for k, p, c in items) == sorted(ds.query)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from train.export import save_encoder
    from train.model import SAN

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_encoder(SAN(num_classes=4, backbone="resnet18", embed_dim=32), PREPROCESS, path)
    return path


@pytest.fixture()
def small_params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("eval:\n  k1: 5\n  k2: 3\n  workers: 0\n  device: cpu\n  hardest: 3\n")
    return str(path)


def png_title(path):
    with Image.open(path) as png:
        return png.text.get("Title")


def test_extract_then_evaluate_features(synth_root, model_file, small_params, tmp_path):
    runner = CliRunner()
    for split in ("query", "gallery"):
        res = runner.invoke(main, ["--params", small_params, "extract", "--model", str(model_file), "--dataset",
                                   "synth", "--root", str(synth_root), "--split", split,
                                   "--out", str(tmp_path / f"{split}.h5")])
        assert res.exit_code == 0, res.output
    qf, query, attrs = read_features(tmp_path / "query.h5")
    ds = load("synth", synth_root)
    assert query == ds.query and qf.shape == (len(ds.query), 32) and attrs["split"] == "query"
    with h5py.File(tmp_path / "gallery.h5") as f:
        assert set(f) == {"features", "keys", "pids", "camids"}

    out = tmp_path / "metrics"
    res = runner.invoke(main, ["--params", small_params, "evaluate", "--dataset", "synth", "--root", str(synth_root),
                               "--features-query", str(tmp_path / "query.h5"),
                               "--features-gallery", str(tmp_path / "gallery.h5"), "--out", str(out),
                               "--title", "synth, as extracted"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    gf, gallery, _ = read_features(tmp_path / "gallery.h5")
    labels = [np.array([item[k] for item in items]) for k, items in ((1, query), (1, gallery), (2, query), (2, gallery))]
    direct = evaluate_rank(pairwise_distance(qf, gf), *labels)
    assert metrics["plain"]["mAP"] == pytest.approx(direct["mAP"])
    assert metrics["plain"]["rank1"] == pytest.approx(direct["cmc"][0])
    assert set(metrics["rerank"]) >= {"rank1", "rank5", "rank10", "mAP", "mINP"}
    with open(out / "cmc.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 50 and set(rows[0]) == {"rank", "cmc", "cmc_rerank"}
    assert float(rows[0]["cmc"]) == pytest.approx(direct["cmc"][0])
    assert (out / "cmc.png").stat().st_size > 0 and (out / "ranklists.jpg").stat().st_size > 0
    assert len(json.loads((out / "cmc.json").read_text())["cmc"]) == 50
    assert png_title(out / "cmc.png") == "synth, as extracted"
    pids, aps = read_per_query(out / "per_query.csv")
    assert list(pids) == [item[1] for item in query] and aps.mean() == pytest.approx(direct["mAP"], abs=1e-6)


def test_evaluate_checkpoint_and_folder_extract(synth_root, model_file, small_params, tmp_path):
    runner = CliRunner()
    out = tmp_path / "m"
    res = runner.invoke(main, ["--params", small_params, "evaluate", "--dataset", "synth", "--root", str(synth_root),
                               "--checkpoint", str(model_file), "--out", str(out), "--no-rerank", "--no-flip"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert "rerank" not in metrics and 0 < metrics["plain"]["mAP"] <= 1
    assert (out / "features-query.h5").is_file()
    res = runner.invoke(main, ["--params", small_params, "extract", "--model", str(model_file), "--images",
                               str(synth_root / "query"), "--out", str(tmp_path / "folder.h5")])
    assert res.exit_code == 0, res.output
    folder_f, _, _ = read_features(tmp_path / "folder.h5")
    query_f, _, _ = read_features(out / "features-query.h5")
    assert folder_f.shape == query_f.shape


@pytest.mark.parametrize("args,message", [
    (["evaluate", "--dataset", "synth", "--features-query", "nope.h5", "--features-gallery", "nope.h5"], "not found"),
    (["evaluate", "--dataset", "synth", "--checkpoint", "x.pt", "--features-query", "q.h5"], "either --checkpoint"),
    (["extract", "--model", "m.pt", "--out", "f.h5"], "--dataset"),
    (["extract", "--model", "missing.pt", "--images", ".", "--out", "f.h5"], "no images"),
    (["evaluate", "--dataset", "synth", "--root", ".", "--checkpoint", "missing.pt"], "bounding_box_train"),
])
def test_user_errors_exit_2(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
