"""Dataset readers on tiny trees built in each dataset's real layout and naming."""

from pathlib import Path

import pytest

from pipeline import datasets
from pipeline.datasets import DatasetError

MARKET = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c3s3_000001_01.jpg", "0010_c6s4_002202_02.jpg",
    ],
    "query": [
        "0001_c1s1_001051_00.jpg", "0003_c2s1_000151_00.jpg",
        "0004_c5s1_000001_00.jpg",  # its only gallery image is in the same camera
        "0005_c1s1_000001_00.jpg",  # no gallery image at all
    ],
    "bounding_box_test": [
        "0001_c2s1_000001_01.jpg", "0001_c3s1_000001_01.jpg", "0003_c1s1_000001_01.jpg", "0004_c5s1_000002_01.jpg",
        "0000_c1s1_000001_01.jpg",  # distractor: kept
        "-1_c1s1_000001_01.jpg", "-1_c3s1_000002_01.jpg",  # junk: dropped
    ],
}


def touch_tree(root, tree):
    """Create empty files ``root/folder/name`` (readers only look at names); Thumbs.db as in the real sets."""
    root = Path(root)
    for folder, files in tree.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "Thumbs.db").write_bytes(b"")
        for name in files:
            (root / folder / name).write_bytes(b"")
    return root


def make_market(root):
    return touch_tree(root, MARKET)


def ids(items):
    return sorted({pid for _, pid, _ in items})


def test_names_include_every_family():
    assert {"market1501", "synth"} <= set(datasets.names())


def test_market1501_counts_relabel_junk_distractors(tmp_path):
    root = make_market(tmp_path / "market1501")
    ds = datasets.load("market1501", root)
    assert ds.name == "market1501" and ds.root == root
    assert ds.stats("train") == (3, 4, 4)
    assert ds.stats("query") == (4, 4, 3)
    assert ds.stats("gallery") == (4, 5, 4)
    assert sorted(ds.train) == [
        ("bounding_box_train/0002_c1s1_000451_03.jpg", 0, 0),
        ("bounding_box_train/0002_c2s1_000301_01.jpg", 0, 1),
        ("bounding_box_train/0007_c3s3_000001_01.jpg", 1, 2),
        ("bounding_box_train/0010_c6s4_002202_02.jpg", 2, 5),
    ]
    assert ids(ds.query) == [1, 3, 4, 5]
    assert ids(ds.gallery) == [0, 1, 3, 4]
    assert ("bounding_box_test/0000_c1s1_000001_01.jpg", 0, 0) in ds.gallery
    assert not any("-1_" in path for path, _, _ in ds.gallery)
    assert ds.split("query") is ds.query
    assert all((root / path).is_file() for split in datasets.SPLITS for path, _, _ in ds.split(split))


def test_market1501_found_one_level_down(tmp_path):
    make_market(tmp_path / "market1501" / "Market-1501-v15.09.15")
    ds = datasets.load("market1501", tmp_path / "market1501")
    assert ds.root == tmp_path / "market1501" / "Market-1501-v15.09.15"
    assert len(ds.train) == 4


def test_unmatched_queries_and_same_camera_rule(tmp_path):
    ds = datasets.load("market1501", make_market(tmp_path / "m"))
    no_id, same_camera = ds.unmatched_queries()
    assert [pid for _, pid, _ in no_id] == [5]
    assert [pid for _, pid, _ in same_camera] == [4]


def test_table_lists_every_split(tmp_path):
    table = datasets.load("market1501", make_market(tmp_path / "m")).table()
    lines = table.splitlines()
    assert lines[2].split("|") == ["  train   ", "      3 ", "        4 ", "         4"]
    assert [line.split()[0] for line in lines[2:]] == ["train", "query", "gallery"]


def test_synth_reads_market_layout(tmp_path):
    root = touch_tree(tmp_path / "synth", {
        "bounding_box_train": ["0001_c1s1_000000_00.jpg", "0001_c4s1_000001_00.jpg", "0003_c2s1_000002_00.jpg"],
        "query": ["0051_c1s1_000000_00.jpg"],
        "bounding_box_test": ["0051_c2s1_000001_00.jpg", "0051_c3s1_000002_00.jpg"],
    })
    ds = datasets.load("synth", root)
    assert sorted(ds.train) == [
        ("bounding_box_train/0001_c1s1_000000_00.jpg", 0, 0),
        ("bounding_box_train/0001_c4s1_000001_00.jpg", 0, 3),
        ("bounding_box_train/0003_c2s1_000002_00.jpg", 1, 1),
    ]
    assert ds.query == [("query/0051_c1s1_000000_00.jpg", 51, 0)]
    assert ds.unmatched_queries() == ([], [])


@pytest.mark.parametrize("problem, message", [
    ("missing", "does not exist"),
    ("layout", "expected bounding_box_train, query, bounding_box_test"),
    ("camera", "camera 7 of"),
    ("name", "does not match the expected name pattern"),
    ("pid", "does not match the expected name pattern"),
])
def test_market1501_bad_input(tmp_path, problem, message):
    root = tmp_path / "market1501"
    if problem != "missing":
        make_market(root)
    if problem == "layout":
        (root / "query").rename(root / "queries")
    if problem == "camera":
        (root / "query" / "0001_c7s1_000001_00.jpg").write_bytes(b"")
    if problem == "name":
        (root / "bounding_box_test" / "person_1.jpg").write_bytes(b"")
    if problem == "pid":
        (root / "bounding_box_test" / "12-3_c1s1_000001_01.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=message) as err:
        datasets.load("market1501", root)
    assert str(root) in str(err.value)


def test_unknown_name_and_option(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'market'.*market1501"):
        datasets.load("market", tmp_path)
    with pytest.raises(DatasetError, match="unknown option.*variant"):
        datasets.load("market1501", make_market(tmp_path / "m"), variant="detected")


def test_default_root_is_data_raw(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_market(tmp_path / "data" / "raw" / "market1501")
    assert datasets.load("market1501").root == Path("data/raw/market1501")
    with pytest.raises(DatasetError, match="data/raw/synth does not exist"):
        datasets.load("synth")


DUKE = {
    "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c5_f0051341.jpg", "0005_c8_f0000011.jpg"],
    "query": ["0011_c1_f0057706.jpg", "0012_c7_f0000123.jpg"],
    "bounding_box_test": [
        "0011_c3_f0054522.jpg", "0012_c2_f0001111.jpg", "0012_c8_f0001112.jpg",
        "0099_c6_f0076380.jpg",  # a distractor identity, only in the gallery
    ],
}


def test_dukemtmcreid_nested_eight_cameras(tmp_path):
    touch_tree(tmp_path / "duke" / "DukeMTMC-reID", DUKE)
    ds = datasets.load("dukemtmcreid", tmp_path / "duke")
    assert ds.root == tmp_path / "duke" / "DukeMTMC-reID"
    assert sorted(ds.train) == [
        ("bounding_box_train/0001_c2_f0046182.jpg", 0, 1),
        ("bounding_box_train/0001_c5_f0051341.jpg", 0, 4),
        ("bounding_box_train/0005_c8_f0000011.jpg", 1, 7),
    ]
    assert sorted(ds.query) == [("query/0011_c1_f0057706.jpg", 11, 0), ("query/0012_c7_f0000123.jpg", 12, 6)]
    assert ds.stats("gallery") == (3, 4, 4)


def test_duke_camera_out_of_range(tmp_path):
    root = touch_tree(tmp_path / "duke", DUKE)
    (root / "bounding_box_test" / "0011_c9_f0054522.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"camera 9 of .*0011_c9_f0054522.jpg is outside the dataset's range 1..8"):
        datasets.load("dukemtmcreid", root)


def test_occluded_duke_own_folder(tmp_path):
    touch_tree(tmp_path / "occluded_duke" / "Occluded_Duke", DUKE)
    ds = datasets.load("occluded_duke", tmp_path / "occluded_duke")
    assert ds.name == "occluded_duke" and ds.root.name == "Occluded_Duke"
    assert (ds.stats("train")[0], len(ds.train), len(ds.query), len(ds.gallery)) == (2, 3, 2, 4)


def test_partial_reid_test_only(tmp_path):
    root = touch_tree(tmp_path / "partial_reid" / "Partial_REID", {
        "partial_body_images": ["001_01.jpg", "001_02.jpg", "002_01.jpg"],
        "whole_body_images": ["001_01.jpg", "002_01.jpg", "002_02.jpg"],
    })
    ds = datasets.load("partial_reid", tmp_path / "partial_reid")
    assert ds.root == root and ds.train == []
    assert ds.query == [("partial_body_images/001_01.jpg", 1, 0), ("partial_body_images/001_02.jpg", 1, 0),
                        ("partial_body_images/002_01.jpg", 2, 0)]
    assert {cam for _, _, cam in ds.gallery} == {1} and len(ds.gallery) == 3
    assert ds.unmatched_queries() == ([], [])


def test_partial_ilids(tmp_path):
    root = touch_tree(tmp_path / "partial_ilids", {"query": ["001.jpg", "002.jpg"], "gallery": ["001.jpg", "003.jpg"]})
    ds = datasets.load("partial_ilids", root)
    assert ds.query == [("query/001.jpg", 1, 0), ("query/002.jpg", 2, 0)]
    assert ds.gallery == [("gallery/001.jpg", 1, 1), ("gallery/003.jpg", 3, 1)]
    assert [pid for _, pid, _ in ds.unmatched_queries()[0]] == [2]
    (root / "gallery" / "person.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="does not start with a person id"):
        datasets.load("partial_ilids", root)


def test_custom_market_named_tree(tmp_path):
    root = touch_tree(tmp_path / "mine", {
        "bounding_box_train": ["0100_c1_a.jpg", "0200_c12_b.jpg"],
        "query": ["0300_c2_c.jpg"],
        "bounding_box_test": ["0300_c3_d.jpg", "0000_c3_e.jpg", "-1_c3_f.jpg"],
    })
    ds = datasets.load("custom", root)
    assert sorted(ds.train) == [("bounding_box_train/0100_c1_a.jpg", 0, 0), ("bounding_box_train/0200_c12_b.jpg", 1, 11)]
    assert sorted(ds.gallery) == [("bounding_box_test/0000_c3_e.jpg", 0, 2), ("bounding_box_test/0300_c3_d.jpg", 300, 2)]


def write_custom_csv(root, rows):
    root.mkdir(parents=True, exist_ok=True)
    for path, *_ in rows:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"")
    lines = ["path,pid,camid,split"] + [",".join(str(c) for c in row) for row in rows]
    (root / "dataset.csv").write_text("\n".join(lines) + "\n")
    return root / "dataset.csv"


CSV_ROWS = [
    ("cam_a/alice_1.jpg", 17, 0, "train"), ("cam_b/alice_2.jpg", 17, 1, "train"), ("cam_a/bob.jpg", 4, 0, "train"),
    ("cam_a/carol.jpg", 50, 0, "query"), ("cam_b/carol.jpg", 50, 1, "gallery"),
    ("cam_b/junk.jpg", -1, 1, "gallery"),
]


def test_custom_csv(tmp_path):
    csv_path = write_custom_csv(tmp_path / "mine", CSV_ROWS)
    for root in (csv_path, csv_path.parent):
        ds = datasets.load("custom", root)
        assert ds.root == csv_path.parent
        assert ds.train == [("cam_a/alice_1.jpg", 1, 0), ("cam_b/alice_2.jpg", 1, 1), ("cam_a/bob.jpg", 0, 0)]
        assert ds.query == [("cam_a/carol.jpg", 50, 0)] and ds.gallery == [("cam_b/carol.jpg", 50, 1)]


@pytest.mark.parametrize("row, message", [
    (("cam_a/x.jpg", 1, 0, "val"), "split 'val' is not one of train, query, gallery"),
    (("cam_a/x.jpg", "one", 0, "train"), "line 8 .* expected path,pid,camid,split"),
    (("cam_a/x.jpg", 1, -2, "train"), "camid -2 must be 0-based"),
])
def test_custom_csv_bad_rows(tmp_path, row, message):
    csv_path = write_custom_csv(tmp_path / "mine", CSV_ROWS + [row])
    with pytest.raises(DatasetError, match=message):
        datasets.load("custom", csv_path)


def test_custom_csv_missing_image_and_header(tmp_path):
    csv_path = write_custom_csv(tmp_path / "mine", CSV_ROWS)
    (csv_path.parent / "cam_a" / "bob.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 image\(s\) listed in .*dataset.csv \(train\) are missing .* cam_a/bob.jpg"):
        datasets.load("custom", csv_path)
    csv_path.write_text("file,label\na.jpg,1\n")
    with pytest.raises(DatasetError, match="must start with the header line path,pid,camid,split"):
        datasets.load("custom", csv_path)
    with pytest.raises(DatasetError, match="neither dataset.csv .* nor the Market-1501 folders"):
        datasets.load("custom", tmp_path)


def test_synth_reads_the_renderer_output(synth_root):
    """The bundled renderer's tree (conftest: 8 ids x 4 images, 3 cameras) through the synth reader."""
    ds = datasets.load("synth", synth_root)
    assert ds.stats("train") == (4, 16, 3)
    assert ids(ds.train) == [0, 1, 2, 3]
    assert ids(ds.query) == ids(ds.gallery) and len(ids(ds.query)) == 4
    assert len(ds.query) + len(ds.gallery) == 16
    assert ds.unmatched_queries() == ([], [])
    assert all((synth_root / path).is_file() for split in datasets.SPLITS for path, _, _ in ds.split(split))
