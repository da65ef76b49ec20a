import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from pipeline.cli import main
from train_fixtures import TRAIN_SETTINGS, one_thread, train_set  # noqa: F401  (fixtures)

SETTINGS = TRAIN_SETTINGS + ["eval_every=-1", "picture_every=0", "seed=3"]

pytestmark = pytest.mark.usefixtures("one_thread")


def command(root, textures, out, *extra):
    args = ["train", "--dataset", "synth", "--root", str(root), "--textures", str(textures), "--variant", "san",
            "--epochs", "2", "--out", str(out)] + list(extra)
    return args + [a for s in SETTINGS for a in ("--set", s)]


def weights(out):
    return torch.load(out / "last.pt", map_location="cpu", weights_only=True)


@pytest.mark.slow  # two processes each: about 10 s on a quiet 2-core machine
def test_kill_and_resume_gives_the_weights_of_an_uninterrupted_run(train_set, tmp_path):
    root, textures = train_set
    result = CliRunner().invoke(main, command(root, textures, tmp_path / "straight"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    straight = weights(tmp_path / "straight")

    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", "from pipeline.cli import main; main()"]
                            + command(root, textures, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "last.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # in epoch 2, after the checkpoint of epoch 1
    proc.wait()
    proc.stderr.close()
    assert weights(out)["epoch"] == 1

    result = CliRunner().invoke(main, command(root, textures, out, "--resume"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    resumed = weights(out)
    assert resumed["epoch"] == straight["epoch"] == 2
    assert resumed["model"].keys() == straight["model"].keys()
    for name, tensor in straight["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    for opt in ("reid", "texture_encoder", "texture_decoder"):
        a, b = straight["optim"]["optimizers"][opt]["state"], resumed["optim"]["optimizers"][opt]["state"]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k]["exp_avg"], b[k]["exp_avg"]) for k in a)


def test_resume_refuses_other_settings(train_set, tmp_path):
    root, textures = train_set
    out = tmp_path / "run"
    assert CliRunner().invoke(main, command(root, textures, out, "--epochs", "1")).exit_code == 0
    result = CliRunner().invoke(main, command(root, textures, out, "--epochs", "1", "--resume",
                                              "--set", "optim.lr=0.1"))
    assert result.exit_code == 2
    assert "cannot resume" in result.output and "lr" in result.output
