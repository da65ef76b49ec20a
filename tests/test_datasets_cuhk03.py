"""CUHK03: extraction from a MATLAB v7.3 cuhk-03.mat and the 767/700 protocol .mat files."""

import itertools

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from densepose_textures.imageio import read_rgb
from pipeline import datasets
from pipeline.datasets import DatasetError

# persons per camera pair and the cells (of 10) that hold an image; the others are empty
PERSONS = {1: [range(10), range(10), [0, 1, 5, 6]], 2: [[0, 4, 5, 9], [2, 7]]}


def person_images(variant, pair, person):
    """Deterministic small RGB images (H, W, 3) of one person, None for empty cells."""
    rng = np.random.default_rng([pair, person, len(variant)])
    cells = PERSONS[pair][person - 1]
    return [rng.integers(0, 256, (6 + i, 3 + i % 3, 3), dtype=np.uint8) if i in cells else None for i in range(10)]


def write_raw_mat(path, variants=("labeled", "detected")):
    """A cuhk-03.mat as MATLAB v7.3 writes it: HDF5 with a 512-byte userblock, cells as object references.

    MATLAB stores arrays column-major, so an H x W x 3 image is the HDF5 dataset (3, W, H)
    and the P x 10 cell of a camera pair is (10, P); empty cells are uint64 [0, 0] marked MATLAB_empty.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    names = ("".join(t) for n in itertools.count(1) for t in itertools.product(letters, repeat=n))  # a, b, ..., aa
    with h5py.File(path, "w", userblock_size=512, libver="earliest") as file:
        refs = file.create_group("#refs#")

        def put(data, matlab_class, empty=False):
            dataset = refs.create_dataset(next(names), data=data)
            dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
            if empty:
                dataset.attrs["MATLAB_empty"] = np.uint8(1)
            return dataset.ref

        for variant in variants:
            pair_refs = []
            for pair, persons in PERSONS.items():
                cell = np.empty((10, len(persons)), dtype=h5py.ref_dtype)
                for person in range(1, len(persons) + 1):
                    for i, image in enumerate(person_images(variant, pair, person)):
                        cell[i, person - 1] = (put(np.zeros(2, np.uint64), "double", empty=True) if image is None
                                               else put(image.T, "uint8"))
                pair_refs.append(put(cell, "cell"))
            top = file.create_dataset(variant, data=np.array([pair_refs], dtype=h5py.ref_dtype))  # (1, pairs)
            top.attrs["MATLAB_class"] = np.bytes_("cell")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 ."
    with open(path, "r+b") as file:
        file.write(header.ljust(116) + bytes(8) + b"\x00\x02IM")
    return path


def test_raw_fixture_is_a_v73_mat_file(tmp_path):
    from scipy.io.matlab import matfile_version

    path = write_raw_mat(tmp_path / "cuhk-03.mat", variants=("labeled",))
    assert matfile_version(str(path)) == (2, 0)  # what MATLAB 7.3 files report
    with h5py.File(path, "r") as file:
        assert file["labeled"].shape == (1, 2) and file[file["labeled"][0, 0]].shape == (10, 3)


def expected_names():
    return sorted(f"{pair}_{person:03d}_{1 if i < 5 else 2}_{i + 1:02d}.png"
                  for pair, persons in PERSONS.items() for person, cells in enumerate(persons, 1) for i in cells)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuhk03")
    write_raw_mat(root / "cuhk03_release" / "cuhk-03.mat")
    counts = datasets.prepare_cuhk03(root)
    return root, counts


def test_prepare_extracts_community_names_and_pixels(prepared):
    root, counts = prepared
    n = len(expected_names())
    assert counts == {"labeled": (n, 0, root / "images_labeled"), "detected": (n, 0, root / "images_detected")}
    for variant in ("labeled", "detected"):
        assert sorted(p.name for p in (root / f"images_{variant}").iterdir()) == expected_names()
    image = read_rgb(root / "images_detected" / "1_003_2_07.png")
    assert np.array_equal(image, person_images("detected", 1, 3)[6])
    assert image.shape == (12, 3, 3)  # (6 + 6, 3 + 6 % 3)
    assert datasets.prepare_cuhk03(root, variants=("labeled",)) == {"labeled": (0, n, root / "images_labeled")}


def test_prepare_nested_folder_matches_reader(tmp_path):
    write_raw_mat(tmp_path / "cuhk03" / "cuhk03_release" / "cuhk-03.mat", variants=("detected",))
    counts = datasets.prepare_cuhk03(tmp_path, variants=("detected",))
    assert counts["detected"][2] == tmp_path / "cuhk03" / "images_detected"
    write_protocol(tmp_path / "cuhk03", "detected")
    assert len(datasets.load("cuhk03_detected", tmp_path).train) == 24


def write_protocol(root, variant, integers=False):
    """A new-protocol split file over the extracted images: persons of pair 1 train, pair 2 test.

    The published files declare doubles stored as integers, which scipy returns as uint16
    (labels, indices) and uint8 (camId): ``integers`` writes those types."""
    files = expected_names()
    labels = [int(name[0]) * 100 + int(name[2:5]) for name in files]  # global person label
    cams = [int(name.split("_")[2]) for name in files]
    train = [i + 1 for i, f in enumerate(files) if f.startswith("1_")]
    test = [i for i, f in enumerate(files) if f.startswith("2_")]
    query = [i + 1 for i in test if files[i].split("_")[3] in ("01.png", "06.png", "03.png")]
    gallery = [i + 1 for i in test if i + 1 not in query]
    filelist = np.empty((len(files), 1), dtype=object)
    filelist[:, 0] = files
    number, camera = (np.uint16, np.uint8) if integers else (float, float)
    savemat(root / f"cuhk03_new_protocol_config_{variant}.mat", {
        "filelist": filelist, "labels": np.array(labels, number)[:, None], "camId": np.array(cams, camera)[:, None],
        "train_idx": np.array(train, number)[:, None], "query_idx": np.array(query, number)[:, None],
        "gallery_idx": np.array(gallery, number)[:, None],
    })


@pytest.mark.parametrize("integers", [False, True])
@pytest.mark.parametrize("name, options, variant", [
    ("cuhk03", {}, "labeled"), ("cuhk03", {"variant": "detected"}, "detected"),
    ("cuhk03_labeled", {}, "labeled"), ("cuhk03_detected", {"variant": "detected"}, "detected"),
])
def test_protocol_reader(prepared, name, options, variant, integers):
    root, _ = prepared
    write_protocol(root, variant, integers)
    ds = datasets.load(name, root, **options)
    assert ds.name == f"cuhk03_{variant}" and ds.root == root
    assert ds.stats("train") == (3, 24, 2)
    assert sorted({pid for _, pid, _ in ds.train}) == [0, 1, 2]
    assert ("images_%s/1_003_2_07.png" % variant, 2, 1) in ds.train
    assert ds.query == [(f"images_{variant}/2_001_1_01.png", 201, 0), (f"images_{variant}/2_001_2_06.png", 201, 1),
                        (f"images_{variant}/2_002_1_03.png", 202, 0)]
    assert sorted(ds.gallery) == [(f"images_{variant}/2_001_1_05.png", 201, 0),
                                  (f"images_{variant}/2_001_2_10.png", 201, 1),
                                  (f"images_{variant}/2_002_2_08.png", 202, 1)]
    assert ds.unmatched_queries() == ([], [])


def test_protocol_bad_input(prepared, tmp_path):
    root, _ = prepared
    with pytest.raises(DatasetError, match="cuhk03_labeled means variant='labeled'; got variant='detected'"):
        datasets.load("cuhk03_labeled", root, variant="detected")
    with pytest.raises(DatasetError, match="variant 'both' is not one of labeled, detected"):
        datasets.load("cuhk03", root, variant="both")
    with pytest.raises(DatasetError, match="cuhk03_labeled: expected the split file cuhk03_new_protocol_config_labeled"
                       r".mat in .*; found nothing \(expected .* and images_labeled/ .*prepare-cuhk03"):
        datasets.load("cuhk03", tmp_path)
    with pytest.raises(DatasetError, match=r"cuhk03_detected: dataset root \S*nowhere does not exist \(expected "
                       r"cuhk03_new_protocol_config_detected.mat \(the 767/700 split.*images_detected/"):
        datasets.load("cuhk03_detected", tmp_path / "nowhere")
    (tmp_path / "cuhk03_new_protocol_config_labeled.mat").write_text("not a mat file")
    with pytest.raises(DatasetError, match="cannot read split file .*cuhk03_new_protocol_config_labeled.mat"):
        datasets.load("cuhk03", tmp_path)
    savemat(tmp_path / "cuhk03_new_protocol_config_labeled.mat", {"labels": np.ones((2, 1))})
    with pytest.raises(DatasetError, match="lacks the field.* filelist, camId, train_idx"):
        datasets.load("cuhk03", tmp_path)
    write_protocol(tmp_path, "labeled")
    with pytest.raises(DatasetError, match="images_labeled does not exist.*sanreid datasets prepare-cuhk03"):
        datasets.load("cuhk03", tmp_path)


def test_protocol_camera_out_of_range(tmp_path):
    write_protocol(tmp_path, "detected")
    path = tmp_path / "cuhk03_new_protocol_config_detected.mat"
    from scipy.io import loadmat

    mat = loadmat(path)
    mat["camId"][0, 0] = 3
    savemat(path, {k: v for k, v in mat.items() if not k.startswith("__")})
    with pytest.raises(DatasetError, match="camera 3 of 1_001_1_01.png .* outside the dataset's range 1..2"):
        datasets.load("cuhk03_detected", tmp_path)


def test_prepare_bad_input(tmp_path):
    with pytest.raises(DatasetError, match="expected the raw file cuhk03_release/cuhk-03.mat"):
        datasets.prepare_cuhk03(tmp_path)
    (tmp_path / "cuhk-03.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(DatasetError, match="is not a MATLAB v7.3 .HDF5. file"):
        datasets.prepare_cuhk03(tmp_path)
