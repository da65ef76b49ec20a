"""Synthetic paired reID data: procedural people with exact IUV and ground-truth textures.

``write_dataset`` renders a Market-1501-layout dataset (half the identities train, half test),
``iuv_path`` locates an image's IUV PNG, ``read_truth`` reads the true atlases and the exact
mirror map, ``body_mirror_map`` is that map.
"""

from .dataset import iuv_path, read_truth, write_dataset
from .mirror_map import body_mirror_map

__all__ = ["write_dataset", "iuv_path", "read_truth", "body_mirror_map"]
