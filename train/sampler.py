"""P x K identity sampler: each batch holds P identities with K images each.

Every epoch is a pure function of ``(seed, epoch)``: all ranks of a DDP group
build the same global batches from one shared seed and each rank takes whole
identities of every batch (as fast-reid does), so the ranks' batches together are
the single-process batch. Each yielded sample is ``(index, epoch, slot)``, where
``slot`` is the sample's global position in the epoch: the dataset derives its
augmentation randomness from it, so results do not depend on workers, ranks or
resuming.
"""

import numpy as np
import torch.utils.data

from densepose_textures.errors import InputError


class EpochSampler(torch.utils.data.Sampler):
    """A batch sampler whose epoch is a pure function of ``(seed, epoch)``: its state is those two."""

    seed = 0
    epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def state_dict(self):
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])


class IdentitySampler(EpochSampler):
    """Batch sampler over a list of training pids (one per image), torchreid's RandomIdentitySampler order.

    ``ids_per_batch`` (P) counts identities of the global batch; with ``world_size`` ranks each
    rank gets ``P / world_size`` of them, K images each.
    """

    def __init__(self, pids, ids_per_batch, images_per_id, *, seed=0, rank=0, world_size=1):
        pids = np.asarray(pids, dtype=np.int64)
        self.num_ids = len(np.unique(pids))
        if self.num_ids < ids_per_batch:
            raise InputError(
                f"the training split has {self.num_ids} identities, fewer than the {ids_per_batch} identities "
                "per batch (P): lower train.data.ids_per_batch (e.g. --set data.ids_per_batch=N) or use more identities"
            )
        if ids_per_batch % world_size:
            raise InputError(
                f"identities per batch (P = {ids_per_batch}) must be a multiple of the number of processes ({world_size})"
            )
        self.order = np.argsort(pids, kind="stable")
        uniq, starts, counts = np.unique(pids[self.order], return_index=True, return_counts=True)
        self.starts, self.counts = starts, counts
        self.P, self.K = ids_per_batch, images_per_id
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self._cached = (None, None)

    def global_batches(self, epoch):
        """(num_batches, P, K) dataset indices of one epoch, identical on every rank."""
        if self._cached[0] != (self.seed, epoch):
            self._cached = ((self.seed, epoch), self._draw(epoch))
        return self._cached[1]

    def _draw(self, epoch):
        rng = np.random.default_rng([self.seed, epoch])
        chunks = []  # per identity: (num_chunks, K) image indices
        for start, count in zip(self.starts, self.counts):
            own = self.order[start:start + count]
            need = max(count, self.K)
            picked = rng.choice(own, size=need, replace=count < self.K)
            usable = need - need % self.K
            chunks.append(picked[:usable].reshape(-1, self.K))
        left = np.array([len(c) for c in chunks])
        taken = np.zeros(len(chunks), dtype=np.int64)
        batches = []
        while np.count_nonzero(left) >= self.P:
            ids = rng.choice(np.flatnonzero(left), size=self.P, replace=False)
            batches.append(np.stack([chunks[i][taken[i]] for i in ids]))
            taken[ids] += 1
            left[ids] -= 1
        return np.stack(batches) if batches else np.zeros((0, self.P, self.K), dtype=np.int64)

    def __iter__(self):
        batches = self.global_batches(self.epoch)  # (B, P, K)
        per_rank = self.P // self.world_size
        slots = np.arange(batches.size).reshape(batches.shape)
        lo, hi = self.rank * per_rank, (self.rank + 1) * per_rank
        for batch, slot in zip(batches[:, lo:hi], slots[:, lo:hi]):
            yield [(int(i), self.epoch, int(s)) for i, s in zip(batch.reshape(-1), slot.reshape(-1))]

    def __len__(self):
        return len(self.global_batches(self.epoch))


class ShuffleSampler(EpochSampler):
    """Batch sampler over ``indices`` (dataset indices) in a new random order each epoch, a pure function of
    ``(seed, epoch)``; whole batches of ``batch_size`` only (the rest of an epoch waits for the next: BatchNorm
    needs more than one sample). Yields ``(index, epoch, slot)`` as :class:`IdentitySampler`; with
    ``world_size`` ranks each rank takes its share of every global batch."""

    def __init__(self, indices, batch_size, *, seed=0, rank=0, world_size=1):
        self.indices = np.asarray(indices, dtype=np.int64)
        if batch_size < 2 or len(self.indices) < batch_size:
            raise InputError(f"{len(self.indices)} training samples and batches of {batch_size}: a batch needs 2 "
                             "samples or more, and no more than the training samples (lower the batch size or "
                             "add samples)")
        if batch_size % world_size:
            raise InputError(f"the batch size ({batch_size}) must be a multiple of the number of processes ({world_size})")
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.epoch = 0

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.indices)
        per_rank = self.batch_size // self.world_size
        for b in range(len(self)):
            lo = b * self.batch_size + self.rank * per_rank
            yield [(int(order[s]), self.epoch, s) for s in range(lo, lo + per_rank)]

    def __len__(self):
        return len(self.indices) // self.batch_size
