"""Your own data, in one of two forms.

1. A folder tree in Market-1501 layout and naming (``bounding_box_train/``,
   ``bounding_box_test/``, ``query/``, names ``<pid>_c<camera>...jpg``, camera
   1-based); pid -1 is junk (dropped), pid 0 a gallery distractor.
2. A CSV file with the header ``path,pid,camid,split``: ``path`` relative to the
   CSV's folder, ``pid`` an integer (-1: junk, dropped), ``camid`` a 0-based
   integer, ``split`` one of train, query, gallery. Give the CSV as the root, or
   put it in the root as ``dataset.csv``.

Train pids are relabelled to 0..N-1 in both forms; statistics depend on the data.
"""

import csv
from pathlib import Path

from .base import SPLITS, DatasetError, ReidDataset, check_files_exist, relabel
from .market1501 import FOLDERS, OPEN_PATTERN, read_market_layout
from .registry import register

CSV_NAME = "dataset.csv"
HEADER = ["path", "pid", "camid", "split"]


def read_csv(path):
    path = Path(path)
    splits = {split: [] for split in SPLITS}
    try:
        with path.open(newline="") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"custom: cannot read split file {path}: {err}") from err
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        raise DatasetError(f"custom: {path} must start with the header line {','.join(HEADER)}")
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            relpath, pid, camid, split = (cell.strip() for cell in row)
            pid, camid = int(pid), int(camid)
        except ValueError:
            raise DatasetError(
                f"custom: line {number} of {path} is {','.join(row)!r}; expected path,pid,camid,split "
                "with integer pid and camid, e.g. images/0001_a.jpg,1,0,train"
            ) from None
        if split not in splits:
            raise DatasetError(f"custom: line {number} of {path}: split {split!r} is not one of {', '.join(SPLITS)}")
        if camid < 0:
            raise DatasetError(f"custom: line {number} of {path}: camid {camid} must be 0-based (>= 0)")
        if Path(relpath).is_absolute():
            raise DatasetError(f"custom: line {number} of {path}: path {relpath} must be relative to {path.parent}")
        if pid == -1:
            continue
        if pid < 0:
            raise DatasetError(f"custom: line {number} of {path}: negative person id {pid}")
        splits[split].append((Path(relpath).as_posix(), pid, camid))
    root = path.parent
    for split, items in splits.items():
        check_files_exist(root, items, "custom", f"{path} ({split})")
    return ReidDataset("custom", root, relabel(splits["train"]), splits["query"], splits["gallery"])


@register("custom")
def custom(root):
    """Your own data: a Market-1501-named folder tree or a CSV path,pid,camid,split."""
    root = Path(root).expanduser()
    if root.is_file():
        return read_csv(root)
    if (root / CSV_NAME).is_file():
        return read_csv(root / CSV_NAME)
    if root.is_dir() and not all((root / folder).is_dir() for folder in FOLDERS.values()):
        raise DatasetError(
            f"custom: {root} holds neither {CSV_NAME} (columns {','.join(HEADER)}) nor the "
            f"Market-1501 folders {', '.join(FOLDERS.values())}"
        )
    return read_market_layout(root, "custom", cameras=None, pattern=OPEN_PATTERN)
