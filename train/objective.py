"""SAN's training objective: the model plus its losses, returning a dict of weighted losses.

The engine and the optimisers only see the dict (``id``, ``triplet`` and, with a
decoder, ``texture``, ``tr``); this is the one place that knows SAN's outputs.
:class:`GeneratorObjective` is SAN-PG's: the texture loss alone.
"""

import torch
from torch import nn

from .losses import batch_hard_triplet, cross_entropy_smooth, texture_l1, triplet_reid_constraints
from .generator import generator_atlas


class SANObjective(nn.Module):
    """``forward(images, pids, target=None, mask=None, provenance=None) -> (losses, texture or None)``.

    ``provenance_weights``: optional weight of each fill step 0, 1, 2, ... of the target's texels
    (steps beyond the list weigh 1); empty: uniform (the faithful recipe).
    """

    def __init__(self, model, *, label_smoothing, triplet_margin, texture_weight, tr_weight, tr_margin,
                 tr_distance="normalized", provenance_weights=()):
        super().__init__()
        self.model = model
        self.label_smoothing, self.triplet_margin = label_smoothing, triplet_margin
        self.texture_weight, self.tr_weight, self.tr_margin = texture_weight, tr_weight, tr_margin
        self.tr_distance = tr_distance
        table = torch.ones(256)
        table[:len(provenance_weights)] = torch.tensor(list(provenance_weights), dtype=torch.float32)
        self.register_buffer("provenance_table", table, persistent=False)
        self.weighted = len(provenance_weights) > 0

    def forward(self, images, pids, target=None, mask=None, provenance=None):
        out = self.model(images)
        losses = {
            "id": cross_entropy_smooth(out["logits"], pids, self.label_smoothing),
            "triplet": batch_hard_triplet(out["feat"], pids, self.triplet_margin),
        }
        texture = out.get("texture")
        if texture is not None:
            weights = self.provenance_table[provenance.long()] if self.weighted else None  # (B, 1, 6P, 4P)
            losses["texture"] = self.texture_weight * texture_l1(texture, target, mask, weights)
            losses["tr"] = self.tr_weight * triplet_reid_constraints(out["dec_maps"], pids, self.tr_margin,
                                                                       self.tr_distance)
        return losses, texture


class GeneratorObjective(nn.Module):
    """SAN-PG, the texture generator: the decoder's atlas from the encoder's backbone maps against the true atlas,
    masked L1 (``texture``); no ID, triplet or TR terms, and the reID head is not run.

    ``forward(images, pids=None, target, mask, provenance=None, warp=None) -> ({"texture": loss}, texture)``;
    ``warp``: the image's warp + fill for a warp-input generator (:func:`train.generator.generator_atlas`).
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images, pids=None, target=None, mask=None, provenance=None, warp=None):
        texture = generator_atlas(self.model, images, warp)
        return {"texture": texture_l1(texture, target, mask)}, texture
