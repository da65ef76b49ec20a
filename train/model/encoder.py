"""SA-Enc: a ResNet backbone and a reID head; the whole inference network.

Heads (``model.head``):
- ``embedding`` (SAN's release): global average pooling, Linear(C, 512), BatchNorm1d,
  ReLU. The 512-d vector is the retrieval feature and the triplet input; a Linear
  classifier sits on top.
- ``bnneck`` (Luo et al. 2019, the strong baseline): the pooled C-d feature is the
  triplet input; a BatchNorm1d (bias frozen at 0) then a bias-free classifier give
  the logits. At inference the retrieval feature is the BN output.

In train mode a head returns ``(triplet_feature, logits)``; in eval mode the
retrieval feature only.
"""

from torch import nn

from densepose_textures.errors import InputError

from .resnet import build_backbone


class EmbeddingHead(nn.Module):
    def __init__(self, in_channels, num_classes, embed_dim=512):
        super().__init__()
        self.embedding = nn.Sequential(nn.Linear(in_channels, embed_dim), nn.BatchNorm1d(embed_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(embed_dim, num_classes)
        self.feature_dim = embed_dim
        for m in self.modules():  # as the official release: Linear N(0, 0.01), BN (1, 0)
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, fmap):
        feat = self.embedding(fmap.mean((2, 3)))  # (B, embed_dim)
        if not self.training:
            return feat
        return feat, self.classifier(feat)


class BNNeckHead(nn.Module):
    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.bottleneck = nn.BatchNorm1d(in_channels)
        self.bottleneck.bias.requires_grad_(False)  # Luo et al.: no shift before the classifier
        self.classifier = nn.Linear(in_channels, num_classes, bias=False)
        self.feature_dim = in_channels
        nn.init.ones_(self.bottleneck.weight)
        nn.init.zeros_(self.bottleneck.bias)
        nn.init.normal_(self.classifier.weight, 0.0, 0.001)

    def forward(self, fmap):
        pooled = fmap.mean((2, 3))  # (B, C): triplet input
        feat = self.bottleneck(pooled)  # (B, C): retrieval feature
        if not self.training:
            return feat
        return pooled, self.classifier(feat)


HEADS = ("embedding", "bnneck")


class Encoder(nn.Module):
    """Backbone + head (built by :class:`train.model.SAN`, which holds the defaults).
    ``forward(x)``: eval -> (B, D) features; train -> dict(feat, logits)."""

    def __init__(self, num_classes, backbone, head, embed_dim, last_stride):
        super().__init__()
        self.model_args = dict(num_classes=num_classes, backbone=backbone, head=head, embed_dim=embed_dim,
                               last_stride=last_stride)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise InputError(f"the classifier needs a positive number of training identities, got {num_classes!r}")
        self.backbone = build_backbone(backbone, last_stride)
        channels = self.backbone.out_channels
        if head == "embedding":
            self.head = EmbeddingHead(channels, num_classes, embed_dim)
        elif head == "bnneck":
            self.head = BNNeckHead(channels, num_classes)
        else:
            raise InputError(f"unknown head {head!r} (model.head); choose one of {', '.join(HEADS)}")
        self.feature_dim = self.head.feature_dim

    def forward_stages(self, x):
        """(the four backbone maps, feature, logits): train mode the triplet feature, eval mode the
        retrieval feature and logits None."""
        stages = self.backbone.forward_stages(x)
        out = self.head(stages[-1])
        feat, logits = out if self.training else (out, None)
        return stages, feat, logits

    def forward(self, x):
        if not self.training:
            return self.head(self.backbone(x))
        _, feat, logits = self.forward_stages(x)
        return {"feat": feat, "logits": logits}
