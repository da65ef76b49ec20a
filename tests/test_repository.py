"""The repository as users get it: no machine paths, and the documents it links to are there."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Absolute paths of one machine (its home, work or root folders, a private virtual environment).
# Written so that this file does not match itself.
MACHINE_PATH = re.compile(r"(?<![\w.])(/(work|root|home|Users)/|~/\.venvs\b)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / name for name in out.decode().split("\0") if name]


def text_of(path):
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
        return None  # binary (pictures, test data) or a deleted file


def test_no_machine_paths_in_tracked_files():
    found = []
    for path in tracked_files():
        text = text_of(path)
        for number, line in enumerate((text or "").splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "machine paths (use paths relative to the project):\n" + "\n".join(found)


def test_machine_path_pattern():
    home = "/" + "home/someone/x"
    assert MACHINE_PATH.search(f"python {home}.py") and MACHINE_PATH.search("~/" + ".venvs/densepose/bin/pip")
    assert not MACHINE_PATH.search("data/raw/synth, ../densepose-env, /mnt/team/san-reid-cache, a/work/b")


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    names, seen = set(), {}
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"#{1,6} (.*)", line)):
            base = github_anchor(match.group(1))
            count = seen.get(base, 0)
            names.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return names


def test_github_anchor():
    assert github_anchor("Installing detectron2 + DensePose (separate environment)") == \
        "installing-detectron2--densepose-separate-environment"
    assert github_anchor("IUV stage: `sanreid iuv` and `sanreid iuv-merge`") == "iuv-stage-sanreid-iuv-and-sanreid-iuv-merge"


@pytest.mark.parametrize("document", ["README.md", "docs/design.md", "docs/densepose.md"])
def test_links_between_documents_resolve(document):
    source = REPO / document
    broken = []
    for target in LINK.findall(source.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file, _, anchor = target.partition("#")
        path = (source.parent / file).resolve() if file else source
        if not path.exists():
            broken.append(f"{target}: no file {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with anchor #{anchor} in {path.relative_to(REPO)}")
    assert not broken, f"broken links in {document}:\n" + "\n".join(broken)


def test_design_notes_part_table_atlas_layout_and_provenance_match_the_code():
    import numpy as np

    from densepose_textures.atlas import atlas_to_image
    from densepose_textures.parts import MIRROR_PART, NUM_PARTS
    from densepose_textures.provenance import Provenance

    text = (REPO / "docs/design.md").read_text()
    table = {}
    for cells in re.findall(r"^\| (\d+) \| ([a-z ]+) \| (\d+) \| (\d+) \| ([a-z ]+) \| (\d+) \|$", text, flags=re.M):
        for i, name, mirror in (cells[:3], cells[3:]):
            table[int(i)] = (name, int(mirror))
    assert sorted(table) == list(range(1, NUM_PARTS + 1))
    assert {i: mirror for i, (_, mirror) in table.items()} == {i: int(MIRROR_PART[i]) for i in table}
    for i, (name, mirror) in table.items():  # a mirror pair's names differ only in left/right
        assert name.replace("left", "right") == table[mirror][0].replace("left", "right")

    # the layout drawing: an atlas whose patch I is filled with the value I, drawn by the code
    patches = np.broadcast_to(np.arange(1, 25, dtype=np.uint8)[:, None, None, None], (24, 2, 2, 3))
    image = atlas_to_image(np.ascontiguousarray(patches))
    rows = re.search(r"^ +col 0 +col 1 +col 2 +col 3\n((?:row \d.*\n){6})", text, flags=re.M).group(1).splitlines()
    assert [[int(p) for p in re.findall(r"I=(\d+)", line)] for line in rows] == image[::2, ::2, 0].tolist()

    codes = re.search(r"Provenance codes: (.*?)\.", text, flags=re.S).group(1)
    assert [int(code) for code in re.findall(r"(\d+) ", codes)] == sorted(Provenance)
