import hashlib
import json
import multiprocessing
import os
import pickle

import h5py
import numpy as np
import pytest

from densepose_textures.errors import InputError
from densepose_textures.storage import (
    AtomicWrite, H5Reader, WorkDir, array_digest, file_digest, image_list_digest, open_h5, partial_dir, plain_attrs,
    replace_dir, write_text,
)


def test_atomic_write_commits_whole_files_and_discards_failed_ones(tmp_path):
    path = tmp_path / "sub" / "out.bin"
    with AtomicWrite(path) as tmp:
        assert tmp.parent == path.parent and tmp.name == "out.bin.tmp"
        tmp.write_bytes(b"first")
        assert not path.exists()  # nothing at the final name until the write is complete
    assert path.read_bytes() == b"first" and not tmp.exists()
    with pytest.raises(RuntimeError):
        with AtomicWrite(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"first" and not tmp.exists()  # the old file is untouched
    assert write_text(path, "second") == path and path.read_text() == "second"


def test_replace_dir_swaps_in_the_new_directory(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a").write_text("new")
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "b").write_text("old")
    replace_dir(tmp_path / "new", tmp_path / "set")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    assert [p.name for p in (tmp_path / "set").iterdir()] == ["a"]


def test_work_dir_resumes_only_work_made_for_the_same_fingerprint(tmp_path):
    out = tmp_path / "store.h5"
    work = WorkDir(out, {"size": (4, 2), "mode": "box"})
    assert work.path == partial_dir(out) == tmp_path / "store.h5.partial" and not work.resumed
    (work / "chunk-0.h5").write_text("done")
    (work / "chunk-1.h5.tmp").write_text("half")
    again = WorkDir(out, {"mode": "box", "size": [4, 2]})  # as it reads back from JSON: equal
    assert again.resumed and (again / "chunk-0.h5").is_file() and not (again / "chunk-1.h5.tmp").exists()
    other = WorkDir(out, {"mode": "detect", "size": [4, 2]})
    assert not other.resumed and not (other / "chunk-0.h5").exists()
    assert json.loads((other / WorkDir.STAMP).read_text()) == {"mode": "detect", "size": [4, 2]}
    (other / WorkDir.STAMP).write_text("{not json")
    assert not WorkDir(out, {"mode": "detect", "size": [4, 2]}).resumed


def test_work_dir_moves_into_place_without_its_stamp(tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    work = WorkDir(out, {"a": 1})
    (work / "shard.h5").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        work.move_to(out)
    assert work.move_to(out, replace=True) == out
    assert [p.name for p in out.iterdir()] == ["shard.h5"] and not work.path.exists()


def test_work_dir_moves_its_entries_into_a_folder_keeping_the_others(tmp_path):
    out = tmp_path / "run"
    (out / "logs").mkdir(parents=True)
    (out / "logs" / "old.tsv").write_text("old")
    (out / "last.pt").write_text("old")
    (out / "model.pt").write_text("exported")
    work = WorkDir(out, {"a": 1})
    (work / "logs").mkdir()
    (work / "logs" / "new.tsv").write_text("new")
    (work / "last.pt").write_text("new")
    assert work.move_into(out) == out and not work.path.exists()
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "logs", "model.pt"]
    assert [p.name for p in (out / "logs").iterdir()] == ["new.tsv"]
    assert (out / "last.pt").read_text() == "new" and (out / "model.pt").read_text() == "exported"


def test_image_list_digest_keeps_both_recorded_forms():
    keys, pids, camids = ["a/1.jpg", "b/2.jpg"], np.array([3, 4]), [0, 1]
    assert image_list_digest(keys) == hashlib.sha256(b"a/1.jpg\nb/2.jpg").hexdigest()  # IUV stores
    labelled = image_list_digest(keys, pids, camids)  # texture sets
    assert labelled == hashlib.sha256(b"a/1.jpg\t3\t0\nb/2.jpg\t4\t1\n").hexdigest()[:16]
    assert labelled == "c06af2e1ad66cbb5"  # the value texture sets of format 1 record: it must not drift
    assert image_list_digest(keys, [3, 5], camids) != labelled
    with pytest.raises(ValueError):
        image_list_digest(keys, [3], camids)


def test_file_and_array_digests(tmp_path):
    (tmp_path / "f").write_bytes(b"abc" * 1000)
    assert file_digest(tmp_path / "f", block=7) == hashlib.sha256(b"abc" * 1000).hexdigest()
    u, v = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.int64)
    assert array_digest(u, v) == hashlib.sha256(u.tobytes() + v.tobytes()).hexdigest()[:16]
    assert array_digest(u.T) == array_digest(np.ascontiguousarray(u.T)) != array_digest(u)


def test_plain_attrs_and_unreadable_files(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.attrs.update({"b": b"text", "a": np.int64(3), "c": np.array([1, 2]), "d": "str", "e": np.float32(0.5)})
    with open_h5(tmp_path / "a.h5", "thing", "fix it") as f:
        attrs = plain_attrs(f.attrs)
    assert attrs == {"a": 3, "b": "text", "c": [1, 2], "d": "str", "e": 0.5} and list(attrs) == sorted(attrs)
    assert type(attrs["a"]) is int and type(attrs["e"]) is float
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(InputError, match=r"thing .*junk.h5 cannot be read .*: fix it"):
        with open_h5(tmp_path / "junk.h5", "thing", "fix it"):
            pass
    with pytest.raises(InputError, match="cannot be read"):  # a dataset missing from a file: incomplete
        with open_h5(tmp_path / "a.h5", "thing", "fix it") as f:
            f["missing"]


class Reader(H5Reader):
    what, fix, required = "test file", "write it again", ("x",)

    def read_header(self, f):
        self.length = len(f["x"])

    def first(self):
        return int(self.h5(self.path)["x"][0])


_inherited = None  # a reader a forked child inherits from its parent, open handle and all


def _read_inherited(_):
    return _inherited.first(), _inherited._pid == os.getpid()


def test_h5_reader_opens_lazily_once_per_process(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["x"] = np.arange(3) + 7
        f.attrs["kind"] = b"test"
    reader = Reader(tmp_path / "a.h5")
    assert reader._handles is None and reader.length == 3 and reader.attrs == {"kind": "test"}
    assert reader.first() == 7 and reader.h5(reader.path) is reader.h5(reader.path)
    clone = pickle.loads(pickle.dumps(reader))  # handles are never pickled
    assert clone._handles is None and clone.first() == 7
    parent_handle = reader.h5(reader.path)
    global _inherited
    _inherited = reader
    with multiprocessing.get_context("fork").Pool(1) as pool:  # a forked child opens its own handle
        assert pool.map(_read_inherited, [0]) == [(7, True)]
    assert reader.first() == 7 and reader.h5(reader.path) is parent_handle
    reader.close()
    assert reader._handles is None and reader.first() == 7
    reader.path = tmp_path / "gone.h5"  # a file that disappears after the header was read
    with pytest.raises(InputError, match="test file .*gone.h5 cannot be read .*: write it again"):
        reader.first()


def test_h5_reader_names_missing_and_incomplete_files(tmp_path):
    with pytest.raises(InputError, match="test file .*a.h5 not found: write it first"):
        Reader(tmp_path / "a.h5")
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["y"] = [1]
    with pytest.raises(InputError, match=r"a.h5 is not a valid test file \(it lacks x\)"):
        Reader(tmp_path / "a.h5")
