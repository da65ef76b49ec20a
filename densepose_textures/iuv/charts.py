"""DensePose chart output -> per-box result -> image-sized IUV, as DensePose's result extractor does.

Pure torch/numpy (no detectron2): the same code serves the ``densepose`` backend, the
``dump`` reader and the tests. Per box, DensePose
(``densepose/converters/chart_output_to_chart_result.py``, ``segm_to_mask.py``) converts the
XYXY box to an integer XYWH box (each value truncated, sizes at least 1), resizes coarse and
fine segmentation bilinearly to the box size (``align_corners=False``), takes
label = argmax fine where argmax coarse > 0 (else 0), and U, V from the label's channel
(0 on background). U and V are not squashed by the network, so they are clamped to [0, 1]
here (as DensePose's visualisers do).
"""

import numpy as np
import torch
from torch.nn import functional as F


def box_xyxy_to_xywh_int(box_xyxy):
    """(x0, y0, x1, y1) floats -> integer (x, y, w, h), truncated toward zero as DensePose's ``make_int_box``.

    The returned w and h are at least 1 (the size DensePose resamples to).
    """
    return tuple(int(c) for c in _boxes_xywh_int(box_xyxy)[0])


def _boxes_xywh_int(boxes_xyxy):
    """(K, 4) XYXY -> (K, 4) int64 XYWH with DensePose's float32 arithmetic and truncation; w, h >= 1."""
    boxes = torch.as_tensor(boxes_xyxy, dtype=torch.float32).reshape(-1, 4).cpu()
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).long()
    xywh[:, 2:] = xywh[:, 2:].clamp(min=1)
    return xywh


def _resample(coarse_segm, fine_segm, u, v, h, w):
    """Charts of boxes sharing one size (B, C, S, S) -> labels (B, h, w) int64, uv (B, 2, h, w) float32."""
    size = (h, w)
    foreground = F.interpolate(coarse_segm, size, mode="bilinear", align_corners=False).argmax(dim=1) > 0
    labels = F.interpolate(fine_segm, size, mode="bilinear", align_corners=False).argmax(dim=1) * foreground.long()
    index = labels[:, None]  # (B, 1, h, w)
    u_box = F.interpolate(u, size, mode="bilinear", align_corners=False).gather(1, index)
    v_box = F.interpolate(v, size, mode="bilinear", align_corners=False).gather(1, index)
    uv = torch.cat([u_box, v_box], dim=1) * (labels[:, None] > 0)  # background keeps U = V = 0
    return labels, uv.float().clamp_(0.0, 1.0)


def charts_to_results(coarse_segm, fine_segm, u, v, boxes_xyxy):
    """Batched chart conversion: K boxes -> list of K ``(labels (h, w) int64, uv (2, h, w) float32, box_xywh)``.

    ``coarse_segm`` (K, 2, S, S), ``fine_segm``, ``u``, ``v`` (K, 25, S, S) as DensePose's chart
    predictor returns them (S = 112 for the R-50-FPN models); ``boxes_xyxy`` (K, 4) in image
    pixels. Boxes of the same integer size are resampled in one call. Tensors stay on their device.
    """
    coarse_segm, fine_segm, u, v = (torch.as_tensor(t) for t in (coarse_segm, fine_segm, u, v))
    k = coarse_segm.shape[0]
    if not (fine_segm.shape[0] == u.shape[0] == v.shape[0] == k) or coarse_segm.ndim != 4:
        raise ValueError(
            f"chart tensors must be (K, C, S, S) with one K: coarse {tuple(coarse_segm.shape)}, "
            f"fine {tuple(fine_segm.shape)}, u {tuple(u.shape)}, v {tuple(v.shape)}"
        )
    xywh = _boxes_xywh_int(boxes_xyxy)
    if xywh.shape[0] != k:
        raise ValueError(f"{xywh.shape[0]} boxes for {k} chart outputs")
    results = [None] * k
    sizes = xywh[:, 2:].tolist()
    for w, h in sorted({tuple(s) for s in sizes}):
        members = [i for i, s in enumerate(sizes) if s == [w, h]]
        if len(members) == k:  # one size for all (box mode): no copy
            labels, uv = _resample(coarse_segm, fine_segm, u, v, h, w)
        else:
            idx = torch.tensor(members, device=coarse_segm.device)
            labels, uv = _resample(coarse_segm[idx], fine_segm[idx], u[idx], v[idx], h, w)
        for j, i in enumerate(members):
            results[i] = (labels[j], uv[j], tuple(int(c) for c in xywh[i]))
    return results


def chart_to_result(coarse_segm, fine_segm, u, v, box_xyxy):
    """One box: charts (2|25, S, S) or (1, 2|25, S, S) and XYXY box -> ``(labels, uv, box_xywh)``.

    ``labels`` (h, w) int64 in 0..24, ``uv`` (2, h, w) float32 in [0, 1], ``box_xywh`` integer
    (x, y, w, h): exactly DensePoseResultExtractor's result, with U and V clamped.
    """
    charts = [torch.as_tensor(t) for t in (coarse_segm, fine_segm, u, v)]
    charts = [t[None] if t.ndim == 3 else t for t in charts]
    return charts_to_results(*charts, torch.as_tensor(box_xyxy, dtype=torch.float32).reshape(1, 4))[0]


def result_to_iuv(labels, uv, box_xywh, image_hw):
    """Paste one per-box result into an image-sized uint8 IUV (H, W, 3): (I, round(255 U), round(255 V)).

    Pixels outside the box, and the parts of the box outside the image, are 0.
    """
    height, width = image_hw
    labels = labels.cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)
    uv = uv.cpu().numpy() if torch.is_tensor(uv) else np.asarray(uv)
    iuv = np.zeros((height, width, 3), dtype=np.uint8)
    x, y = int(box_xywh[0]), int(box_xywh[1])
    h, w = labels.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        return iuv
    rows, cols = slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)
    iuv[y0:y1, x0:x1, 0] = labels[rows, cols]
    iuv[y0:y1, x0:x1, 1:] = np.rint(np.clip(uv[:, rows, cols], 0.0, 1.0) * 255.0).transpose(1, 2, 0)
    return iuv
