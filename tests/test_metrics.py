"""evaluate_rank against a plain per-query reference (sort, drop junk, cumulative matches)."""

import numpy as np
import pytest
import torch

from densepose_textures.errors import InputError
from train.evaluation import evaluate_rank


def reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, ap_form="noninterp"):
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i], kind="stable")
        junk = (g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i])
        hits = (g_pids[order] == q_pids[i])[~junk].astype(np.float64)
        if not hits.any():
            continue
        cmc = np.minimum(hits.cumsum(), 1)
        cmcs.append(np.pad(cmc, (0, max(0, max_rank - len(cmc))), mode="edge")[:max_rank])
        positions = np.flatnonzero(hits) + 1.0
        ordinal = np.arange(1, len(positions) + 1)
        if ap_form == "noninterp":
            aps.append(np.mean(ordinal / positions))
        else:  # Market-1501 MATLAB compute_AP, step by step
            ap, old_recall, old_precision, seen = 0.0, 0.0, 1.0, 0
            for n in range(len(hits)):
                seen += hits[n]
                recall, precision = seen / len(positions), seen / (n + 1)
                ap += (recall - old_recall) * (old_precision + precision) / 2
                old_recall, old_precision = recall, precision
                if seen == len(positions):
                    break
            aps.append(ap)
        inps.append(len(positions) / positions[-1])
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps), len(aps)


def random_problem(seed, num_q=40, num_g=300, ids=25, cams=4, levels=None):
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(0, ids + 5, num_q)  # some queries have no match at all
    g_pids = rng.integers(0, ids, num_g)
    q_camids = rng.integers(0, cams, num_q)
    g_camids = rng.integers(0, cams, num_g)
    dist = rng.random((num_q, num_g))
    if levels:  # many exact ties
        dist = np.floor(dist * levels) / levels
    dist[q_pids[:, None] == g_pids[None]] *= 0.6  # matches nearer, not always first
    return dist, q_pids, g_pids, q_camids, g_camids


@pytest.mark.parametrize("seed,levels", [(0, None), (1, 7), (2, 3), (3, 50)])
@pytest.mark.parametrize("ap_form", ["noninterp", "trapezoid"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_per_query_reference(seed, levels, ap_form, dtype):
    dist, q_pids, g_pids, q_camids, g_camids = random_problem(seed, levels=levels)
    dist = dist.astype(dtype)
    junk = (q_pids[:, None] == g_pids[None]) & (q_camids[:, None] == g_camids[None])
    assert junk.any()
    cmc, mAP, mINP, n = reference(dist, q_pids, g_pids, q_camids, g_camids, 20, ap_form)
    out = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank=20, ap=ap_form, chunk_elements=2000)
    assert out["num_valid_queries"] == n < len(q_pids)
    np.testing.assert_allclose(out["cmc"], cmc, atol=1e-6, rtol=0)
    assert out["mAP"] == pytest.approx(mAP, abs=1e-6)
    assert out["mINP"] == pytest.approx(mINP, abs=1e-6)


def test_torch_float32_and_numpy_agree():
    dist, q_pids, g_pids, q_camids, g_camids = random_problem(5, levels=11)
    a = evaluate_rank(dist.astype(np.float32), q_pids, g_pids, q_camids, g_camids, max_rank=10)
    b = evaluate_rank(torch.from_numpy(dist).float(), torch.from_numpy(q_pids), torch.from_numpy(g_pids),
                      torch.from_numpy(q_camids), torch.from_numpy(g_camids), max_rank=10)
    np.testing.assert_array_equal(a["cmc"], b["cmc"])
    assert a["mAP"] == b["mAP"] and a["mINP"] == b["mINP"]


def test_hand_example():
    # query pid 1 cam 0; gallery: junk (1, cam 0) nearest, then other, then match, then match
    dist = np.array([[0.1, 0.2, 0.3, 0.3, 0.9]])
    g_pids = np.array([1, 2, 1, 1, 3])
    g_camids = np.array([0, 1, 1, 2, 1])
    out = evaluate_rank(dist, np.array([1]), g_pids, np.array([0]), g_camids, max_rank=4, per_query=True)
    # valid list: other, match, match, other -> matches at ranks 2 and 3
    np.testing.assert_allclose(out["cmc"], [0, 1, 1, 1])
    assert out["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert out["mINP"] == pytest.approx(2 / 3)
    assert out["first_rank"].tolist() == [2]


def test_nan_ranks_last_and_bad_input():
    dist, q_pids, g_pids, q_camids, g_camids = random_problem(7)
    match = (q_pids[:, None] == g_pids[None]) & (q_camids[:, None] != g_camids[None])
    dist[~match & (np.random.default_rng(0).random(dist.shape) < 0.1)] = np.nan
    cmc, mAP, mINP, n = reference(dist, q_pids, g_pids, q_camids, g_camids, 5)
    out = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank=5)
    assert out["mAP"] == pytest.approx(mAP, abs=1e-6)
    with pytest.raises(InputError, match="no query"):
        evaluate_rank(dist, q_pids + 1000, g_pids, q_camids, g_camids)
    with pytest.raises(InputError, match="g_camids"):
        evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids[:-1])
    with pytest.raises(InputError, match="ap="):
        evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, ap="11point")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_negative_distances_and_signed_zero(dtype):
    dist, q_pids, g_pids, q_camids, g_camids = random_problem(11, levels=10)
    dist = (dist - 0.5).astype(dtype)  # similarities turned distances can be negative
    zeros = dist == 0
    dist[zeros] = -0.0 * np.sign(np.random.default_rng(1).random(zeros.sum()) - 0.5)
    assert np.signbit(dist[zeros]).any() and not np.signbit(dist[zeros]).all()
    cmc, mAP, mINP, n = reference(dist, q_pids, g_pids, q_camids, g_camids, 10)
    out = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank=10)
    np.testing.assert_allclose(out["cmc"], cmc, atol=1e-6, rtol=0)
    assert out["mAP"] == pytest.approx(mAP, abs=1e-6) and out["mINP"] == pytest.approx(mINP, abs=1e-6)


def test_torch_path_as_on_gpu(monkeypatch):
    """The steps numpy does on CPU, done with torch as on a GPU, give the same metrics."""
    import train.evaluation.metrics as metrics

    monkeypatch.setattr(metrics, "_on_numpy", lambda tensor: False)
    for dtype in (np.float32, np.float64):
        dist, q_pids, g_pids, q_camids, g_camids = random_problem(13, levels=8)
        dist = dist.astype(dtype)
        cmc, mAP, mINP, n = reference(dist, q_pids, g_pids, q_camids, g_camids, 10)
        out = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank=10, chunk_elements=1000)
        np.testing.assert_allclose(out["cmc"], cmc, atol=1e-6, rtol=0)
        assert out["mAP"] == pytest.approx(mAP, abs=1e-6) and out["mINP"] == pytest.approx(mINP, abs=1e-6)
