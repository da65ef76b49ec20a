"""CMC, mAP and mINP under the Market-1501 protocol, vectorised over chunks of queries.

Per query, gallery entries with the query's pid AND camera are junk (removed);
the remaining same-pid entries are its true matches; queries without a match
are skipped. Ties in distance are broken by gallery index (a stable sort).

Nothing sorts the whole gallery: only the entries at most as far as a query's
farthest true match can change its ranks, so each chunk keeps those (one
comparison pass) and sorts them as packed (row, distance, gallery index) keys
in one flat sort; the same-pid pairs (known in advance from the pids) are then
located by binary search, and a match's rank is its position in its row minus
the junk before it. NaN distances rank last, as in a stable ``np.argsort``.
Runs on the device of ``distmat`` (numpy -> CPU).
"""

import numpy as np
import torch

from densepose_textures.errors import InputError

from .threads import single_threaded

AP_FORMS = ("noninterp", "trapezoid")


def _on_numpy(tensor):
    """Whether to run a step with numpy (CPU tensors; the torch path serves GPUs and is tested by
    switching this off)."""
    return tensor.device.type == "cpu"


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


def _same_pid_pairs(q_pids, g_pids):
    """All (query, gallery) index pairs with the same pid, query-major, gallery index ascending."""
    order = torch.argsort(g_pids, stable=True)
    sorted_pids = g_pids[order]
    start = torch.searchsorted(sorted_pids, q_pids, side="left")
    counts = torch.searchsorted(sorted_pids, q_pids, side="right") - start
    rows = torch.repeat_interleave(torch.arange(len(q_pids), device=q_pids.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    within = torch.arange(len(rows), device=q_pids.device) - torch.repeat_interleave(starts, counts)
    cols = order[torch.repeat_interleave(start, counts) + within]
    return rows, cols


def _sort(keys):
    """Sorted int64 keys; numpy's sort on CPU (about 10x torch's there), torch's on GPU."""
    if _on_numpy(keys):
        return torch.from_numpy(np.sort(keys.numpy()))
    return torch.sort(keys).values


def _searchsorted(sorted_keys, keys):
    if _on_numpy(keys):
        return torch.from_numpy(np.searchsorted(sorted_keys.numpy(), keys.numpy()))
    return torch.searchsorted(sorted_keys, keys)


def _float32_keys(values):
    """int64 keys in the order of float32 ``values`` (numpy): their bits, flipped below zero."""
    bits = values.view(np.int32)
    if bits.min() >= 0:  # no negative value (the usual case): the bits are already in order
        return bits.astype(np.int64), 31
    keys = bits.astype(np.int64)
    keys[(keys == np.int64(-(1 << 31)))] = 0  # -0.0 == +0.0
    negative = keys < 0
    keys[negative] = -keys[negative] - 1 - (1 << 31)
    return keys + (1 << 31), 32


def _sorted_keys_numpy(dist, thresholds, pair_rows, pair_cols, pair_dist):
    """CPU float32 chunks: the keys below, built with numpy in place (about 5x torch here)."""
    num_rows, num_cols = dist.shape
    d = dist.contiguous().numpy()
    mask = d <= thresholds.numpy()[:, None]
    counts = np.count_nonzero(mask, axis=1)
    flat = np.flatnonzero(mask)
    del mask
    values, value_bits = _float32_keys(np.concatenate([d.reshape(-1)[flat], pair_dist.numpy()]))
    col_bits = max(1, (num_cols - 1).bit_length())
    row_shift = value_bits + col_bits
    if max(1, (num_rows - 1).bit_length()) + row_shift > 63:
        raise InputError(f"distance matrix chunk too large to rank ({tuple(dist.shape)}): lower chunk_elements")
    keys, pair_keys = values[:len(flat)], values[len(flat):]
    keys <<= col_bits
    keys += flat  # row * num_cols + col, turned into (row << row_shift) + col:
    keys += np.repeat(np.arange(num_rows, dtype=np.int64) * ((1 << row_shift) - num_cols), counts)
    keys.sort()
    pair_keys <<= col_bits
    pair_keys |= (pair_rows.numpy() << row_shift) | pair_cols.numpy()
    return torch.from_numpy(keys), torch.from_numpy(pair_keys), torch.from_numpy(counts.astype(np.int64))


def _sorted_keys(dist, thresholds, pair_rows, pair_cols, pair_dist):
    """Sorted packed (row, distance, gallery index) keys of the chunk's entries at most as far as their
    row's threshold (a stable sort of every row at once), the keys of the given pairs (which are among
    them), and the count of such entries per row."""
    if _on_numpy(dist) and dist.dtype == torch.float32:
        return _sorted_keys_numpy(dist, thresholds, pair_rows, pair_cols, pair_dist)
    num_rows, num_cols = dist.shape
    mask = dist <= thresholds[:, None]
    counts = mask.sum(1)
    flat = torch.nonzero(mask.reshape(-1)).squeeze(1)
    values = dist.reshape(-1)[flat] + 0.0  # -0.0 -> +0.0: they compare equal
    # value keys: the dense rank of each distance among the chunk's
    if _on_numpy(values):
        unique, rank = np.unique(values.numpy(), return_inverse=True)
        unique, rank = torch.from_numpy(unique), torch.from_numpy(rank.reshape(-1).astype(np.int64))
    else:
        unique, rank = torch.unique(values, sorted=True, return_inverse=True)
    pair_rank = torch.searchsorted(unique, pair_dist + 0.0)
    col_bits = max(1, (num_cols - 1).bit_length())
    row_shift = max(1, len(values).bit_length()) + col_bits
    if max(1, (num_rows - 1).bit_length()) + row_shift > 63:
        raise InputError(f"distance matrix chunk too large to rank ({tuple(dist.shape)}): lower chunk_elements")
    rows = torch.repeat_interleave(torch.arange(num_rows, device=dist.device), counts)
    keys = _sort((rows << row_shift) | (rank << col_bits) | (flat - rows * num_cols))
    return keys, (pair_rows << row_shift) | (pair_rank << col_bits) | pair_cols, counts


def _match_ranks(dist, thresholds, pair_rows, pair_cols, pair_junk):
    """Ranks (1-based, among non-junk entries) of the true matches of a chunk of queries.

    ``pair_*``: the chunk's same-pid (row, gallery index, junk) pairs. Returns flat ``(row, rank,
    ordinal)``: chunk row, rank, and the match's 1-based order among its query's matches.
    """
    num_rows, num_cols = dist.shape
    pair_dist = dist[pair_rows, pair_cols]
    present = pair_dist <= thresholds[pair_rows]  # every match; junk only if it is that near
    pair_rows, pair_cols, pair_junk, pair_dist = (x[present] for x in (pair_rows, pair_cols, pair_junk, pair_dist))
    if len(pair_rows) == 0:
        return pair_rows, pair_rows, pair_rows
    keys, pair_keys, counts = _sorted_keys(dist, thresholds, pair_rows, pair_cols, pair_dist)
    # where each same-pid pair sits: its position within its row, minus the junk before it
    position = _searchsorted(keys, pair_keys)
    row_start = torch.cumsum(counts, 0) - counts
    junk_positions = _sort(position[pair_junk])
    match_rows, position = pair_rows[~pair_junk], position[~pair_junk]
    junk_before = _searchsorted(junk_positions, position) - _searchsorted(junk_positions, row_start[match_rows])
    rank = position - row_start[match_rows] + 1 - junk_before
    order = torch.argsort(position)  # row-major, then by rank
    match_rows, rank = match_rows[order], rank[order]
    per_row = torch.bincount(match_rows, minlength=num_rows)
    ordinal = torch.arange(len(rank), device=dist.device) - (torch.cumsum(per_row, 0) - per_row)[match_rows] + 1
    return match_rows, rank, ordinal


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

    # same-pid pairs of every query (query-major): junk or true match; each query's farthest match
    rows, cols = _same_pid_pairs(q_pids, g_pids)
    junk = q_camids[rows] == g_camids[cols]
    num_matches = torch.bincount(rows[~junk], minlength=num_q)
    match_dist = dist[rows[~junk], cols[~junk]]
    if torch.isnan(match_dist).any():
        raise InputError("distmat holds NaN distances between true matches: check the features")
    thresholds = torch.full((num_q,), -torch.inf, dtype=dist.dtype, device=device)
    thresholds.scatter_reduce_(0, rows[~junk], match_dist, reduce="amax")

    ap_sum = torch.zeros(num_q, dtype=torch.float64, device=device)
    first_rank = torch.zeros(num_q, dtype=torch.long, device=device)
    last_rank = torch.zeros(num_q, dtype=torch.long, device=device)
    step = max(1, chunk_elements // max(num_g, 1))
    bounds = torch.searchsorted(rows, torch.arange(0, num_q + step, step, device=device)).tolist()
    for chunk, start in enumerate(range(0, num_q, step)):
        stop = min(start + step, num_q)
        pairs = slice(bounds[chunk], bounds[chunk + 1])
        row, rank, ordinal = _match_ranks(dist[start:stop], thresholds[start:stop], rows[pairs] - start,
                                          cols[pairs], junk[pairs])
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
