"""SA-Dec: regresses the person's texture atlas (DensePose layout, 6P x 4P) from SA-Enc's maps.

As the official release (ConvResDecoder): layer4 reduced to 512 channels plus a
layer3 skip; four up-blocks (residual unit, ReLU, bilinear x2, reflection-padded
3x3 conv) 512 -> 256 -> 64 -> 32 -> 16, with additive skips from layer2 after
block 1 and layer1 after block 2; a reflection-padded 7x7 conv to 3 channels (no
tanh), resized (bilinear) to the atlas image, or to ``output_size`` (H', W'), the size of
a texture set's target images when they are not atlases (an imported release). Channel counts of the skips come from the
backbone, so ResNet-18 works too. ``width`` multiplies every channel count (0.5: about a quarter
of the decoder's compute). Init: Xavier-normal, gain 0.02 (``official``), or PyTorch's
default (``standard``).

The encoder's maps enter through :func:`scale_gradient` with the buffer ``encoder_gain``: the
forward pass is unchanged, and the gradient the decoder's losses send back into the encoder is
multiplied by the gain (1: the official behaviour). :mod:`train.balance` sets it.

Shapes for ResNet-50, 256x128 input, last stride 1 (B = batch):
    layer4 (B, 2048, 16, 8) -> reduce (B, 512, 16, 8)  + layer3 skip (B, 512, 16, 8)
    up1 (B, 256, 32, 16)  + layer2 skip (B, 256, 32, 16)
    up2 (B, 64, 64, 32)   + layer1 skip (B, 64, 64, 32)
    up3 (B, 32, 128, 64)
    up4 (B, 16, 256, 128) -> final (B, 3, 256, 128) -> resized (B, 3, 6P, 4P)
"""

import torch
import torch.nn.functional as F
from torch import nn

UP_CHANNELS = (512, 256, 64, 32, 16)
DECODER_INITS = ("official", "standard")


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gain):
        ctx.gain = gain.detach().clone()  # the gain of this forward pass, whatever happens to the buffer later
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.gain.to(grad.dtype), None


def scale_gradient(x, gain):
    """``x`` unchanged in the forward pass; its gradient multiplied by the 0-d tensor ``gain`` in the backward."""
    return _ScaleGradient.apply(x, gain)


def conv_bn_relu_1x1(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResidualUnit(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))), then ReLU."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + x)


class UpBlock(nn.Module):
    """Residual unit, bilinear x2, reflection-padded 3x3 conv (cin -> cout)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.residual = ResidualUnit(cin)
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(cin, cout, kernel_size=3)

    def forward(self, x):
        x = F.interpolate(self.residual(x), scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv(self.pad(x))


def _add_skip(x, skip):
    """x + skip; x is resized to the skip's grid when odd input sizes (or last stride 2) make them differ."""
    if x.shape[-2:] != skip.shape[-2:]:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
    return x + skip


class Decoder(nn.Module):
    """``forward([layer1, layer2, layer3, layer4]) -> (texture (B, 3, *output_size), [up1, up2, up3, up4])``."""

    def __init__(self, stage_channels, texture_size, init="official", width=1.0, output_size=None):
        super().__init__()
        if init not in DECODER_INITS:
            raise ValueError(f"unknown decoder init {init!r}; choose one of {', '.join(DECODER_INITS)}")
        if width <= 0:
            raise ValueError(f"decoder width must be positive, got {width}")
        c1, c2, c3, c4 = stage_channels
        u0, u1, u2, u3, u4 = (max(1, round(c * width)) for c in UP_CHANNELS)
        if texture_size is None and output_size is None:
            raise ValueError("the decoder needs the atlas patch size P (texture_size) or an output_size (H, W)")
        self.texture_size = None if texture_size is None else int(texture_size)
        self._output_size = None if output_size is None else tuple(int(v) for v in output_size)
        self.reduce = conv_bn_relu_1x1(c4, u0)
        self.skip3 = conv_bn_relu_1x1(c3, u0)
        self.skip2 = conv_bn_relu_1x1(c2, u1)
        self.skip1 = conv_bn_relu_1x1(c1, u2)
        self.up1 = UpBlock(u0, u1)
        self.up2 = UpBlock(u1, u2)
        self.up3 = UpBlock(u2, u3)
        self.up4 = UpBlock(u3, u4)
        self.final = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(u4, 3, kernel_size=7))
        self.register_buffer("encoder_gain", torch.ones(()))
        if init == "official":
            init_decoder_weights(self)

    @property
    def output_size(self):
        """(6P, 4P), the atlas drawn as one image; or the ``output_size`` given."""
        if self._output_size is not None:
            return self._output_size
        return 6 * self.texture_size, 4 * self.texture_size

    def forward(self, stages):
        c1, c2, c3, c4 = (scale_gradient(s, self.encoder_gain) for s in stages)
        x = _add_skip(self.reduce(c4), self.skip3(c3))  # (B, 512, H/16, W/16)
        d1 = self.up1(x)  # (B, 256, H/8, W/8)
        d2 = self.up2(_add_skip(d1, self.skip2(c2)))  # (B, 64, H/4, W/4)
        d3 = self.up3(_add_skip(d2, self.skip1(c1)))  # (B, 32, H/2, W/2)
        d4 = self.up4(d3)  # (B, 16, H, W)
        texture = self.final(d4)  # (B, 3, H, W)
        if texture.shape[-2:] != self.output_size:
            texture = F.interpolate(texture, size=self.output_size, mode="bilinear", align_corners=True)
        return texture, [d1, d2, d3, d4]


def init_decoder_weights(module, gain=0.02):
    """Xavier-normal (gain 0.02) conv weights, zero biases, BN weights N(1, 0.02): the official init."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
