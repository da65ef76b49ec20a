"""``dump`` backend: the file DensePose's ``apply_net.py dump`` writes, read without DensePose.

The file is a ``torch.save`` of a list with one dict per image: ``file_name``, ``scores`` [K],
``pred_boxes_XYXY`` [K, 4] (image pixels) and ``pred_densepose``: a list of K
``densepose.structures.chart_result.DensePoseChartResultWithConfidences`` (``labels`` [h, w]
int64, ``uv`` [2, h, w] float32 over the box), possibly empty or absent when nothing was found.

It pickles DensePose's own classes, so it is loaded with a restricted unpickler: ``find_class``
maps exactly those class paths, torch's tensor rebuild function and storage types to local
equivalents and refuses every other global, so a file from elsewhere cannot run code.

Entries are matched to dataset images by path: an entry belongs to image ``key`` (its path
relative to the dataset root) when its ``file_name`` is ``key`` or ends with ``/key``; failing
that, by base name when exactly one entry has the image's base name.
"""

import collections
import logging
import pickle
import posixpath
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import torch

from ..errors import InputError
from ..storage import file_digest
from .charts import box_xyxy_to_xywh_int, result_to_iuv
from .densepose import covering_box_index

log = logging.getLogger(__name__)


@dataclass
class ChartResult:
    """Local equivalent of ``densepose.structures.chart_result.DensePoseChartResult``."""

    labels: torch.Tensor
    uv: torch.Tensor


@dataclass
class ChartResultWithConfidences:
    """Local equivalent of ``densepose.structures.chart_result.DensePoseChartResultWithConfidences``."""

    labels: torch.Tensor
    uv: torch.Tensor
    sigma_1: Optional[torch.Tensor] = None
    sigma_2: Optional[torch.Tensor] = None
    kappa_u: Optional[torch.Tensor] = None
    kappa_v: Optional[torch.Tensor] = None
    fine_segm_confidence: Optional[torch.Tensor] = None
    coarse_segm_confidence: Optional[torch.Tensor] = None


_STORAGE_TYPES = ("FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
                  "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage", "UntypedStorage")

ALLOWED_GLOBALS = {
    ("densepose.structures.chart_result", "DensePoseChartResultWithConfidences"): ChartResultWithConfidences,
    ("densepose.structures.chart_result", "DensePoseChartResult"): ChartResult,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): getattr(torch, name) for name in _STORAGE_TYPES if hasattr(torch, name)},
}


class RefusedGlobal(InputError):
    """The file names a Python object that a DensePose dump never holds."""


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            pass
        if module.startswith("densepose"):
            hint = ("it is not a chart-based DensePose result (continuous surface embeddings and older "
                    "DensePose formats are not supported): dump with a chart model such as "
                    "densepose_rcnn_R_50_FPN_s1x and a current DensePose")
        else:
            hint = "a DensePose dump never holds it, and loading it could run code"
        raise RefusedGlobal(f"refused to load {module}.{name}: {hint}")


def _restricted_load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


# what torch.load needs of a pickle module
RESTRICTED_PICKLE = SimpleNamespace(__name__="densepose_textures.iuv.dump.restricted_pickle",
                                    Unpickler=RestrictedUnpickler, load=_restricted_load)


def load_dump(path):
    """The entries of an ``apply_net.py dump`` file, as a list of dicts (tensors on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"DensePose dump file {path} not found (write it with apply_net.py dump ... --output FILE)")
    try:
        # weights_only must be False to pass a pickle module; safety comes from RestrictedUnpickler
        entries = torch.load(path, map_location="cpu", pickle_module=RESTRICTED_PICKLE, weights_only=False)
    except RefusedGlobal as err:
        raise RefusedGlobal(f"DensePose dump {path}: {err}") from None
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError) as err:
        raise InputError(f"{path} is not a readable apply_net.py dump file ({err})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("file_name"), str)
                                                for e in entries):
        raise InputError(f"{path} is not an apply_net.py dump: expected a list of dicts with file_name")
    for entry in entries:
        _check_entry(path, entry)
    return entries


def _check_entry(path, entry):
    results = entry.get("pred_densepose") or []
    boxes = entry.get("pred_boxes_XYXY")
    scores = entry.get("scores")
    where = f"{path}, entry {entry['file_name']}"
    if not isinstance(results, list) or not all(isinstance(r, (ChartResult, ChartResultWithConfidences))
                                                for r in results):
        raise InputError(f"{where}: pred_densepose is not a list of DensePose chart results")
    if results and (not torch.is_tensor(boxes) or tuple(boxes.shape) != (len(results), 4)
                    or not torch.is_tensor(scores) or tuple(scores.shape) != (len(results),)):
        raise InputError(f"{where}: expected pred_boxes_XYXY [K, 4] and scores [K] for K = {len(results)} results")
    for r in results:
        if r.labels.ndim != 2 or tuple(r.uv.shape) != (2, *r.labels.shape):
            raise InputError(f"{where}: labels {tuple(r.labels.shape)} and uv {tuple(r.uv.shape)} do not match")


class DumpBackend:
    """IUV from an ``apply_net.py dump`` file (DensePose's detect mode, run elsewhere)."""

    name = "dump"

    def __init__(self, dump):
        self.path = Path(dump)
        entries = load_dump(self.path)
        self.digest = file_digest(self.path)
        self.by_path, self.missing = {}, 0
        self.by_name = collections.defaultdict(list)
        for entry in entries:
            file_name = entry["file_name"].replace("\\", "/")
            self.by_path[file_name] = entry
            self.by_name[posixpath.basename(file_name)].append(file_name)
        log.info("DensePose dump %s: %d images", self.path, len(entries))

    def settings(self):
        return {"mode": "detect", "dump": self.path.name, "dump_sha256": self.digest}

    def _missing(self, key, shown=10):
        self.missing += 1
        if self.missing <= shown:
            log.warning("%s holds no entry for image %s%s", self.path, key,
                        " (further images missing from it are not logged)" if self.missing == shown else "")

    def entry(self, key):
        """The dump entry of image ``key`` (relative path), or None when the dump does not hold it."""
        names = self.by_name.get(posixpath.basename(key), [])
        exact = [n for n in names if n == key or n.endswith("/" + key)]
        if len(exact) > 1:
            raise InputError(f"{self.path} holds image {key} more than once: {', '.join(exact)}")
        if exact:
            return self.by_path[exact[0]]
        return self.by_path[names[0]] if len(names) == 1 else None

    def predict(self, images, keys):
        out = []
        for image, key in zip(images, keys):
            entry = self.entry(key)
            results = (entry or {}).get("pred_densepose") or []
            if not results:
                if entry is None:
                    self._missing(key)
                out.append((None, 0.0))
                continue
            hw = image.shape[:2]
            k = covering_box_index(entry["pred_boxes_XYXY"], entry["scores"], hw)
            if k is None:
                out.append((None, 0.0))
                continue
            box = box_xyxy_to_xywh_int(entry["pred_boxes_XYXY"][k])
            iuv = result_to_iuv(results[k].labels, results[k].uv, box, hw)
            out.append((iuv, float(entry["scores"][k])) if iuv[..., 0].any() else (None, 0.0))
        return out
