import re

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


@pytest.mark.parametrize("profile", ["paper", "study", "sanpg"])
def test_profiles_load(profile):
    from dataclasses import replace
    from pathlib import Path

    params = load_params(Path(__file__).resolve().parents[1] / "profiles" / f"{profile}.yaml")
    cpu = Params()
    if profile == "paper":
        assert params.train.model.backbone == "resnet50" and params.train.data.height == 256
        assert params.train.optim.profile == "faithful" and params.train.epochs == 300
        assert (params.pair_sets, params.generators, params.sanpg_textures) == ([], [], [])
        return
    # the CPU profile's data, model and schedule, SAN-PG's generator of seed 0 for the sanpg targets
    sanpg_textures = replace(cpu.textures, generator="data/models/sanpg/seed0/last.pt")
    synth = replace(cpu.synth, ids=250, test_ids=200) if profile == "study" else cpu.synth  # the same training images
    assert (params.synth, params.iuv, params.textures, params.train) == (synth, cpu.iuv, sanpg_textures, cpu.train)
    assert (params.pairs, params.train_pg) == (cpu.pairs, cpu.train_pg)
    assert (params.pair_sets, params.generators, params.sanpg_textures) == (["synth-pairs"], [0], ["synth"])
    variants = {name: (v.targets, v.set) for name, v in params.variants.items()}
    if profile == "sanpg":  # the CPU profile's baseline and SAN, and SAN on the generator's targets
        assert params.seeds == [0] and params.extra_targets == []
        assert variants == {"san": ("per-image", []), "san-sanpg": ("sanpg", [])}
    else:  # every variant over 3 seeds
        assert params.seeds == [0, 1, 2] and params.extra_targets == ["fused", "truth"]
        assert variants == {
            "san": ("per-image", []), "san-fused": ("fused", []), "san-truth": ("truth", []),
            "san-no-tr": ("per-image", ["loss.tr_weight=0"]), "san-tr-only": ("per-image", ["loss.texture_weight=0"]),
            "san-sanpg": ("sanpg", [])}


SANPG = """
textures: {generator: g.pt}
variants: {san: {targets: per-image}, san-sanpg: {targets: sanpg}}
pair_sets: [synth-pairs]
generators: [0, 1]
sanpg_textures: [synth]
"""


@pytest.mark.parametrize("change, message", [
    ("textures: {generator: ''}", "sanpg_textures needs the generator: set textures.generator"),
    ("textures: {source: sanpg, generator: ''}\nsanpg_textures: []\nvariants: {san: {}}",
     "textures.source: sanpg needs the generator: set textures.generator"),
    ("sanpg_textures: []", "variants.san-sanpg.targets: sanpg needs the sanpg texture set of every training set: "
                           "add synth to sanpg_textures"),
    ("sanpg_textures: [market1501]", "sanpg_textures: 'market1501' is not a training set of experiments"),
    ("variants: {san: {targets: generated}}", "variants.san.targets: 'generated' is not one of per-image, fused, "
                                              "truth, sanpg"),
    ("extra_targets: [sanpg]", "extra_targets: sanpg sets depend on the generator and have their own stage"),
    ("extra_targets: [fuse]", "extra_targets: 'fuse' is not one of per-image, fused, truth"),
    ("pair_sets: [synth]", "pair_sets: 'synth' is not a folder name of its own under data/raw"),
    ("generators: [-1]", "generators: -1 is not a seed"),
])
def test_sanpg_settings_are_checked(tmp_path, change, message):
    import yaml

    settings = yaml.safe_load(SANPG)
    settings.update(yaml.safe_load(change))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(settings))
    with pytest.raises(InputError, match=re.escape(message)):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "good.yaml").write_text(SANPG)  # the settings without the change load
    params = load_params(tmp_path / "good.yaml")
    assert params.variant("san-sanpg").targets == "sanpg" and params.textures.generator == "g.pt"


def test_sanpg_targets_name_their_texture_set():
    from pipeline import paths
    from pipeline.params import TARGETS

    assert TARGETS["sanpg"] == ("sanpg", "none")
    assert paths.texture_set("synth", *TARGETS["sanpg"]) == paths.DATA / "textures" / "synth-sanpg"
    assert paths.texture_set("synth", *TARGETS["fused"]) == paths.DATA / "textures" / "synth-fused"
