"""MSMT17 (Wei et al., CVPR 2018).

Statistics: 4,101 identities, 15 cameras; train 1,041 ids / 30,248 images
(32,621 with ``list_val.txt``, ``train_val=True``), query 3,060 ids / 11,659 images,
gallery 3,060 ids / 82,161 images.

Layout (``root``, or ``root/MSMT17_V1/`` resp. ``root/MSMT17_V2/``; V2 has blurred faces)::

    train/ (V1) or mask_train_v2/ (V2)    0000/0000_000_01_0303morning_0015_0.jpg
    test/  (V1) or mask_test_v2/  (V2)
    list_train.txt  list_val.txt          lines "0000/0000_000_01_0303morning_0015_0.jpg 0"
    list_query.txt  list_gallery.txt

The camera is the third ``_`` field of the file name (1..15). Pids are those of
the lists: MSMT17 has no junk or distractor images, so pid 0 is a real person.
"""

from pathlib import Path

from .base import DatasetError, ReidDataset, check_camera, check_files_exist, relabel
from .registry import register

CAMERAS = 15
VERSIONS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}
LISTS = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")


def locate(root):
    """(dataset folder, train folder, test folder) of a V1 or V2 tree at or below ``root``."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"msmt17: dataset root {root} does not exist")
    for folder in [root, *(root / version for version in VERSIONS)]:
        for train_dir, test_dir in VERSIONS.values():
            if (folder / train_dir).is_dir() and (folder / test_dir).is_dir():
                return folder, train_dir, test_dir
    raise DatasetError(
        f"msmt17: expected train/ and test/ (V1) or mask_train_v2/ and mask_test_v2/ (V2) with "
        f"{', '.join(LISTS)} in {root} or in {root}/MSMT17_V1 or {root}/MSMT17_V2"
    )


def read_list(folder, list_name, image_dir):
    """Items of one list file: lines ``relpath pid``, relpath relative to ``image_dir``."""
    path = folder / list_name
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DatasetError(f"msmt17: cannot read split file {path}: {err.strerror}") from err
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            relpath, pid = fields[0], int(fields[1])
            cam = int(Path(relpath).name.split("_")[2])
        except (IndexError, ValueError):
            raise DatasetError(
                f"msmt17: line {number} of {path} is {line!r}; expected "
                "'0000/0000_000_01_0303morning_0015_0.jpg 0' (relative path, space, person id)"
            ) from None
        check_camera(cam, CAMERAS, "msmt17", f"{relpath} (line {number} of {path})")
        items.append((f"{image_dir}/{relpath}", pid, cam - 1))
    return items


@register(
    "msmt17",
    stats={"train": (1041, 30248), "query": (3060, 11659), "gallery": (3060, 82161), "cameras": 15},
)
def msmt17(root, train_val=False):
    """MSMT17: 15 cameras, indoor and outdoor, four weather/time slots."""
    folder, train_dir, test_dir = locate(root)
    train = read_list(folder, "list_train.txt", train_dir)
    if train_val:
        train += read_list(folder, "list_val.txt", train_dir)
    query = read_list(folder, "list_query.txt", test_dir)
    gallery = read_list(folder, "list_gallery.txt", test_dir)
    for split, items in (("train", train), ("query", query), ("gallery", gallery)):
        check_files_exist(folder, items, "msmt17", f"the {split} list")
    return ReidDataset("msmt17", folder, relabel(train), query, gallery)
