"""The whole DVC pipeline, with tiny parameters, in a throwaway git repository made from this tree."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
    "data/metrics/cmc/synth-san-seed0-synth.json",
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
    root = tmp_path_factory.mktemp("pipeline") / "project"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    params = _merge(yaml.safe_load((root / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "tiny pipeline"], root, env)
    first = _run(["dvc", "repro"], root, env)
    return root, env, first


def test_repro_makes_every_output_and_then_does_nothing(project):
    root, env, first = project
    assert {"synth", "iuv@synth", "textures@synth", "train-baseline@synth-0", "train-san@synth-0",
            "evaluate@synth-baseline-0", "evaluate@synth-san-0", "report"} <= _stages_run(first)
    missing = [name for name in OUTPUTS if not (root / name).exists()]
    assert not missing, f"missing outputs: {missing}"
    report = (root / "data/metrics/report.md").read_text()
    assert "| synth | synth | baseline | 1 |" in report and "| synth | synth | san | 1 |" in report
    assert "observed" in report  # the texture-quality table of the synthetic set
    second = _run(["dvc", "repro"], root, env)
    assert not _stages_run(second), second
    shown = _run(["dvc", "metrics", "show"], root, env)
    assert "seed0.json" in shown


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
    assert rerun == {"textures@synth", "train-san@synth-0", "evaluate@synth-san-0", "report"}, rerun


def test_pushed_stages_are_up_to_date_in_another_clone(project, tmp_path):
    root, env, _ = project
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "results", "--allow-empty"], root, env)
    remote = tmp_path / "remote"
    _run(["dvc", "remote", "add", "-d", "shared", str(remote)], root, env)
    _run(["git", "commit", "-qam", "remote"], root, env)
    _run(["dvc", "push", "--run-cache"], root, env)

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    _run(["dvc", "pull", "--run-cache"], clone, env)
    status = _run(["dvc", "status", "iuv@synth", "textures@synth"], clone, env)
    assert "up to date" in status, status
    reused = _run(["sanreid", "gen-textures", "--dataset", "synth"], clone, env)
    assert "reused" in reused, reused
