"""Texture sets whose targets are fused by identity or copied from the true atlases."""

import hashlib

import numpy as np
import pytest

from densepose_textures import shards
from densepose_textures.errors import InputError
from densepose_textures.provenance import Provenance
from densepose_textures.quality import raw_pid, resample_truth
from densepose_textures.shards import TextureSet, partial_dir, shard_name
from densepose_textures.synth import read_truth
from densepose_textures.textures import build_texture_set


def split_labels(root):
    from pipeline import datasets

    ds = datasets.load("synth", root)
    labels = {key: (pid, camid) for split in ("train", "query", "gallery") for key, pid, camid in ds.split(split)}
    return labels, [key for key, _, _ in ds.split("train")]


def digests(path):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}


def build(out, store, root, **changes):
    labels, train = split_labels(root)
    truth, mirror = read_truth(root)
    options = dict(size=16, shard_size=10, chunk_size=64, mirror=mirror, fused_keys=train, progress=False)
    if changes.get("source") == "truth":
        options["truth"] = truth
    return build_texture_set(out, store_path=store, image_root=root, dataset="synth", labels=labels,
                             **{**options, **changes})


@pytest.fixture(scope="module")
def sets(synth_root, synth_iuv_store, tmp_path_factory):
    base = tmp_path_factory.mktemp("targets")
    build(base / "own", synth_iuv_store, synth_root)
    build(base / "fused", synth_iuv_store, synth_root, fuse="identity")
    return TextureSet(base / "own"), TextureSet(base / "fused")


def test_fused_set_gives_each_training_identity_the_median_of_its_images(sets, synth_root):
    own, fused = sets
    _, train = split_labels(synth_root)
    assert fused.attrs["fuse"] == "identity" and fused.attrs["source"] == "warp" and own.attrs["fuse"] == "none"
    assert fused.keys == own.keys and fused.found.tolist() == own.found.tolist()
    records = {key: (a, b) for key, a, b in zip(own.keys, own, fused)}
    for pid in sorted({own.pids[own.index(key)] for key in train}):
        mine = [records[k] for k in train if own.pids[own.index(k)] == pid]
        observed = np.stack([a["observed"] for a, _ in mine]).astype(bool)
        values = np.where(observed[..., None], np.stack([a["texture"] for a, _ in mine]), np.nan)
        seen = observed.any(axis=0)
        median = np.floor(np.nanmedian(values[:, seen], axis=0) + 0.5)  # the per-image set's observed texels
        for a, b in mine:
            np.testing.assert_array_equal(b["texture"], mine[0][1]["texture"])  # one atlas per identity
            np.testing.assert_array_equal(b["observed"], a["observed"])  # still what this image saw
            np.testing.assert_array_equal(b["texture"][seen], median)
            step = b["provenance"]
            assert (step[a["observed"] > 0] == Provenance.OBSERVED).all()
            assert (step[seen & (a["observed"] == 0)] == Provenance.IDENTITY).all()
            assert np.isin(step[~seen], [1, 2, 3, 4]).all()
        assert sum((b["provenance"] == Provenance.IDENTITY).sum() for _, b in mine) > 0
    for key in set(own.keys) - set(train):  # query and gallery images keep their own texels
        a, b = records[key]
        for field in ("texture", "observed", "provenance"):
            np.testing.assert_array_equal(a[field], b[field])


def test_fused_set_is_reused_refused_and_resumed(sets, synth_root, synth_iuv_store, tmp_path, monkeypatch):
    own, fused = sets
    assert build(fused.path, synth_iuv_store, synth_root, fuse="identity", shard_size=7, chunk_size=3).reused
    with pytest.raises(InputError, match=r"fuse='identity', this run asks for fuse='none'.*--force"):
        build(fused.path, synth_iuv_store, synth_root)
    with pytest.raises(InputError, match=r"fuse='none', this run asks for fuse='identity'"):
        build(own.path, synth_iuv_store, synth_root, fuse="identity")

    finish_shard = shards._ShardFile.close

    def close_then_fail(self, *args):  # the first shard reaches its final name, then the run stops
        finish_shard(self, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(shards._ShardFile, "close", close_then_fail)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "set", synth_iuv_store, synth_root, fuse="identity", chunk_size=3)
    monkeypatch.setattr(shards._ShardFile, "close", finish_shard)
    assert (partial_dir(tmp_path / "set") / shard_name(0)).is_file()
    summary = build(tmp_path / "set", synth_iuv_store, synth_root, fuse="identity", chunk_size=3)
    assert summary.resumed == 10  # the third identity straddles shards 0 and 1: fused again from all its images
    assert digests(tmp_path / "set") == digests(fused.path)


def test_truth_set_holds_the_true_atlases_at_p(sets, synth_root, synth_iuv_store, tmp_path):
    own, _ = sets
    truth, _ = read_truth(synth_root)
    build(tmp_path / "truth", synth_iuv_store, synth_root, source="truth")
    ts = TextureSet(tmp_path / "truth")
    assert ts.attrs["source"] == "truth" and len(ts.attrs["truth_digest"]) == 16 and ts.found.all()
    for a, b in zip(own, ts):
        expected = np.floor(resample_truth(truth[raw_pid(b["key"])], 16) + 0.5)
        np.testing.assert_array_equal(b["texture"], expected)
        assert (b["provenance"] == Provenance.TRUE).all()
        np.testing.assert_array_equal(b["observed"], a["observed"])
    assert build(tmp_path / "truth", synth_iuv_store, synth_root, source="truth").reused
    with pytest.raises(InputError, match=r"source='truth', this run asks for source='warp'"):
        build(tmp_path / "truth", synth_iuv_store, synth_root)
    other = {pid: 255 - atlas for pid, atlas in truth.items()}
    with pytest.raises(InputError, match="truth_digest="):
        build(tmp_path / "truth", synth_iuv_store, synth_root, source="truth", truth=other)
    with pytest.raises(InputError, match="only a synthetic dataset"):
        build(tmp_path / "x", synth_iuv_store, synth_root, source="truth", truth=None)
    with pytest.raises(InputError, match="no true atlas for identity"):
        build(tmp_path / "x", synth_iuv_store, synth_root, source="truth", truth={1: truth[1]})
    with pytest.raises(InputError, match="fuse 'none'"):
        build(tmp_path / "x", synth_iuv_store, synth_root, source="truth", fuse="identity")


def test_a_set_from_before_sources_and_fusion_counts_as_per_image(sets, synth_root, synth_iuv_store, tmp_path):
    import shutil

    import h5py

    old = tmp_path / "old"
    shutil.copytree(sets[0].path, old)
    with h5py.File(old / "index.h5", "a") as f:  # a test copy: the attributes as sets had them before
        for name in ("source", "fuse", "truth_digest"):
            del f.attrs[name]
    assert build(old, synth_iuv_store, synth_root).reused
    with pytest.raises(InputError, match=r"fuse='none', this run asks for fuse='identity'"):
        build(old, synth_iuv_store, synth_root, fuse="identity")
