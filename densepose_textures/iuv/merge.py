"""Join the shard files of ``sanreid iuv --shard i/n`` into the store one process would have written."""

import re
from pathlib import Path

import h5py

from ..errors import InputError
from ..storage import image_list_digest
from .store import SHARD_ATTRS, IUVStore, assemble

SHARD_NAME = re.compile(r"\.shard-(\d+)-of-(\d+)$")


def find_shards(out):
    """Shard files beside ``out`` (``<stem>.shard-i-of-n<suffix>``), sorted by index."""
    out = Path(out)
    found = [p for p in out.parent.glob(f"{out.stem}.shard-*-of-*{out.suffix}") if SHARD_NAME.search(p.stem)]
    return sorted(found, key=lambda p: int(SHARD_NAME.search(p.stem).group(1)))


def merge_shards(shards, out):
    """Check that ``shards`` are all the shards of one run, then write their join to ``out``."""
    shards = [Path(p) for p in shards]
    if not shards:
        raise InputError(f"no shard files to merge into {out}: run `sanreid iuv --shard i/n` for every i first")
    stores = []
    for path in shards:
        store = IUVStore(path)
        if "shard_index" not in store.attrs:
            raise InputError(f"{path} is not a shard file (no shard_index attribute)")
        stores.append(store)
    stores.sort(key=lambda s: s.attrs["shard_index"])
    first = stores[0]
    count = first.attrs["shard_count"]
    shared = {k: v for k, v in first.attrs.items() if k not in SHARD_ATTRS}
    for store in stores:
        others = {k: v for k, v in store.attrs.items() if k not in SHARD_ATTRS}
        if others != shared or store.attrs["shard_count"] != count:
            differing = sorted(k for k in set(others) | set(shared) if others.get(k) != shared.get(k))
            raise InputError(f"{store.path} was made with other settings than {first.path} "
                             f"(differing: {', '.join(differing) or 'shard_count'}): rerun it")
    indices = [s.attrs["shard_index"] for s in stores]
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        repeated = sorted({i for i in indices if indices.count(i) > 1})
        raise InputError(f"shards of {count} needed: missing {missing or 'none'}, given twice {repeated or 'none'}")
    keys = [key for store in stores for key in store.keys]
    start = 0
    for store in stores:
        if store.attrs["shard_start"] != start:
            raise InputError(f"{store.path} starts at image {store.attrs['shard_start']}, expected {start}")
        start += len(store)
    if image_list_digest(keys) != shared["image_list_digest"]:
        raise InputError(f"the shards' images do not add up to the image list they were made for: rerun them")
    with h5py.File(shards[0], "r") as f:
        size = f["iuv"].shape[1:3]
    return assemble([s.path for s in stores], out, size, shared)
