"""Multiply-adds of SA-Enc and SA-Dec, counted by ``torch.utils.flop_counter.FlopCounterMode``.

Run ``python -m train.model.macs [--backbone resnet50] [--height 256 --width 128] [--texture-size 32]``.
Counts convolutions and matrix products (FLOPs / 2); BN, ReLU, resizing and padding are not counted.
The last line holds the figures as ``name=value`` pairs.
"""

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from .san import SAN


def count_macs(fn, *args):
    """Multiply-adds of ``fn(*args)`` (convolutions and matrix products)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() // 2


def decoder_cost(backbone="resnet50", height=256, width=128, texture_size=32, last_stride=1):
    """dict of multiply-adds per image: ``encoder`` (backbone + head), ``decoder`` and their ratio."""
    model = SAN(num_classes=751, backbone=backbone, last_stride=last_stride, texture_size=texture_size).eval()
    x = torch.zeros(1, 3, height, width)
    with torch.no_grad():
        stages = model.encoder.backbone.forward_stages(x)
    encoder = count_macs(model.encoder, x)
    decoder = count_macs(model.decoder, stages)
    return {"encoder": encoder, "decoder": decoder, "ratio": decoder / encoder}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--texture-size", type=int, default=32)
    parser.add_argument("--last-stride", type=int, default=1)
    a = parser.parse_args(argv)
    cost = decoder_cost(a.backbone, a.height, a.width, a.texture_size, a.last_stride)
    print(f"{a.backbone} at {a.height}x{a.width}, last stride {a.last_stride}, P={a.texture_size}: "
          f"encoder {cost['encoder'] / 1e9:.3f} GMAC, decoder {cost['decoder'] / 1e9:.3f} GMAC per image")
    print(f"encoder_gmac={cost['encoder'] / 1e9:.3f} decoder_gmac={cost['decoder'] / 1e9:.3f} "
          f"decoder_over_encoder={cost['ratio']:.3f}")


if __name__ == "__main__":
    main()
