"""Chart output -> IUV conversion on tensors shaped exactly as detectron2's DensePose predictor returns them.

coarse_segm (K, 2, 112, 112), fine_segm / u / v (K, 25, 112, 112), boxes XYXY in image pixels.
"""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from densepose_textures.iuv.charts import box_xyxy_to_xywh_int, chart_to_result, charts_to_results, result_to_iuv

S = 112


def _charts(k):
    """Hand-made charts: coarse foreground below src row 20; fine part 3 left of src col 56, part 7 right of it.

    U and V are constant per channel (part 3: U 0.25, V 0.75; part 7: U 0.5, V 1.4, which must clamp to 1).
    Other channels hold other constants, so taking U/V from the wrong channel shows.
    """
    coarse = torch.zeros(k, 2, S, S)
    coarse[:, 0, :20] = 1.0  # background
    coarse[:, 1, 20:] = 1.0  # person
    fine = torch.zeros(k, 25, S, S)
    fine[:, 3, :, :56] = 1.0
    fine[:, 7, :, 56:] = 1.0
    u = torch.arange(25, dtype=torch.float32).view(1, 25, 1, 1).expand(k, 25, S, S) * 0.03 + 0.2
    v = torch.arange(25, dtype=torch.float32).view(1, 25, 1, 1).expand(k, 25, S, S) * 0.02 + 0.1
    u, v = u.clone(), v.clone()
    u[:, 3], v[:, 3] = 0.25, 0.75
    u[:, 7], v[:, 7] = 0.5, 1.4
    return coarse, fine, u, v


def _expected_box(h, w, fg_from_row, part7_from_col):
    """Hand-computed per-box IUV (h, w, 3) for the charts above."""
    iuv = np.zeros((h, w, 3), np.uint8)
    iuv[fg_from_row:, :part7_from_col] = (3, 64, 191)  # rint(0.25*255)=64, rint(0.75*255)=191
    iuv[fg_from_row:, part7_from_col:] = (7, 128, 255)  # rint(127.5)=128 (half to even), V clamped to 1
    return iuv


def test_box_of_chart_size_is_an_identity_resample():
    coarse, fine, u, v = _charts(1)
    labels, uv, box = chart_to_result(coarse[0], fine[0], u[0], v[0], [5.0, 3.0, 117.0, 115.0])
    assert box == (5, 3, 112, 112)
    assert labels.dtype == torch.int64 and labels.shape == (112, 112)
    assert uv.dtype == torch.float32 and uv.shape == (2, 112, 112)
    assert float(uv.min()) >= 0.0 and float(uv.max()) <= 1.0
    iuv = result_to_iuv(labels, uv, box, (130, 125))
    expected = np.zeros((130, 125, 3), np.uint8)
    expected[3:115, 5:117] = _expected_box(112, 112, 20, 56)
    np.testing.assert_array_equal(iuv, expected)


def test_upscaled_box_with_fractional_corners_is_truncated_and_clipped():
    coarse, fine, u, v = _charts(2)
    boxes = torch.tensor([[0.6, -10.3, 224.9, 213.8], [5.0, 3.0, 117.0, 115.0]])
    results = charts_to_results(coarse, fine, u, v, boxes)
    labels, uv, box = results[0]
    # x = trunc(0.6), y = trunc(-10.3), w = trunc(224.3), h = trunc(224.1)
    assert box == (0, -10, 224, 224) and labels.shape == (224, 224)
    # 2x bilinear (align_corners=False): output row i samples src i/2 - 0.25, so src row 20
    # dominates from output row 40 and src col 56 from output col 112.
    expected_box = _expected_box(224, 224, 40, 112)
    iuv = result_to_iuv(labels, uv, box, (200, 230))
    expected = np.zeros((200, 230, 3), np.uint8)
    expected[:, :224] = expected_box[10:210]
    np.testing.assert_array_equal(iuv, expected)
    assert results[1][2] == (5, 3, 112, 112)


def test_fine_background_inside_the_person_is_background():
    coarse, fine, u, v = _charts(1)
    fine[0, 0, 60:70] = 5.0  # fine argmax 0 inside the coarse foreground
    labels, uv, box = chart_to_result(coarse, fine, u, v, [0, 0, 112, 112])
    assert (labels[60:70] == 0).all() and (uv[:, 60:70] == 0).all()
    assert (labels[70:, :56] == 3).all()


def test_degenerate_and_outside_boxes():
    assert box_xyxy_to_xywh_int([3.2, 4.9, 3.7, 4.95]) == (3, 4, 1, 1)
    coarse, fine, u, v = _charts(1)
    labels, uv, box = chart_to_result(coarse, fine, u, v, [300.0, 10.0, 340.0, 90.0])
    assert labels.shape == (80, 40)
    assert not result_to_iuv(labels, uv, box, (128, 64)).any()


def _densepose_reference(coarse, fine, u, v, box_xyxy):
    """DensePose's per-instance converter, written out as in its source (loop over parts)."""
    x0, y0, x1, y1 = torch.as_tensor(box_xyxy, dtype=torch.float32).tolist()
    xywh = torch.tensor([[x0, y0, x1 - x0, y1 - y0]], dtype=torch.float32)[0].long().tolist()
    w, h = max(int(xywh[2]), 1), max(int(xywh[3]), 1)
    coarse_bbox = F.interpolate(coarse[None], (h, w), mode="bilinear", align_corners=False).argmax(dim=1)
    labels = F.interpolate(fine[None], (h, w), mode="bilinear", align_corners=False).argmax(dim=1)
    labels = (labels * (coarse_bbox > 0).long()).squeeze(0)
    u_bbox = F.interpolate(u[None], (h, w), mode="bilinear", align_corners=False)
    v_bbox = F.interpolate(v[None], (h, w), mode="bilinear", align_corners=False)
    uv = torch.zeros([2, h, w], dtype=torch.float32)
    for part_id in range(1, u_bbox.size(1)):
        uv[0][labels == part_id] = u_bbox[0, part_id][labels == part_id]
        uv[1][labels == part_id] = v_bbox[0, part_id][labels == part_id]
    return labels, uv.clamp(0, 1), tuple(xywh[:2]) + (w, h)


@pytest.mark.parametrize("seed", [0, 1])
def test_batched_conversion_equals_densepose_per_instance_code(seed):
    gen = torch.Generator().manual_seed(seed)
    k = 5
    coarse = torch.randn(k, 2, S, S, generator=gen)
    fine = torch.randn(k, 25, S, S, generator=gen)
    u = torch.rand(k, 25, S, S, generator=gen) * 1.4 - 0.2
    v = torch.rand(k, 25, S, S, generator=gen) * 1.4 - 0.2
    boxes = torch.tensor(
        [[0, 0, 64, 128], [0, 0, 64, 128], [2.5, 7.9, 50.1, 100.0], [-3.3, 1.0, 70.0, 140.6], [0, 0, 64, 128]]
    )
    results = charts_to_results(coarse, fine, u, v, boxes)
    for i in range(k):
        labels, uv, box = results[i]
        ref_labels, ref_uv, ref_box = _densepose_reference(coarse[i], fine[i], u[i], v[i], boxes[i])
        assert box == ref_box
        torch.testing.assert_close(labels, ref_labels, rtol=0, atol=0)
        torch.testing.assert_close(uv, ref_uv, rtol=0, atol=0)
        iuv = result_to_iuv(labels, uv, box, (128, 64))
        assert iuv.shape == (128, 64, 3) and iuv.dtype == np.uint8
        assert set(np.unique(iuv[..., 0])) <= set(range(25))


def test_mismatched_inputs_are_refused():
    coarse, fine, u, v = _charts(2)
    with pytest.raises(ValueError, match="2 chart outputs"):
        charts_to_results(coarse, fine, u, v, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="one K"):
        charts_to_results(coarse, fine[:1], u, v, torch.zeros(2, 4))
