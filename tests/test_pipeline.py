"""The whole DVC pipeline, with tiny parameters, in a throwaway git repository made from this tree."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image
from train_fixtures import sigint_as_in_a_terminal

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "synth": {"ids": 8, "images_per_id": 4, "cameras": 2, "texture_size": 16, "jobs": 1},
    "iuv": {"size": [64, 32], "chunk_size": 16, "workers": 1},
    "textures": {"size": 8, "jobs": 1, "chunk_size": 8},
    "train": {
        "data": {"height": 64, "width": 32, "ids_per_batch": 2, "images_per_id": 2, "workers": 0},
        "optim": {"warmup_epochs": 0},
        "epochs": 1,
        "eval_every": -1,
    },
    "eval": {"hardest": 2, "workers": 0, "batch_size": 16},
}

OUTPUTS = [
    "data/raw/synth/textures.h5",
    "data/iuv/synth.h5",
    "data/textures/synth/index.h5",
    "data/models/synth/baseline/seed0/last.pt",
    "data/models/synth/san/seed0/last.pt",
    "data/models/synth/san/seed0/dvclive/metrics.json",
    "data/metrics/runs/synth/baseline/seed0.json",
    "data/metrics/runs/synth/san/seed0/synth/metrics.json",
    "data/metrics/runs/synth/san/seed0/synth/ranklists.jpg",
    "data/metrics/report.md",
    "data/metrics/cmc/trained-on-synth-tested-on-synth.json",
    "data/metrics/cmc/trained-on-synth-tested-on-synth.png",
]


def _merge(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict):
            _merge(base.setdefault(key, {}), value)
        else:
            base[key] = value
    return base


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # sanreid, dvc
    env.update(GIT_AUTHOR_NAME="pipeline test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="pipeline test", GIT_COMMITTER_EMAIL="test@example.invalid",
               DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1")
    return env


def _run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def _stages_run(output):
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git repository holding this tree's tracked files, with tiny parameters, after `dvc repro`."""
    if shutil.which("dvc", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("dvc is not installed beside this Python")
    env = _env()
    root = _tiny_project(tmp_path_factory.mktemp("pipeline") / "project", "params.yaml", TINY, env)
    first = _run(["dvc", "repro"], root, env)
    return root, env, first


def _tiny_project(root, profile, changes, env):
    """A git repository at ``root`` holding this tree's tracked files, ``profile`` as params.yaml with ``changes``."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    params = _merge(yaml.safe_load((REPO / profile).read_text()), changes)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "tiny pipeline"], root, env)
    return root


SANPG_STAGES = {"pairs@synth-pairs", "train-pg@0", "textures-sanpg@synth"}


@pytest.mark.parametrize("profile", ["params.yaml", "profiles/paper.yaml", "profiles/study.yaml", "profiles/sanpg.yaml"])
def test_every_profile_resolves_to_its_stages(profile, tmp_path):
    """dvc.yaml with each profile as params.yaml: the SAN-PG stages exist where the profile lists them (and train
    the generator before the sanpg set that SAN trains on), nowhere else."""
    if shutil.which("dvc", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("dvc is not installed beside this Python")
    env = _env()
    shutil.copy2(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copy2(REPO / profile, tmp_path / "params.yaml")
    _run(["dvc", "init", "--no-scm", "-q"], tmp_path, env)
    stages = set(_run(["dvc", "stage", "list", "--names-only"], tmp_path, env).split())
    assert {"synth", "report"} <= stages, stages
    if profile == "params.yaml":  # the CPU profile: as before SAN-PG, which adds no stage to it
        assert stages == {"synth", "iuv@synth", "textures@synth", "train-baseline@synth-0", "train-san@synth-san-0",
                          "test-data@synth", "evaluate-baseline@synth-0", "evaluate@synth-san-0", "report"}
    elif profile == "profiles/paper.yaml":
        assert not {name for name in stages if "pairs" in name or "pg" in name}, stages
    else:
        seeds = [0] if profile == "profiles/sanpg.yaml" else [0, 1, 2]
        assert SANPG_STAGES | {f"train-san@synth-san-sanpg-{s}" for s in seeds} <= stages, stages
        if profile == "profiles/sanpg.yaml":
            edges = set(re.findall(r'"([^"]+)" -> "([^"]+)"', _run(["dvc", "dag", "--dot"], tmp_path, env)))
            assert {("pairs@synth-pairs", "train-pg@0"), ("train-pg@0", "textures-sanpg@synth"),
                    ("iuv@synth", "textures-sanpg@synth"), ("textures-sanpg@synth", "train-san@synth-san-sanpg-0"),
                    ("textures-sanpg@synth", "report")} <= edges, edges


def test_repro_makes_every_output_and_then_does_nothing(project):
    root, env, first = project
    assert {"synth", "iuv@synth", "textures@synth", "train-baseline@synth-0", "train-san@synth-san-0",
            "evaluate-baseline@synth-0", "evaluate@synth-san-0", "report"} <= _stages_run(first)
    missing = [name for name in OUTPUTS if not (root / name).exists()]
    assert not missing, f"missing outputs: {missing}"
    with Image.open(root / "data/metrics/runs/synth/san/seed0/synth/cmc.png") as png:  # one run's CMC: its title
        assert png.text["Title"] == "trained on synth (san, seed 0), tested on synth"
    report = (root / "data/metrics/report.md").read_text()
    assert "| synth | synth | baseline | 1 |" in report and "| synth | synth | san | 1 |" in report
    assert "observed" in report  # the texture-quality table of the synthetic set
    second = _run(["dvc", "repro"], root, env)
    assert not _stages_run(second), second
    shown = _run(["dvc", "metrics", "show"], root, env)
    assert "seed0.json" in shown
    plots = json.loads(_run(["dvc", "plots", "show", "--json"], root, env))["data"]
    cmc = [name for name in plots if "cmc" in name]
    assert cmc == ["data/metrics/cmc/trained-on-synth-tested-on-synth.json",
                   "data/metrics/cmc/trained-on-synth-tested-on-synth.png"], cmc
    spec = plots[cmc[0]][0]["content"]  # one plot, titled with the experiment, both variants on it
    assert spec["title"]["text"] == cmc[0]
    assert {row["field"] for row in spec["data"]["values"]} >= {"baseline", "SAN"}
    assert "matching rate (%)" in json.dumps(spec)


def test_a_texture_parameter_reruns_only_the_san_branch(project):
    root, env, _ = project
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "first run"], root, env)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["textures"]["fill"] = "pushpull"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    diff = _run(["dvc", "params", "diff"], root, env)
    assert "textures.fill" in diff
    rerun = _stages_run(_run(["dvc", "repro"], root, env))
    assert rerun == {"textures@synth", "train-san@synth-san-0", "evaluate@synth-san-0", "report"}, rerun


def readme_block(marker):
    """The bash block that follows ``<!-- marker ... -->`` in the README (the commands users copy)."""
    text = (REPO / "README.md").read_text()
    found = re.findall(r"<!-- " + re.escape(marker) + r"[^\n]*-->\n```bash\n(.*?)```", text, flags=re.S)
    assert len(found) == 1, f"README.md should hold exactly one block marked {marker!r}, found {len(found)}"
    return found[0]


README_REMOTE = "/mnt/team/san-reid-cache"


def test_readme_sharing_recipe_leaves_a_clone_up_to_date(project, tmp_path):
    """The README's sharing commands, as written, leave another clone with every stage up to date."""
    root, env, _ = project
    first, other = readme_block("sharing: the machine that ran dvc repro"), readme_block("sharing: another machine")
    assert first.count(README_REMOTE) == 1, first  # the only word replaced: the remote folder
    remote = tmp_path / "remote"
    origin = tmp_path / "origin.git"
    _run(["git", "init", "-q", "--bare", str(origin)], tmp_path, env)
    _run(["git", "remote", "add", "origin", str(origin)], root, env)
    _run(["git", "push", "-q", "-u", "origin", "HEAD"], root, env)

    _run(["bash", "-euo", "pipefail", "-c", first.replace(README_REMOTE, str(remote))], root, env)

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    output = _run(["bash", "-euo", "pipefail", "-c", other], clone, env)
    assert "Data and pipelines are up to date." in output, output
    assert not _stages_run(output), output
    untracked = _run(["git", "status", "--porcelain"], clone, env)
    assert not untracked.strip(), f"the clone sees files git does not track or ignore:\n{untracked}"
    missing = [name for name in OUTPUTS if not (clone / name).exists()]
    assert not missing, f"not pulled: {missing}"
    reused = _run(["sanreid", "gen-textures", "--dataset", "synth"], clone, env)
    assert "reused" in reused and "note: DVC" not in reused, reused  # pulled: DVC has it


def test_readme_recipe_for_a_hand_copied_texture_set(project, tmp_path):
    """A texture set and its IUV store copied by hand into a clone: gen-textures reuses the set and
    says how to record it; the README's commands leave both stages up to date."""
    root, env, _ = project
    block = readme_block("hand-copied texture set")
    assert block.count("SET=market1501") == 1, block  # the only word replaced: which set
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    for name in ("data/raw/synth", "data/iuv/synth.h5", "data/textures/synth"):  # by hand, not dvc pull
        copy = shutil.copytree if (root / name).is_dir() else shutil.copy2
        copy(root / name, clone / name)
    status = _run(["dvc", "status", "textures@synth"], clone, env)
    assert "not in cache:       data/textures/synth" in status, status

    output = _run(["bash", "-euo", "pipefail", "-c", block.replace("SET=market1501", "SET=synth")], clone, env)
    assert "reused data/textures/synth" in output, output
    assert "note: DVC has not recorded data/iuv/synth.h5 (not in cache) and data/textures/synth (not in cache)" \
        in output and "`dvc commit -f iuv@synth textures@synth`" in output, output
    assert "Data and pipelines are up to date." in output and "changed outs" not in output, output
    again = _run(["sanreid", "gen-textures", "--dataset", "synth"], clone, env)
    assert "reused" in again and "note: DVC" not in again, again


def test_a_new_dataset_in_data_raw_reruns_no_evaluation(project):
    """Evaluations depend on the digest of their own test sets: another dataset copied into
    data/raw reruns only the digest stage, whose output does not change."""
    root, env, _ = project
    _run(["dvc", "repro"], root, env)  # whatever earlier tests left out of date
    other = root / "data/raw/another_dataset/query"
    other.mkdir(parents=True)
    (other / "0001_c1_000001.jpg").write_bytes(b"not read by any experiment")
    try:
        status = _run(["dvc", "status"], root, env)
        assert "test-data@synth" in status and "evaluate@" not in status, status
        assert _stages_run(_run(["dvc", "repro"], root, env)) == {"test-data@synth"}
        assert "Data and pipelines are up to date." in _run(["dvc", "status"], root, env)
    finally:
        shutil.rmtree(root / "data/raw/another_dataset")


def _wait_for_new_file(path, proc, before, log, timeout=300):
    """Wait until ``path`` exists as a file other than ``before`` (its inode number), while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_ino != before):
        assert proc.poll() is None, log.read_text()[-4000:]
        assert time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.02)
    return path.stat().st_ino


@pytest.mark.slow  # four dvc repro and a training: about 40 s on a loaded 2-core machine
def test_an_interrupted_training_stage_continues_where_it_stopped(project, tmp_path):
    """`dvc repro` stopped by Ctrl-C, then by kill -9, in a training stage: each rerun continues from the last
    checkpoint, and the stage ends with the weights of its command run without interruption."""
    import torch

    root, env, _ = project
    params_file = root / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["train"].update(epochs=8, checkpoint_every=1)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    stage, out = "train-baseline@synth-0", root / "data/models/synth/baseline/seed0"
    work = out.with_name("seed0.partial")
    try:
        checkpoint, done, log = None, 0, tmp_path / "repro.log"
        for signum in (signal.SIGINT, signal.SIGKILL):  # Ctrl-C reaches the whole foreground process group
            with log.open("w") as sink:
                proc = subprocess.Popen(["dvc", "repro", stage], cwd=root, env=env, stdout=sink, stderr=sink,
                                        start_new_session=True, preexec_fn=sigint_as_in_a_terminal)
                checkpoint = _wait_for_new_file(work / "last.pt", proc, checkpoint, log)
                os.killpg(proc.pid, signum)
                assert proc.wait() != 0
            if done:  # the second run went on from the first one's checkpoint
                assert f"resuming {work.relative_to(root)}/last.pt after epoch {done} of 8" in log.read_text()
            done = torch.load(work / "last.pt", weights_only=True)["epoch"]
            assert 1 <= done < 8
            assert not (out / "last.pt").exists()  # DVC removed the stage's outputs before running it

        output = _run(["dvc", "repro", stage], root, env)
        assert f"resuming {work.relative_to(root)}/last.pt after epoch {done} of 8" in output, output
        assert not work.exists()
        _run(["sanreid", "train", "--dataset", "synth", "--variant", "baseline", "--set", "seed=0",
              "--out", str(tmp_path / "straight")], root, env)
        resumed, straight = (torch.load(path / "last.pt", weights_only=True) for path in (out, tmp_path / "straight"))
        assert resumed["epoch"] == straight["epoch"] == 8
        for name, tensor in straight["model"].items():
            assert torch.equal(resumed["model"][name], tensor), name
        steps = (out / "dvclive/plots/metrics/loss/id.tsv").read_text().splitlines()[1:]
        assert [int(row.split("\t")[0]) for row in steps] == list(range(8))
    finally:
        params_file.write_text(original)


TINY_SANPG = {
    "pairs": {"ids": 8, "image_size": [64, 32], "texture_size": 16, "jobs": 1},
    "train_pg": {"data": {"height": 64, "width": 32, "batch_size": 3, "workers": 0, "holdout": 0.25},
                 "epochs": 1, "picture_every": 1},
}


@pytest.mark.slow  # two dvc repro, a generator's training and a sanpg set: about 50 s on a loaded 2-core machine
def test_sanpg_profile_trains_the_generator_before_its_texture_set(tmp_path):
    """profiles/sanpg.yaml, tiny: `dvc repro textures-sanpg@synth` renders the pairs, trains the generator and builds
    the set with that generator (test_every_profile_resolves_to_its_stages: the set depends on it)."""
    if shutil.which("dvc", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("dvc is not installed beside this Python")
    from densepose_textures.shards import TextureSet
    from train.generator import load_generator

    env = _env()
    root = _tiny_project(tmp_path / "project", "profiles/sanpg.yaml", _merge(TINY_SANPG, TINY), env)
    first = _stages_run(_run(["dvc", "repro", "textures-sanpg@synth"], root, env))
    assert first == {"synth", "pairs@synth-pairs", "train-pg@0", "iuv@synth", "textures-sanpg@synth"}, first
    generator = root / "data/models/sanpg/seed0/last.pt"
    assert (root / "data/models/sanpg/seed0/dvclive/metrics.json").is_file()
    assert list((root / "data/models/sanpg/seed0/pictures").glob("*.png"))
    assert not (root / "data/models/sanpg/seed0.partial").exists()
    ts = TextureSet(root / "data/textures/synth-sanpg")
    assert ts.attrs["source"] == "sanpg" and ts.size == 8 and len(ts) == 16  # the training images (iuv.splits)
    assert ts.attrs["generator_digest"] == load_generator(generator, "cpu").digest
    assert not _stages_run(_run(["dvc", "repro", "textures-sanpg@synth"], root, env))
