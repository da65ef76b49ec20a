"""The ``densepose`` IUV backend: detectron2's DensePose chart models on person crops.

Two modes. ``box`` (default): every crop is resized to ``input_size`` and given to the model
as its own single person box (``model.inference(..., detected_instances=...)``), so the
backbone and the DensePose head run and the proposal network and box head do not; no crop
is missed and the score is 1.0 (the box is given, not detected). ``detect``: the full
detector runs on each crop as detectron2's ``DefaultPredictor`` prepares it (shortest edge
resized to ``INPUT.MIN_SIZE_TEST``); the person box covering most of the crop is kept and
its detection score recorded. Chart outputs are turned into IUV by
:mod:`densepose_textures.iuv.charts` (DensePose's own extractor rules).

detectron2 and DensePose are imported only when the backend is built; without them the
user gets :class:`InputError` with the install recipe (:data:`INSTALL_HINT`).
"""

from collections import defaultdict
import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from ..device import resolve_device
from ..errors import InputError
from ..storage import AtomicWrite, file_digest
from .charts import charts_to_results, result_to_iuv

log = logging.getLogger(__name__)

MODES = ("box", "detect")

INSTALL_HINT = """\
the densepose IUV backend needs detectron2 and DensePose, which are not on the package registries.
Install them into a separate virtual environment, from this project's clone (verified on CPU;
use your CUDA torch on a GPU; docs/densepose.md has the details):
  python3 -m venv ../densepose-env && . ../densepose-env/bin/activate
  pip install torch torchvision
  git clone https://github.com/facebookresearch/detectron2 SRC
  MAX_JOBS=2 pip install --no-build-isolation -e SRC
  pip install --no-build-isolation --no-deps -e SRC/projects/DensePose
  pip install av opencv-python-headless scipy h5py
  pip install -e .
then run sanreid from that environment.
--no-build-isolation is required (without it the build fails with "No module named 'torch'");
--no-deps is required for DensePose (without it its setup tries to clone detectron2 again).
Alternatively run DensePose's apply_net.py dump elsewhere and use --backend dump."""


def _import_detectron2():
    """(detectron2 module, densepose.add_densepose_config), or InputError with the install recipe."""
    try:
        import detectron2
        from densepose import add_densepose_config
    except ImportError as err:
        raise InputError(f"{INSTALL_HINT}\n(import failed: {err})") from err
    return detectron2, add_densepose_config


def covering_box_index(boxes_xyxy, scores, image_hw):
    """Index of the box covering most of the image (intersection area), ties to the higher score; None if none."""
    if len(boxes_xyxy) == 0:
        return None
    boxes = torch.as_tensor(boxes_xyxy, dtype=torch.float32).cpu()
    h, w = image_hw
    iw = (boxes[:, 2].clamp(max=w) - boxes[:, 0].clamp(min=0)).clamp(min=0)
    ih = (boxes[:, 3].clamp(max=h) - boxes[:, 1].clamp(min=0)).clamp(min=0)
    cover = iw * ih
    order = np.lexsort((-torch.as_tensor(scores).float().cpu().numpy(), -cover.numpy()))
    return int(order[0]) if float(cover[order[0]]) > 0 else None


class DensePoseBackend:
    """IUV of person crops with a DensePose chart model (R-50-FPN and the like) from user files.

    ``config``: a DensePose config yaml (its ``_BASE_`` beside it); ``weights``: the model file
    (``.pkl`` or ``.pth``, loaded by detectron2's checkpointer: pickles, so only trusted files).
    """

    name = "densepose"

    def __init__(self, config, weights, mode="box", device="auto", batch_size=16, input_size=(512, 256)):
        if mode not in MODES:
            raise InputError(f"DensePose mode {mode!r} is not one of {', '.join(MODES)}")
        for what, path in (("config", config), ("weights", weights)):
            if not path:
                raise InputError(f"the densepose backend needs --{what} FILE (a DensePose {what} file)")
            if not Path(path).is_file():
                raise InputError(f"DensePose {what} file {path} not found")
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        self.detectron2, add_densepose_config = _import_detectron2()
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.config import get_cfg
        from detectron2.data import transforms as T
        from detectron2.modeling import build_model

        self.config, self.weights = Path(config), Path(weights)
        self.mode, self.batch_size = mode, int(batch_size)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.device = str(resolve_device(device))  # under torchrun, auto is this rank's GPU
        cfg = get_cfg()
        add_densepose_config(cfg)
        try:
            cfg.merge_from_file(str(self.config))
        except Exception as err:  # yacs raises plain KeyError/AssertionError/YAMLError on bad files
            raise InputError(f"DensePose config {self.config} cannot be read: {err}") from err
        cfg.MODEL.WEIGHTS = str(self.weights)
        cfg.MODEL.DEVICE = self.device
        cfg.freeze()
        self.cfg = cfg
        self.bgr = cfg.INPUT.FORMAT == "BGR"
        self.model = build_model(cfg).eval()
        self._load_weights(DetectionCheckpointer)
        self.resize_detect = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        resolved = cfg.clone()
        resolved.defrost()
        resolved.MODEL.WEIGHTS, resolved.MODEL.DEVICE = "", ""
        self._digests = {
            "config_sha256": file_digest(self.config),
            # the config with its _BASE_ files merged in: a changed base file changes this too
            "resolved_config_sha256": hashlib.sha256(resolved.dump().encode()).hexdigest(),
            "weights_sha256": file_digest(self.weights),
        }
        log.info("DensePose %s mode on %s: config %s, weights %s", mode, self.device, self.config, self.weights)

    def _load_weights(self, checkpointer_class):
        """Load the weights file; refuse one that leaves model parameters unset (wrong model or backbone-only)."""

        class KeyReportingCheckpointer(checkpointer_class):
            def _load_model(self, checkpoint):
                self.incompatible = super()._load_model(checkpoint)
                return self.incompatible

        checkpointer = KeyReportingCheckpointer(self.model)
        try:
            checkpointer.load(str(self.weights))  # detectron2's loading: pickle for .pkl, torch.load for .pth
        except Exception as err:
            raise InputError(f"DensePose weights {self.weights} cannot be loaded: {err}") from err
        incompatible = checkpointer.incompatible
        unset = list(incompatible.missing_keys) + [name for name, *_ in incompatible.incorrect_shapes]
        if unset:
            raise InputError(
                f"DensePose weights {self.weights} do not fit config {self.config}: {len(unset)} parameters "
                f"missing or of another shape (e.g. {', '.join(unset[:3])}); give the weights trained with this config"
            )

    def settings(self):
        """What determines the output (stored with the IUV): mode, input size, file digests, versions."""
        return {
            "mode": self.mode,
            **({"input_size": list(self.input_size)} if self.mode == "box" else
               {"test_size": [self.cfg.INPUT.MIN_SIZE_TEST, self.cfg.INPUT.MAX_SIZE_TEST]}),
            "config": self.config.name,
            **self._digests,
            "detectron2_version": self.detectron2.__version__,
        }

    def predict(self, images, keys=None):
        """uint8 RGB crops -> list of ``(iuv uint8 (H, W, 3) or None, score)``, one per crop, in order.

        None when no person is found (detect mode) or the model labels no pixel as body.
        """
        out = [None] * len(images)
        inputs = [self._prepare(image) for image in images]
        # batch only equal-sized inputs, so that no crop's result depends on its neighbours' padding
        groups = defaultdict(list)
        for i, item in enumerate(inputs):
            groups[tuple(item["image"].shape)].append(i)
        for members in groups.values():
            for start in range(0, len(members), self.batch_size):
                batch = members[start : start + self.batch_size]
                for i, result in zip(batch, self._forward([inputs[i] for i in batch])):
                    out[i] = result
        return out

    def _prepare(self, image):
        """Model input dict of one RGB crop: resized CHW float32 in the model's channel order."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"DensePose backend expects uint8 RGB images (H, W, 3), got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        pixels = image[:, :, ::-1] if self.bgr else image
        if self.mode == "box":
            ih, iw = self.input_size
            pixels = cv2.resize(np.ascontiguousarray(pixels), (iw, ih), interpolation=cv2.INTER_LINEAR)
        else:
            pixels = self.resize_detect.get_transform(pixels).apply_image(np.ascontiguousarray(pixels))
        tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float()  # (3, h, w)
        return {"image": tensor, "height": height, "width": width}

    @torch.no_grad()
    def _forward(self, batch):
        if self.mode == "box":
            from detectron2.structures import Boxes, Instances

            # fresh Instances every call: post-processing rescales the boxes in place
            given = []
            for item in batch:
                ih, iw = item["image"].shape[1:]
                box = Boxes(torch.tensor([[0.0, 0.0, float(iw), float(ih)]]))
                given.append(Instances((ih, iw), pred_boxes=box, pred_classes=torch.zeros(1, dtype=torch.int64)))
            outputs = self.model.inference(batch, detected_instances=given)
            chosen = [0 if len(o["instances"]) else None for o in outputs]
            scores = [1.0] * len(batch)
        else:
            outputs = self.model.inference(batch)
            chosen, scores = [], []
            for item, o in zip(batch, outputs):
                inst = o["instances"]
                persons = (inst.pred_classes == 0).nonzero().flatten().tolist() if len(inst) else []
                sub = covering_box_index(inst.pred_boxes.tensor[persons], inst.scores[persons], (item["height"], item["width"])) if persons else None
                chosen.append(None if sub is None else persons[sub])
                scores.append(0.0 if sub is None else float(inst.scores[persons[sub]]))
        picked = [(b, k) for b, k in enumerate(chosen) if k is not None]
        results = [(None, 0.0)] * len(batch)
        if not picked:
            return results
        charts = [outputs[b]["instances"][k] for b, k in picked]
        dp = [c.pred_densepose for c in charts]
        converted = charts_to_results(
            torch.cat([d.coarse_segm for d in dp]),
            torch.cat([d.fine_segm for d in dp]),
            torch.cat([d.u for d in dp]),
            torch.cat([d.v for d in dp]),
            torch.cat([c.pred_boxes.tensor for c in charts]),
        )
        for (b, _), (labels, uv, box) in zip(picked, converted):
            iuv = result_to_iuv(labels, uv, box, (batch[b]["height"], batch[b]["width"]))
            results[b] = (iuv, scores[b]) if iuv[..., 0].any() else (None, 0.0)
        return results


def write_random_checkpoint(config, path, *, seed=0, person_logit=None):
    """Save a random-weight checkpoint of the model ``config`` describes (for tests and benchmarks).

    ``person_logit``: if given, the box classifier's bias is set to (+x person, -x background)
    and the proposal and box regressors to zero, so that the random detector reports its
    anchors as people (detect mode then has boxes to choose from).
    """
    _, add_densepose_config = _import_detectron2()
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    cfg = get_cfg()
    add_densepose_config(cfg)
    cfg.merge_from_file(str(config))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(seed)
    state = build_model(cfg).state_dict()
    if person_logit is not None:
        bias = state["roi_heads.box_predictor.cls_score.bias"]  # (num_classes + 1,), background last
        bias[:-1], bias[-1] = float(person_logit), -float(person_logit)
        for name in ("roi_heads.box_predictor.bbox_pred", "proposal_generator.rpn_head.anchor_deltas"):
            state[f"{name}.weight"].zero_()
            state[f"{name}.bias"].zero_()
    with AtomicWrite(path) as tmp:
        torch.save({"model": state}, tmp)
    return Path(path)
