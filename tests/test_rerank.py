"""k_reciprocal against the plain reference re-ranking (Zhong et al., CVPR 2017), reimplemented here."""

import numpy as np
import pytest
import torch

from densepose_textures.errors import InputError
from train.evaluation import rerank
from train.evaluation.rerank import k_reciprocal


def reference_re_ranking(qf, gf, k1, k2, lambda_value):
    """The widely shipped dense form (torchreid/fast-reid/open-reid ``re_ranking``), in float64."""
    query_num = len(qf)
    feat = np.concatenate([qf, gf]).astype(np.float64)
    all_num = len(feat)
    sq = (feat ** 2).sum(1, keepdims=True)
    original_dist = sq + sq.T - 2 * feat @ feat.T
    original_dist = np.transpose(original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist)
    initial_rank = np.argsort(original_dist).astype(np.int32)
    for i in range(all_num):
        forward_k_neigh_index = initial_rank[i, :k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, :k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward = initial_rank[candidate, :int(np.around(k1 / 2)) + 1]
            candidate_backward = initial_rank[candidate_forward, :int(np.around(k1 / 2)) + 1]
            fi_candidate = np.where(candidate_backward == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward[fi_candidate]
            if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > 2 / 3 * len(
                    candidate_k_reciprocal_index):
                k_reciprocal_expansion_index = np.append(k_reciprocal_expansion_index, candidate_k_reciprocal_index)
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = weight / np.sum(weight)
    original_dist = original_dist[:query_num, ]
    if k2 != 1:
        V_qe = np.zeros_like(V)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    invIndex = [np.where(V[:, i] != 0)[0] for i in range(all_num)]
    jaccard_dist = np.zeros_like(original_dist)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, all_num])
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(
                V[i, indNonZero[j]], V[indImages[j], indNonZero[j]])
        jaccard_dist[i] = 1 - temp_min / (2 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]


def clustered(seed, num_q, num_g, dim=16, ids=12, noise=0.6):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((ids, dim))
    qf = centers[rng.integers(0, ids, num_q)] + noise * rng.standard_normal((num_q, dim))
    gf = centers[rng.integers(0, ids, num_g)] + noise * rng.standard_normal((num_g, dim))
    return qf, gf


@pytest.mark.parametrize("seed,k1,k2,lam,block", [
    (0, 20, 6, 0.3, 2048), (1, 20, 6, 0.3, 37), (2, 5, 3, 0.5, 50), (3, 7, 1, 0.0, 64), (4, 3, 5, 1.0, 29),
    (10, 20, 6, 0.3, 8),  # panels smaller than k1 + 1: no k-th distance from a panel alone
])
def test_matches_reference(seed, k1, k2, lam, block):
    qf, gf = clustered(seed, 25, 110)
    expected = reference_re_ranking(qf, gf, k1, k2, lam)
    got = k_reciprocal(torch.from_numpy(qf), torch.from_numpy(gf), k1=k1, k2=k2, lambda_value=lam,
                       block_size=block, pair_budget=3000)
    assert got.shape == expected.shape and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=0)


def test_float32_close_to_reference_and_changes_ranking():
    qf, gf = clustered(5, 30, 150, noise=0.9)
    expected = reference_re_ranking(qf, gf, 20, 6, 0.3)
    got = k_reciprocal(qf.astype(np.float32), gf.astype(np.float32))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=0)
    plain = ((qf[:, None] - gf[None]) ** 2).sum(-1)
    assert (np.argsort(plain, 1)[:, :5] != np.argsort(expected, 1)[:, :5]).any()  # re-ranking does something


def test_fewer_items_than_k1_as_reference_slices():
    qf, gf = clustered(6, 3, 10)
    np.testing.assert_allclose(k_reciprocal(qf, gf, k1=20, k2=6).numpy(), reference_re_ranking(qf, gf, 20, 6, 0.3),
                               atol=1e-5, rtol=0)
    np.testing.assert_allclose(k_reciprocal(qf, gf, k1=4, k2=20).numpy(), reference_re_ranking(qf, gf, 4, 20, 0.3),
                               atol=1e-5, rtol=0)


def test_bad_input():
    qf, gf = clustered(6, 3, 10)
    with pytest.raises(InputError, match="k1 >= 1"):
        k_reciprocal(qf, gf, k1=0)
    with pytest.raises(InputError, match="block_size >= 1"):
        k_reciprocal(qf, gf, block_size=0)
    with pytest.raises(InputError, match="-d"):
        k_reciprocal(qf, gf[:, :5])


def test_torch_path_as_on_gpu(monkeypatch):
    """The steps numpy does on CPU, done with torch as on a GPU, give the same distances."""
    import train.evaluation.rerank as rerank

    monkeypatch.setattr(rerank, "_on_numpy", lambda tensor: False)
    qf, gf = clustered(7, 20, 90)
    np.testing.assert_allclose(k_reciprocal(qf, gf, pair_budget=500).numpy(), reference_re_ranking(qf, gf, 20, 6, 0.3),
                               atol=1e-5, rtol=0)


def test_gathered_dots_where_no_sampled_product(monkeypatch):
    """Where torch has no sampled matrix product for the device, the missing pair distances come from
    gathered feature rows, with the same result."""
    def unsupported(*args, **kwargs):
        raise NotImplementedError("sampled_addmm")

    monkeypatch.setattr(torch.sparse, "sampled_addmm", unsupported)
    qf, gf = clustered(8, 20, 90)
    np.testing.assert_allclose(k_reciprocal(qf, gf).numpy(), reference_re_ranking(qf, gf, 20, 6, 0.3),
                               atol=1e-5, rtol=0)


def test_float32_without_onednn(monkeypatch):
    """Without torch's oneDNN kernel the block products fall back to torch.addmm, same distances."""
    import train.evaluation.distance as distance

    monkeypatch.setattr(distance, "_onednn_linear", lambda: None)
    qf, gf = clustered(9, 30, 150, noise=0.9)
    np.testing.assert_allclose(k_reciprocal(qf.astype(np.float32), gf.astype(np.float32)).numpy(),
                               reference_re_ranking(qf, gf, 20, 6, 0.3), atol=1e-5, rtol=0)


# -- the neighbour search, function by function, against dense distances --------------------------------------

def dense(feats):
    """(N, N) squared Euclidean distances, computed the plain way."""
    return ((feats[:, None] - feats[None]) ** 2).sum(-1)


def neighbour_inputs(seed=11, n=40, dim=8):
    feats = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, dim)))
    return feats, rerank.squared_norms(feats), dense(feats)


def fresh_top(feats, k):
    return rerank._TopK(len(feats), k, feats.dtype, feats.device)


def test_block_is_the_squared_distance_block():
    feats, sq, full = neighbour_inputs()
    a, b = slice(3, 17), slice(20, 40)
    torch.testing.assert_close(rerank._block(feats, sq, a, b, feats[b] * -2), full[a, b])


def test_keep_query_gallery_copies_only_query_rows_and_gallery_columns():
    feats, _, full = neighbour_inputs(n=30)
    num_q = 12
    kept = torch.full((num_q, 30 - num_q), torch.nan, dtype=feats.dtype)
    panels = rerank._panels(30, 7)
    for a in panels:
        for b in panels:
            rerank._keep_query_gallery(kept, num_q, a, b, full[a, b])
    torch.testing.assert_close(kept, full[:num_q, num_q:])
    untouched = torch.full((num_q, 30 - num_q), torch.nan, dtype=feats.dtype)
    rerank._keep_query_gallery(untouched, num_q, slice(14, 21), slice(0, 7), full[14:21, 0:7])  # gallery x query
    assert torch.isnan(untouched).all()


@pytest.mark.parametrize("k", [3, 12])  # fewer and more than the panel's 9 items
def test_own_panel_gives_each_row_its_top_k_within_the_panel(k):
    feats, sq, full = neighbour_inputs()
    top, a, num_q = fresh_top(feats, k), slice(9, 18), 12
    kept = torch.full((num_q, 40 - num_q), torch.nan, dtype=feats.dtype)
    rerank._own_panel(top, feats, sq, a, kept, num_q)
    d, i = torch.topk(full[a, a], min(k, 9), dim=1, largest=False)
    torch.testing.assert_close(top.d[a, :d.shape[1]], d)
    assert torch.equal(top.i[a, :i.shape[1]], i + a.start)
    assert torch.isinf(top.d[a, 9:]).all() and torch.isinf(top.d[:9]).all()  # other rows untouched
    torch.testing.assert_close(top.row_max[a], full[a, a].amax(1))
    torch.testing.assert_close(kept[9:12, 0:6], full[9:12, 12:18])


def merged_with(top, rows, candidates, first_col):
    """The expected top-k of ``rows`` after merging ``candidates`` (rows x columns from ``first_col``)."""
    d = torch.cat([top.d[rows], candidates], 1)
    i = torch.cat([top.i[rows], torch.arange(candidates.shape[1]).expand_as(candidates) + first_col], 1)
    best, pick = torch.topk(d, top.k, dim=1, largest=False)
    return best, torch.gather(i, 1, pick)


@pytest.mark.parametrize("merge", [rerank._merge_topk, rerank._merge_below, rerank._merge])
@pytest.mark.parametrize("dim", [1, 0])
def test_merges_keep_the_k_smallest_of_the_running_top_k_and_a_block(merge, dim):
    feats, sq, full = neighbour_inputs()
    k, a, b = 5, slice(0, 20), slice(20, 40)
    top = fresh_top(feats, k)
    for panel in (a, b):
        rerank._own_panel(top, feats, sq, panel, torch.empty(0, 40), 0)
    rows, block, first_col = (a, full[a, b], b.start) if dim == 1 else (b, full[a, b], a.start)
    expected_d, expected_i = merged_with(top, rows, block if dim == 1 else block.t(), first_col)
    expected_max = torch.maximum(top.row_max[rows], full[rows, a if dim == 0 else b].amax(1))
    assert merge(top, rows, block, first_col, dim) is not False
    torch.testing.assert_close(top.d[rows], expected_d)
    assert torch.equal(top.i[rows], expected_i)
    torch.testing.assert_close(top.row_max[rows], expected_max)
    full_top_d = torch.topk(full[rows], k, dim=1, largest=False).values  # both panels seen: the true top-k
    torch.testing.assert_close(top.d[rows], full_top_d)


def test_merge_below_declines_rows_without_a_k_th_distance_yet():
    feats, _, full = neighbour_inputs()
    top = fresh_top(feats, 5)
    assert rerank._merge_below(top, slice(0, 20), full[:20, 20:], 20, 1) is False
    assert torch.isinf(top.d).all() and torch.isinf(top.row_max).all()  # nothing done
    rerank._merge(top, slice(0, 20), full[:20, 20:], 20, 1)  # the dispatcher falls back to the full top-k
    torch.testing.assert_close(top.d[:20], torch.topk(full[:20, 20:], 5, dim=1, largest=False).values)


@pytest.mark.parametrize("block_size", [40, 13, 4])
def test_neighbours_are_the_dense_top_k(block_size):
    feats, _, full = neighbour_inputs()
    top_i, top_d, row_max, query_gallery = rerank._neighbours(feats, 15, 6, block_size)
    expected_d, expected_i = torch.topk(full, 6, dim=1, largest=False)
    torch.testing.assert_close(top_d, expected_d)
    assert torch.equal(top_i, expected_i)
    torch.testing.assert_close(row_max, full.amax(1))
    torch.testing.assert_close(query_gallery, full[:15, 15:])
