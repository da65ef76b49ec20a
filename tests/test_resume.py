import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from densepose_textures.storage import partial_dir
from pipeline.cli import main
from train_fixtures import TRAIN_SETTINGS, one_thread, sigint_as_in_a_terminal, train_set  # noqa: F401  (fixtures)

SETTINGS = TRAIN_SETTINGS + ["eval_every=-1", "picture_every=0", "seed=3"]

pytestmark = pytest.mark.usefixtures("one_thread")


def command(root, textures, out, *extra):
    args = ["train", "--dataset", "synth", "--root", str(root), "--textures", str(textures), "--variant", "san",
            "--epochs", "2", "--out", str(out)] + list(extra)
    return args + [a for s in SETTINGS for a in ("--set", s)]


def weights(out):
    return torch.load(out / "last.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def straight(train_set, tmp_path_factory):
    """The checkpoint of an uninterrupted two-epoch run (torch on one thread, as in the interrupted runs)."""
    root, textures = train_set
    out = tmp_path_factory.mktemp("straight") / "run"
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = CliRunner().invoke(main, command(root, textures, out))
    finally:
        torch.set_num_threads(previous)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return weights(out)


def assert_same_run(resumed, straight):
    assert resumed["epoch"] == straight["epoch"] == 2
    assert resumed["model"].keys() == straight["model"].keys()
    for name, tensor in straight["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    for opt in ("reid", "texture_encoder", "texture_decoder"):
        a, b = straight["optim"]["optimizers"][opt]["state"], resumed["optim"]["optimizers"][opt]["state"]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k]["exp_avg"], b[k]["exp_avg"]) for k in a)


def logged_steps(out, metric="loss/id"):
    rows = (out / "dvclive" / "plots" / "metrics" / f"{metric}.tsv").read_text().splitlines()[1:]
    return [int(row.split("\t")[0]) for row in rows]


@pytest.mark.slow  # two processes each: about 10 s on a quiet 2-core machine
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_an_interrupted_run_continues_to_the_weights_of_an_uninterrupted_one(train_set, straight, tmp_path, signum):
    root, textures = train_set
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", "from pipeline.cli import main; main()"]
                            + command(root, textures, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=sigint_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not (partial_dir(out) / "last.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signum)  # in epoch 2, after the checkpoint of epoch 1
    assert proc.wait() != 0
    proc.stderr.close()
    assert weights(partial_dir(out))["epoch"] == 1 and not out.exists()

    result = CliRunner().invoke(main, command(root, textures, out))  # the same command: no --resume needed
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert_same_run(weights(out), straight)
    assert not partial_dir(out).exists()
    assert logged_steps(out) == [0, 1]


def test_resume_repairs_a_log_cut_by_a_kill(train_set, straight, tmp_path):
    """A kill while dvclive writes leaves a truncated metrics.json and rows past the checkpoint, some half
    written: resuming keeps the log of the checkpoint's epochs only, and trains on as if never stopped."""
    root, textures = train_set
    out = tmp_path / "run"
    result = CliRunner().invoke(main, command(root, textures, out, "--epochs", "1"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = out / "dvclive" / "metrics.json"
    metrics.write_text(metrics.read_text()[:20])
    for tsv in (out / "dvclive" / "plots" / "metrics").rglob("*.tsv"):
        with tsv.open("a") as f:
            f.write("1\t0.5\n2\t0.2")  # rows of epochs the checkpoint does not hold, the last one cut

    result = CliRunner().invoke(main, command(root, textures, out, "--resume"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert_same_run(weights(out), straight)
    assert logged_steps(out) == logged_steps(out, "lr/reid") == [0, 1]
    summary = json.loads(metrics.read_text())
    assert summary["step"] == 1 and summary["loss"]["id"] != 0.5


def test_resume_refuses_other_settings(train_set, tmp_path):
    root, textures = train_set
    out = tmp_path / "run"
    assert CliRunner().invoke(main, command(root, textures, out, "--epochs", "1")).exit_code == 0
    result = CliRunner().invoke(main, command(root, textures, out, "--epochs", "1", "--resume",
                                              "--set", "optim.lr=0.1"))
    assert result.exit_code == 2
    assert "cannot resume" in result.output and "lr" in result.output
