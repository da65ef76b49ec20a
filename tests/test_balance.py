import json
import math

import pytest
import torch
from click.testing import CliRunner

from pipeline.cli import main
from train.balance import GradientShares, backbone_gradient_norms
from train.model import SAN
from train.model.decoder import scale_gradient
from train.objective import SANObjective
from train_fixtures import TRAIN_SETTINGS, one_thread, train_set  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("one_thread")


def san_losses(model, seed=0):
    """Losses of ``model`` (joint weighting) on a fixed random P4 x K2 batch with random targets."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(8, 3, 64, 32, generator=g)
    pids = torch.arange(4).repeat_interleave(2)
    objective = SANObjective(model, label_smoothing=0.1, triplet_margin=0.3, texture_weight=1.0, tr_weight=1.0,
                             tr_margin=0.3).train()
    if model.decoder is None:
        return objective(images, pids)[0]
    h, w = model.decoder.output_size
    target = torch.rand(8, 3, h, w, generator=g) * 2 - 1
    return objective(images, pids, target, torch.ones(8, 1, h, w), torch.zeros(8, 1, h, w, dtype=torch.uint8))[0]


def small_san(decoder=True):
    torch.manual_seed(0)
    return SAN(num_classes=4, backbone="resnet18", texture_size=8 if decoder else None)


def test_scale_gradient_scales_only_the_backward_pass():
    x = torch.randn(3, 4, requires_grad=True)
    y = scale_gradient(x, torch.tensor(5.0))
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert torch.equal(x.grad, 5.0 * torch.arange(4.0).expand(3, 4))


def test_backbone_norms_are_each_losss_own_gradient_norm():
    model = small_san()
    losses = san_losses(model)
    params = list(model.encoder.backbone.parameters())
    norms = backbone_gradient_norms(losses, params)
    assert set(norms) == {"id", "triplet", "texture", "tr"}
    for name, loss in losses.items():
        model.zero_grad()
        loss.backward(retain_graph=True)
        expected = torch.sqrt(sum(p.grad.pow(2).sum() for p in params if p.grad is not None)).item()
        assert norms[name] == pytest.approx(expected, rel=1e-5), name


def test_the_encoder_gain_scales_what_reaches_the_backbone_and_nothing_else():
    model = small_san()
    decoder_params = list(model.decoder.parameters())
    base = backbone_gradient_norms(san_losses(model), list(model.encoder.backbone.parameters()))
    texture_grads = torch.autograd.grad(san_losses(model)["texture"], decoder_params)
    model.decoder.encoder_gain.fill_(10.0)
    scaled = backbone_gradient_norms(san_losses(model), list(model.encoder.backbone.parameters()))
    assert scaled["texture"] == pytest.approx(10 * base["texture"], rel=1e-4)
    assert scaled["tr"] == pytest.approx(10 * base["tr"], rel=1e-4)
    assert scaled["id"] == pytest.approx(base["id"], rel=1e-6)
    for a, b in zip(texture_grads, torch.autograd.grad(san_losses(model)["texture"], decoder_params)):
        assert torch.allclose(a, b)


def test_shares_are_measured_every_n_steps_and_averaged_per_epoch():
    model = small_san()
    shares = GradientShares(model, every=2)
    for seed in range(5):  # steps 0, 2, 4 are measured
        shares.step(san_losses(model, seed))
    params = list(model.encoder.backbone.parameters())
    expected = [backbone_gradient_norms(san_losses(model, seed), params)["id"] for seed in (0, 2, 4)]
    means = shares.end_epoch()
    assert means["grad/id"] == pytest.approx(sum(expected) / 3, rel=1e-5)
    assert sum(means[f"share/{n}"] for n in ("id", "triplet", "texture", "tr")) == pytest.approx(1.0)
    assert means["decoder/encoder_gain"] == 1.0  # no target: measured only
    assert shares.end_epoch() == {"decoder/encoder_gain": 1.0}  # a fresh epoch


def test_the_gain_reaches_the_target_share():
    model = small_san()
    measured = GradientShares(model, every=1)
    measured.step(san_losses(model))
    before = measured.end_epoch()
    target = (before["share/texture"] + before["share/tr"]) / 2

    shares = GradientShares(model, every=1, decoder_share=target, rate=1.0)
    shares.step(san_losses(model))  # the decoder's norms are proportional to the gain: one full step lands on it
    gain = shares.end_epoch()["decoder/encoder_gain"]
    shares.step(san_losses(model))
    after = shares.end_epoch()
    assert after["share/texture"] + after["share/tr"] == pytest.approx(target, rel=1e-3)
    assert gain < 1 and after["decoder/encoder_gain"] == pytest.approx(gain, rel=1e-4)


def test_a_share_target_needs_a_decoder_share_below_one():
    with pytest.raises(ValueError, match="decoder_share"):
        GradientShares(small_san(), every=1, decoder_share=1.0)


def train(root, textures, out, *extra):
    args = ["train", "--dataset", "synth", "--root", str(root), "--variant", "san", "--textures", str(textures),
            "--epochs", "1", "--out", str(out)]
    settings = TRAIN_SETTINGS + ["optim.profile=joint", "eval_every=-1", "picture_every=0"] + list(extra)
    result = CliRunner().invoke(main, args + [a for s in settings for a in ("--set", s)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return torch.load(out / "last.pt", map_location="cpu", weights_only=True)


def test_measuring_does_not_change_training_and_shares_reach_dvclive(train_set, tmp_path):
    root, textures = train_set
    unmeasured = train(root, textures, tmp_path / "off", "balance.every=0", "balance.decoder_share=0")
    measured = train(root, textures, tmp_path / "on", "balance.every=2", "balance.decoder_share=0")
    for name, tensor in unmeasured["model"].items():
        assert torch.equal(measured["model"][name], tensor), name
    metrics = json.loads((tmp_path / "on" / "dvclive" / "metrics.json").read_text())
    assert set(metrics["share"]) == {"id", "triplet", "texture", "tr"}
    assert metrics["grad"]["id"] > 0 and metrics["decoder"]["encoder_gain"] == 1.0
    assert "share" not in json.loads((tmp_path / "off" / "dvclive" / "metrics.json").read_text())


def test_a_target_share_moves_the_gain_in_training_and_is_checkpointed(train_set, tmp_path):
    root, textures = train_set
    train(root, textures, tmp_path / "measured", "balance.every=1", "balance.decoder_share=0")
    record = train(root, textures, tmp_path / "balanced", "balance.every=1", "balance.decoder_share=0.3")
    gain = record["model"]["decoder.encoder_gain"].item()

    def decoder_share(run):
        metrics = json.loads((tmp_path / run / "dvclive" / "metrics.json").read_text())
        return metrics["share"]["texture"] + metrics["share"]["tr"], metrics["decoder"]["encoder_gain"]

    (measured, one), (_, logged_gain) = decoder_share("measured"), decoder_share("balanced")
    assert one == 1.0 and logged_gain == pytest.approx(gain) and abs(math.log(gain)) > 0.1
    assert (gain < 1) == (measured > 0.3)  # toward the target (the unit test above shows it lands there)
