import pytest
from click.testing import CliRunner

from densepose_textures.errors import InputError
from pipeline.params import Params, load_params, override, with_options


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = load_params()
    assert params == Params()
    assert params.train.model.backbone == "resnet18"
    assert list(params.experiments) == ["synth"] and params.experiments["synth"].test == ["synth"]


def test_working_directory_file_overrides_defaults(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(
        "textures:\n  size: 48\ntrain:\n  model:\n    backbone: resnet50\n  optim:\n    lr: 1\n"
        "experiments:\n  market1501: {test: [market1501, partial_reid]}\n"
    )
    monkeypatch.chdir(tmp_path)
    params = load_params()
    assert params.textures.size == 48
    assert params.textures.fill == Params().textures.fill
    assert params.train.model.backbone == "resnet50"
    assert params.train.optim.lr == 1.0 and isinstance(params.train.optim.lr, float)
    assert params.experiments["market1501"].test == ["market1501", "partial_reid"]


def test_explicit_file(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("iuv:\n  size: [64, 32]\n")
    assert load_params(path).iuv.size == (64, 32)


@pytest.mark.parametrize(
    "text, message",
    [
        ("textures:\n  sise: 4\n", "unknown setting(s) sise"),
        ("textures:\n  size: big\n", "textures.size: expected int"),
        ("iuv:\n  size: [1, 2, 3]\n", "iuv.size: expected 2 values"),
        ("train: 3\n", "train: expected a mapping"),
        ("- a\n", "expected a mapping of sections"),
    ],
)
def test_bad_files_name_the_setting(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_params(path)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_options_override_both():
    train = Params().train
    changed = override(train, ["model.pretrained=/w/r50.pth", "epochs=3", "loss.provenance_weights=[1, 0.5]"])
    assert changed.model.pretrained == "/w/r50.pth"
    assert changed.epochs == 3
    assert changed.loss.provenance_weights == [1.0, 0.5]
    assert train.epochs == Params().train.epochs  # the original is untouched
    with pytest.raises(InputError, match="unknown setting 'model.depth'"):
        override(train, ["model.depth=3"])
    with pytest.raises(InputError, match="key=value"):
        override(train, ["epochs"])
    assert with_options(Params().textures, size=None, jobs=4).jobs == 4


def test_cli_version_and_bad_params_file(tmp_path):
    from pipeline.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and "sanreid, version" in result.output
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0 and "gen-textures" in result.output


def test_shipped_params_file_is_the_built_in_cpu_profile():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    assert load_params(repo / "params.yaml") == Params()


@pytest.mark.parametrize("profile", ["paper", "study"])
def test_profiles_load(profile):
    from pathlib import Path

    params = load_params(Path(__file__).resolve().parents[1] / "profiles" / f"{profile}.yaml")
    if profile == "paper":
        assert params.train.model.backbone == "resnet50" and params.train.data.height == 256
        assert params.train.optim.profile == "faithful" and params.train.epochs == 300
    else:  # the CPU profile's data, model and schedule, with every variant over 3 seeds
        cpu = Params()
        assert (params.synth, params.iuv, params.textures, params.train) == (cpu.synth, cpu.iuv, cpu.textures, cpu.train)
        assert params.seeds == [0, 1, 2] and params.extra_targets == ["fused", "truth"]
        assert {name: (v.targets, v.set) for name, v in params.variants.items()} == {
            "san": ("per-image", []), "san-fused": ("fused", []), "san-truth": ("truth", []),
            "san-no-tr": ("per-image", ["loss.tr_weight=0"]), "san-tr-only": ("per-image", ["loss.texture_weight=0"])}
