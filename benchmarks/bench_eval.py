"""Evaluation speed: evaluate_rank and k-reciprocal re-ranking against plain references, same run.

1. ``evaluate_rank`` at Market-1501 size (3,368 x 15,913) against the per-query Python loop that
   torchreid and fast-reid ship as their fallback (``eval_market1501``, reimplemented below), on
   distances of random clustered features; best of ``--repeats``.
2. ``k_reciprocal`` against the plain dense reference re-ranking (Zhong et al.; the ``re_ranking``
   of torchreid/fast-reid, reimplemented below, float32) at 1,000 x 5,000, with ``--dim`` and with
   512-d features; best of ``--repeats``.
3. ``k_reciprocal`` at Market-1501 size (2048-d): time and peak resident memory, in a subprocess.

    python benchmarks/bench_eval.py [--repeats 3] [--dim 2048]

Last line: ``name=value`` pairs.
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch

from train.evaluation import evaluate_rank
from train.evaluation.distance import pairwise_distance
from train.evaluation.rerank import k_reciprocal

MARKET = (3368, 15913, 751, 6)  # queries, gallery, identities, cameras


def clustered(num_q, num_g, ids, cams, dim, noise, seed=0):
    """Features around one random centre per identity; (qf, gf, q_pids, g_pids, q_camids, g_camids)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim)).astype(np.float32)
    q_pids, g_pids = rng.integers(0, ids, num_q), rng.integers(0, ids, num_g)
    qf = centres[q_pids] + noise * rng.standard_normal((num_q, dim), dtype=np.float32)
    gf = centres[g_pids] + noise * rng.standard_normal((num_g, dim), dtype=np.float32)
    return (torch.from_numpy(qf), torch.from_numpy(gf), q_pids, g_pids,
            rng.integers(0, cams, num_q), rng.integers(0, cams, num_g))


def loop_eval_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """The per-query Python evaluation torchreid/fast-reid fall back to without their Cython build."""
    num_q, num_g = distmat.shape
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_AP, all_INP = [], [], []
    num_valid_q = 0.0
    for q_idx in range(num_q):
        q_pid, q_camid = q_pids[q_idx], q_camids[q_idx]
        order = indices[q_idx]
        remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)
        keep = np.invert(remove)
        raw_cmc = matches[q_idx][keep]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        pos_idx = np.where(raw_cmc == 1)
        max_pos_idx = np.max(pos_idx)
        all_INP.append(cmc[max_pos_idx] / (max_pos_idx + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_valid_q += 1.0
        num_rel = raw_cmc.sum()
        tmp_cmc = raw_cmc.cumsum()
        tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
        tmp_cmc = np.asarray(tmp_cmc) * raw_cmc
        all_AP.append(tmp_cmc.sum() / num_rel)
    all_cmc = np.asarray(all_cmc).astype(np.float32).sum(0) / num_valid_q
    return all_cmc, np.mean(all_AP), np.mean(all_INP)


def reference_re_ranking(probFea, galFea, k1=20, k2=6, lambda_value=0.3):
    """The dense reference re-ranking (Zhong et al., CVPR 2017, as torchreid/fast-reid ship it; float32)."""
    query_num = probFea.size(0)
    all_num = query_num + galFea.size(0)
    feat = torch.cat([probFea, galFea])
    distmat = torch.pow(feat, 2).sum(dim=1, keepdim=True).expand(all_num, all_num) + \
        torch.pow(feat, 2).sum(dim=1, keepdim=True).expand(all_num, all_num).t()
    distmat.addmm_(feat, feat.t(), beta=1, alpha=-2)
    original_dist = distmat.numpy()
    gallery_num = original_dist.shape[0]
    original_dist = np.transpose(original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
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
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    invIndex = [np.where(V[:, i] != 0)[0] for i in range(gallery_num)]
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, gallery_num], dtype=np.float32)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(V[i, indNonZero[j]],
                                                                               V[indImages[j], indNonZero[j]])
        jaccard_dist[i] = 1 - temp_min / (2 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]


def best_of(repeats, fn):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def peak_rss_gib():
    """This process's peak resident memory (VmHWM; unlike ru_maxrss, not inherited from the parent)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmHWM in /proc/self/status")


def rerank_memory_child(dim, noise):
    """Run in a fresh process: re-ranking at Market-1501 size; prints its time and peak RSS as JSON."""
    qf, gf, *_ = clustered(*MARKET, dim, noise, seed=1)
    before = peak_rss_gib()
    start = time.perf_counter()
    k_reciprocal(qf, gf)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_gib": peak_rss_gib(), "inputs_gib": before}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--noise", type=float, default=2.8, help="feature noise around the identity centres")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return rerank_memory_child(args.dim, args.noise)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    qf, gf, q_pids, g_pids, q_cams, g_cams = clustered(*MARKET, args.dim, args.noise)
    dist = pairwise_distance(qf, gf, normalize=False).numpy()
    t_fast, ours = best_of(args.repeats, lambda: evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams))
    t_loop, (cmc, mAP, mINP) = best_of(args.repeats, lambda: loop_eval_market1501(dist, q_pids, g_pids, q_cams, g_cams))
    agree = float(max(abs(ours["mAP"] - mAP), abs(ours["mINP"] - mINP), np.abs(ours["cmc"] - cmc).max()))
    print(f"evaluate_rank {dist.shape[0]} x {dist.shape[1]}: {t_fast:.3f} s, per-query loop {t_loop:.3f} s, "
          f"speed-up {t_loop / t_fast:.1f}x (rank-1 {ours['cmc'][0]:.4f} mAP {ours['mAP']:.4f} "
          f"mINP {ours['mINP']:.4f}; max difference {agree:.1e})")

    rerank = {}
    for dim in dict.fromkeys((args.dim, 512)):
        rq, rg, *_ = clustered(1000, 5000, 300, 6, dim, args.noise, seed=2)
        t_sparse, sparse = best_of(args.repeats, lambda: k_reciprocal(rq, rg))
        t_dense, dense = best_of(args.repeats, lambda: reference_re_ranking(rq, rg))
        feats = torch.cat([rq, rg])
        t_gemm, _ = best_of(args.repeats, lambda: feats @ feats.t())
        rerank[dim] = (t_sparse, t_dense, float(np.abs(sparse.numpy() - dense).max()))
        print(f"re-ranking 1000 x 5000, {dim}-d: {t_sparse:.2f} s, dense reference {t_dense:.2f} s, "
              f"speed-up {t_dense / t_sparse:.1f}x (max difference {rerank[dim][2]:.1e}); "
              f"the reference's N x N feature product alone takes {t_gemm:.2f} s (ours computes a little over "
              f"half of it, the symmetric blocks, through oneDNN on CPU)")
    t_sparse, t_dense, rr_diff = rerank[args.dim]

    child = subprocess.run([sys.executable, __file__, "--child", "--dim", str(args.dim), "--noise", str(args.noise)],
                           capture_output=True, text=True, check=True)
    market = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"re-ranking at Market-1501 size ({MARKET[0]} x {MARKET[1]}, {args.dim}-d): {market['seconds']:.1f} s, "
          f"peak RSS {market['peak_gib']:.2f} GiB (features alone {market['inputs_gib']:.2f} GiB)")
    print(f"eval_speedup={t_loop / t_fast:.1f} eval_s={t_fast:.3f} eval_loop_s={t_loop:.3f} "
          f"rerank_speedup={t_dense / t_sparse:.1f} rerank_s={t_sparse:.2f} rerank_ref_s={t_dense:.2f} "
          f"rerank_max_diff={rr_diff:.1e} rerank_speedup_512d={rerank[512][1] / rerank[512][0]:.1f} "
          f"rerank_market_s={market['seconds']:.1f} "
          f"rerank_market_peak_gib={market['peak_gib']:.2f}")


if __name__ == "__main__":
    main()
