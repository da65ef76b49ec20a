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
  block distances  block_size^2 (panels of at most block_size items: each pair of panels once, a
                   panel with itself from 3/4 of its product),
  neighbours       N x K indices and distances,
  set membership   a (rows, N) boolean map of about 2^22 entries per chunk of rows,
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

from .distance import as_features, matmul_nt, squared_norms
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


def _panels(n, block_size):
    """``n`` items cut into about equal panels of at most ``block_size``."""
    count = -(-n // block_size)
    size = -(-n // count)
    return [slice(a, min(a + size, n)) for a in range(0, n, size)]


class _TopK:
    """The running k nearest of every row: ``d`` (N, k) ascending squared distances (inf: none yet),
    ``i`` (N, k) their columns, ``row_max`` (N,) each row's largest distance seen so far."""

    def __init__(self, n, k, dtype, device):
        self.d = torch.full((n, k), torch.inf, dtype=dtype, device=device)
        self.i = torch.zeros((n, k), dtype=torch.long, device=device)
        self.row_max = torch.full((n,), -torch.inf, dtype=dtype, device=device)

    @property
    def k(self):
        return self.d.shape[1]


def _block(feats, sq, a, b, scaled_b):
    """(Ba, Bb) squared Euclidean distances of rows ``a`` to rows ``b``; ``scaled_b`` is ``feats[b] * -2``."""
    return matmul_nt(feats[a], scaled_b, sq[b]).add_(sq[a, None])


def _keep_query_gallery(query_gallery, num_q, a, b, dist):
    """Copy the (query, gallery) part of block ``dist`` (rows ``a``, columns ``b`` of all N) into ``query_gallery``."""
    q_stop, g_start = min(a.stop, num_q), max(b.start, num_q)
    if a.start < q_stop and g_start < b.stop:
        query_gallery[a.start:q_stop, g_start - num_q:b.stop - num_q] = dist[:q_stop - a.start, g_start - b.start:]


def _own_panel(top, feats, sq, a, query_gallery, num_q):
    """Rows ``a``'s first top-k and row maxima, from their distances to the panel ``a`` itself (3/4 of
    the product: the upper half's distances to the lower half are the lower half's, transposed)."""
    mid = a.start + (a.stop - a.start) // 2
    upper, lower = slice(a.start, mid), slice(mid, a.stop)
    scaled = feats[a] * -2
    lower_dist = _block(feats, sq, lower, a, scaled)
    upper_dist = torch.cat([_block(feats, sq, upper, upper, scaled[:mid - a.start]),
                            lower_dist[:, :mid - a.start].t()], 1)
    for rows, dist in ((upper, upper_dist), (lower, lower_dist)):
        _keep_query_gallery(query_gallery, num_q, rows, a, dist)
        d, i = torch.topk(dist, min(top.k, dist.shape[1]), dim=1, largest=False, sorted=True)
        top.d[rows, :d.shape[1]], top.i[rows, :d.shape[1]] = d, i + a.start
        top.row_max[rows] = dist.amax(1)


def _merge_topk(top, rows, dist, first_col, dim):
    """Merge block ``dist`` into the top-k of ``rows``: of its rows (``dim`` 1, columns from ``first_col``)
    or of its columns (``dim`` 0, rows from ``first_col``), by a top-k of the whole block."""
    if dim == 0:  # top-k down the columns: of the transposed copy's rows (about 2x faster on CPU)
        dist = dist.t().contiguous()
    d, j = torch.topk(dist, min(top.k, dist.shape[1]), dim=1, largest=False, sorted=False)
    d, pick = torch.topk(torch.cat([top.d[rows], d], 1), top.k, dim=1, largest=False, sorted=True)
    top.i[rows] = torch.gather(torch.cat([top.i[rows], j + first_col], 1), 1, pick)
    top.d[rows] = d
    top.row_max[rows] = torch.maximum(top.row_max[rows], dist.amax(1))


def _merge_below(top, rows, dist, first_col, dim):
    """As :func:`_merge_topk` for CPU blocks, merging only the entries below each row's current k-th
    distance (numpy: a compare and a flatnonzero, about 5x cheaper than a top-k of the block).
    False, with nothing done, where a row has no k-th distance yet or more than 8k entries fall below."""
    threshold = top.d[rows, -1].numpy()
    if not np.isfinite(threshold).all():
        return False
    d = dist.numpy()
    flat = np.flatnonzero(d < (threshold[:, None] if dim == 1 else threshold[None, :]))
    r, c = np.divmod(flat, d.shape[1])
    own, other = (r, c) if dim == 1 else (c, r)
    counts = np.bincount(own, minlength=len(threshold))
    width = int(counts.max()) if len(flat) else 0
    if width > 8 * top.k:
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
        best, pick = torch.topk(torch.cat([top.d[rows], torch.from_numpy(pad_d)], 1), top.k, dim=1, largest=False,
                                sorted=True)
        top.i[rows] = torch.gather(torch.cat([top.i[rows], torch.from_numpy(pad_j)], 1), 1, pick)
        top.d[rows] = best
    top.row_max[rows] = torch.maximum(top.row_max[rows], dist.amax(dim))
    return True


def _merge(top, rows, dist, first_col, dim):
    """Keep the k smallest of the running top-k of ``rows`` and block ``dist`` (see :func:`_merge_topk`)."""
    if not (_on_numpy(dist) and _merge_below(top, rows, dist, first_col, dim)):
        _merge_topk(top, rows, dist, first_col, dim)


def _neighbours(feats, num_q, k, block_size):
    """Top-k nearest (ascending squared distance) of every item, each row's max, and the raw (Q, G) block.

    Symmetric blocks, each pair of panels once. Every panel against itself first: that gives each row a
    k-th distance, so in the other blocks only the entries below it need merging. On CPU the products go
    through oneDNN (``matmul_nt``): about half of MKL's time on AMD CPUs.
    """
    n = len(feats)
    sq = squared_norms(feats)
    top = _TopK(n, k, feats.dtype, feats.device)
    query_gallery = torch.empty((num_q, n - num_q), dtype=feats.dtype, device=feats.device)
    panels = _panels(n, block_size)
    progress = tqdm(total=len(panels) * (len(panels) + 1) // 2, desc="re-ranking: neighbours", unit="block",
                    disable=None, leave=False)
    for a in panels:  # each panel against itself first: every row's first top-k, whose k-th bounds the rest
        _own_panel(top, feats, sq, a, query_gallery, num_q)
        progress.update()
    for j, b in enumerate(panels[1:], 1):
        scaled_b = feats[b] * -2
        for a in panels[:j]:
            dist = _block(feats, sq, a, b, scaled_b)
            _keep_query_gallery(query_gallery, num_q, a, b, dist)
            with single_threaded(feats.device):
                _merge(top, a, dist, b.start, 1)
                _merge(top, b, dist, a.start, 0)
            progress.update()
    progress.close()
    return top.i, top.d, top.row_max, query_gallery


def _reciprocal(neighbours, chunk):
    """(N, k) mask: neighbours[i, m] has i among its own first k neighbours."""
    mask = torch.empty(neighbours.shape, dtype=torch.bool, device=neighbours.device)
    for a in range(0, len(neighbours), chunk):
        rows = torch.arange(a, min(a + chunk, len(neighbours)), device=neighbours.device)
        mask[rows] = (neighbours[neighbours[rows]] == rows[:, None, None]).any(-1)
    return mask


def _expansion(top_i, top_d, k1, bitmap_elements=1 << 22):
    """Each item's expanded k-reciprocal set: (row, col, squared distance) sorted by row then column,
    the distance NaN for members outside the row's top-k (those added from a candidate's set).

    Membership in R(i) is read from a (rows, N) boolean map of a chunk of rows' sets, about 2^22 entries.
    """
    n = len(top_i)
    half = int(np.around(k1 / 2))
    near, near_half = top_i[:, :k1 + 1], top_i[:, :half + 1]
    recip, recip_half = _reciprocal(near, 1024), _reciprocal(near_half, 1024)
    half_size = recip_half.sum(1)
    chunk = min(n, max(1, bitmap_elements // n))
    in_set = torch.zeros((chunk, n), dtype=torch.bool, device=top_i.device)
    own_keys, own_dist, added_keys = [], [], []
    for a in range(0, n, chunk):
        own_b, own_m = torch.nonzero(recip[a:a + chunk], as_tuple=True)  # R(i): near[i, m] where reciprocal
        own = near[own_b + a, own_m]
        in_set[own_b, own] = True
        cand_sets, cand_mask = near_half[own], recip_half[own]  # R_half(c) of each c in R(i)
        member = in_set[own_b[:, None], cand_sets] & cand_mask
        accept = 3 * member.sum(1) > 2 * half_size[own]  # the 2/3 rule
        added = (cand_mask & ~member)[accept]  # outside R(i), so never one of its entries
        added_b = own_b[accept][:, None].expand(-1, added.shape[1])[added]
        in_set[own_b, own] = False
        own_keys.append((own_b + a) * n + own)
        own_dist.append(top_d[own_b + a, own_m])
        added_keys.append((added_b + a) * n + cand_sets[accept][added])
    added = torch.unique(torch.cat(added_keys))  # a member added by two candidates once
    keys, order = torch.sort(torch.cat([torch.cat(own_keys), added]))
    dist = torch.cat([torch.cat(own_dist), torch.full((len(added),), torch.nan, dtype=top_d.dtype,
                                                      device=top_d.device)])[order]
    return torch.div(keys, n, rounding_mode="floor"), keys % n, dist


def _fill_distances(feats, rows, cols, dist, chunk_elements=1 << 23):
    """Compute the NaN entries of ``dist``, the squared Euclidean distances of (rows, cols) pairs."""
    missing = torch.nonzero(torch.isnan(dist)).squeeze(1)
    if len(missing):
        sq = squared_norms(feats)
        r, c = rows[missing], cols[missing]
        dist[missing] = sq[r] + sq[c] - 2 * _sampled_dots(feats, r, c, chunk_elements)
    return dist


def _sampled_dots(feats, r, c, chunk_elements):
    """feats[r[p]] . feats[c[p]] for pairs sorted by row then column: a sampled matrix product over
    their CSR pattern (no gathered feature rows: at 2048-d, 25x faster than gathering them on CPU);
    gathered in chunks of ``chunk_elements`` where torch has no sampled product for the device."""
    try:
        with warnings.catch_warnings():  # CSR tensors: "beta" and invariant-check notices
            warnings.simplefilter("ignore", UserWarning)
            crow = torch.searchsorted(r, torch.arange(len(feats) + 1, device=r.device))
            pattern = _csr(crow, c, torch.zeros(len(c), dtype=feats.dtype, device=feats.device), len(feats))
            return torch.sparse.sampled_addmm(pattern, feats, feats.t(), beta=0).values()
    except (RuntimeError, NotImplementedError) as error:
        log.debug("no sampled matrix product here (%s): gathering feature rows", error)
    dots = torch.empty(len(r), dtype=feats.dtype, device=feats.device)
    step = max(1, chunk_elements // feats.shape[1])
    for a in range(0, len(r), step):
        dots[a:a + step] = torch.linalg.vecdot(feats[r[a:a + step]], feats[c[a:a + step]])
    return dots


def _csr(crow, cols, vals, n):
    """An (n, n) sparse CSR matrix (torch's "beta" notices silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, vals, size=(n, n))


def _query_expansion(rows, cols, vals, top_k2, n):
    """V_qe[i] = mean of V over i's first k2 neighbours: the sparse product M @ V, M[i, j] = 1 / k2 for
    j among them (V: flat triples grouped by row). Triples of V_qe, grouped by row."""
    k2 = top_k2.shape[1]
    device = rows.device
    v = _csr(torch.searchsorted(rows, torch.arange(n + 1, device=device)), cols, vals, n)
    mean = _csr(torch.arange(0, n * k2 + 1, k2, device=device), top_k2.reshape(-1),
                torch.full((n * k2,), 1 / k2, dtype=vals.dtype, device=device), n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = torch.sparse.mm(mean, v)
    rows = torch.repeat_interleave(torch.arange(n, device=device), out.crow_indices().diff())
    return rows, out.col_indices(), out.values()


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
    if block_size < 1 or (pair_budget is not None and pair_budget < 1):
        raise InputError(f"re-ranking needs block_size >= 1 and pair_budget >= 1 (got {block_size}, {pair_budget})")
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
    rows, cols, dist = _expansion(top_i, top_d, k1)
    weight = torch.exp(-_fill_distances(feats, rows, cols, dist) / row_max[rows])
    total = torch.zeros(n, dtype=weight.dtype, device=weight.device).index_add_(0, rows, weight)
    vals = weight / total[rows]
    if k2 != 1:
        rows, cols, vals = _query_expansion(rows, cols, vals, top_i[:, :k2], n)
    _jaccard_into(out, rows, cols, vals, num_q, lambda_value, pair_budget)
    return out
