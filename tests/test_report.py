"""The pipeline's report helpers: test-set digests (the evaluation stages' data dependency)."""

import json
import shutil

import pytest
from click.testing import CliRunner

from pipeline import datasets
from pipeline.cli import main
from pipeline.report import digest_test_splits


def _digest(root):
    return digest_test_splits(datasets.load("synth", root))


def test_digest_follows_the_test_images_and_nothing_else(synth_root, tmp_path):
    root = tmp_path / "synth"
    shutil.copytree(synth_root, root)
    before = _digest(root)
    assert before["query"] and before["gallery"]

    train_image = next((root / "bounding_box_train").iterdir())
    train_image.write_bytes(train_image.read_bytes() + b"\0")
    assert _digest(root) == before  # the training split is not the evaluation's input

    query_image = sorted((root / "query").iterdir())[0]
    data = query_image.read_bytes()
    query_image.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert _digest(root)["sha256"] != before["sha256"]  # same names, other bytes

    query_image.write_bytes(data)
    assert _digest(root) == before
    query_image.rename(root / "bounding_box_test" / query_image.name)  # one image moved to the gallery
    moved = _digest(root)
    assert (moved["query"], moved["gallery"]) == (before["query"] - 1, before["gallery"] + 1)
    assert moved["sha256"] != before["sha256"]


def test_test_digest_command_writes_one_entry_per_test_set(synth_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/raw/synth").symlink_to(synth_root)
    (tmp_path / "params.yaml").write_text("experiments:\n  synth: {test: [synth]}\n")
    result = CliRunner().invoke(main, ["test-digest", "--dataset", "synth"])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "data/metrics/runs/synth/test-data.json").read_text())
    assert written == {"synth": _digest(synth_root)}

    result = CliRunner().invoke(main, ["test-digest", "--dataset", "market1501"])
    assert result.exit_code == 2 and "no experiment trains on 'market1501'" in result.output


def _write_run(root, train, variant, seed, test, cmc, cmc_rerank):
    folder = root / "data/metrics/runs" / train / variant / f"seed{seed}" / test
    folder.mkdir(parents=True)
    rows = [{"rank": r + 1, "cmc": c, "cmc_rerank": rr} for r, (c, rr) in enumerate(zip(cmc, cmc_rerank))]
    (folder / "cmc.json").write_text(json.dumps({"cmc": rows}))


def test_one_cmc_plot_per_experiment_compares_the_variants(tmp_path, monkeypatch):
    from train.evaluation import pictures

    from pipeline.params import Experiment
    from pipeline.report import write_cmc_files

    monkeypatch.chdir(tmp_path)
    _write_run(tmp_path, "market1501", "baseline", 0, "partial_reid", [0.5, 0.7, 0.9], [0.6, 0.8, 0.9])
    _write_run(tmp_path, "market1501", "baseline", 1, "partial_reid", [0.3, 0.5, 0.7], [0.4, 0.6, 0.7])
    _write_run(tmp_path, "market1501", "san", 0, "partial_reid", [0.6, 0.8, 1.0], [0.7, 0.9, 1.0])
    drawn = {}
    monkeypatch.setattr(pictures, "plot_cmc", lambda path, curves, title="": drawn.update(
        {path.name: (sorted(curves), title)}) or path.write_bytes(b"png"))

    write_cmc_files({"market1501": Experiment(test=["partial_reid", "market1501"])}, [0, 1], ["baseline", "san"],
                    tmp_path / "cmc")

    name = "trained-on-market1501-tested-on-partial_reid"
    assert sorted(p.name for p in (tmp_path / "cmc").iterdir()) == [f"{name}.json", f"{name}.png"]  # no runs: no plot
    rows = json.loads((tmp_path / "cmc" / f"{name}.json").read_text())
    assert rows[0] == {"rank": 1, "baseline": 40.0, "baseline re-ranked": 50.0, "SAN": 60.0, "SAN re-ranked": 70.0}
    assert [row["rank"] for row in rows] == [1, 2, 3]
    labels, title = drawn[f"{name}.png"]
    assert labels == ["SAN", "SAN re-ranked", "baseline", "baseline re-ranked"]
    assert title == "CMC: trained on market1501, tested on partial_reid (mean of seeds 0, 1)"


def _write_summary(root, train, variant, seed, mAP, rank1):
    path = root / "data/metrics/runs" / train / variant / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"synth": {"plain": {"mAP": mAP, "rank1": rank1}}}))


def test_paired_differences_judge_each_variant_against_the_baseline_of_the_same_seed(tmp_path, monkeypatch):
    from pipeline.report import collect, paired_differences

    monkeypatch.chdir(tmp_path)
    base = {0: (0.30, 0.50), 1: (0.40, 0.60), 2: (0.50, 0.70)}  # seeds differ by 10 points
    for seed, (mAP, rank1) in base.items():
        _write_summary(tmp_path, "synth", "baseline", seed, mAP, rank1)
        _write_summary(tmp_path, "synth", "san", seed, mAP + 0.02 + 0.001 * seed, rank1)  # +2.0, +2.1, +2.2
        _write_summary(tmp_path, "synth", "san-noisy", seed, mAP + (0.05, -0.04, 0.02)[seed], rank1 + 0.01)
        _write_summary(tmp_path, "synth", "san-rank1", seed, mAP + 0.03, rank1 - 0.01)
    _write_summary(tmp_path, "synth", "san-one", 0, 0.9, 0.9)
    variants = ["baseline", "san", "san-noisy", "san-rank1", "san-one"]
    table, seeds = collect({"synth": None}, [0, 1, 2, 3], variants)
    assert seeds == [0, 1, 2]
    rows = {line.split(" | ")[2]: line for line in paired_differences(table, variants).splitlines()[2:]}
    assert rows["san"] == ("| synth | synth | san | 3 | +2.1 ± 0.1 | – | +0.0 ± 0.0 | **beats the baseline** (mAP gain > 2 sd, "
                           "Rank-1 not lower) |")  # –: no per-query files
    assert "+1.0 ± 4.6" in rows["san-noisy"] and "no clear gain (within 2 sd)" in rows["san-noisy"]
    assert "mAP gain > 2 sd, but Rank-1 falls" in rows["san-rank1"]
    assert "| 1 | +60.0 |" in rows["san-one"] and "one paired seed: no spread" in rows["san-one"]
    assert "baseline" not in rows


def _write_per_query(root, variant, seed, pids, aps):
    folder = root / "data/metrics/runs/synth" / variant / f"seed{seed}" / "synth"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["key,pid,camid,ap,first_rank"] + [f"q{i}.jpg,{p},0,{a},1" for i, (p, a) in enumerate(zip(pids, aps))]
    (folder / "per_query.csv").write_text("\n".join(lines + ["q-none.jpg,999,0,,"]) + "\n")  # one query with no match


def test_test_set_sd_is_the_bootstrap_spread_of_the_paired_difference_over_test_identities(tmp_path, monkeypatch):
    import numpy as np

    from pipeline.report import test_set_sd

    monkeypatch.chdir(tmp_path)
    pids = np.repeat(np.arange(100), 2)  # 100 test identities, two queries each
    base = np.linspace(0.2, 0.8, 200)
    for seed in (0, 1):
        _write_per_query(tmp_path, "baseline", seed, pids, base)
        _write_per_query(tmp_path, "san-even", seed, pids, base + 0.05)  # the same gain on every identity
        _write_per_query(tmp_path, "san", seed, pids, base + np.where(pids % 2, 0.1, -0.1))  # +-10 points
    assert test_set_sd("synth", "synth", "san-even", [0, 1]) == pytest.approx(0.0, abs=1e-9)
    # identity differences of +-10 points: the mean over 100 drawn identities has sd 10 / sqrt(100) = 1
    assert test_set_sd("synth", "synth", "san", [0, 1]) == pytest.approx(1.0, rel=0.1)
    assert test_set_sd("synth", "synth", "san", [0, 1, 2]) is None  # seed 2 was not evaluated
