"""The SAN model: ResNet backbones (torchvision key names), SA-Enc heads, SA-Dec."""

from .decoder import Decoder
from .encoder import Encoder
from .resnet import LoadReport, ResNet, build_backbone, load_pretrained, resnet18, resnet50
from .san import SAN

__all__ = ["SAN", "Encoder", "Decoder", "ResNet", "resnet18", "resnet50", "build_backbone", "load_pretrained",
           "LoadReport"]
