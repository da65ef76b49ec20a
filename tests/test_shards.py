import hashlib
import pickle

import h5py
import numpy as np
import pytest

from densepose_textures.errors import InputError
from densepose_textures.mirror import MirrorMap
from densepose_textures.shards import (
    INDEX_FILE, TextureSet, TextureSetWriter, partial_dir, shard_name, write_texture_set,
)

P = 4


def records(n, seed=0):
    rng = np.random.default_rng(seed)
    textures = rng.integers(0, 256, (n, 24, P, P, 3), dtype=np.uint8)
    observed = rng.integers(0, 2, (n, 24, P, P), dtype=np.uint8)
    provenance = np.where(observed, 0, rng.integers(1, 5, (n, 24, P, P))).astype(np.uint8)
    provenance[-1] = 255  # the last image has no person
    observed[-1] = 0
    keys = [f"bounding_box_train/{i:04d}_c1s1_000000_00.jpg" for i in range(n)]
    return textures, observed, provenance, keys, np.arange(n) // 2, np.arange(n) % 3


def digests(path):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}


def make(path, n=5, shard_size=2, attrs=None):
    t, o, p, keys, pids, camids = records(n)
    mirror = MirrorMap.approximate().texel_index(P)
    write_texture_set(path, t, o, p, keys, pids, camids, mirror_index=mirror,
                      attrs=attrs or {"dataset": "toy", "fill": "nearest"}, shard_size=shard_size)
    return t, o, p, keys, pids, camids, mirror


def test_round_trip_by_index_and_key(tmp_path):
    t, o, p, keys, pids, camids, mirror = make(tmp_path / "set")
    assert sorted(f.name for f in (tmp_path / "set").iterdir()) == [INDEX_FILE] + [shard_name(k) for k in range(3)]
    assert not partial_dir(tmp_path / "set").exists()
    ts = TextureSet(tmp_path / "set")
    assert len(ts) == 5 and ts.keys == keys and ts.size == P
    assert ts.attrs["dataset"] == "toy" and ts.attrs["size"] == P and ts.attrs["records"] == 5
    np.testing.assert_array_equal(ts.mirror_index, mirror)
    np.testing.assert_array_equal(ts.found, [True] * 4 + [False])
    for i in (0, 2, 4, -1):
        r = ts[i]
        np.testing.assert_array_equal(r["texture"], t[i])
        np.testing.assert_array_equal(r["observed"], o[i])
        np.testing.assert_array_equal(r["provenance"], p[i])
        assert (r["key"], r["pid"], r["camid"]) == (keys[i], pids[i], camids[i])
    assert ts.get(keys[3])["key"] == keys[3] and ts.index(keys[3]) == 3
    with pytest.raises(KeyError, match="not in texture set"):
        ts.get("nope.jpg")
    with pytest.raises(IndexError):
        ts[5]
    with h5py.File(tmp_path / "set" / shard_name(0)) as f:  # one image per chunk, compressed
        assert f["texture"].chunks == (1, 24, P, P, 3) and f["texture"].compression == "gzip"


def test_picklable_before_and_after_access_and_in_workers(tmp_path):
    import torch

    t, *_ = make(tmp_path / "set")
    ts = TextureSet(tmp_path / "set")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ts))[1]["texture"], t[1])
    ts[0]
    clone = pickle.loads(pickle.dumps(ts))
    np.testing.assert_array_equal(clone[3]["texture"], t[3])
    loader = torch.utils.data.DataLoader(ts, batch_size=None, num_workers=2, collate_fn=lambda r: r["texture"])
    got = np.stack([np.asarray(x) for x in loader])
    np.testing.assert_array_equal(got, t)


def test_refuses_missing_truncated_and_absent(tmp_path):
    make(tmp_path / "set")
    shard = tmp_path / "set" / shard_name(1)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=str(shard)):
        TextureSet(tmp_path / "set")
    shard.unlink()
    with pytest.raises(InputError, match=f"{shard}.*missing"):
        TextureSet(tmp_path / "set")
    with pytest.raises(InputError, match="not a texture set"):
        TextureSet(tmp_path / "nothing")


def test_out_of_order_records_give_identical_bytes(tmp_path):
    t, o, p, keys, pids, camids, mirror = make(tmp_path / "a")
    writer = TextureSetWriter(tmp_path / "b", keys, pids, camids, size=P, mirror_index=mirror,
                              attrs={"dataset": "toy", "fill": "nearest"}, shard_size=2)
    for i in (3, 1, 4, 0, 2):
        writer.put(i, t[i], o[i], p[i])
    writer.finish()
    assert digests(tmp_path / "a") == digests(tmp_path / "b")


def test_an_error_inside_the_writer_drops_the_open_shard_and_keeps_finished_ones(tmp_path):
    t, o, p, keys, pids, camids, mirror = make(tmp_path / "whole")
    writer = TextureSetWriter(tmp_path / "set", keys, pids, camids, size=P, mirror_index=mirror,
                              attrs={"dataset": "toy"}, shard_size=2)
    with pytest.raises(KeyboardInterrupt), writer:
        for i in (0, 1, 2):
            writer.put(i, t[i], o[i], p[i])
        raise KeyboardInterrupt
    work = partial_dir(tmp_path / "set")
    assert sorted(f.name for f in work.glob("*.h5*")) == [shard_name(0)]


def test_resume_keeps_finished_shards_and_gives_identical_bytes(tmp_path):
    t, o, p, keys, pids, camids, mirror = make(tmp_path / "whole")
    attrs = {"dataset": "toy", "fill": "nearest"}

    def writer(**changes):
        return TextureSetWriter(tmp_path / "set", keys, pids, camids, size=P, mirror_index=mirror,
                                attrs={**attrs, **changes}, shard_size=2)

    first = writer()
    for i in (0, 1, 2):  # shard 0 complete, shard 1 half written: then the process "dies"
        first.put(i, t[i], o[i], p[i])
    del first
    work = partial_dir(tmp_path / "set")
    assert (work / shard_name(0)).is_file() and (work / (shard_name(1) + ".tmp")).is_file()

    resumed = writer()
    assert resumed.todo == [2, 3, 4]
    for i in resumed.todo:
        resumed.put(i, t[i], o[i], p[i])
    resumed.finish()
    assert digests(tmp_path / "set") == digests(tmp_path / "whole")
    assert not work.exists()

    other = writer()  # a finished set is never touched by a writer until finish(replace=True)
    assert other.todo == [0, 1, 2, 3, 4]
    for i in other.todo:
        other.put(i, t[i], o[i], p[i])
    with pytest.raises(InputError, match="already exists"):
        other.finish()
    other.finish(replace=True)
    assert digests(tmp_path / "set") == digests(tmp_path / "whole")


def test_work_in_progress_with_other_settings_starts_afresh(tmp_path):
    t, o, p, keys, pids, camids = records(5)
    mirror = MirrorMap.approximate().texel_index(P)
    first = TextureSetWriter(tmp_path / "set", keys, pids, camids, size=P, mirror_index=mirror,
                             attrs={"fill": "nearest"}, shard_size=2)
    for i in (0, 1):
        first.put(i, t[i], o[i], p[i])
    second = TextureSetWriter(tmp_path / "set", keys, pids, camids, size=P, mirror_index=mirror,
                              attrs={"fill": "pushpull"}, shard_size=2)
    assert second.todo == [0, 1, 2, 3, 4]


def test_empty_set(tmp_path):
    mirror = MirrorMap.approximate().texel_index(P)
    write_texture_set(tmp_path / "set", np.zeros((0, 24, P, P, 3), np.uint8), [], [], [], [], [],
                      mirror_index=mirror)
    ts = TextureSet(tmp_path / "set")
    assert len(ts) == 0 and ts.size == P


def test_batches_read_every_record_in_order(tmp_path):
    t, o, p, *_ = make(tmp_path / "set", n=7, shard_size=3)
    ts = TextureSet(tmp_path / "set")
    starts, got = [], []
    for start, arrays in ts.batches(("texture", "provenance"), batch_size=2):
        starts.append(start)
        got.append(arrays["texture"])
        np.testing.assert_array_equal(arrays["provenance"], p[start:start + len(arrays["provenance"])])
    assert starts == [0, 2, 3, 5, 6]
    np.testing.assert_array_equal(np.concatenate(got), t)
