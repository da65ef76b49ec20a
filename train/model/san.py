"""SAN: SA-Enc (the inference network) and, for training only, SA-Dec."""

from torch import nn

from densepose_textures.errors import InputError

from ..settings import ModelParams
from .decoder import Decoder
from .encoder import Encoder
from .refiner import WarpRefiner
from .resnet import load_pretrained


class SAN(nn.Module):
    """SA-Enc + optional SA-Dec.

    ``texture_size=None`` builds no decoder (the ``baseline`` variant); otherwise
    ``texture_size`` is the atlas patch size P and the decoder predicts a
    (3, 6P, 4P) atlas image. ``target_size`` (H', W'): the decoder predicts images of that size
    instead (a texture set of foreign-layout images, :mod:`densepose_textures.imported`; with
    ``texture_size=None``). ``warp_input`` (a SAN-PG generator's ``{"splat", "fill"}``): the
    generator also reads the image's warp + fill, made with those settings, through a
    :class:`~train.model.refiner.WarpRefiner` after the decoder (:func:`train.generator.generator_atlas`).
    ``pretrained`` is a path to torchvision ImageNet weights for the backbone ("" for none).
    Defaults: :class:`train.settings.ModelParams`.

    ``forward(x)``: in train mode a dict with ``feat`` (B, D) triplet feature,
    ``logits`` (B, num_classes) and, with a decoder, ``texture`` (B, 3, 6P, 4P)
    and ``dec_maps`` (the four up-block outputs); in eval mode the encoder's
    retrieval features (B, D) only. ``model_args`` rebuilds the model
    (``SAN(**model.model_args)``) and goes into checkpoints.
    """

    def __init__(self, num_classes, backbone=ModelParams.backbone, head=ModelParams.head,
                 embed_dim=ModelParams.embed_dim, last_stride=ModelParams.last_stride, texture_size=None,
                 pretrained=ModelParams.pretrained, decoder_init=ModelParams.decoder_init,
                 decoder_width=ModelParams.decoder_width, target_size=None, warp_input=None):
        super().__init__()
        self.model_args = dict(num_classes=num_classes, backbone=backbone, head=head, embed_dim=embed_dim,
                               last_stride=last_stride, texture_size=texture_size, decoder_init=decoder_init,
                               decoder_width=decoder_width)
        if target_size is not None:  # recorded only when used, so older checkpoints' model_args still match
            self.model_args["target_size"] = [int(v) for v in target_size]
        if warp_input:
            self.model_args["warp_input"] = {"splat": str(warp_input["splat"]), "fill": str(warp_input["fill"])}
        self.encoder = Encoder(num_classes, backbone, head, embed_dim, last_stride)
        if pretrained:
            load_pretrained(self.encoder.backbone, pretrained)
        if texture_size is None and target_size is None:
            self.decoder = None
        else:
            if texture_size is not None and (not isinstance(texture_size, int) or texture_size < 1):
                raise InputError(f"texture_size must be a positive int (the atlas patch size P), got {texture_size!r}")
            if target_size is not None and (len(target_size) != 2 or min(int(v) for v in target_size) < 1):
                raise InputError(f"target_size must be a positive (height, width), got {target_size!r}")
            self.decoder = Decoder(self.encoder.backbone.stage_channels, texture_size, decoder_init, decoder_width,
                                   output_size=target_size)
        self.refiner = None
        if warp_input:
            if texture_size is None:
                raise InputError("warp_input needs atlas targets (texture_size): a warp is an atlas")
            self.refiner = WarpRefiner(texture_size)

    @property
    def feature_dim(self):
        return self.encoder.feature_dim

    def forward(self, x):
        if not self.training:
            return self.encoder(x)
        stages, feat, logits = self.encoder.forward_stages(x)
        out = {"feat": feat, "logits": logits}
        if self.decoder is not None:
            out["texture"], out["dec_maps"] = self.decoder(stages)
        return out
