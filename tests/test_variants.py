"""SAN variants named in the parameters: what `sanreid train` and the report make of them."""

import pytest
import torch
from click.testing import CliRunner

from pipeline import paths
from pipeline.cli import main
from pipeline.params import TARGETS, load_params
from train_fixtures import TRAIN_SETTINGS, one_thread, train_set  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("one_thread")

PARAMS = """
variants:
  san: {targets: per-image}
  san-tr-only: {targets: fused, set: [loss.texture_weight=0, loss.tr_margin=0.5]}
"""


def test_a_variant_brings_its_settings_and_its_texture_set(train_set, tmp_path, monkeypatch):
    root, textures = train_set
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS)
    params = load_params()
    assert params.variant_names() == ["baseline", "san", "san-tr-only"]
    assert paths.texture_set("synth", *TARGETS[params.variant("san-tr-only").targets]) == paths.DATA / "textures/synth-fused"

    args = ["train", "--dataset", "synth", "--root", str(root), "--variant", "san-tr-only", "--epochs", "0"]
    settings = [a for s in TRAIN_SETTINGS + ["optim.warmup_epochs=1", "eval_every=-1", "loss.tr_margin=0.4"]
                for a in ("--set", s)]
    result = CliRunner().invoke(main, args + settings)
    assert result.exit_code == 2 and "data/textures/synth-fused" in result.output  # its own set, not yet built

    result = CliRunner().invoke(main, args + settings + ["--textures", str(textures)])
    assert result.exit_code == 0, result.output
    record = torch.load(tmp_path / "data/models/synth/san-tr-only/last.pt", map_location="cpu", weights_only=True)
    assert record["run"]["variant"] == "san" and record["model_args"]["texture_size"] == 8
    assert record["run"]["loss"]["texture_weight"] == 0  # the variant's settings
    assert record["run"]["loss"]["tr_margin"] == 0.4  # --set wins over them


def test_an_unknown_variant_is_refused_naming_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS + "\n")
    result = CliRunner().invoke(main, ["train", "--dataset", "synth", "--variant", "san-typo"])
    assert result.exit_code == 2
    assert "unknown variant 'san-typo'; the parameters name: baseline, san, san-tr-only" in result.output

    (tmp_path / "params.yaml").write_text("variants:\n  san: {targets: per-picture}\n")
    result = CliRunner().invoke(main, ["train", "--dataset", "synth", "--variant", "san"])
    assert result.exit_code == 2 and "variants.san.targets: 'per-picture'" in result.output
