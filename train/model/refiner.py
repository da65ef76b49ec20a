"""The warp refiner of a warp-input SAN-PG generator: corrects the image's warp + fill with the decoder's atlas.

``forward(predicted, filled, steps) -> filled + residual``, all atlas images (B, C, 6P, 4P): the decoder's
prediction from the image and the warp + fill of the same image (both in the targets' scale [-1, 1]), and
the fill's provenance codes (B, 1, 6P, 4P) uint8, one-hot over the fill steps (observed, mirror, in-part,
related part, mean colour; any other code is all zeros), so the refiner knows how far to trust each texel.
A learned map of ``embed`` channels per atlas texel gives it the place on the body (a convolution alone does
not know which part it is in). The residual's last convolution starts at zero: an untrained refiner returns
the warp + fill exactly, and training moves it only where that lowers the loss.
"""

import torch
from torch import nn

from densepose_textures.provenance import Provenance

FILL_STEPS = (Provenance.OBSERVED, Provenance.MIRROR, Provenance.IN_PART, Provenance.RELATED_PART,
              Provenance.MEAN_COLOUR)


def step_channels(steps):
    """(B, 1, H, W) uint8 provenance codes -> (B, len(FILL_STEPS), H, W) float one-hot."""
    codes = torch.tensor([int(c) for c in FILL_STEPS], device=steps.device, dtype=steps.dtype).view(1, -1, 1, 1)
    return (steps == codes).float()


class WarpRefiner(nn.Module):
    """Three convolutions over (predicted, filled, fill steps, place) at the atlas image's resolution."""

    def __init__(self, texture_size, width=32, embed=8):
        super().__init__()
        self.texture_size = int(texture_size)
        self.place = nn.Parameter(torch.randn(1, embed, 6 * self.texture_size, 4 * self.texture_size) * 0.1)
        cin = 3 + 3 + len(FILL_STEPS) + embed
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.residual = nn.Conv2d(width, 3, 1)
        nn.init.zeros_(self.residual.weight)
        nn.init.zeros_(self.residual.bias)

    def forward(self, predicted, filled, steps):
        if predicted.shape != filled.shape or steps.shape[-2:] != filled.shape[-2:]:
            raise ValueError(f"refiner: predicted {tuple(predicted.shape)}, filled {tuple(filled.shape)} and steps "
                             f"{tuple(steps.shape)} must share batch and atlas size")
        filled = filled.to(predicted.dtype)
        place = self.place.expand(len(filled), -1, -1, -1).to(predicted.dtype)
        x = torch.cat([predicted, filled, step_channels(steps).to(predicted.dtype), place], dim=1)
        return filled + self.residual(self.body(x))


def refine_atlas(refiner, predicted, warp):
    """The refiner's atlas for ``warp`` = ``{"filled": (B, 3, 6P, 4P) in [-1, 1], "steps": (B, 1, 6P, 4P)}``,
    or ``predicted`` unchanged when there is no refiner; a refiner without its warp is an error."""
    if refiner is None:
        return predicted
    if warp is None:
        raise ValueError("this generator reads the image's warp + fill too (warp input): give it the warp")
    return refiner(predicted, warp["filled"], warp["steps"])
