"""The SAN model: ResNet backbones (torchvision key names), SA-Enc heads, SA-Dec, SAN-PG's warp refiner."""

from .decoder import Decoder
from .encoder import Encoder
from .refiner import WarpRefiner
from .resnet import LoadReport, ResNet, build_backbone, load_pretrained, resnet18, resnet50
from .san import SAN

__all__ = ["SAN", "Encoder", "Decoder", "WarpRefiner", "ResNet", "resnet18", "resnet50", "build_backbone",
           "load_pretrained", "LoadReport"]
