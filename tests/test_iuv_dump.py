"""The ``dump`` backend: apply_net.py dump files read without DensePose, through a restricted unpickler.

The dump is written in a separate process by a stand-in module at DensePose's real class path
(``densepose/structures/chart_result.py``) and read here, where no ``densepose`` module exists.
"""

import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from densepose_textures.errors import InputError
from densepose_textures.imageio import write_rgb
from densepose_textures.iuv.dump import DumpBackend, RefusedGlobal, load_dump
from densepose_textures.iuv.run import run_iuv
from densepose_textures.iuv.store import IUVStore

STAND_IN = '''
import torch
from dataclasses import dataclass
from typing import Optional


@dataclass
class DensePoseChartResultWithConfidences:
    labels: torch.Tensor
    uv: torch.Tensor
    sigma_1: Optional[torch.Tensor] = None
    sigma_2: Optional[torch.Tensor] = None
    kappa_u: Optional[torch.Tensor] = None
    kappa_v: Optional[torch.Tensor] = None
    fine_segm_confidence: Optional[torch.Tensor] = None
    coarse_segm_confidence: Optional[torch.Tensor] = None
'''

# Writes what apply_net.py dump writes: per image file_name, scores [K], pred_boxes_XYXY [K, 4], pred_densepose
WRITER = '''
import sys
from pathlib import Path
import torch
from densepose.structures.chart_result import DensePoseChartResultWithConfidences as R

assert R.__module__ == "densepose.structures.chart_result"
g = torch.Generator().manual_seed(0)

def result(w, h):
    labels = torch.randint(0, 25, (h, w), generator=g)
    uv = torch.rand(2, h, w, generator=g) * 1.4 - 0.2  # not squashed: some values outside [0, 1]
    return R(labels=labels, uv=uv, fine_segm_confidence=torch.rand(h, w, generator=g))

entries = [
    # two people: a small confident one and the one covering the crop (kept)
    {"file_name": "/elsewhere/market/bounding_box_train/0001_c1s1_000001_00.jpg",
     "scores": torch.tensor([0.99, 0.80]),
     "pred_boxes_XYXY": torch.tensor([[2.0, 3.0, 20.0, 30.0], [4.7, 6.2, 60.9, 120.5]]),
     "pred_densepose": [result(18, 27), result(56, 114)]},
    # nothing detected
    {"file_name": "/elsewhere/market/bounding_box_train/0002_c1s1_000001_00.jpg",
     "scores": torch.zeros(0), "pred_boxes_XYXY": torch.zeros(0, 4), "pred_densepose": []},
    # matched by base name only
    {"file_name": "0003_c2s1_000001_00.jpg", "scores": torch.tensor([0.7]),
     "pred_boxes_XYXY": torch.tensor([[-3.0, 10.0, 40.0, 140.0]]), "pred_densepose": [result(43, 130)]},
]
torch.save(entries, sys.argv[1])
'''

KEYS = ["bounding_box_train/0001_c1s1_000001_00.jpg", "bounding_box_train/0002_c1s1_000001_00.jpg",
        "query/0003_c2s1_000001_00.jpg", "query/0004_c2s1_000001_00.jpg"]


@pytest.fixture(scope="module")
def dump_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dump")
    package = tmp / "standin" / "densepose" / "structures"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("from .chart_result import DensePoseChartResultWithConfidences\n")
    (package / "chart_result.py").write_text(STAND_IN)
    path = tmp / "results.pkl"
    env = {**os.environ, "PYTHONPATH": str(tmp / "standin")}
    subprocess.run([sys.executable, "-c", WRITER, str(path)], env=env, check=True, timeout=120)
    return path


def expected_iuv(labels, uv, box_xyxy, hw):
    """Hand-pasted IUV: integer XYWH box (truncated), cropped to the image, U and V clamped then rounded."""
    x, y = int(box_xyxy[0]), int(box_xyxy[1])
    iuv = np.zeros((*hw, 3), np.uint8)
    h, w = labels.shape
    for r in range(h):
        for c in range(w):
            if 0 <= y + r < hw[0] and 0 <= x + c < hw[1]:
                u, v = (min(max(float(t), 0.0), 1.0) for t in uv[:, r, c])
                iuv[y + r, x + c] = (labels[r, c], round(255 * u), round(255 * v))
    return iuv


def test_dump_written_elsewhere_loads_without_densepose(dump_file):
    assert importlib.util.find_spec("densepose") is None and "densepose" not in sys.modules
    entries = load_dump(dump_file)
    assert [e["file_name"].rsplit("/", 1)[-1] for e in entries] == [k.rsplit("/", 1)[-1] for k in KEYS[:3]]
    first = entries[0]["pred_densepose"][1]
    assert type(first).__name__ == "ChartResultWithConfidences"
    assert first.labels.dtype == torch.int64 and tuple(first.labels.shape) == (114, 56)
    assert tuple(first.uv.shape) == (2, 114, 56) and first.sigma_1 is None
    assert first.fine_segm_confidence.shape == (114, 56)


def test_dump_backend_pastes_the_covering_box(dump_file):
    backend = DumpBackend(dump_file)
    entries = load_dump(dump_file)
    images = [np.zeros((128, 64, 3), np.uint8)] * 3 + [np.zeros((100, 50, 3), np.uint8)]
    results = backend.predict(images, KEYS)
    (iuv0, score0), (iuv1, score1), (iuv2, score2), (iuv3, score3) = results
    kept = entries[0]["pred_densepose"][1]
    np.testing.assert_array_equal(iuv0, expected_iuv(kept.labels.numpy(), kept.uv.numpy(),
                                                      [4.7, 6.2], (128, 64)))
    assert score0 == pytest.approx(0.80)
    assert iuv1 is None and score1 == 0.0
    third = entries[2]["pred_densepose"][0]
    np.testing.assert_array_equal(iuv2, expected_iuv(third.labels.numpy(), third.uv.numpy(), [-3.0, 10.0],
                                                     (128, 64)))
    assert iuv3 is None and score3 == 0.0  # not in the dump
    settings = backend.settings()
    assert settings["mode"] == "detect" and len(settings["dump_sha256"]) == 64


def test_dump_backend_through_the_stage(dump_file, tmp_path):
    root = tmp_path / "root"
    for key in KEYS:
        write_rgb(root / key, np.full((128, 64, 3), 90, np.uint8))
    summary = run_iuv(DumpBackend(dump_file), root, KEYS, tmp_path / "dump.h5", size=(64, 32), chunk_size=2,
                      progress=False)
    assert summary.no_person == [KEYS[1], KEYS[3]] and summary.unreadable == []
    with IUVStore(tmp_path / "dump.h5") as store:
        assert store.found.tolist() == [True, False, True, False]
        assert store.attrs["backend"] == "dump" and store.attrs["mode"] == "detect"
        assert store.read(0).shape == (64, 32, 3) and store.read(0)[..., 0].any()


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_dump_refuses_other_classes_without_running_them(tmp_path, writer):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    payload = [{"file_name": "a.jpg", "pred_densepose": [Evil(marker)]}]
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(RefusedGlobal, match=r"refused to load (posix|os)\.system") as err:
        load_dump(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_dump_refuses_embedding_results_with_a_hint(tmp_path):
    # a hand-made pickle: one instance of DensePose's continuous-surface-embedding output class
    path = tmp_path / "cse.pkl"
    path.write_bytes(b"\x80\x02cdensepose.structures.cse\nDensePoseEmbeddingPredictorOutput\n)\x81.")
    with pytest.raises(RefusedGlobal, match="not a chart-based DensePose result"):
        load_dump(path)


def test_dump_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        DumpBackend(tmp_path / "missing.pkl")
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x00\x01 not a pickle")
    with pytest.raises(InputError, match="not a readable apply_net.py dump"):
        load_dump(garbage)
    wrong = tmp_path / "wrong.pkl"
    torch.save({"file_name": "a.jpg"}, wrong)
    with pytest.raises(InputError, match="expected a list of dicts"):
        load_dump(wrong)


# Written by DensePose itself (detectron2 02b5c4e2, torch 2.14.1, CPU) from 4 synthetic crops with a
# random-weight R-50-FPN and a zero score threshold:
#   apply_net.py dump configs/densepose_rcnn_R_50_FPN_s1x.yaml "" "realdump/in/*.jpg" --output results.pkl \
#       --opts MODEL.DEVICE cpu MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.0
REAL_DUMP = Path(__file__).parent / "data" / "iuv_apply_net_dump.pkl"
REAL_KEYS = ["bounding_box_train/0001_c1s1_000636_01.jpg", "query/0011_c2s1_205506_01.jpg",
             "query/0011_c1s1_097001_01.jpg", "query/0012_c2s1_797706_01.jpg"]


def test_dump_written_by_real_densepose():
    entries = load_dump(REAL_DUMP)
    assert [e["file_name"] for e in entries] == ["realdump/in/" + k.split("/")[1] for k in REAL_KEYS]
    assert [len(e.get("pred_densepose", [])) for e in entries] == [4, 0, 1, 0]  # no key at all when none found
    backend = DumpBackend(REAL_DUMP)
    results = backend.predict([np.zeros((128, 64, 3), np.uint8)] * 4, REAL_KEYS)
    assert [iuv is not None for iuv, _ in results] == [True, False, True, False]
    # the kept box covers most of the crop; body pixels counted from the same file read with DensePose's classes
    for (iuv, score), entry, body in zip(results[::2], entries[::2], (50, 3)):
        boxes = entry["pred_boxes_XYXY"]
        k = [i for i, s in enumerate(entry["scores"].tolist()) if s == score][0]
        chart = entry["pred_densepose"][k]
        np.testing.assert_array_equal(iuv, expected_iuv(chart.labels.numpy(), chart.uv.numpy(), boxes[k][:2].tolist(),
                                                        (128, 64)))
        assert int((iuv[..., 0] > 0).sum()) == body
