"""CMC, mAP and mINP under the Market-1501 protocol, vectorised over chunks of queries.

Per query, gallery entries with the query's pid AND camera are junk (removed);
the remaining same-pid entries are its true matches; queries without a match
are skipped. Ties in distance are broken by gallery index (a stable sort).

Nothing sorts the whole gallery: only the entries at most as far as a query's
farthest true match can change its ranks, so each chunk keeps those
(one comparison pass), sorts them, and reads the rank of every true match
from a cumulative count of the valid entries. NaN distances rank last, as in
a stable ``np.argsort``. Runs on the device of ``distmat`` (numpy -> CPU).
"""

import numpy as np
import torch

from densepose_textures.errors import InputError

from .threads import single_threaded

AP_FORMS = ("noninterp", "trapezoid")


def _tensor(x, name, device=None, dtype=None):
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise InputError(f"{name}: expected an array, got {type(x).__name__}") from err
    if device is not None:
        t = t.to(device)
    return t if dtype is None else t.to(dtype)


def _segment_starts(counts):
    """Start offset of each segment of a flat array cut into ``counts``."""
    return torch.cumsum(counts, 0) - counts


def _same_pid_pairs(q_pids, g_pids):
    """All (query, gallery) index pairs with the same pid, query-major, gallery index ascending."""
    order = torch.argsort(g_pids, stable=True)
    sorted_pids = g_pids[order]
    start = torch.searchsorted(sorted_pids, q_pids, side="left")
    counts = torch.searchsorted(sorted_pids, q_pids, side="right") - start
    rows = torch.repeat_interleave(torch.arange(len(q_pids), device=q_pids.device), counts)
    within = torch.arange(len(rows), device=q_pids.device) - torch.repeat_interleave(_segment_starts(counts), counts)
    cols = order[torch.repeat_interleave(start, counts) + within]
    return rows, cols


def _sort(keys):
    """Sorted int64 keys; numpy's sort on CPU (about 10x torch's there), torch's on GPU."""
    if keys.device.type == "cpu":
        return torch.from_numpy(np.sort(keys.numpy()))
    return torch.sort(keys).values


def _order_key(values):
    """Non-negative int64 keys with the order of ``values`` (equal values, equal keys) and their bit width."""
    values = values + 0.0  # -0.0 -> +0.0: they compare equal
    if values.dtype in (torch.float16, torch.bfloat16, torch.float32):
        bits = values.float().view(torch.int32).long()
        return torch.where(bits < 0, -bits - 1 - (1 << 31), bits) + (1 << 31), 32
    if values.device.type == "cpu":  # dense rank among the values
        _, rank = np.unique(values.numpy(), return_inverse=True)
        rank = torch.from_numpy(rank.astype(np.int64))
    else:
        _, rank = torch.unique(values, sorted=True, return_inverse=True)
    return rank, max(1, len(values).bit_length())


def _candidates(dist, thresholds):
    """(row, col, distance) of the entries at most as far as their row's threshold, row-major.

    The one pass over the whole chunk: numpy on CPU (several times faster than torch's nonzero there).
    """
    num_cols = dist.shape[1]
    if dist.device.type == "cpu":
        flat_dist = dist.contiguous().numpy().reshape(-1)
        flat = np.flatnonzero(dist.numpy() <= thresholds.numpy()[:, None])
        values = torch.from_numpy(flat_dist[flat])
        flat = torch.from_numpy(flat)
    else:
        flat = torch.nonzero((dist <= thresholds[:, None]).reshape(-1)).squeeze(1)
        values = dist.reshape(-1)[flat]
    return flat // num_cols, flat % num_cols, values


def _match_ranks(dist, rows_offset, thresholds, q_pids, q_camids, g_pids, g_camids):
    """Ranks (1-based, among non-junk entries) of every true match of a chunk of queries.

    Returns flat ``(row, rank, ordinal)``: the chunk row, the rank, and the match's 1-based
    order among its query's matches; sorted by row then rank.
    """
    rows, cols, values = _candidates(dist, thresholds)
    if len(rows) == 0:
        return rows, rows, rows
    # one sort of packed (row, distance, gallery index) keys: a stable sort per row
    value_key, value_bits = _order_key(values)
    col_bits = max(1, (dist.shape[1] - 1).bit_length())
    row_bits = max(1, (dist.shape[0] - 1).bit_length())
    if row_bits + value_bits + col_bits > 63:
        raise InputError(f"distance matrix chunk too large to rank ({tuple(dist.shape)}): lower chunk_elements")
    keys = _sort((rows << (value_bits + col_bits)) | (value_key << col_bits) | cols)
    rows, cols = keys >> (value_bits + col_bits), keys & ((1 << col_bits) - 1)
    q = rows + rows_offset
    same_pid = g_pids[cols] == q_pids[q]
    junk = same_pid & (g_camids[cols] == q_camids[q])
    match = same_pid & ~junk
    counts = torch.bincount(rows, minlength=len(dist))
    starts = _segment_starts(counts).clamp(max=len(rows) - 1)
    valid_before = torch.cumsum((~junk).long(), 0)
    rank = valid_before - torch.repeat_interleave(valid_before[starts] - (~junk[starts]).long(), counts)
    matches_before = torch.cumsum(match.long(), 0)
    ordinal = matches_before - torch.repeat_interleave(matches_before[starts] - match[starts].long(), counts)
    return rows[match], rank[match], ordinal[match]


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50, ap="noninterp",
                  per_query=False, chunk_elements=1 << 23):
    """CMC, mAP and mINP of a (Q, G) distance matrix (numpy or torch; runs on its device).

    ``ap``: ``noninterp`` (mean precision at each true match, the form of the paper tables) or
    ``trapezoid`` (the official Market-1501 MATLAB ``compute_AP``). mINP as Ye et al. (TPAMI 2021):
    per query, number of matches / rank of the hardest match.
    Returns dict ``cmc`` (max_rank,) float64, ``mAP``, ``mINP``, ``num_valid_queries``; with
    ``per_query``, also ``ap``, ``inp`` (NaN for skipped queries) and ``first_rank`` (0 for skipped).
    """
    dist = _tensor(distmat, "distmat")
    with single_threaded(dist.device):
        return _evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank, ap, per_query, chunk_elements)


def _evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank, ap, per_query, chunk_elements):
    if ap not in AP_FORMS:
        raise InputError(f"ap={ap!r}: expected one of {', '.join(AP_FORMS)}")
    if dist.ndim != 2:
        raise InputError(f"distmat: expected a (queries, gallery) matrix, got shape {tuple(dist.shape)}")
    if not dist.is_floating_point():
        dist = dist.double()
    device = dist.device
    num_q, num_g = dist.shape
    q_pids, g_pids, q_camids, g_camids = (
        _tensor(x, name, device, torch.long)
        for x, name in ((q_pids, "q_pids"), (g_pids, "g_pids"), (q_camids, "q_camids"), (g_camids, "g_camids"))
    )
    for name, x, n in (("q_pids", q_pids, num_q), ("q_camids", q_camids, num_q),
                       ("g_pids", g_pids, num_g), ("g_camids", g_camids, num_g)):
        if x.shape != (n,):
            raise InputError(f"{name}: expected {n} values to match distmat {tuple(dist.shape)}, got {tuple(x.shape)}")
    if max_rank < 1:
        raise InputError(f"max_rank={max_rank}: expected at least 1")

    # true matches of every query, and the distance of each query's farthest one
    rows, cols = _same_pid_pairs(q_pids, g_pids)
    is_match = q_camids[rows] != g_camids[cols]
    rows, cols = rows[is_match], cols[is_match]
    num_matches = torch.bincount(rows, minlength=num_q)
    match_dist = dist[rows, cols]
    if torch.isnan(match_dist).any():
        raise InputError("distmat holds NaN distances between true matches: check the features")
    thresholds = torch.full((num_q,), -torch.inf, dtype=dist.dtype, device=device)
    thresholds.scatter_reduce_(0, rows, match_dist, reduce="amax")

    ap_sum = torch.zeros(num_q, dtype=torch.float64, device=device)
    first_rank = torch.zeros(num_q, dtype=torch.long, device=device)
    last_rank = torch.zeros(num_q, dtype=torch.long, device=device)
    step = max(1, chunk_elements // max(num_g, 1))
    for start in range(0, num_q, step):
        stop = min(start + step, num_q)
        row, rank, ordinal = _match_ranks(dist[start:stop], start, thresholds[start:stop],
                                          q_pids, q_camids, g_pids, g_camids)
        q = row + start
        rank_f, ordinal_f = rank.double(), ordinal.double()
        precision = ordinal_f / rank_f
        if ap == "trapezoid":  # MATLAB: (old_precision + precision) / 2, old_precision = 1 at rank 1
            previous = torch.where(rank > 1, (ordinal_f - 1) / (rank_f - 1).clamp(min=1), torch.ones_like(rank_f))
            precision = (previous + precision) / 2
        ap_sum.index_add_(0, q, precision)
        first_rank.scatter_reduce_(0, q, rank, reduce="amin", include_self=False)
        last_rank.scatter_reduce_(0, q, rank, reduce="amax", include_self=False)

    valid = num_matches > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise InputError("no query has a true match in the gallery (same pid, other camera): check pids and camids")
    matches_f = num_matches.double().clamp(min=1)
    ap_q = torch.where(valid, ap_sum / matches_f, torch.nan)
    inp_q = torch.where(valid, num_matches.double() / last_rank.double().clamp(min=1), torch.nan)
    hits = torch.bincount(first_rank[valid].clamp(max=max_rank + 1), minlength=max_rank + 2)[1:max_rank + 1]
    cmc = torch.cumsum(hits, 0).double() / num_valid
    result = {
        "cmc": cmc.cpu().numpy(),
        "mAP": float(ap_q[valid].mean()),
        "mINP": float(inp_q[valid].mean()),
        "num_valid_queries": num_valid,
    }
    if per_query:
        result.update(ap=ap_q.cpu().numpy(), inp=inp_q.cpu().numpy(), first_rank=first_rank.cpu().numpy())
    return result
