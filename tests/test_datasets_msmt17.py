"""MSMT17 reader on tiny V1 and V2 trees with the real list files and names."""

import pytest

from pipeline import datasets
from pipeline.datasets import DatasetError

LISTS = {
    "list_train.txt": ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0000/0000_001_05_0303noon_0021_1.jpg 0",
                       "0003/0003_000_15_0303afternoon_0102_0.jpg 3"],
    "list_val.txt": ["0007/0007_000_02_0303morning_0230_0.jpg 7"],
    "list_query.txt": ["0000/0000_000_01_0303morning_0008_0.jpg 0", "0002/0002_001_10_0302noon_0100_0.jpg 2"],
    "list_gallery.txt": ["0000/0000_003_07_0303morning_0123_1.jpg 0", "0002/0002_000_10_0302noon_0101_2.jpg 2",
                         "0009/0009_000_04_0302noon_0411_0.jpg 9"],
}


def make_msmt17(folder, train_dir, test_dir):
    folder.mkdir(parents=True)
    for name, lines in LISTS.items():
        (folder / name).write_text("\n".join(lines) + "\n")
        image_dir = train_dir if name in ("list_train.txt", "list_val.txt") else test_dir
        for line in lines:
            path = folder / image_dir / line.split()[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    return folder


@pytest.mark.parametrize("version, train_dir, test_dir", [
    ("MSMT17_V1", "train", "test"), ("MSMT17_V2", "mask_train_v2", "mask_test_v2"),
])
def test_msmt17_versions(tmp_path, version, train_dir, test_dir):
    folder = make_msmt17(tmp_path / "msmt17" / version, train_dir, test_dir)
    ds = datasets.load("msmt17", tmp_path / "msmt17")
    assert ds.root == folder
    assert ds.train == [
        (f"{train_dir}/0000/0000_000_01_0303morning_0015_0.jpg", 0, 0),
        (f"{train_dir}/0000/0000_001_05_0303noon_0021_1.jpg", 0, 4),
        (f"{train_dir}/0003/0003_000_15_0303afternoon_0102_0.jpg", 1, 14),
    ]
    # pid 0 is a real person in MSMT17: kept in query and gallery
    assert ds.query == [(f"{test_dir}/0000/0000_000_01_0303morning_0008_0.jpg", 0, 0),
                        (f"{test_dir}/0002/0002_001_10_0302noon_0100_0.jpg", 2, 9)]
    assert ds.stats("gallery") == (3, 3, 3)
    no_id, same_camera = ds.unmatched_queries()
    assert no_id == [] and [pid for _, pid, _ in same_camera] == [2]


def test_msmt17_train_val(tmp_path):
    make_msmt17(tmp_path / "msmt17", "train", "test")
    ds = datasets.load("msmt17", tmp_path / "msmt17", train_val=True)
    assert (ds.stats("train")[0], len(ds.train)) == (3, 4)
    assert ds.train[-1] == ("train/0007/0007_000_02_0303morning_0230_0.jpg", 2, 1)


def test_msmt17_bad_input(tmp_path):
    root = make_msmt17(tmp_path / "msmt17", "train", "test")
    (root / "list_query.txt").unlink()
    with pytest.raises(DatasetError, match=r"cannot read split file .*list_query.txt"):
        datasets.load("msmt17", root)
    (root / "list_query.txt").write_text("0000/0000_000_16_0303morning_0008_0.jpg 0\n")
    with pytest.raises(DatasetError, match="camera 16 of 0000/0000_000_16_0303morning_0008_0.jpg .* range 1..15"):
        datasets.load("msmt17", root)
    (root / "list_query.txt").write_text("0000/0000_000_01_0303morning_0008_0.jpg\n")
    with pytest.raises(DatasetError, match=r"line 1 of .*list_query.txt .*\(relative path, space, person id\)"):
        datasets.load("msmt17", root)
    (root / "list_query.txt").write_text("0000/0000_000_01_0303morning_0009_0.jpg 0\n")
    with pytest.raises(DatasetError, match="1 image.* listed in the query list are missing"):
        datasets.load("msmt17", root)
    with pytest.raises(DatasetError, match="expected train/ and test/ .* or mask_train_v2/"):
        datasets.load("msmt17", tmp_path)
