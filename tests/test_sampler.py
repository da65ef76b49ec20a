import numpy as np
import pytest

from densepose_textures.errors import InputError
from train.sampler import IdentitySampler

# 12 identities with 1 to 9 images each
PIDS = np.repeat(np.arange(12), [5, 3, 4, 4, 6, 2, 4, 9, 8, 1, 4, 4])


def indices(batch):
    return np.array([i for i, _, _ in batch])


def test_batches_hold_p_identities_with_k_images_each():
    sampler = IdentitySampler(PIDS, 4, 4, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    seen = set()
    for batch in batches:
        pids = PIDS[indices(batch)].reshape(4, 4)  # (P, K): consecutive K images share one pid
        assert (pids == pids[:, :1]).all()
        assert len(set(pids[:, 0])) == 4
        seen.update(pids[:, 0])
        assert [e for _, e, _ in batch] == [0] * 16
    # identities with fewer than K images are drawn with replacement, the others without
    for batch in batches:
        for group in indices(batch).reshape(4, 4):
            if np.count_nonzero(PIDS == PIDS[group[0]]) >= 4:
                assert len(set(group)) == 4
    assert len(seen) >= 8


def test_epochs_are_deterministic_and_differ():
    a, b = IdentitySampler(PIDS, 4, 4, seed=1), IdentitySampler(PIDS, 4, 4, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    b.set_epoch(1)
    first = list(a)
    assert first == list(b)
    a.set_epoch(0)
    assert [indices(x).tolist() for x in first] != [indices(x).tolist() for x in a]
    assert IdentitySampler(PIDS, 4, 4, seed=2).global_batches(0).tolist() != a.global_batches(0).tolist()


def test_slots_number_the_samples_of_an_epoch():
    sampler = IdentitySampler(PIDS, 4, 4, seed=0)
    slots = [s for batch in sampler for _, _, s in batch]
    assert slots == list(range(len(slots)))


def test_ranks_share_one_draw_and_take_whole_identities():
    single = IdentitySampler(PIDS, 4, 4, seed=5)
    single.set_epoch(2)
    ranks = [IdentitySampler(PIDS, 4, 4, seed=5, rank=r, world_size=2) for r in range(2)]
    for r in ranks:
        r.set_epoch(2)
    per_rank = [list(r) for r in ranks]
    assert len(per_rank[0]) == len(per_rank[1]) == len(single)
    for whole, part0, part1 in zip(single, *per_rank):
        assert len(part0) == len(part1) == 8  # P/2 identities of K images
        assert part0 + part1 == whole  # together: the single-process batch, slots included
        ids0, ids1 = set(PIDS[indices(part0)]), set(PIDS[indices(part1)])
        assert len(ids0) == len(ids1) == 2 and not ids0 & ids1


def test_state_dict_restores_the_sequence():
    sampler = IdentitySampler(PIDS, 4, 4, seed=7)
    sampler.set_epoch(3)
    expected = list(sampler)
    fresh = IdentitySampler(PIDS, 4, 4, seed=0)
    fresh.load_state_dict(sampler.state_dict())
    assert fresh.state_dict() == {"seed": 7, "epoch": 3}
    assert list(fresh) == expected


def test_clear_errors():
    with pytest.raises(InputError, match="12 identities, fewer than the 16"):
        IdentitySampler(PIDS, 16, 4)
    with pytest.raises(InputError, match="multiple of the number of processes"):
        IdentitySampler(PIDS, 3, 4, world_size=2)
