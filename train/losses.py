"""SAN's losses. Each returns a scalar tensor, computed in float32 (safe under AMP).

- :func:`cross_entropy_smooth`: ID loss, cross-entropy with label smoothing.
- :func:`batch_hard_triplet`: Hermans et al. 2017, Euclidean, on the retrieval feature.
- :func:`texture_l1`: L1 between predicted and target atlas images, masked where the target has no evidence.
- :func:`triplet_reid_constraints`: SAN's Triplet ReID constraints on the decoder's maps.
"""

import torch
import torch.nn.functional as F


def cross_entropy_smooth(logits, targets, epsilon=0.1):
    """Cross-entropy against (1 - epsilon) one-hot + epsilon / num_classes (Szegedy et al. 2016)."""
    return F.cross_entropy(logits.float(), targets, label_smoothing=epsilon)


def _batch_hard(dist, pids, margin):
    """Mean over anchors of relu(hardest positive - hardest negative + margin).

    The anchor itself is not a positive. Anchors with no positive or no negative in
    the batch are left out; with none left the loss is 0 (still attached to the graph).
    No host synchronisation (no data-dependent shapes).
    """
    same = pids[:, None] == pids[None, :]
    eye = torch.eye(len(pids), dtype=torch.bool, device=dist.device)
    positive = same & ~eye
    negative = ~same
    hardest_pos = dist.masked_fill(~positive, float("-inf")).amax(1)  # -inf: no positive
    hardest_neg = dist.masked_fill(~negative, float("inf")).amin(1)  # +inf: no negative
    valid = positive.any(1) & negative.any(1)
    hinge = F.relu(hardest_pos - hardest_neg + margin)  # 0 where invalid (never inf - inf)
    hinge = torch.where(valid, hinge, torch.zeros_like(hinge))
    return hinge.sum() / valid.sum().clamp_min(1)


def _squared_distances(x):
    """(B, N) -> (B, B) squared Euclidean distances, clamped at 0 against rounding.

    Centred on the batch mean first (distances do not change) so that the norm expansion
    does not cancel catastrophically when the rows are close to each other.
    """
    x = x - x.mean(0, keepdim=True)
    sq = (x * x).sum(1)
    return (sq[:, None] + sq[None, :] - 2.0 * (x @ x.t())).clamp_min(0.0)


def batch_hard_triplet(feat, pids, margin=0.3):
    """Batch-hard triplet loss on Euclidean distances of ``feat`` (B, D) with identity labels ``pids`` (B,)."""
    dist = _squared_distances(feat.float()).clamp_min(1e-12).sqrt()
    return _batch_hard(dist, pids, margin)


TR_DISTANCES = ("mse", "normalized")


def triplet_reid_constraints(dec_maps, pids, margin=0.3, distance="normalized"):
    """SAN's Triplet ReID constraints: for each decoder map level, a batch-hard margin hinge on a
    distance between two images' maps; summed over levels.

    ``distance``: ``mse``, the official mean-squared distance over C, H, W (between near-equal maps it
    is tiny, so the hinge sits at the margin and carries almost no gradient); ``normalized``, the squared
    Euclidean distance between the flattened maps once centred on the batch's mean map and
    L2-normalised: in [0, 4], the scale of the margin, whatever the maps' size and magnitude, and
    blind to what all images' maps share (which says nothing about identity). The official code picks fixed (anchor, positive, negative)
    offsets that assume K=4 images per identity; batch-hard mining within each level works for any K.
    """
    if distance not in TR_DISTANCES:
        raise ValueError(f"unknown TR distance {distance!r}; choose one of {', '.join(TR_DISTANCES)}")
    total = 0.0
    for level in dec_maps:
        flat = level.float().flatten(1)  # (B, C*H*W)
        if distance == "normalized":
            dist = _squared_distances(F.normalize(flat - flat.mean(0, keepdim=True), dim=1))
        else:
            dist = _squared_distances(flat) / flat.shape[1]
        total = total + _batch_hard(dist, pids, margin)
    return total if torch.is_tensor(total) else torch.zeros(())


def texture_l1(pred, target, mask, weights=None):
    """Masked (optionally weighted) L1 between atlas images.

    ``pred``, ``target``: (B, 3, 6P, 4P) in [-1, 1]; ``mask``: (B, 1, 6P, 4P), 0 where the
    target has no evidence (provenance 255), bool or float; ``weights``: optional (B, 1, 6P, 4P)
    per-pixel weights (e.g. per provenance step). The result is
    sum(|pred - target| * mask * weights) / (3 * sum(mask)): with unit weights, the mean L1
    over texels with evidence; weights below 1 lower their texels' share without renormalising.
    0 (attached to the graph) when no texel has evidence.
    """
    if pred.shape != target.shape or mask.shape[-2:] != pred.shape[-2:]:
        raise ValueError(f"texture_l1: pred {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
                         f"{tuple(mask.shape)} must share batch and spatial size")
    mask = mask.to(torch.float32)
    count = mask.sum() * pred.shape[1]
    scale = mask if weights is None else mask * weights.to(torch.float32)
    err = (pred.float() - target.float()).abs() * scale
    return err.sum() / count.clamp_min(1.0)
