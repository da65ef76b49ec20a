"""Synthetic paired reID data: procedural people with exact IUV and ground-truth textures.

``write_dataset`` renders a Market-1501-layout dataset (half the identities train, half test),
``iuv_path`` locates an image's IUV PNG, ``read_truth`` reads the true atlases and the exact
mirror map, ``body_mirror_map`` is that map. ``write_pairs`` renders image/atlas pairs for a texture
generator (one identity per image, disjoint from every reID set's), ``Pairs`` reads them.
"""

from .dataset import iuv_path, read_truth, write_dataset
from .mirror_map import body_mirror_map
from .pairs import Pairs, write_pairs

__all__ = ["write_dataset", "iuv_path", "read_truth", "body_mirror_map", "write_pairs", "Pairs"]
