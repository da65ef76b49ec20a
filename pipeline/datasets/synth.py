"""The bundled synthetic dataset (``sanreid synth``): procedural people, exact IUV and textures.

Statistics depend on ``params.yaml`` (section ``synth``: ids, images_per_id, cameras).

Layout (Market-1501 naming, ``PPPP_cCsS_FFFFFF_NN.jpg``)::

    bounding_box_train/  bounding_box_test/  query/
    iuv/                 (one PNG per image, same relative path)
    textures.h5          (ground-truth atlas per identity)
"""

from .market1501 import OPEN_PATTERN, read_market_layout
from .registry import register


@register("synth")
def synth(root):
    """Synthetic people rendered by ``sanreid synth`` (Market-1501 layout)."""
    return read_market_layout(root, "synth", cameras=None, pattern=OPEN_PATTERN)
