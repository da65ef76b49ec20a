"""SAN model: ResNet key names and sizes as torchvision's, map shapes of SA-Enc and SA-Dec, pretrained loading."""

import math

import pytest
import torch

from densepose_textures.errors import InputError
from train.model import SAN, load_pretrained, resnet18, resnet50

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# torchvision.models.resnet18().state_dict() key names, in order, written out from its architecture:
# conv1/bn1, four layers of two BasicBlocks (conv1, bn1, conv2, bn2), a 1x1 downsample (conv, BN)
# on the first block of layers 2-4, then fc (the ImageNet classifier, which a trunk has not).
TORCHVISION_RESNET18_KEYS = """
conv1.weight bn1.*
layer1.0.conv1.weight layer1.0.bn1.* layer1.0.conv2.weight layer1.0.bn2.*
layer1.1.conv1.weight layer1.1.bn1.* layer1.1.conv2.weight layer1.1.bn2.*
layer2.0.conv1.weight layer2.0.bn1.* layer2.0.conv2.weight layer2.0.bn2.*
layer2.0.downsample.0.weight layer2.0.downsample.1.*
layer2.1.conv1.weight layer2.1.bn1.* layer2.1.conv2.weight layer2.1.bn2.*
layer3.0.conv1.weight layer3.0.bn1.* layer3.0.conv2.weight layer3.0.bn2.*
layer3.0.downsample.0.weight layer3.0.downsample.1.*
layer3.1.conv1.weight layer3.1.bn1.* layer3.1.conv2.weight layer3.1.bn2.*
layer4.0.conv1.weight layer4.0.bn1.* layer4.0.conv2.weight layer4.0.bn2.*
layer4.0.downsample.0.weight layer4.0.downsample.1.*
layer4.1.conv1.weight layer4.1.bn1.* layer4.1.conv2.weight layer4.1.bn2.*
fc.weight fc.bias
"""


def expected_resnet18_keys():
    keys = []
    for token in TORCHVISION_RESNET18_KEYS.split():
        keys += [token[:-1] + b for b in BN] if token.endswith(".*") else [token]
    return keys


def test_resnet18_state_dict_keys_are_torchvisions():
    assert list(resnet18().state_dict()) + ["fc.weight", "fc.bias"] == expected_resnet18_keys()


def test_parameter_counts_match_torchvision():
    # torchvision's published sizes: resnet18 11,689,512 and resnet50 25,557,032 parameters, with fc
    assert sum(p.numel() for p in resnet18().parameters()) + 512 * 1000 + 1000 == 11_689_512
    r50 = resnet50()
    assert sum(p.numel() for p in r50.parameters()) + 2048 * 1000 + 1000 == 25_557_032
    keys = r50.state_dict()
    assert len(keys) == 320 - 2  # torchvision's 320 less fc.weight and fc.bias
    assert keys["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert keys["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert keys["layer3.5.bn2.running_var"].shape == (256,)


@pytest.mark.parametrize("backbone, channels", [("resnet18", (64, 128, 256, 512)), ("resnet50", (256, 512, 1024, 2048))])
def test_san_map_shapes_at_256x128(backbone, channels):
    torch.manual_seed(0)
    model = SAN(num_classes=7, backbone=backbone, last_stride=1, texture_size=32, decoder_width=1.0)
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        stages = model.encoder.backbone.forward_stages(x)
        assert [tuple(s.shape) for s in stages] == [
            (2, channels[0], 64, 32), (2, channels[1], 32, 16), (2, channels[2], 16, 8), (2, channels[3], 16, 8)]
        out = model(x)
    assert out["feat"].shape == (2, 512)
    assert out["logits"].shape == (2, 7)
    assert out["texture"].shape == (2, 3, 192, 128)  # 6P x 4P, P = 32
    assert [tuple(m.shape) for m in out["dec_maps"]] == [
        (2, 256, 32, 16), (2, 64, 64, 32), (2, 32, 128, 64), (2, 16, 256, 128)]
    model.eval()
    with torch.no_grad():
        feat = model(x)
    assert torch.is_tensor(feat) and feat.shape == (2, 512)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_small_input_last_stride_2_and_odd_sizes(backbone):
    model = SAN(num_classes=3, backbone=backbone, last_stride=2, texture_size=8, decoder_width=1.0)
    for h, w in [(64, 32), (70, 34)]:
        out = model(torch.randn(2, 3, h, w))
        assert out["texture"].shape == (2, 3, 48, 32)
        assert [m.shape[1] for m in out["dec_maps"]] == [256, 64, 32, 16]
        assert all(torch.isfinite(m).all() for m in out["dec_maps"])
    assert model.encoder.backbone.forward_stages(torch.randn(1, 3, 64, 32))[-1].shape[-2:] == (2, 1)


def test_baseline_has_no_decoder_and_bnneck_features():
    model = SAN(num_classes=5, backbone="resnet18", head="bnneck")
    assert model.decoder is None
    x = torch.randn(4, 3, 64, 32)
    out = model(x)
    assert set(out) == {"feat", "logits"}
    assert out["feat"].shape == (4, 512) and out["logits"].shape == (4, 5)
    assert model.encoder.head.classifier.bias is None
    assert not model.encoder.head.bottleneck.bias.requires_grad
    model.eval()
    with torch.no_grad():
        pooled = model.encoder.backbone(x).mean((2, 3))
        expected = model.encoder.head.bottleneck(pooled)
        assert torch.allclose(model(x), expected)


def test_model_args_rebuild_the_model():
    model = SAN(num_classes=4, backbone="resnet18", texture_size=8).eval()
    rebuilt = SAN(**model.model_args)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


def test_decoder_init_xavier_gain_002():
    torch.manual_seed(0)
    decoder = SAN(num_classes=2, backbone="resnet50", texture_size=8, decoder_width=1.0).decoder  # the official decoder
    w = decoder.up1.residual.body[0].weight  # (512, 512, 3, 3)
    expected = 0.02 * math.sqrt(2.0 / (512 * 9 + 512 * 9))
    assert abs(w.std().item() / expected - 1) < 0.05
    assert decoder.reduce[0].in_channels == 2048 and decoder.skip3[0].in_channels == 1024
    assert all(float(m.bias.detach().abs().max()) == 0 for m in decoder.modules() if isinstance(m, torch.nn.Conv2d)
               and m.bias is not None)


def test_bad_settings_raise_input_error():
    with pytest.raises(InputError, match="backbone"):
        SAN(num_classes=3, backbone="resnet34")
    with pytest.raises(InputError, match="head"):
        SAN(num_classes=3, head="arcface")
    with pytest.raises(InputError, match="last_stride"):
        SAN(num_classes=3, last_stride=3)
    with pytest.raises(InputError, match="texture_size"):
        SAN(num_classes=3, texture_size=0)


def test_load_pretrained_ignores_fc_and_reports(tmp_path):
    torch.manual_seed(1)
    source = resnet18()
    state = source.state_dict()
    state.update({"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)})  # torchvision's classifier
    state.pop("bn1.num_batches_tracked")  # old torchvision files lack these
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(state, path)
    model = SAN(num_classes=3, backbone="resnet18", pretrained=str(path))
    assert torch.equal(model.encoder.backbone.layer3[0].conv2.weight, source.layer3[0].conv2.weight)
    assert torch.equal(model.encoder.backbone.bn1.running_var, source.bn1.running_var)
    report = load_pretrained(resnet18(), path)
    assert sorted(report.ignored) == ["fc.bias", "fc.weight"]
    assert report.unexpected == ["extra.weight"] and report.missing == [] and report.mismatched == []
    assert len(report.loaded) == 122 - 2 - 1


def test_load_pretrained_wrong_backbone_or_file(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(resnet50().state_dict(), path)
    with pytest.raises(InputError, match="resnet18 vs resnet50"):
        load_pretrained(resnet18(), path)
    report = load_pretrained(resnet18(), path, strict=False)
    assert report.mismatched and report.unexpected and not report.missing  # same names, other shapes
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in resnet18().state_dict().items() if not k.startswith("layer4.")}, partial)
    with pytest.raises(InputError, match="25 missing keys: missing layer4.0"):
        load_pretrained(resnet18(), partial)
    assert "layer4.1.bn2.running_var" in load_pretrained(resnet18(), partial, strict=False).missing
    with pytest.raises(InputError, match="not found"):
        SAN(num_classes=3, pretrained=str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        load_pretrained(resnet18(), bad)


def test_an_untrained_warp_refiner_returns_the_fill_and_reads_every_input():
    from train.model.refiner import WarpRefiner

    torch.manual_seed(0)
    refiner = WarpRefiner(texture_size=4)
    predicted, filled = torch.rand(2, 3, 24, 16) * 2 - 1, torch.rand(2, 3, 24, 16) * 2 - 1
    steps = torch.randint(0, 5, (2, 1, 24, 16), dtype=torch.uint8)
    assert torch.equal(refiner(predicted, filled, steps), filled)
    (refiner(predicted, filled, steps) - 0.5).abs().mean().backward()
    assert refiner.residual.weight.grad.abs().sum() > 0  # training moves it away from the fill
    with torch.no_grad():
        refiner.residual.weight.normal_()
        out = refiner(predicted, filled, steps)
        assert not torch.equal(out, filled)
        for changed in (refiner(-predicted, filled, steps), refiner(predicted, filled, (steps + 1) % 5)):
            assert not torch.equal(changed, out)  # the prediction and the fill steps both reach the output
    with pytest.raises(ValueError, match="must share"):
        refiner(predicted[:, :, :12], filled, steps)


def test_a_san_with_warp_input_records_it_and_needs_an_atlas():
    net = SAN(num_classes=2, backbone="resnet18", texture_size=4, decoder_width=0.25,
              warp_input={"splat": "nearest", "fill": "nearest"})
    assert net.model_args["warp_input"] == {"splat": "nearest", "fill": "nearest"} and net.refiner is not None
    assert "warp_input" not in SAN(num_classes=2, backbone="resnet18", texture_size=4).model_args
    with pytest.raises(InputError, match="warp_input needs atlas targets"):
        SAN(num_classes=2, backbone="resnet18", texture_size=None, target_size=(8, 4),
            warp_input={"splat": "nearest", "fill": "nearest"})
