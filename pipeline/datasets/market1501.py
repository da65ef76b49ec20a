"""Market-1501 (Zheng et al., ICCV 2015).

Statistics: 1,501 identities (+ distractors), 6 cameras;
train 751 ids / 12,936 images, query 750 ids / 3,368 images,
gallery 751 ids / 15,913 images (750 + the distractor id 0; junk -1 removed).

Layout (``root`` or ``root/Market-1501-v15.09.15/``)::

    bounding_box_train/0002_c1s1_000451_03.jpg
    bounding_box_test/  (gallery; 0000_* distractors, -1_* junk)
    query/
"""

from pathlib import Path

from .base import ReidDataset, find_root, parse_folder, relabel
from .registry import register

PATTERN = r"^([-\d]+)_c(\d)"
OPEN_PATTERN = r"^([-\d]+)_c(\d+)"  # any number of cameras: synth, custom
FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def read_market_layout(root, name, *, cameras, nested=(), pattern=PATTERN):
    """A dataset in Market-1501 folder layout and naming: shared by Market, Duke, synth, custom."""
    root = find_root(root, name, list(FOLDERS.values()), nested)
    splits = {
        split: parse_folder(root, folder, pattern, cameras, name=name, distractors=split == "gallery")
        for split, folder in FOLDERS.items()
    }
    return ReidDataset(name, Path(root), relabel(splits["train"]), splits["query"], splits["gallery"])


@register(
    "market1501",
    stats={"train": (751, 12936), "query": (750, 3368), "gallery": (751, 15913), "cameras": 6},
)
def market1501(root):
    """Market-1501: 6 cameras, Tsinghua campus."""
    return read_market_layout(root, "market1501", cameras=6, nested=("Market-1501-v15.09.15",))
