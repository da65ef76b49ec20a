"""The densepose backend on real detectron2 + DensePose (random weights), checked against DensePose's own code.

Runs only where detectron2 and DensePose import and ``SANREID_DENSEPOSE_SRC`` names the DensePose
source folder (``<detectron2 checkout>/projects/DensePose``, for its config files); skipped
otherwise, with the reason. See the README (IUV stage) for the environment recipe.
"""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("detectron2", reason="detectron2 is not installed (see the README: DensePose environment)")
pytest.importorskip("densepose", reason="DensePose is not installed (see the README: DensePose environment)")

from detectron2.engine import DefaultPredictor  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from densepose.vis.extractor import DensePoseResultExtractor  # noqa: E402

from densepose_textures.errors import InputError  # noqa: E402
from densepose_textures.iuv.densepose import DensePoseBackend, covering_box_index, write_random_checkpoint  # noqa: E402

SRC = os.environ.get("SANREID_DENSEPOSE_SRC", "")
CONFIG = Path(SRC) / "configs" / "densepose_rcnn_R_50_FPN_s1x.yaml"
pytestmark = pytest.mark.skipif(
    not SRC or not CONFIG.is_file(),
    reason="set SANREID_DENSEPOSE_SRC to <detectron2 checkout>/projects/DensePose (holding configs/)",
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("densepose")
    return {
        "random": write_random_checkpoint(CONFIG, folder / "random.pth", seed=0),
        # random weights whose box classifier always says "person", so detect mode finds boxes
        "person": write_random_checkpoint(CONFIG, folder / "person.pth", seed=0, person_logit=8.0),
    }


def _crops():
    """Person-crop-like RGB images: two 128x64 and one of another shape (its own batch)."""
    rng = np.random.default_rng(0)
    crops = []
    for h, w in ((128, 64), (128, 64), (150, 70)):
        image = np.full((h, w, 3), rng.integers(0, 255, 3), np.uint8)
        cv2.ellipse(image, (w // 2, h // 2), (w // 3, h // 2 - 4), 0, 0, 360, rng.integers(0, 255, 3).tolist(), -1)
        crops.append(image + rng.integers(0, 20, image.shape, dtype=np.uint8))
    return crops


def _extractor_iuv(instances, index, image_hw):
    """IUV of one instance through DensePose's own DensePoseResultExtractor (U, V clamped, rounded)."""
    results, boxes_xywh = DensePoseResultExtractor()(instances[[index]])
    labels, uv = results[0].labels.numpy(), results[0].uv.clamp(0, 1).numpy()
    x, y = int(boxes_xywh[0, 0]), int(boxes_xywh[0, 1])
    h, w = labels.shape
    iuv = np.zeros((*image_hw, 3), np.uint8)
    region = iuv[max(y, 0) : y + h, max(x, 0) : x + w]
    rows, cols = region.shape[:2]
    region[..., 0] = labels[max(-y, 0) : max(-y, 0) + rows, max(-x, 0) : max(-x, 0) + cols]
    region[..., 1:] = np.rint(uv[:, max(-y, 0) : max(-y, 0) + rows, max(-x, 0) : max(-x, 0) + cols] * 255).transpose(1, 2, 0)
    return iuv


def test_box_mode_equals_densepose_extractor_on_the_given_box(weights):
    backend = DensePoseBackend(CONFIG, weights["random"], mode="box", device="cpu", batch_size=1, input_size=(256, 128))
    assert backend.name == "densepose"
    settings = backend.settings()
    assert settings["mode"] == "box" and settings["input_size"] == [256, 128]
    assert len(settings["weights_sha256"]) == 64 and len(settings["resolved_config_sha256"]) == 64
    assert settings["detectron2_version"]
    crops = _crops()
    got = backend.predict(crops, [f"k{i}" for i in range(len(crops))])
    for image, (iuv, score) in zip(crops, got):
        h, w = image.shape[:2]
        bgr = cv2.resize(np.ascontiguousarray(image[:, :, ::-1]), (128, 256), interpolation=cv2.INTER_LINEAR)
        item = {"image": torch.from_numpy(bgr.transpose(2, 0, 1).copy()).float(), "height": h, "width": w}
        given = Instances((256, 128), pred_boxes=Boxes(torch.tensor([[0.0, 0.0, 128.0, 256.0]])), pred_classes=torch.zeros(1, dtype=torch.int64))
        with torch.no_grad():
            instances = backend.model.inference([item], detected_instances=[given])[0]["instances"]
        assert instances.pred_boxes.tensor.tolist() == [[0.0, 0.0, float(w), float(h)]]
        assert instances.pred_densepose.fine_segm.shape == (1, 25, 112, 112)
        assert score == 1.0 and iuv.shape == (h, w, 3) and iuv.dtype == np.uint8
        np.testing.assert_array_equal(iuv, _extractor_iuv(instances, 0, (h, w)))
        assert iuv[..., 0].any() and iuv[..., 0].max() <= 24


def test_box_mode_batches_many_crops_with_the_same_result(weights):
    crops = _crops()
    one = DensePoseBackend(CONFIG, weights["random"], mode="box", device="cpu", batch_size=1, input_size=(256, 128)).predict(crops, None)
    many = DensePoseBackend(CONFIG, weights["random"], mode="box", device="cpu", batch_size=8, input_size=(256, 128)).predict(crops, None)
    for (a, _), (b, _) in zip(one, many):
        # batched convolutions may round differently: labels agree on nearly every pixel
        assert (a[..., 0] == b[..., 0]).mean() > 0.995


@pytest.mark.slow
def test_detect_mode_keeps_the_covering_person_as_default_predictor_sees_it(weights):
    backend = DensePoseBackend(CONFIG, weights["person"], mode="detect", device="cpu", batch_size=2)
    assert backend.settings()["test_size"] == [800, 1333] and "input_size" not in backend.settings()
    crops = _crops()[:2]
    got = backend.predict(crops, ["a", "b"])
    predictor = DefaultPredictor(backend.cfg)
    for image, (iuv, score) in zip(crops, got):
        instances = predictor(np.ascontiguousarray(image[:, :, ::-1]))["instances"]  # DefaultPredictor takes BGR
        assert len(instances) > 0  # the "always person" checkpoint reports its anchors
        keep = covering_box_index(instances.pred_boxes.tensor, instances.scores, image.shape[:2])
        expected = _extractor_iuv(instances, keep, image.shape[:2])
        assert iuv is not None and expected[..., 0].any()
        assert score == pytest.approx(float(instances.scores[keep]), abs=1e-4)
        assert (iuv[..., 0] == expected[..., 0]).mean() > 0.995


def test_unreadable_or_mismatching_weights_are_named(tmp_path, weights):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pth cannot be loaded"):
        DensePoseBackend(CONFIG, bad, device="cpu")
    state = torch.load(weights["random"], weights_only=True)["model"]
    backbone_only = tmp_path / "backbone.pth"
    torch.save({"model": {k: t for k, t in state.items() if k.startswith("backbone.")}}, backbone_only)
    with pytest.raises(InputError, match="backbone.pth do not fit config"):
        DensePoseBackend(CONFIG, backbone_only, device="cpu")
