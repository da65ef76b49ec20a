"""Export: the inference encoder alone, same features as the training model, from checkpoints and the CLI."""

import importlib.util

import pytest
import torch
from click.testing import CliRunner

from densepose_textures.errors import InputError
from pipeline.cli import main
from train.checkpoint import strip_prefixes
from train.export import load_encoder, save_encoder
from train.model import SAN

PREPROCESS = {"height": 64, "width": 32, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@pytest.fixture(scope="module")
def trained_san():
    """A SAN whose BN statistics and weights moved away from their initial values."""
    torch.manual_seed(0)
    model = SAN(num_classes=4, backbone="resnet18", head="embedding", texture_size=8)
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 32))  # train-mode pass: BN running statistics move
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model.eval()


def checkpoint_of(model, path, prefix=""):
    state = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({"model": state, "model_args": model.model_args, "preprocess": PREPROCESS, "epoch": 3,
                "optimizers": {"reid": {"state": {}, "param_groups": []}},
                "rng": {"torch": torch.get_rng_state()}}, path)
    return path


def test_exported_encoder_has_no_decoder_and_same_features(trained_san, tmp_path):
    path = tmp_path / "model.pt"
    save_encoder(trained_san, PREPROCESS, path)
    record = torch.load(path, weights_only=True)
    assert set(record) == {"encoder", "model_args", "preprocess"}
    assert record["model_args"]["texture_size"] is None
    assert not any("decoder" in k for k in record["encoder"])
    decoder_params = sum(p.numel() for p in trained_san.decoder.parameters())
    stored = sum(v.numel() for k, v in record["encoder"].items() if "running" not in k and "num_batches" not in k)
    assert stored == sum(p.numel() for p in trained_san.parameters()) - decoder_params
    encoder, preprocess = load_encoder(path)
    assert preprocess == PREPROCESS and not encoder.training
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(encoder(x), trained_san(x))


@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod.module."])
def test_load_encoder_from_training_checkpoint(trained_san, tmp_path, prefix):
    path = checkpoint_of(trained_san, tmp_path / "last.pt", prefix)
    encoder, preprocess = load_encoder(path)
    assert preprocess == PREPROCESS
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(encoder(x), trained_san(x))


def test_strip_prefixes_of_wrappers_nested_in_any_order():
    state = {"module._orig_mod.a": 1, "_orig_mod.module.b": 2, "c": 3, "x.module.d": 4}
    assert strip_prefixes(state) == {"a": 1, "b": 2, "c": 3, "x.module.d": 4}
    assert list(strip_prefixes({"backbone.conv1": 5}, ("module.", "backbone."))) == ["conv1"]
    assert list(state) == ["module._orig_mod.a", "_orig_mod.module.b", "c", "x.module.d"]  # a copy


def test_save_encoder_accepts_the_encoder_alone(trained_san, tmp_path):
    save_encoder(trained_san.encoder, PREPROCESS, tmp_path / "enc.pt")
    encoder, _ = load_encoder(tmp_path / "enc.pt")
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(encoder(x), trained_san.encoder(x))


def test_load_encoder_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_encoder(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(1)}, junk)
    with pytest.raises(InputError, match="junk.pt is neither"):
        load_encoder(junk)
    other = tmp_path / "other.pt"
    model = SAN(num_classes=4, backbone="resnet18")
    torch.save({"encoder": model.encoder.state_dict(), "model_args": dict(model.model_args, num_classes=9),
                "preprocess": PREPROCESS}, other)
    with pytest.raises(InputError, match="do not match model_args"):
        load_encoder(other)
    with pytest.raises(InputError, match="preprocess"):
        save_encoder(model, {"height": 64}, tmp_path / "x.pt")


def test_cli_export(trained_san, tmp_path):
    (tmp_path / "run").mkdir()
    ckpt = checkpoint_of(trained_san, tmp_path / "run" / "last.pt")
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(ckpt)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "model.pt").is_file() and "512-d" in result.output
    out = tmp_path / "exported" / "enc.pt"
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(ckpt), "--out", str(out)])
    assert result.exit_code == 0, result.output
    encoder, _ = load_encoder(out)
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(encoder(x), trained_san(x))
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(tmp_path / "missing.pt")])
    assert result.exit_code == 2 and "not found" in result.output and "Traceback" not in result.output


HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript"))


@pytest.mark.skipif(HAVE_ONNX, reason="checks the message shown when onnx/onnxscript are absent")
def test_cli_onnx_without_the_extra_is_a_clean_error(trained_san, tmp_path):
    ckpt = checkpoint_of(trained_san, tmp_path / "last.pt")
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(ckpt), "--onnx"])
    assert result.exit_code == 2 and "san-reid[export]" in result.output


@pytest.mark.skipif(not HAVE_ONNX, reason="ONNX export needs the export extra: pip install 'san-reid[export]'")
def test_onnx_export_runs(trained_san, tmp_path):
    import onnx

    written = save_encoder(trained_san, PREPROCESS, tmp_path / "model.pt", onnx=True)
    onnx_path = tmp_path / "model.onnx"
    assert onnx_path in written
    graph = onnx.load(str(onnx_path))
    onnx.checker.check_model(graph)
    from onnx.reference import ReferenceEvaluator

    x = torch.randn(3, 3, 64, 32)  # another batch size than the export's example
    (features,) = ReferenceEvaluator(graph).run(None, {"images": x.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(features), trained_san(x), atol=1e-4)


def test_bnneck_baseline_round_trip(tmp_path):
    torch.manual_seed(3)
    model = SAN(num_classes=5, backbone="resnet18", head="bnneck")
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 32))  # BN statistics of the neck move away from (0, 1)
    model.eval()
    save_encoder(model, PREPROCESS, tmp_path / "model.pt")
    encoder, _ = load_encoder(tmp_path / "model.pt")
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        features = encoder(x)
        assert features.shape == (2, 512) and torch.equal(features, model(x))
