"""Partial-REID (Zheng et al., ICCV 2015) and Partial-iLIDS (He et al., CVPR 2018): test-only sets.

Partial-REID: 60 ids; query 300 partial-body images, gallery 300 whole-body images.
Partial-iLIDS: 119 ids; query 119 partial images, gallery 119 whole images.
Neither set annotates cameras: query images get camid 0 and gallery images camid 1,
so the same-camera filter never removes a true match. ``train`` is empty.

Layout (file names start with the person id, ``001_01.jpg`` or ``001.jpg``)::

    partial_reid:  [Partial_REID/ | PartialREID/] partial_body_images/  whole_body_images/
    partial_ilids: [Partial_iLIDS/ | PartialiLIDS/] query/  gallery/
"""

from pathlib import Path
import re

from .base import DatasetError, ReidDataset, find_root, list_images
from .registry import register

PATTERN = re.compile(r"^(\d+)")


def read_test_pair(root, name, query_folder, gallery_folder, nested):
    root = find_root(root, name, [query_folder, gallery_folder], nested)
    query = read_flat(root, query_folder, 0, name)
    gallery = read_flat(root, gallery_folder, 1, name)
    return ReidDataset(name, Path(root), [], query, gallery)


def read_flat(root, folder, camid, name):
    """Every image of ``root/folder`` with the pid its name starts with and a fixed ``camid``."""
    items = []
    for file in list_images(root / folder):
        match = PATTERN.match(file)
        if match is None:
            raise DatasetError(
                f"{name}: file {root / folder / file} does not start with a person id (expected names like 001_01.jpg)"
            )
        items.append((f"{folder}/{file}", int(match.group(1)), camid))
    return items


@register("partial_reid", stats={"train": (0, 0), "query": (60, 300), "gallery": (60, 300), "cameras": 2})
def partial_reid(root):
    """Partial-REID: partial-body queries against whole-body gallery (test only)."""
    return read_test_pair(root, "partial_reid", "partial_body_images", "whole_body_images",
                          ("Partial_REID", "PartialREID"))


@register("partial_ilids", stats={"train": (0, 0), "query": (119, 119), "gallery": (119, 119), "cameras": 2})
def partial_ilids(root):
    """Partial-iLIDS: occluded airport queries against whole-body gallery (test only)."""
    return read_test_pair(root, "partial_ilids", "query", "gallery", ("Partial_iLIDS", "PartialiLIDS"))
