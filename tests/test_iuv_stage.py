"""The IUV stage with the synth backend: store content, resume after kill -9, shards, bad images, CLI."""

import hashlib
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from densepose_textures.errors import InputError
from densepose_textures.imageio import read_iuv, resize_iuv
from densepose_textures.iuv.backends import make_backend
from densepose_textures.iuv.merge import find_shards, merge_shards
from densepose_textures.iuv.run import parse_shard, run_iuv, shard_from_env, shard_range
from densepose_textures.iuv.store import FORMAT_VERSION, IUVStore
from densepose_textures.storage import WorkDir, image_list_digest
from densepose_textures.synth import iuv_path
from pipeline import datasets
from pipeline.cli import main

EXTRA = {"dataset": "synth", "splits": "all"}


def all_keys(root):
    ds = datasets.load("synth", root)
    return [path for split in ("train", "query", "gallery") for path, _, _ in ds.split(split)]


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def same_store(a, b):
    """Same datasets and attributes (and, as written here, the same bytes)."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa) == sorted(fb) == ["found", "iuv", "key", "score"]
        for name in fa:
            np.testing.assert_array_equal(fa[name][()], fb[name][()], err_msg=name)
        assert dict(fa.attrs.items()).keys() == dict(fb.attrs.items()).keys()
        for name, value in fa.attrs.items():
            np.testing.assert_array_equal(value, fb.attrs[name], err_msg=name)
    assert sha(a) == sha(b)


@pytest.fixture
def root_copy(synth_root, tmp_path):
    root = tmp_path / "synth"
    shutil.copytree(synth_root, root)
    return root


def test_synth_store_holds_the_rendered_iuv(synth_root, synth_iuv_store):
    keys = all_keys(synth_root)
    with IUVStore(synth_iuv_store) as store:
        assert store.keys == keys and len(store) == len(keys)
        assert store.found.all() and (store.score == 1).all()
        assert store.attrs["backend"] == "synth" and store.attrs["format_version"] == FORMAT_VERSION
        assert store.attrs["image_list_digest"] == image_list_digest(keys)
        assert store.attrs["size"] == [256, 128] and store.attrs["mode"] == "truth"
        for key in (keys[0], keys[-1]):
            truth = resize_iuv(read_iuv(iuv_path(synth_root, key)), (256, 128))
            np.testing.assert_array_equal(store.read(store.index(key)), truth)
        copy = pickle.loads(pickle.dumps(store))
        np.testing.assert_array_equal(copy.read(3), store.read(3))
        with pytest.raises(InputError, match="not in IUV store"):
            store.index("nope.jpg")
    with h5py.File(synth_iuv_store, "r") as f:
        iuv = f["iuv"]
        assert iuv.chunks == (1, 256, 128, 3) and iuv.compression == "gzip" and iuv.compression_opts == 1


def test_store_reader_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        IUVStore(tmp_path / "none.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(InputError, match="not a valid IUV store"):
        IUVStore(tmp_path / "other.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(InputError, match="IUV store .* cannot be read"):
        IUVStore(tmp_path / "junk.h5")


KILLED_RUN = textwrap.dedent('''
    import os, signal, sys
    from densepose_textures.iuv.run import run_iuv
    from densepose_textures.iuv.synth_backend import SynthBackend

    root, out, keys = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().splitlines()

    class KilledInChunkTwo(SynthBackend):
        calls = 0

        def predict(self, images, keys):
            KilledInChunkTwo.calls += 1
            if KilledInChunkTwo.calls == 3:  # chunk 1 (2 batches) is committed, chunk 2 is under way
                os.kill(os.getpid(), signal.SIGKILL)
            return super().predict(images, keys)

    run_iuv(KilledInChunkTwo(root), root, keys, out, chunk_size=8, batch_size=4, progress=False,
            extra_attrs={"dataset": "synth", "splits": "all"})
''')


def test_kill_9_then_rerun_gives_the_same_store(synth_root, synth_iuv_store, tmp_path):
    keys = all_keys(synth_root)
    (tmp_path / "keys.txt").write_text("\n".join(keys))
    out = tmp_path / "synth.h5"
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(synth_root), str(out), str(tmp_path / "keys.txt")],
                          timeout=120, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.exists()
    work = tmp_path / "synth.h5.partial"
    assert sorted(p.name for p in work.glob("chunk-*")) == ["chunk-000000.h5"]

    summary = run_iuv(make_backend("synth", root=synth_root), synth_root, keys, out, chunk_size=8, batch_size=4,
                      progress=False, extra_attrs=EXTRA)
    assert summary.resumed == 8 and summary.images == len(keys) == summary.found
    assert not work.exists()
    same_store(out, synth_iuv_store)


def test_work_made_for_other_settings_is_not_reused(synth_root, tmp_path):
    keys = all_keys(synth_root)[:6]
    backend = make_backend("synth", root=synth_root)
    run_iuv(backend, synth_root, keys, tmp_path / "fresh.h5", chunk_size=4, progress=False)
    # unfinished work left by a run with other settings: discarded, not resumed
    out = tmp_path / "a.h5"
    (tmp_path / "a.h5.partial").mkdir()
    shutil.copy(tmp_path / "fresh.h5", tmp_path / "a.h5.partial" / "chunk-000000.h5")
    (tmp_path / "a.h5.partial" / WorkDir.STAMP).write_text('{"backend": "densepose"}')
    summary = run_iuv(backend, synth_root, keys, out, chunk_size=4, progress=False)
    assert summary.resumed == 0
    same_store(out, tmp_path / "fresh.h5")


def test_shards_merged_equal_one_process(synth_root, synth_iuv_store, tmp_path):
    out = tmp_path / "synth.h5"
    runner = CliRunner()
    for i in range(3):
        result = runner.invoke(main, ["iuv", "--dataset", "synth", "--root", str(synth_root), "--splits", "all",
                                      "--out", str(out), "--shard", f"{i}/3", "--chunk-size", "5"])
        assert result.exit_code == 0, result.output
        assert f"shard {i} of 3" in result.output
    shards = sorted(tmp_path.glob("synth.shard-*-of-3.h5"))
    assert len(shards) == 3 and not out.exists()
    with h5py.File(shards[1], "r") as f:
        assert f.attrs["shard_index"] == 1 and f.attrs["shard_count"] == 3
    result = runner.invoke(main, ["iuv-merge", "--out", str(out)])
    assert result.exit_code == 0, result.output
    same_store(out, synth_iuv_store)

    # a missing shard, or shards of different runs, are refused
    result = runner.invoke(main, ["iuv-merge", "--out", str(tmp_path / "m.h5"), str(shards[0]), str(shards[2])])
    assert result.exit_code == 2 and "missing [1]" in result.output
    other = tmp_path / "other" / "synth.h5"
    result = runner.invoke(main, ["iuv", "--dataset", "synth", "--root", str(synth_root), "--out", str(other),
                                  "--shard", "1/3"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["iuv-merge", "--out", str(tmp_path / "m.h5"), str(shards[0]),
                                  str(other.with_name("synth.shard-1-of-3.h5")), str(shards[2])])
    assert result.exit_code == 2 and "other settings" in result.output and "image_list_digest" in result.output


def test_more_shards_than_images(synth_root, tmp_path):
    keys = all_keys(synth_root)[:3]
    backend = make_backend("synth", root=synth_root)
    sizes = [run_iuv(backend, synth_root, keys, tmp_path / "s.h5", shard=(i, 4), progress=False).images
             for i in range(4)]
    assert sizes == [0, 1, 1, 1]
    merge_shards(find_shards(tmp_path / "s.h5"), tmp_path / "s.h5")
    run_iuv(backend, synth_root, keys, tmp_path / "one.h5", progress=False)
    same_store(tmp_path / "s.h5", tmp_path / "one.h5")


def test_shard_under_torchrun_environment(synth_root, tmp_path, monkeypatch):
    assert shard_from_env({}) is None and shard_from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert shard_from_env({"WORLD_SIZE": "4", "RANK": "2"}) == (2, 4)
    assert [shard_range(10, i, 3) for i in range(3)] == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(InputError, match="0 <= i < n"):
        parse_shard("3/3")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    result = CliRunner().invoke(main, ["iuv", "--dataset", "synth", "--root", str(synth_root),
                                       "--out", str(tmp_path / "s.h5")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.shard-1-of-2.h5").is_file() and not (tmp_path / "s.shard-0-of-2.h5").exists()


def test_corrupt_image_is_named_not_fatal_unless_strict(root_copy, tmp_path):
    keys = datasets.load("synth", root_copy).train
    bad = keys[5][0]
    (root_copy / bad).write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    out = tmp_path / "s.h5"
    runner = CliRunner()
    args = ["iuv", "--dataset", "synth", "--root", str(root_copy), "--out", str(out), "--chunk-size", "4"]
    result = runner.invoke(main, args + ["--strict"])
    assert result.exit_code == 2 and bad in result.output and "--strict" in result.output
    assert not out.exists() and "Traceback" not in result.output
    assert (tmp_path / "s.h5.partial" / "chunk-000000.h5").is_file()  # the chunk before is kept

    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"unreadable (1): {bad}" in result.output
    assert "4 resumed" in result.output
    with IUVStore(out) as store:
        assert len(store) == len(keys) and store.attrs["splits"] == "train"
        i = store.index(bad)
        assert not store.found[i] and store.found.sum() == len(keys) - 1
        assert not store.read(i).any()

    # a strict rerun over a finished store fails the same way, naming the image
    result = runner.invoke(main, args + ["--strict"])
    assert result.exit_code == 2 and bad in result.output


def test_image_without_person_is_reported(root_copy, tmp_path):
    keys = [k for k, _, _ in datasets.load("synth", root_copy).train][:6]
    empty = keys[2]
    path = iuv_path(root_copy, empty)
    from densepose_textures.imageio import write_iuv

    write_iuv(path, np.zeros_like(read_iuv(path)))
    summary = run_iuv(make_backend("synth", root=root_copy), root_copy, keys, tmp_path / "s.h5", progress=False)
    assert summary.no_person == [empty] and summary.unreadable == [] and summary.found == 5
    out = tmp_path / "t.h5"
    with pytest.raises(InputError, match=f"have no person: {empty}"):
        run_iuv(make_backend("synth", root=root_copy), root_copy, keys, out, chunk_size=2, strict=True,
                progress=False)
    # the chunk before was committed; a damaged committed chunk is made again, not trusted
    chunk = tmp_path / "t.h5.partial" / "chunk-000000.h5"
    assert chunk.is_file()
    chunk.write_bytes(b"damaged")
    summary = run_iuv(make_backend("synth", root=root_copy), root_copy, keys, out, chunk_size=2, progress=False)
    assert summary.resumed == 0 and summary.no_person == [empty]
    same_store(out, tmp_path / "s.h5")


def test_cli_bad_input(synth_root, tmp_path):
    runner = CliRunner()
    base = ["iuv", "--dataset", "synth", "--root", str(synth_root), "--out", str(tmp_path / "x.h5")]
    cases = [
        (["iuv", "--dataset", "nope", "--root", str(tmp_path)], "unknown dataset"),
        (["iuv", "--dataset", "synth", "--root", str(tmp_path / "missing")], "missing"),
        (base + ["--shard", "2/2"], "0 <= i < n"),
        (base + ["--shard", "x"], "--shard expects i/n"),
        (base + ["--backend", "dump"], "--dump FILE"),
        (base + ["--backend", "dump", "--dump", str(tmp_path / "none.pkl")], "not found"),
        (base + ["--backend", "densepose"], "--config FILE"),
        (base + ["--backend", "nope"], "Invalid value for '--backend'"),
        (base + ["--chunk-size", "0"], "Invalid value for '--chunk-size'"),
        (["iuv-merge"], "give --dataset or --out"),
        (["iuv-merge", "--out", str(tmp_path / "m.h5")], "no shard files"),
    ]
    for args, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_densepose_backend_without_detectron2_says_how_to_install(synth_root, tmp_path):
    pytest.importorskip("densepose_textures.iuv.densepose")
    try:
        import detectron2  # noqa: F401
        pytest.skip("detectron2 is installed here")
    except ImportError:
        pass
    config, weights = tmp_path / "c.yaml", tmp_path / "w.pkl"
    config.write_text("")
    weights.write_bytes(b"")
    result = CliRunner().invoke(main, ["iuv", "--dataset", "synth", "--root", str(synth_root), "--backend",
                                       "densepose", "--config", str(config), "--weights", str(weights),
                                       "--out", str(tmp_path / "x.h5")])
    assert result.exit_code == 2 and "--no-build-isolation" in result.output, result.output


def test_params_file_sets_defaults_and_options_override(synth_root, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("iuv:\n  size: [64, 32]\n  splits: all\n")
    out = tmp_path / "p.h5"
    result = CliRunner().invoke(main, ["--params", str(params), "iuv", "--dataset", "synth", "--root",
                                       str(synth_root), "--out", str(out), "--splits", "train"])
    assert result.exit_code == 0, result.output
    with IUVStore(out) as store:
        assert store.read(0).shape == (64, 32, 3) and store.attrs["splits"] == "train"
        assert len(store) == len(datasets.load("synth", synth_root).train)
