"""Losses against brute-force Python-loop references (float64), for K = 2, 3, 4 images per identity."""

import pytest
import torch
import torch.nn.functional as F

from train.losses import batch_hard_triplet, cross_entropy_smooth, texture_l1, triplet_reid_constraints


def pk_labels(p, k, seed):
    """P identities x K images, shuffled."""
    g = torch.Generator().manual_seed(seed)
    pids = torch.arange(p).repeat_interleave(k)
    return pids[torch.randperm(p * k, generator=g)]


def reference_batch_hard(items, pids, distance, margin):
    """Loop reference: for each anchor with a positive and a negative, relu(max d(a, p) - min d(a, n) + margin)."""
    hinges = []
    for a in range(len(items)):
        pos = [distance(items[a], items[j]) for j in range(len(items)) if j != a and pids[j] == pids[a]]
        neg = [distance(items[a], items[j]) for j in range(len(items)) if pids[j] != pids[a]]
        if pos and neg:
            hinges.append(torch.clamp(max(pos) - min(neg) + margin, min=0))
    return sum(hinges) / len(hinges) if hinges else torch.zeros((), dtype=torch.float64)


def euclidean(x, y):
    return ((x - y) ** 2).sum().sqrt()


def mean_squared(x, y):
    return ((x - y) ** 2).mean()


@pytest.mark.parametrize("k", [2, 3, 4])
def test_batch_hard_triplet_matches_loops(k):
    torch.manual_seed(k)
    pids = pk_labels(4, k, seed=k)
    feat = torch.randn(len(pids), 16, dtype=torch.float64)
    feat_ref = feat.clone().requires_grad_()
    feat_new = feat.clone().float().requires_grad_()
    expected = reference_batch_hard(feat_ref, pids, euclidean, 0.3)
    got = batch_hard_triplet(feat_new, pids, margin=0.3)
    assert expected.item() > 0
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    expected.backward()
    got.backward()
    assert torch.allclose(feat_new.grad.double(), feat_ref.grad, atol=1e-5)


def normalized_squared(x, y):
    return ((x / x.norm() - y / y.norm()) ** 2).sum()


def centred(maps):
    return maps - maps.mean(0, keepdim=True)


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("distance, reference, prepare", [("mse", mean_squared, lambda m: m),
                                                          ("normalized", normalized_squared, centred)])
def test_triplet_reid_constraints_match_loops(k, distance, reference, prepare):
    torch.manual_seed(10 + k)
    pids = pk_labels(3, k, seed=k)
    shapes = [(8, 4, 2), (4, 8, 4), (3, 16, 8), (2, 32, 16)]  # four levels, as the decoder's maps
    levels = [torch.randn(len(pids), *s, dtype=torch.float64) * 0.2 + 1.0 for s in shapes]
    ref = [m.clone().requires_grad_() for m in levels]
    new = [m.clone().float().requires_grad_() for m in levels]
    expected = sum(reference_batch_hard(prepare(m), pids, reference, 0.3) for m in ref)
    got = triplet_reid_constraints(new, pids, margin=0.3, distance=distance)
    assert expected.item() > 0
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    expected.backward()
    got.backward()
    for a, b in zip(new, ref):
        assert torch.allclose(a.grad.double(), b.grad, atol=1e-6)


def test_triplet_losses_zero_when_identities_separated_and_anchors_without_pairs():
    pids = torch.tensor([0, 0, 1, 1, 2])  # identity 2 has no positive: its anchor is left out
    feat = torch.tensor([[0.0], [0.1], [10.0], [10.1], [20.0]], requires_grad=True)
    assert batch_hard_triplet(feat, pids).item() == 0
    maps = [feat.view(5, 1, 1, 1) * torch.ones(5, 2, 3, 3)]
    assert triplet_reid_constraints(maps, pids, distance="mse").item() == 0
    torch.manual_seed(0)
    one_id = torch.zeros(4, dtype=torch.long)  # no negatives at all: 0, still differentiable
    loss = batch_hard_triplet(torch.randn(4, 3, requires_grad=True), one_id)
    loss.backward()
    assert loss.item() == 0
    # an anchor with no positive does not count: adding it must not change the loss (beyond float32
    # rounding: the far row moves the batch mean the distances are centred on)
    base = torch.randn(4, 8)
    p4 = torch.tensor([0, 0, 1, 1])
    far = torch.full((1, 8), 100.0)
    assert batch_hard_triplet(torch.cat([base, far]), torch.tensor([0, 0, 1, 1, 2])).item() == pytest.approx(
        batch_hard_triplet(base, p4).item(), rel=1e-3)


def test_normalized_tr_does_not_vanish_with_the_scale_of_the_maps():
    """Decoder maps start tiny (the official init has gain 0.02): the official distance then leaves the
    hinge at the margin with almost no gradient; the normalised one does not depend on the maps' scale."""
    torch.manual_seed(0)
    pids = pk_labels(4, 4, seed=0)
    maps = torch.rand(len(pids), 16, 8, 4)

    def loss_and_grad(scale, distance):
        level = (maps * scale).requires_grad_()
        loss = triplet_reid_constraints([level], pids, margin=0.3, distance=distance)
        return loss.item(), torch.autograd.grad(loss, level)[0].norm().item() * scale  # per unit of the maps

    mse_small, mse_grad_small = loss_and_grad(1e-3, "mse")
    normalized_small, normalized_grad_small = loss_and_grad(1e-3, "normalized")
    normalized, normalized_grad = loss_and_grad(1.0, "normalized")
    assert mse_small == pytest.approx(0.3, abs=1e-4)
    assert normalized_small == pytest.approx(normalized, rel=1e-4)
    assert normalized_grad_small == pytest.approx(normalized_grad, rel=1e-3)
    assert normalized_grad_small > 1e4 * mse_grad_small


def test_normalized_tr_ignores_what_every_map_shares():
    """Maps = a large common component + small identity signals: the official distance sees near-equal
    maps (hinge at the margin); the normalised one sees the identity signals alone."""
    torch.manual_seed(1)
    pids = pk_labels(4, 4, seed=1)
    signal = torch.randn(4, 16, 8, 4)[pids] + 0.1 * torch.randn(len(pids), 16, 8, 4)
    common = 10 * torch.rand(1, 16, 8, 4)
    near_equal = [common + 0.01 * signal]
    assert triplet_reid_constraints(near_equal, pids, distance="mse").item() == pytest.approx(0.3, abs=1e-3)
    alone = triplet_reid_constraints([signal], pids, distance="normalized").item()
    assert triplet_reid_constraints(near_equal, pids, distance="normalized").item() == pytest.approx(alone, abs=1e-4)
    assert alone < 0.1


def test_unknown_tr_distance_is_refused():
    with pytest.raises(ValueError, match="unknown TR distance"):
        triplet_reid_constraints([torch.zeros(2, 1, 1, 1)], torch.tensor([0, 1]), distance="cosine")


def test_cross_entropy_smooth_formula():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    eps = 0.1
    q = F.one_hot(targets, 5).float() * (1 - eps) + eps / 5
    expected = -(q * logits.log_softmax(1)).sum(1).mean()
    assert cross_entropy_smooth(logits, targets, eps).item() == pytest.approx(expected.item(), rel=1e-6)
    assert cross_entropy_smooth(logits.bfloat16(), targets).dtype == torch.float32


def test_texture_l1_masks_pixels_without_evidence():
    torch.manual_seed(0)
    pred = torch.rand(2, 3, 12, 8) * 2 - 1
    target = torch.rand(2, 3, 12, 8) * 2 - 1
    mask = (torch.rand(2, 1, 12, 8) > 0.4).float()
    got = texture_l1(pred, target, mask)
    diff = (pred - target).abs()
    sel = mask.expand_as(diff).bool()
    assert got.item() == pytest.approx(diff[sel].mean().item(), rel=1e-6)
    # whatever lies under the mask's zeros does not matter
    garbage = torch.where(mask.bool(), target, torch.full_like(target, 123.0))
    assert texture_l1(pred, garbage, mask.bool()).item() == pytest.approx(got.item(), rel=1e-6)
    # unit weights change nothing; weights scale each pixel's share, normalised by the evidence count
    assert texture_l1(pred, target, mask, torch.ones_like(mask)).item() == pytest.approx(got.item(), rel=1e-6)
    weights = torch.rand(2, 1, 12, 8)
    expected = (diff * mask * weights).sum() / (3 * mask.sum())
    assert texture_l1(pred, target, mask, weights).item() == pytest.approx(expected.item(), rel=1e-6)


def test_texture_l1_empty_mask_is_zero_and_differentiable():
    pred = torch.randn(1, 3, 6, 4, requires_grad=True)
    loss = texture_l1(pred, torch.zeros(1, 3, 6, 4), torch.zeros(1, 1, 6, 4))
    loss.backward()
    assert loss.item() == 0 and torch.count_nonzero(pred.grad) == 0
    with pytest.raises(ValueError, match="spatial size"):
        texture_l1(pred, torch.zeros(1, 3, 6, 4), torch.zeros(1, 1, 12, 8))
