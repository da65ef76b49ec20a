"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) without any dense N x N matrix.

Gives the distances of the widely used reference ``re_ranking`` (the one torchreid, fast-reid and
open-reid ship) with N = Q + G items:
  original distance  O[i, j] = d(i, j) / max_k d(i, k), d the squared Euclidean distance over all N,
  R(i)               the k1-reciprocal neighbours of i in its top k1 + 1,
  expansion          R(i) plus R_half(c) of every c in R(i) that shares more than 2/3 of it with R(i)
                     (R_half: the round(k1 / 2)-reciprocal neighbours),
  V[i, j]            exp(-O[i, j]) normalised over the expansion, then averaged over i's top k2 (k2 > 1),
  Jaccard            1 - s / (2 - s), s = sum_k min(V[q, k], V[g, k]),
  final              (1 - lambda) * Jaccard + lambda * O[q, g].

Memory model (N items, D dims, K = max(k1 + 1, k2), S ~ expansion size, typically 20-60):
  block distances  block_size^2 (symmetric blocks: each pair of blocks is computed once),
  neighbours       N x K indices and distances,
  V                about N x S x k2 sparse entries (row, column, value),
  Jaccard          pair_budget (query, gallery, min) triples per chunk of queries,
  the result       Q x G dense, the only large array (MSMT17: 11,659 x 82,161 float32 = 3.8 GB).
Runs on the features' device; the result has the features' dtype.
"""

import logging
import warnings

import numpy as np
import torch
from tqdm import tqdm

from densepose_textures.errors import InputError

from .distance import as_features
from .threads import single_threaded

log = logging.getLogger(__name__)


def _on_numpy(tensor):
    """Whether to run a step with numpy (CPU tensors; the torch path serves GPUs and is tested by
    switching this off)."""
    return tensor.device.type == "cpu"


def _segments(counts):
    """For a flat array cut into segments of ``counts``: each element's segment and offset within it."""
    starts = torch.cumsum(counts, 0) - counts
    segment = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    return segment, torch.arange(len(segment), device=counts.device) - starts[segment]


def _coalesce(keys, values):
    """Sum ``values`` of equal int64 ``keys``: (sorted unique keys, sums)."""
    if _on_numpy(keys):
        k, v = keys.numpy(), values.numpy()
        order = np.argsort(k, kind="stable")
        k, v = k[order], v[order]
        first = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        return torch.from_numpy(k[first]), torch.from_numpy(np.add.reduceat(v, first))
    unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    return unique, torch.zeros(len(unique), dtype=values.dtype, device=values.device).index_add_(0, inverse, values)


def _neighbours(feats, num_q, k, block_size):
    """Top-k nearest (ascending squared distance) of every item, each row's max, and the raw (Q, G) block."""
    n = len(feats)
    sq = feats.pow(2).sum(1)
    top_d = torch.full((n, k), torch.inf, dtype=feats.dtype, device=feats.device)
    top_i = torch.zeros((n, k), dtype=torch.long, device=feats.device)
    row_max = torch.full((n,), -torch.inf, dtype=feats.dtype, device=feats.device)
    query_gallery = torch.empty((num_q, n - num_q), dtype=feats.dtype, device=feats.device)

    def merge(rows, dist, first_col, dim):  # keep the k smallest of the running top-k and a block's
        if _on_numpy(dist) and _merge_below(rows, dist, first_col, dim):
            return
        if dim == 0:  # top-k down the columns: of the transposed copy's rows (about 2x faster on CPU)
            dist, dim = dist.t().contiguous(), 1
        d, j = torch.topk(dist, min(k, dist.shape[1]), dim=1, largest=False, sorted=False)
        d, pick = torch.topk(torch.cat([top_d[rows], d], 1), k, dim=1, largest=False, sorted=True)
        top_i[rows] = torch.gather(torch.cat([top_i[rows], j + first_col], 1), 1, pick)
        top_d[rows] = d
        row_max[rows] = torch.maximum(row_max[rows], dist.amax(1))

    def _merge_below(rows, dist, first_col, dim):
        """Merge only the block's entries below each row's current k-th distance (numpy: a compare and a
        flatnonzero, about 5x cheaper than a top-k of the block); False (nothing done) where a row has
        no k yet or more than 8k entries fall below."""
        threshold = top_d[rows, -1].numpy()
        if not np.isfinite(threshold).all():
            return False
        d = dist.numpy()
        flat = np.flatnonzero(d < (threshold[:, None] if dim == 1 else threshold[None, :]))
        r, c = np.divmod(flat, d.shape[1])
        own, other = (r, c) if dim == 1 else (c, r)
        counts = np.bincount(own, minlength=len(threshold))
        width = int(counts.max()) if len(flat) else 0
        if width > 8 * k:
            return False
        if width:
            if dim == 0:  # candidates by row of the running top-k
                order = np.argsort(own, kind="stable")
                own, other, flat = own[order], other[order], flat[order]
            offset = np.arange(len(own)) - (np.cumsum(counts) - counts)[own]
            pad_d = np.full((len(threshold), width), np.inf, dtype=d.dtype)
            pad_j = np.zeros((len(threshold), width), dtype=np.int64)
            pad_d[own, offset] = d.reshape(-1)[flat]
            pad_j[own, offset] = other + first_col
            best, pick = torch.topk(torch.cat([top_d[rows], torch.from_numpy(pad_d)], 1), k, dim=1, largest=False,
                                    sorted=True)
            top_i[rows] = torch.gather(torch.cat([top_i[rows], torch.from_numpy(pad_j)], 1), 1, pick)
            top_d[rows] = best
        row_max[rows] = torch.maximum(row_max[rows], dist.amax(dim))
        return True

    starts = range(0, n, block_size)
    for a in tqdm(starts, desc="re-ranking: neighbours", unit="block", disable=None, leave=False):
        rows_a = slice(a, min(a + block_size, n))
        for b in (s for s in starts if s >= a):
            rows_b = slice(b, min(b + block_size, n))
            dist = torch.addmm(sq[rows_a, None] + sq[None, rows_b], feats[rows_a], feats[rows_b].t(),
                               beta=1, alpha=-2)  # (Ba, Bb) squared Euclidean
            with single_threaded(feats.device):
                merge(rows_a, dist, b, 1)
                if b != a:
                    merge(rows_b, dist, a, 0)
            q_stop, g_start = min(rows_a.stop, num_q), max(b, num_q)
            if a < q_stop and g_start < rows_b.stop:
                query_gallery[a:q_stop, g_start - num_q:rows_b.stop - num_q] = dist[:q_stop - a, g_start - b:]
    return top_i, top_d, row_max, query_gallery


def _reciprocal(neighbours, chunk):
    """(N, k) mask: neighbours[i, m] has i among its own first k neighbours."""
    mask = torch.empty(neighbours.shape, dtype=torch.bool, device=neighbours.device)
    for a in range(0, len(neighbours), chunk):
        rows = torch.arange(a, min(a + chunk, len(neighbours)), device=neighbours.device)
        mask[rows] = (neighbours[neighbours[rows]] == rows[:, None, None]).any(-1)
    return mask


def _expansion(top_i, k1, chunk=1024):
    """Sparse (row, col) of each item's expanded k-reciprocal set, sorted by row then column."""
    half = int(np.around(k1 / 2))
    near, near_half = top_i[:, :k1 + 1], top_i[:, :half + 1]
    recip, recip_half = _reciprocal(near, chunk), _reciprocal(near_half, chunk)
    rows_out, cols_out = [], []
    for a in range(0, len(near), chunk):
        rows = torch.arange(a, min(a + chunk, len(near)), device=near.device)
        own = torch.where(recip[rows], near[rows], -1)  # (B, k1+1) R(i), -1 where not reciprocal
        cand = near[rows]
        cand_half, cand_half_mask = near_half[cand], recip_half[cand]  # (B, k1+1, half+1)
        own_sorted = own.sort(1).values  # membership of the candidates' sets in R(i): binary search
        flat = cand_half.reshape(len(rows), -1)
        pos = torch.searchsorted(own_sorted, flat).clamp_(max=own.shape[1] - 1)
        member = (torch.gather(own_sorted, 1, pos) == flat).view(cand_half.shape) & cand_half_mask
        accept = recip[rows] & (3 * member.sum(-1) > 2 * cand_half_mask.sum(-1))  # the 2/3 rule
        extra = torch.where(accept[..., None] & cand_half_mask, cand_half, -1).reshape(len(rows), -1)
        members = torch.cat([own, extra], 1).sort(1).values
        keep = members >= 0
        keep[:, 1:] &= members[:, 1:] != members[:, :-1]
        rows_out.append(rows[:, None].expand_as(members)[keep])
        cols_out.append(members[keep])
    return torch.cat(rows_out), torch.cat(cols_out)


def _pair_distances(feats, top_i, top_d, rows, cols, chunk_elements=1 << 23):
    """Squared Euclidean distance of each (rows[p], cols[p]) pair: read from the top-k lists where
    there (most pairs), computed from the features otherwise."""
    known = top_i[rows] == cols[:, None]  # (P, k)
    found = known.any(1)
    out = torch.where(found, top_d[rows, known.to(torch.uint8).argmax(1)], torch.nan)
    missing = torch.nonzero(~found).squeeze(1)
    if len(missing):
        sq = feats.pow(2).sum(1)
        r, c = rows[missing], cols[missing]
        out[missing] = sq[r] + sq[c] - 2 * _sampled_dots(feats, r, c, chunk_elements)
    return out


def _sampled_dots(feats, r, c, chunk_elements):
    """feats[r[p]] . feats[c[p]] for pairs sorted by row then column: a sampled matrix product over
    their CSR pattern (no gathered feature rows: at 2048-d, 25x faster than gathering them on CPU);
    gathered in chunks of ``chunk_elements`` where torch has no sampled product for the device."""
    try:
        with warnings.catch_warnings():  # CSR tensors: "beta" and invariant-check notices
            warnings.simplefilter("ignore", UserWarning)
            crow = torch.searchsorted(r, torch.arange(len(feats) + 1, device=r.device))
            pattern = torch.sparse_csr_tensor(crow, c, torch.zeros(len(c), dtype=feats.dtype, device=feats.device),
                                              size=(len(feats), len(feats)))
            return torch.sparse.sampled_addmm(pattern, feats, feats.t(), beta=0).values()
    except (RuntimeError, NotImplementedError) as error:
        log.debug("no sampled matrix product here (%s): gathering feature rows", error)
    dots = torch.empty(len(r), dtype=feats.dtype, device=feats.device)
    step = max(1, chunk_elements // feats.shape[1])
    for a in range(0, len(r), step):
        dots[a:a + step] = torch.linalg.vecdot(feats[r[a:a + step]], feats[c[a:a + step]])
    return dots


def _query_expansion(rows, cols, vals, top_k2, n):
    """V_qe[i] = mean of V over i's first k2 neighbours (rows of V: CSR-sorted flat triples)."""
    counts = torch.bincount(rows, minlength=n)
    starts = torch.cumsum(counts, 0) - counts
    k2 = top_k2.shape[1]
    source = top_k2.reshape(-1)  # (N * k2,) rows of V to average
    piece, offset = _segments(counts[source])
    entry = starts[source][piece] + offset
    target = torch.div(piece, k2, rounding_mode="floor")
    keys, sums = _coalesce(target * n + cols[entry], vals[entry])
    return torch.div(keys, n, rounding_mode="floor"), keys % n, sums / k2


def _shared_mass(q_rows, q_cols, q_vals, pairs, col_start, g_rows, g_vals, shape):
    """(B, G) sum over k of min(V[q, k], V[g, k]): every query entry (q, k) meets the ``pairs`` gallery
    entries of column k (``col_start[k]`` onwards in the inverted index ``g_rows``/``g_vals``)."""
    num_g = shape[1]
    if _on_numpy(q_rows):  # numpy's repeat and bincount: about 3x torch's here
        pairs, cols = pairs.numpy(), q_cols.numpy()
        where = np.repeat(col_start.numpy()[cols] - (np.cumsum(pairs) - pairs), pairs)
        where += np.arange(len(where))
        shared = np.repeat(q_vals.numpy(), pairs)
        np.minimum(shared, g_vals.numpy()[where], out=shared)
        flat = np.repeat(q_rows.numpy() * num_g, pairs)
        flat += g_rows.numpy()[where]
        return torch.from_numpy(np.bincount(flat, weights=shared, minlength=shape[0] * num_g).reshape(shape))
    entry, offset = _segments(pairs)
    where = col_start[q_cols[entry]] + offset
    shared = torch.minimum(q_vals[entry], g_vals[where])
    flat = q_rows[entry] * num_g + g_rows[where]
    return torch.bincount(flat, weights=shared, minlength=shape[0] * num_g).view(shape)


def _jaccard_into(out, rows, cols, vals, num_q, lambda_value, pair_budget):
    """out (Q, G) holds O[q, g]; replace it by (1 - lambda) * Jaccard + lambda * O, chunk by chunk."""
    n, num_g = num_q + out.shape[1], out.shape[1]
    # inverted index of the gallery rows of V: column k -> (gallery row, value), sorted by column
    g_entries = rows >= num_q
    g_rows, g_cols, g_vals = rows[g_entries], cols[g_entries], vals[g_entries]
    order = torch.argsort(g_cols, stable=True)
    g_rows, g_cols, g_vals = g_rows[order] - num_q, g_cols[order], g_vals[order]
    col_count = torch.bincount(g_cols, minlength=n)
    col_start = torch.cumsum(col_count, 0) - col_count
    q_entries = rows < num_q
    q_rows, q_cols, q_vals = rows[q_entries], cols[q_entries], vals[q_entries]
    pairs = col_count[q_cols]  # (query entries,) gallery entries sharing the column
    per_query = torch.zeros(num_q, dtype=torch.long, device=out.device).index_add_(0, q_rows, pairs)
    entry_start = torch.cumsum(torch.bincount(q_rows, minlength=num_q), 0)
    rows_per_chunk = max(1, pair_budget // max(num_g, 1))
    a = 0
    while a < num_q:
        budget = torch.cumsum(per_query[a:a + rows_per_chunk], 0)
        b = a + max(1, int((budget <= pair_budget).sum()))
        e0 = int(entry_start[a - 1]) if a else 0
        e1 = int(entry_start[b - 1])
        s = _shared_mass(q_rows[e0:e1] - a, q_cols[e0:e1], q_vals[e0:e1], pairs[e0:e1], col_start, g_rows, g_vals,
                         (b - a, num_g)).to(out.dtype)
        block = out[a:b]
        block.mul_(lambda_value).add_((1 - s / (2 - s)) * (1 - lambda_value))
        a = b


def k_reciprocal(qf, gf, k1=20, k2=6, lambda_value=0.3, block_size=2048, pair_budget=None):
    """Re-ranked (Q, G) distances from query and gallery features (see the module docstring).

    ``pair_budget`` (default: 2^18 on CPU, 2^23 elsewhere) bounds the Jaccard step's (query, gallery)
    pairs per chunk; on CPU small chunks keep its arrays and the chunk's (B, G) sums in cache and
    reuse freed memory, where 2^23-pair chunks spent most of their time faulting in fresh pages.
    """
    qf, gf = as_features(qf, "query features"), as_features(gf, "gallery features")
    if qf.shape[1] != gf.shape[1]:
        raise InputError(f"query features are {qf.shape[1]}-d but gallery features {gf.shape[1]}-d")
    feats = torch.cat([qf, gf.to(qf.device, qf.dtype)])  # (N, D): queries first, as the reference
    num_q, n = len(qf), len(feats)
    if k1 < 1 or k2 < 1 or not 0 <= lambda_value <= 1:
        raise InputError(f"re-ranking needs k1 >= 1, k2 >= 1 and 0 <= lambda <= 1 (got {k1}, {k2}, {lambda_value})")
    k = min(max(k1 + 1, k2), n)  # fewer items than k1 + 1: all of them, as the reference's slices do
    log.debug("re-ranking %d x %d, %d-d, k1=%d k2=%d", num_q, n - num_q, feats.shape[1], k1, k2)
    if pair_budget is None:
        pair_budget = 1 << 18 if feats.device.type == "cpu" else 1 << 23
    top_i, top_d, row_max, out = _neighbours(feats, num_q, k, block_size)
    with single_threaded(feats.device):
        return _rerank_sparse(feats, num_q, top_i, top_d, row_max, out, k1, k2, lambda_value, pair_budget)


def _rerank_sparse(feats, num_q, top_i, top_d, row_max, out, k1, k2, lambda_value, pair_budget):
    n = len(feats)
    out /= row_max[:num_q, None]  # O[q, g]
    rows, cols = _expansion(top_i, k1)
    weight = torch.exp(-_pair_distances(feats, top_i, top_d, rows, cols) / row_max[rows])
    total = torch.zeros(n, dtype=weight.dtype, device=weight.device).index_add_(0, rows, weight)
    vals = weight / total[rows]
    if k2 != 1:
        rows, cols, vals = _query_expansion(rows, cols, vals, top_i[:, :k2], n)
    _jaccard_into(out, rows, cols, vals, num_q, lambda_value, pair_budget)
    return out
