import hashlib
import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from densepose_textures.atlas import image_to_atlas
from densepose_textures.errors import InputError
from densepose_textures.imageio import read_rgb, resize_iuv
from densepose_textures.iuv.store import IUVStore, IUVWriter
from densepose_textures.mirror import MirrorMap
from densepose_textures.shards import TextureSet, partial_dir, shard_name
from densepose_textures.textures import build_texture_set


def labels_of(root):
    from pipeline import datasets

    ds = datasets.load("synth", root)
    return {key: (pid, camid) for split in ("train", "query", "gallery") for key, pid, camid in ds.split(split)}


def digests(path):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}


SETTINGS = dict(size=16, shard_size=10, chunk_size=4, progress=False)


def build(out, store, root, **changes):
    options = {**SETTINGS, "mirror": MirrorMap.approximate(), **changes}
    return build_texture_set(out, store_path=store, image_root=root, dataset="synth", labels=labels_of(root), **options)


def test_set_covers_the_store_and_holds_the_warp(tmp_path, synth_root, synth_iuv_store):
    summary = build(tmp_path / "set", synth_iuv_store, synth_root)
    store, ts = IUVStore(synth_iuv_store), TextureSet(tmp_path / "set")
    assert ts.keys == store.keys and summary.records == len(store) == 32 and not summary.reused
    assert len(list((tmp_path / "set").glob("shard-*.h5"))) == 4 and ts.size == 16
    assert ts.attrs["iuv_backend"] == "synth" and ts.attrs["fill"] == "nearest" and ts.attrs["dataset"] == "synth"
    np.testing.assert_array_equal(ts.mirror_index, MirrorMap.approximate().texel_index(16))
    record = ts[5]
    image = read_rgb(synth_root / record["key"])
    texture, observed = image_to_atlas(image, resize_iuv(store.read(5), image.shape[:2]), 16)
    np.testing.assert_array_equal(record["observed"], observed)
    np.testing.assert_array_equal(record["texture"][observed], texture[observed])
    assert (record["provenance"][observed] == 0).all() and (record["provenance"][~observed] > 0).all()
    assert record["pid"] == labels_of(synth_root)[record["key"]][0]


def test_no_person_records_and_parallel_workers_give_the_same_bytes(tmp_path, synth_root, synth_iuv_store):
    store = IUVStore(synth_iuv_store)
    with IUVWriter(tmp_path / "store.h5", len(store), store.size, store.attrs) as writer:
        for i, key in enumerate(store.keys):
            lost = i in (3, 17)  # DensePose found nobody in these
            writer.append(store.read(i) * (not lost), key, store.found[i] and not lost, 0.0 if lost else 1.0)
    build(tmp_path / "one", tmp_path / "store.h5", synth_root, jobs=1)
    build(tmp_path / "two", tmp_path / "store.h5", synth_root, jobs=2)
    assert digests(tmp_path / "one") == digests(tmp_path / "two")
    ts = TextureSet(tmp_path / "one")
    assert not ts.found[3] and not ts.found[17] and ts.found.sum() == 30
    assert (ts[3]["provenance"] == 255).all() and (ts[3]["texture"] == 0).all() and not ts[3]["observed"].any()


KILLED_RUN = """
import os, signal, sys, json
from pathlib import Path
from densepose_textures import shards
from densepose_textures.mirror import MirrorMap
from densepose_textures.textures import build_texture_set
args = json.loads(sys.argv[1])
finish_shard = shards._ShardFile.close

def close_then_die(self, *a):  # the first shard reaches its final name, then the process is killed
    finish_shard(self, *a)
    os.kill(os.getpid(), signal.SIGKILL)

shards._ShardFile.close = close_then_die
labels = {k: tuple(v) for k, v in args.pop("labels").items()}
build_texture_set(args.pop("out"), labels=labels, mirror=MirrorMap.approximate(), **args)
"""


def test_kill_9_then_rerun_resumes_with_identical_bytes(tmp_path, synth_root, synth_iuv_store):
    out = tmp_path / "set"
    args = dict(out=str(out), store_path=str(synth_iuv_store), image_root=str(synth_root), dataset="synth",
                labels=labels_of(synth_root), **SETTINGS)
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_RUN), json.dumps(args)], capture_output=True)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    work = partial_dir(out)
    assert not out.exists() and (work / shard_name(0)).is_file() and not (work / shard_name(1)).exists()
    first_shard = (work / shard_name(0)).stat().st_ino

    summary = build(out, synth_iuv_store, synth_root)
    assert summary.resumed == 10
    assert (out / shard_name(0)).stat().st_ino == first_shard  # kept, not rewritten
    build(tmp_path / "straight", synth_iuv_store, synth_root)
    assert digests(out) == digests(tmp_path / "straight")


def test_finished_set_is_reused_only_when_everything_matches(tmp_path, synth_root, synth_iuv_store):
    out = tmp_path / "set"
    build(out, synth_iuv_store, synth_root)
    before = digests(out)
    assert build(out, synth_iuv_store, synth_root, shard_size=7).reused  # layout only: still the same set
    with pytest.raises(InputError, match=r"fill='nearest', this run asks for fill='pushpull'.*--force"):
        build(out, synth_iuv_store, synth_root, fill="pushpull")
    with pytest.raises(InputError, match=r"mirror_source='approximate'.*'synthetic'"):
        build(out, synth_iuv_store, synth_root, mirror=MirrorMap.from_tables(
            MirrorMap.approximate().u, MirrorMap.approximate().v, "synthetic"))
    assert digests(out) == before
    rebuilt = build(out, synth_iuv_store, synth_root, fill="pushpull", force=True)
    assert not rebuilt.reused and TextureSet(out).attrs["fill"] == "pushpull"
    (out / shard_name(1)).unlink()
    with pytest.raises(InputError, match="shard-00001.h5 is missing"):
        build(out, synth_iuv_store, synth_root, fill="pushpull")


def test_store_of_another_dataset_is_refused(tmp_path, synth_root, synth_iuv_store):
    labels = dict(list(labels_of(synth_root).items())[:5])
    with pytest.raises(InputError, match="not in dataset synth"):
        build_texture_set(tmp_path / "set", store_path=synth_iuv_store, image_root=synth_root, dataset="synth",
                          labels=labels, progress=False)


def test_an_unreadable_image_is_named_and_finished_shards_are_kept(tmp_path, synth_root, synth_iuv_store):
    import shutil

    root = tmp_path / "synth"
    shutil.copytree(synth_root, root)
    key = IUVStore(synth_iuv_store).keys[25]
    (root / key).write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=key):  # raised in a worker process, shown as it is
        build(tmp_path / "two", synth_iuv_store, root, jobs=2)
    with pytest.raises(InputError, match=key):
        build(tmp_path / "set", synth_iuv_store, root, jobs=1)
    work = partial_dir(tmp_path / "set")  # records 0-19 were done before record 25 failed
    assert (work / shard_name(1)).is_file() and not (work / shard_name(2)).exists() and not (tmp_path / "set").exists()


@pytest.mark.slow
def test_dask_cluster_gives_the_same_bytes(tmp_path, synth_root, synth_iuv_store):
    """`gen-textures --parallel dask` (a local cluster of 2 workers) writes the bytes local processes write."""
    pytest.importorskip("distributed")
    from click.testing import CliRunner

    from pipeline.cli import main

    common = ["gen-textures", "--dataset", "synth", "--root", str(synth_root), "--iuv", str(synth_iuv_store),
              "--size", "16", "--shard-size", "10", "--chunk-size", "4", "--jobs", "2"]
    for name, parallel in (("local", "processes"), ("dask", "dask")):
        result = CliRunner().invoke(main, common + ["--parallel", parallel, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert digests(tmp_path / "local") == digests(tmp_path / "dask")


def test_a_set_built_without_mirroring_turns_flipping_off(tmp_path, synth_root, synth_iuv_store, caplog):
    import logging

    from pipeline import datasets
    from train.data import TrainImages

    mirrored = TextureSet(build(tmp_path / "mirrored", synth_iuv_store, synth_root).path)
    plain = TextureSet(build(tmp_path / "plain", synth_iuv_store, synth_root, mirror=None).path)
    assert mirrored.mirrorable and not plain.mirrorable  # the no-mirror map sends every texel to itself
    items = datasets.load("synth", synth_root).train[:4]
    for textures, flips in ((mirrored.path, True), (plain.path, False)):
        with caplog.at_level(logging.INFO, logger="train.data"):
            images = TrainImages(synth_root, items, textures, height=64, width=32, flip=True, resize_crop=1.0,
                                 resize_crop_prob=0.0, erasing=0.0)
        assert images.flip is flips
    assert sum("built without mirroring" in r.message for r in caplog.records) == 1
