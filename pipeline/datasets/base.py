"""The dataset record, its error type, and the helpers every reader shares.

A reader turns a folder into three lists of ``(relative_path, pid, camid)``:
paths are POSIX and relative to the dataset root, camera ids are 0-based, train
pids are relabelled to 0..N-1, query and gallery keep the pids of the files.
"""

from dataclasses import dataclass, field
from pathlib import Path
import logging
import os
import re

import numpy as np

from densepose_textures.errors import InputError

log = logging.getLogger(__name__)

SPLITS = ("train", "query", "gallery")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class DatasetError(InputError):
    """A dataset is missing, laid out differently from what its reader expects, or inconsistent."""


@dataclass
class ReidDataset:
    name: str
    root: Path
    train: list = field(default_factory=list)
    query: list = field(default_factory=list)
    gallery: list = field(default_factory=list)

    def split(self, name):
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def stats(self, split):
        """(ids, images, cameras) of one split."""
        items = self.split(split)
        return len({pid for _, pid, _ in items}), len(items), len({cam for _, _, cam in items})

    def unmatched_queries(self):
        """Query items with no valid gallery match under the standard protocol.

        Returns ``(no_id, same_camera_only)``: queries whose pid is absent from the
        gallery, and queries whose pid is there only in the query's own camera
        (those gallery images are removed by the same-camera rule).
        """
        if not self.query:
            return [], []
        q_pids, q_cams = np.array([(pid, cam) for _, pid, cam in self.query], dtype=np.int64).T
        g = np.array([(pid, cam) for _, pid, cam in self.gallery], dtype=np.int64).reshape(-1, 2)
        g_pids, g_cams = g[:, 0], g[:, 1]
        ncam = int(max(q_cams.max(), g_cams.max(initial=0))) + 1
        # gallery images per pid and per (pid, camera), looked up for every query
        pid_keys, pid_counts = np.unique(g_pids, return_counts=True)
        pc_keys, pc_counts = np.unique(g_pids * ncam + g_cams, return_counts=True)
        n_pid = _lookup(pid_keys, pid_counts, q_pids)
        n_same = _lookup(pc_keys, pc_counts, q_pids * ncam + q_cams)
        no_id = np.flatnonzero(n_pid == 0)
        same_only = np.flatnonzero((n_pid > 0) & (n_pid == n_same))
        return [self.query[i] for i in no_id], [self.query[i] for i in same_only]

    def table(self):
        """The standard statistics table (ids / images / cameras per split) as text."""
        rows = [f"  {'subset':<8}| {'# ids':>6} | {'# images':>8} | {'# cameras':>9}", "  " + "-" * 40]
        for split in SPLITS:
            ids, imgs, cams = self.stats(split)
            rows.append(f"  {split:<8}| {ids:>6} | {imgs:>8} | {cams:>9}")
        return "\n".join(rows)


def _lookup(keys, counts, queries):
    """counts[keys == q] for every q (0 where absent); keys sorted and unique."""
    if len(keys) == 0:
        return np.zeros(len(queries), dtype=np.int64)
    pos = np.clip(np.searchsorted(keys, queries), 0, len(keys) - 1)
    return np.where(keys[pos] == queries, counts[pos], 0)


def relabel(items):
    """Train items with pids mapped to 0..N-1 in sorted order of the original pids."""
    mapping = {pid: label for label, pid in enumerate(sorted({pid for _, pid, _ in items}))}
    return [(path, mapping[pid], cam) for path, pid, cam in items]


def find_root(root, name, required, nested=()):
    """The folder holding ``required`` entries: ``root`` itself or one of ``nested`` below it."""
    if root is None:
        raise DatasetError(f"{name}: no dataset root given")
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{name}: dataset root {root} does not exist (expected a folder holding {', '.join(required)})")
    for candidate in [root, *(root / sub for sub in nested)]:
        if all((candidate / entry).exists() for entry in required):
            return candidate
    where = " or ".join(str(c) for c in [root, *(root / sub for sub in nested)])
    present = sorted(p.name for p in root.iterdir())[:10] if root.is_dir() else []
    raise DatasetError(
        f"{name}: expected {', '.join(required)} in {where}; found {present or 'nothing'}"
    )


def list_images(folder):
    """Names of the image files directly inside ``folder``, sorted (``os.scandir``: no stat per file)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.name.lower().endswith(IMAGE_SUFFIXES) and e.is_file())
    except OSError as err:
        raise DatasetError(f"cannot list the images of {folder}: {err.strerror}") from err


def parse_folder(root, folder, pattern, cameras, *, name, distractors):
    """Items of one folder of images named with ``pattern`` (groups: pid, 1-based camera).

    Junk images (pid -1) are dropped. Distractors (pid 0) are kept where
    ``distractors`` is true (the gallery) and dropped elsewhere.
    ``cameras`` is the number of cameras of the dataset (None: no upper bound).
    """
    regex = re.compile(pattern)
    items, dropped = [], 0
    for file in list_images(root / folder):
        match = regex.search(file)
        try:
            pid, cam = int(match.group(1)), int(match.group(2))
        except (AttributeError, ValueError):  # no match, or a pid like "12-3"
            raise DatasetError(
                f"{name}: file {root / folder / file} does not match the expected name pattern {pattern!r} "
                "(for example 0002_c1s1_000451_03.jpg)"
            ) from None
        if pid == -1 or (pid == 0 and not distractors):
            dropped += 1
            continue
        if pid < 0:
            raise DatasetError(f"{name}: file {root / folder / file} has a negative person id {pid}")
        check_camera(cam, cameras, name, root / folder / file)
        items.append((f"{folder}/{file}", pid, cam - 1))
    if dropped:
        log.debug("%s: %d junk/distractor images dropped from %s", name, dropped, folder)
    return items


def check_camera(cam, cameras, name, where):
    """``cam`` is 1-based; raise naming ``where`` if outside 1..cameras."""
    if cam < 1 or (cameras is not None and cam > cameras):
        span = f"1..{cameras}" if cameras is not None else ">= 1"
        raise DatasetError(f"{name}: camera {cam} of {where} is outside the dataset's range {span}")


def check_files_exist(root, items, name, source):
    """Every listed file exists under ``root``; otherwise name the first missing ones."""
    missing = [path for path, _, _ in items if not (root / path).is_file()]
    if missing:
        raise DatasetError(
            f"{name}: {len(missing)} image(s) listed in {source} are missing under {root}, "
            f"for example {', '.join(missing[:3])}"
        )
