"""k_reciprocal against the plain reference re-ranking (Zhong et al., CVPR 2017), reimplemented here."""

import numpy as np
import pytest
import torch

from densepose_textures.errors import InputError
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
