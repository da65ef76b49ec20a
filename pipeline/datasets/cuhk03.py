"""CUHK03 (Li et al., CVPR 2014) under the 767/700 protocol of Zhong et al. (CVPR 2017).

Statistics (2 camera views per pair; ``labeled`` boxes are hand-drawn, ``detected`` by DPM):
labeled:  train 767 ids / 7,368 images, query 700 ids / 1,400, gallery 700 ids / 5,328;
detected: train 767 ids / 7,365 images, query 700 ids / 1,400, gallery 700 ids / 5,332.

Layout (``root`` or ``root/cuhk03/``)::

    cuhk03_release/cuhk-03.mat                  raw MATLAB v7.3 file (images as cells)
    images_labeled/1_001_1_01.png               written by ``sanreid datasets prepare-cuhk03``
    images_detected/                            names: pair_person_view_image, 1-based
    cuhk03_new_protocol_config_labeled.mat      the 767/700 split (MATLAB v5), N x 1 columns:
    cuhk03_new_protocol_config_detected.mat     filelist (cell of names), labels (1..1467),
                                                camId (1/2), train_idx, query_idx, gallery_idx
                                                (1-based rows); N = 14,096 labeled, 14,097 detected

``cuhk03`` reads the labeled variant (as the official SAN code), ``variant="detected"``
the other; ``cuhk03_labeled`` and ``cuhk03_detected`` name them directly.
"""

from pathlib import Path
import logging

import numpy as np

from .. import paths
from .base import DatasetError, ReidDataset, check_files_exist, relabel
from .registry import register

log = logging.getLogger(__name__)

VARIANTS = ("labeled", "detected")
FIELDS = ("filelist", "labels", "camId", "train_idx", "query_idx", "gallery_idx")
NAME = "{pair}_{person:03d}_{view}_{image:02d}.png"  # 1-based; view 1 for images 1-5, 2 for 6-10
RAW_MAT = ("cuhk03_release/cuhk-03.mat", "cuhk-03.mat")
STATS = {
    "labeled": {"train": (767, 7368), "query": (700, 1400), "gallery": (700, 5328), "cameras": 2},
    "detected": {"train": (767, 7365), "query": (700, 1400), "gallery": (700, 5332), "cameras": 2},
}


def protocol_file(variant):
    return f"cuhk03_new_protocol_config_{variant}.mat"


def expected_files(variant):
    """What a CUHK03 folder must hold for ``variant``, for error messages."""
    return (f"{protocol_file(variant)} (the 767/700 split, from github.com/zhunzhong07/person-re-ranking, "
            f"evaluation/data/CUHK03) and images_{variant}/ (extracted from cuhk03_release/cuhk-03.mat by "
            "`sanreid datasets prepare-cuhk03`), in the root or in its cuhk03/ folder")


def locate(root, variant):
    name = paths.canonical_name("cuhk03", variant)
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{name}: dataset root {root} does not exist (expected {expected_files(variant)})")
    for folder in (root, root / "cuhk03"):
        if (folder / protocol_file(variant)).is_file():
            return folder
    present = sorted(p.name for p in root.iterdir())[:10] if root.is_dir() else []
    raise DatasetError(
        f"{name}: expected the split file {protocol_file(variant)} in {root} or {root / 'cuhk03'}; "
        f"found {present or 'nothing'} (expected {expected_files(variant)})"
    )


def read_protocol(path, name="cuhk03"):
    """The fields of a new-protocol .mat file as flat arrays (indices made 0-based)."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(str(path))
    except (MatReadError, OSError, ValueError, TypeError, NotImplementedError) as err:
        raise DatasetError(f"{name}: cannot read split file {path} ({err}); expected a MATLAB v5 .mat") from err
    missing = [f for f in FIELDS if f not in mat]
    if missing:
        raise DatasetError(f"{name}: split file {path} lacks the field(s) {', '.join(missing)}; "
                           f"expected {', '.join(FIELDS)}")
    files = [str(np.ravel(cell)[0]) for cell in np.ravel(mat["filelist"])]
    labels = np.ravel(mat["labels"]).astype(np.int64)
    cams = np.ravel(mat["camId"]).astype(np.int64)
    if not len(files) == len(labels) == len(cams):
        raise DatasetError(f"{name}: {path}: filelist, labels and camId differ in length")
    bad = np.flatnonzero((cams < 1) | (cams > 2))
    if len(bad):
        raise DatasetError(f"{name}: camera {cams[bad[0]]} of {files[bad[0]]} in {path} is outside the dataset's "
                           "range 1..2")
    splits = {}
    for split in ("train", "query", "gallery"):
        idx = np.ravel(mat[f"{split}_idx"]).astype(np.int64) - 1
        if len(idx) and (idx.min() < 0 or idx.max() >= len(files)):
            raise DatasetError(f"{name}: {split}_idx of {path} must be 1-based indices into filelist (1..{len(files)})")
        splits[split] = idx
    return files, labels, cams - 1, splits


@register("cuhk03", stats=STATS["labeled"])
def cuhk03(root, variant="labeled"):
    """CUHK03, 767/700 protocol; labeled boxes by default, variant=detected for DPM boxes."""
    if variant not in VARIANTS:
        raise DatasetError(f"cuhk03: variant {variant!r} is not one of {', '.join(VARIANTS)}")
    name = paths.canonical_name("cuhk03", variant)
    folder = locate(root, variant)
    files, labels, cams, idx = read_protocol(folder / protocol_file(variant), name)
    image_dir = f"images_{variant}"
    items = {
        split: [(f"{image_dir}/{files[i]}", int(labels[i]), int(cams[i])) for i in indices]
        for split, indices in idx.items()
    }
    if not (folder / image_dir).is_dir():
        raise DatasetError(
            f"{name}: {folder / image_dir} does not exist: extract the images from cuhk-03.mat with "
            f"`sanreid datasets prepare-cuhk03 --root {folder}`"
        )
    for split, split_items in items.items():
        check_files_exist(folder, split_items, name, f"{protocol_file(variant)} ({split}); "
                          f"run `sanreid datasets prepare-cuhk03 --root {folder}`")
    return ReidDataset(name, folder, relabel(items["train"]), items["query"], items["gallery"])


register("cuhk03_labeled", stats=STATS["labeled"], summary="CUHK03 labeled boxes, 767/700 protocol.",
         variant="labeled")(cuhk03)
register("cuhk03_detected", stats=STATS["detected"], summary="CUHK03 detected (DPM) boxes, 767/700 protocol.",
         variant="detected")(cuhk03)


def find_raw_mat(root, mat=None):
    """(raw .mat path, dataset folder the images go to): ``root`` or ``root/cuhk03`` where the file lies."""
    root = Path(root).expanduser()
    if mat is not None:
        if not Path(mat).is_file():
            raise DatasetError(f"cuhk03: raw file {mat} does not exist")
        return Path(mat), root
    for folder in (root, root / "cuhk03"):
        for relpath in RAW_MAT:
            if (folder / relpath).is_file():
                return folder / relpath, folder
    raise DatasetError(
        f"cuhk03: expected the raw file cuhk03_release/cuhk-03.mat (from cuhk03_release.zip) in {root}; "
        "or give its path with --mat"
    )


def prepare_cuhk03(root, mat=None, variants=VARIANTS, overwrite=False):
    """Extract the images of ``cuhk-03.mat`` (MATLAB v7.3) to ``<folder>/images_<variant>/`` as PNG.

    ``<folder>`` is ``root`` or ``root/cuhk03``, where ``cuhk03_release/cuhk-03.mat`` lies.
    Names follow the community readers (``NAME``), so the new-protocol split files
    apply. Existing files are kept unless ``overwrite``; each PNG is written under a
    temporary name and renamed, so an interrupted run resumes cleanly.
    Returns ``{variant: (written, kept, folder)}``.
    """
    import h5py
    from tqdm import tqdm

    from densepose_textures.imageio import write_rgb

    mat, out_root = find_raw_mat(root, mat)
    counts = {}
    try:
        file = h5py.File(mat, "r")
    except OSError as err:
        raise DatasetError(f"cuhk03: {mat} is not a MATLAB v7.3 (HDF5) file: {err}") from err
    with file:
        for variant in variants:
            if variant not in file:
                raise DatasetError(f"cuhk03: {mat} has no '{variant}' cell array; expected 'labeled' and 'detected'")
            out = out_root / f"images_{variant}"
            out.mkdir(parents=True, exist_ok=True)
            written = kept = 0
            pairs = np.ravel(file[variant][()])  # 5 camera pairs
            for pair_no, pair_ref in enumerate(pairs, 1):
                cells = file[pair_ref][()].T  # (persons, 10) references
                for person_no, row in enumerate(tqdm(cells, desc=f"{variant} pair {pair_no}", unit="id"), 1):
                    for image_no, ref in enumerate(row, 1):
                        image = file[ref][()]
                        if image.ndim != 3 or image.size == 0:
                            continue  # an empty cell: fewer than 10 images of this person
                        image = image.T  # MATLAB column-major (3, W, H) -> (H, W, 3) RGB
                        name = NAME.format(pair=pair_no, person=person_no, view=1 if image_no <= 5 else 2, image=image_no)
                        target = out / name
                        if target.exists() and not overwrite:
                            kept += 1
                            continue
                        write_rgb(target, image)  # atomic: an interrupted run leaves no half image
                        written += 1
            log.info("cuhk03 %s: %d images written, %d already present in %s", variant, written, kept, out)
            counts[variant] = (written, kept, out)
    return counts
