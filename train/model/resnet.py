"""ResNet-18/50 (He et al. 2016) with torchvision's state-dict key names.

The names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ...)
match torchvision's, so ImageNet weights downloaded from torchvision load with
:func:`load_pretrained` (their classifier ``fc`` is ignored: a trunk has none). The stride of
``layer4`` is an option: ``last_stride=1`` keeps a 256x128 input at a 16x8 map,
as reID models do. torchvision itself is never imported.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from densepose_textures.errors import InputError

from ..checkpoint import strip_prefixes
from ..settings import ModelParams

log = logging.getLogger(__name__)


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""

    expansion = 4

    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet trunk: ``forward`` gives the layer4 map, ``forward_stages`` the four stage maps."""

    def __init__(self, block, layers, last_stride):
        super().__init__()
        if last_stride not in (1, 2):
            raise InputError(f"model.last_stride must be 1 or 2, got {last_stride!r}")
        self.cin = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=last_stride)
        self.stage_channels = tuple(c * block.expansion for c in (64, 128, 256, 512))
        self.out_channels = self.stage_channels[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.cin != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.cin, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
            )
        layers = [block(self.cin, planes, stride, downsample)]
        self.cin = planes * block.expansion
        layers += [block(self.cin, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_stages(self, x):
        """(B, 3, H, W) -> [layer1, layer2, layer3, layer4] maps at strides 4, 8, 16, 16 or 32."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)  # (B, 256, H/4, W/4) for ResNet-50
        c2 = self.layer2(c1)  # (B, 512, H/8, W/8)
        c3 = self.layer3(c2)  # (B, 1024, H/16, W/16)
        c4 = self.layer4(c3)  # (B, 2048, H/16, W/16) with last stride 1
        return [c1, c2, c3, c4]

    def forward(self, x):
        return self.forward_stages(x)[-1]


def resnet18(last_stride=ModelParams.last_stride):
    return ResNet(BasicBlock, [2, 2, 2, 2], last_stride)


def resnet50(last_stride=ModelParams.last_stride):
    return ResNet(Bottleneck, [3, 4, 6, 3], last_stride)


BACKBONES = {"resnet18": resnet18, "resnet50": resnet50}


def build_backbone(name, last_stride):
    if name not in BACKBONES:
        raise InputError(f"unknown backbone {name!r} (model.backbone); choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name](last_stride=last_stride)


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: keys loaded, left at their initial value, and not used."""

    path: str
    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)  # "key: file shape vs model shape"
    ignored: list = field(default_factory=list)  # fc.*: the ImageNet classifier

    def summary(self):
        return (
            f"{self.path}: {len(self.loaded)} tensors loaded, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.mismatched)} of another shape, "
            f"{len(self.ignored)} ignored (fc)"
        )


def _unwrap(state, path):
    """A plain state dict from a torchvision file, or from a dict wrapping one."""
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path} does not hold a state dict of tensors; expected torchvision ImageNet ResNet weights")
    return strip_prefixes(state, ("module.", "backbone."))


def load_pretrained(backbone, path, strict=True):
    """Load downloaded ImageNet weights (torchvision key names) into ``backbone``; returns a :class:`LoadReport`.

    ``fc.*`` is ignored. ``num_batches_tracked`` may be absent (older torchvision files).
    With ``strict``, any other missing key or a shape mismatch raises :class:`InputError`;
    unexpected keys are only logged.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pretrained weights {path} not found (model.pretrained); download torchvision's ImageNet "
                         "ResNet weights (e.g. resnet50-0676ba61.pth) and give their path, or leave it empty")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which one
        raise InputError(f"cannot read pretrained weights {path}: {err}") from err
    state = _unwrap(state, path)
    own = backbone.state_dict()
    report = LoadReport(str(path))
    usable = {}
    for key, value in state.items():
        if key.startswith("fc."):
            report.ignored.append(key)
        elif key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.mismatched.append(f"{key}: file {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        else:
            usable[key] = value
    report.loaded = sorted(usable)
    report.missing = sorted(k for k in own if k not in usable and k not in state
                            and not k.endswith("num_batches_tracked"))
    if strict and (report.mismatched or report.missing):
        details = report.mismatched[:5] + [f"missing {k}" for k in report.missing[:5]]
        raise InputError(f"{path} does not fit the {type(backbone).__name__} backbone ({len(report.mismatched)} shape "
                         f"mismatches, {len(report.missing)} missing keys: {'; '.join(details)}); "
                         "check model.backbone matches the weights (resnet18 vs resnet50)")
    backbone.load_state_dict(usable, strict=False)
    log.info("pretrained backbone weights: %s", report.summary())
    if report.unexpected:
        log.warning("pretrained weights %s: %d unexpected keys not used, e.g. %s",
                    path, len(report.unexpected), ", ".join(report.unexpected[:5]))
    return report
