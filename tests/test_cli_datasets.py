"""``sanreid datasets``: list, info and prepare-cuhk03 through click's runner, bad input included."""

import pytest
from click.testing import CliRunner

from pipeline import datasets
from pipeline.cli import main
from test_datasets import make_market
from test_datasets_cuhk03 import expected_names, write_protocol, write_raw_mat


def run(*args):
    result = CliRunner().invoke(main, ["datasets", *map(str, args)])
    return result, result.output


def test_list_shows_every_name_with_standard_statistics():
    result, out = run("list")
    assert result.exit_code == 0, out
    rows = {line.split()[0]: line for line in out.splitlines()[2:-1]}
    assert set(rows) == set(datasets.names())
    assert rows["market1501"].split() == ["market1501", "751", "/", "12936", "750", "/", "3368", "751", "/", "15913",
                                          "6", "data/raw/market1501"]
    assert "1041 / 30248" in rows["msmt17"] and "767 / 7365" in rows["cuhk03_detected"]


def test_info_table_and_warnings(tmp_path):
    root = make_market(tmp_path / "market")
    result, out = run("info", "--dataset", "market1501", "--root", root)
    assert result.exit_code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"market1501 at {root}"
    assert [line.replace("|", " ").split() for line in lines[3:6]] == [
        ["train", "3", "4", "4"], ["query", "4", "4", "3"], ["gallery", "4", "5", "4"]]
    assert "differs from the standard statistics (train 751 ids / 12936 images" in out
    assert "warning: 1 query id(s) (1 images) have no gallery image: 5" in out
    assert "warning: 1 query image(s) of 1 id(s) have gallery matches only in their own camera" in out


def test_info_default_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_market(tmp_path / "data" / "raw" / "market1501")
    result, out = run("info", "--dataset", "market1501")
    assert result.exit_code == 0 and out.startswith("market1501 at data/raw/market1501"), out


@pytest.mark.parametrize("args, message", [
    (["--dataset", "market"], "unknown dataset 'market': expected one of cuhk03,"),
    (["--dataset", "market1501", "--root", "{tmp}/nowhere"], "dataset root {tmp}/nowhere does not exist"),
    (["--dataset", "market1501", "--root", "{tmp}"], "expected bounding_box_train, query, bounding_box_test in {tmp}"),
    (["--dataset", "market1501", "--root", "{tmp}", "--variant", "detected"], "market1501: unknown option(s) variant"),
    (["--dataset", "msmt17", "--root", "{tmp}"], "msmt17: expected train/ and test/ (V1)"),
    (["--dataset", "cuhk03_detected", "--root", "{tmp}"], "cuhk03_new_protocol_config_detected.mat in {tmp}"),
])
def test_info_bad_input_exit_2_without_traceback(tmp_path, args, message):
    result, out = run("info", *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, out
    assert message.format(tmp=tmp_path) in out
    assert "Traceback" not in out and not isinstance(result.exception, datasets.DatasetError)


def test_info_camera_out_of_range(tmp_path):
    root = make_market(tmp_path / "market")
    (root / "bounding_box_train" / "0002_c8s1_000451_03.jpg").write_bytes(b"")
    result, out = run("info", "--dataset", "market1501", "--root", root)
    assert result.exit_code == 2 and "camera 8 of" in out and "outside the dataset's range 1..6" in out


def test_info_compares_with_the_variant_statistics(tmp_path):
    write_raw_mat(tmp_path / "cuhk03_release" / "cuhk-03.mat", variants=("detected",))
    datasets.prepare_cuhk03(tmp_path, variants=("detected",))
    write_protocol(tmp_path, "detected")
    result, out = run("info", "--dataset", "cuhk03", "--variant", "detected", "--root", tmp_path)
    assert result.exit_code == 0, out
    assert out.splitlines()[0] == f"cuhk03_detected at {tmp_path}"
    assert "train 767 ids / 7365 images" in out and "gallery 700 ids / 5332 images" in out


def test_info_unreadable_split_file(tmp_path):
    (tmp_path / "cuhk03_new_protocol_config_labeled.mat").write_bytes(b"\x00" * 40)
    result, out = run("info", "--dataset", "cuhk03", "--root", tmp_path)
    assert result.exit_code == 2 and "cannot read split file" in out and "Traceback" not in out


def test_prepare_cuhk03(tmp_path):
    write_raw_mat(tmp_path / "cuhk03_release" / "cuhk-03.mat")
    n = len(expected_names())
    result, out = run("prepare-cuhk03", "--root", tmp_path, "--variant", "detected")
    assert result.exit_code == 0, out
    expected = f"detected: {n} images written, 0 already present in {tmp_path}/images_detected"
    assert result.stdout.splitlines() == [expected]  # progress bars and logs go to stderr
    assert sorted(p.name for p in (tmp_path / "images_detected").iterdir()) == expected_names()
    assert not (tmp_path / "images_labeled").exists()


def test_prepare_cuhk03_bad_input(tmp_path):
    result, out = run("prepare-cuhk03", "--root", tmp_path)
    assert result.exit_code == 2 and "expected the raw file cuhk03_release/cuhk-03.mat" in out
    write_raw_mat(tmp_path / "raw.mat", variants=("labeled",))
    result, out = run("prepare-cuhk03", "--root", tmp_path, "--mat", tmp_path / "raw.mat", "--variant", "detected")
    assert result.exit_code == 2 and "has no 'detected' cell array" in out and "Traceback" not in out


@pytest.mark.parametrize("args, name", [
    (["--dataset", "cuhk03"], "cuhk03_labeled"),
    (["--dataset", "cuhk03", "--variant", "detected"], "cuhk03_detected"),
    (["--dataset", "cuhk03_detected"], "cuhk03_detected"),
])
def test_gen_textures_without_cuhk03_says_where_it_looked_and_what_it_expects(tmp_path, monkeypatch, args, name):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["gen-textures", *args])
    variant = name.split("_")[1]
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"{name}: dataset root data/raw/cuhk03 does not exist" in result.output
    assert f"cuhk03_new_protocol_config_{variant}.mat (the 767/700 split" in result.output
    assert f"images_{variant}/ (extracted from cuhk03_release/cuhk-03.mat" in result.output
