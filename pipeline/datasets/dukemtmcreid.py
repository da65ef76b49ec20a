"""DukeMTMC-reID (Ristani et al., ECCVW 2016; Zheng et al., ICCV 2017) and Occluded-Duke.

DukeMTMC-reID statistics: 8 cameras; train 702 ids / 16,522 images,
query 702 ids / 2,228 images, gallery 1,110 ids / 17,661 images
(702 test ids + 408 distractor ids).

Occluded-Duke (Miao et al., ICCV 2019) re-splits it so that every query is occluded:
train 702 ids / 15,618 images, query 519 ids / 2,210 images,
gallery 1,110 ids / 17,661 images, 8 cameras.

Layout (``root``, or ``root/DukeMTMC-reID/`` resp. ``root/Occluded_Duke/``)::

    bounding_box_train/0001_c2_f0046182.jpg
    bounding_box_test/
    query/
"""

from .market1501 import read_market_layout
from .registry import register

PATTERN = r"^([-\d]+)_c(\d)"


@register(
    "dukemtmcreid",
    stats={"train": (702, 16522), "query": (702, 2228), "gallery": (1110, 17661), "cameras": 8},
)
def dukemtmcreid(root):
    """DukeMTMC-reID: 8 cameras, Duke campus."""
    return read_market_layout(root, "dukemtmcreid", cameras=8, nested=("DukeMTMC-reID",), pattern=PATTERN)


@register(
    "occluded_duke",
    stats={"train": (702, 15618), "query": (519, 2210), "gallery": (1110, 17661), "cameras": 8},
)
def occluded_duke(root):
    """Occluded-Duke: DukeMTMC-reID re-split with occluded queries."""
    return read_market_layout(root, "occluded_duke", cameras=8, nested=("Occluded_Duke",), pattern=PATTERN)
