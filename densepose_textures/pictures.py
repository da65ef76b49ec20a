"""Pictures of texture sets: one record's atlas image, and a grid of images beside their atlases."""

import logging

import cv2
import numpy as np

from .atlas import atlas_to_image
from .errors import InputError
from .imageio import read_rgb
from .provenance import Provenance

log = logging.getLogger(__name__)

# Colours of the fill steps in provenance pictures: one for every code.
STEP_COLOURS = {
    Provenance.OBSERVED: (40, 170, 60), Provenance.MIRROR: (60, 110, 230), Provenance.IN_PART: (240, 200, 40),
    Provenance.RELATED_PART: (235, 110, 30), Provenance.MEAN_COLOUR: (200, 40, 40), Provenance.IDENTITY: (150, 70, 200),
    Provenance.TRUE: (120, 220, 220), Provenance.GENERATED: (230, 120, 190), Provenance.IMPORTED: (160, 120, 60),
    Provenance.NO_PERSON: (0, 0, 0),
}
UNSEEN = (24, 24, 28)
STEP_NAMES = tuple(code.label for code in Provenance)


def provenance_colours(provenance):
    """(..., P, P) provenance codes -> (..., P, P, 3) uint8 colours of :data:`STEP_COLOURS`."""
    palette = np.zeros((256, 3), np.uint8)
    for code, colour in STEP_COLOURS.items():
        palette[code] = colour
    return palette[provenance]


def record_atlas_image(record, what="texture"):
    """(6P, 4P, 3) DensePose atlas image of a record: its texture, only the observed texels, or its fill steps.
    A record of an image layout (an imported texture, (H, W, 3)) is drawn as it is, (H, W, 3)."""
    if what == "texture":
        patches = record["texture"]
    elif what == "observed":
        patches = np.where(record["observed"][..., None] > 0, record["texture"], np.uint8(UNSEEN))
    elif what == "provenance":
        patches = provenance_colours(record["provenance"])
    else:
        raise ValueError(f"what must be texture, observed or provenance, got {what!r}")
    patches = np.asarray(patches, np.uint8)
    return patches if patches.ndim == 3 else atlas_to_image(patches)


def _fit(image, height):
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)


def record_strip(record, image, height):
    """One row: the image, its observed texels, the filled atlas and the fill steps, all ``height`` tall."""
    panels = [_fit(image, height)] + [_fit(record_atlas_image(record, w), height)
                                      for w in ("observed", "texture", "provenance")]
    gap = np.full((height, 4, 3), 255, np.uint8)
    out = panels[0]
    for panel in panels[1:]:
        out = np.concatenate([out, gap, panel], axis=1)
    return out


def texture_grid(texture_set, root, *, count=16, seed=0, height=192, columns=2):
    """A grid of ``count`` records (with a person, picked at random by ``seed``), each drawn by
    :func:`record_strip`, ``columns`` strips per row, with a legend of the fill steps at the bottom."""
    candidates = np.flatnonzero(texture_set.found) if texture_set.found.any() else np.arange(len(texture_set))
    if not len(candidates):
        raise InputError(f"texture set {texture_set.path} has no records to draw")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(candidates, size=min(count, len(candidates)), replace=False))
    strips = []
    for i in chosen:
        record = texture_set[int(i)]
        try:
            image = read_rgb(root / record["key"])
        except InputError as err:
            log.warning("%s: drawing a blank image instead", err)
            image = np.full((2 * height, height, 3), 128, np.uint8)
        strip = record_strip(record, image, height)
        label = np.full((18, strip.shape[1], 3), 255, np.uint8)
        cv2.putText(label, record["key"], (2, 13), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1, cv2.LINE_AA)
        strips.append(np.concatenate([label, strip], axis=0))
    width = max(s.shape[1] for s in strips)
    strips = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
    while len(strips) % columns:
        strips.append(np.full_like(strips[0], 255))
    spacer = np.full((strips[0].shape[0], 12, 3), 255, np.uint8)
    rows = [np.concatenate(sum(([s, spacer] for s in strips[r:r + columns]), [])[:-1], axis=1)
            for r in range(0, len(strips), columns)]
    grid = np.concatenate(rows, axis=0)
    return np.concatenate([grid, _legend(grid.shape[1])], axis=0)


def _legend(width):
    """The fill steps' colours and names, left to right, wrapped onto more rows where ``width`` is too narrow."""
    entries = [(STEP_COLOURS[code], name, 24 + 9 * len(name)) for code, name in ((code, code.label) for code in Provenance)]
    rows, x = [[]], 4
    for entry in entries:
        if rows[-1] and x + entry[2] > width:
            rows.append([])
            x = 4
        rows[-1].append((x, entry))
        x += entry[2]
    legend = np.full((24 * len(rows), width, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for x, (colour, name, _) in row:
            cv2.rectangle(legend, (x, 24 * r + 6), (x + 12, 24 * r + 18), tuple(int(c) for c in colour), -1)
            cv2.putText(legend, name, (x + 16, 24 * r + 17), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1, cv2.LINE_AA)
    return legend


def with_legend(image):
    """``image`` (H, W, 3) with the fill-step legend below it, widened with white where the legend needs it."""
    width = max(image.shape[1], max(24 + 9 * len(name) for name in STEP_NAMES) + 8)
    image = np.pad(image, ((0, 0), (0, width - image.shape[1]), (0, 0)), constant_values=255)
    return np.concatenate([image, _legend(width)], axis=0)


# ---------------------------------------------------------------- texture sources side by side (`textures compare`)
HEADER_FONT = cv2.FONT_HERSHEY_SIMPLEX
HEADER_SCALE = 0.45  # the largest label size; a word wider than its column is drawn smaller
HEADER_MARGIN = 4


def _wrap(text, width, scale):
    """``text`` in lines no wider than ``width`` pixels at ``scale`` (words stay whole)."""
    lines = []
    for word in text.split():
        line = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(line, HEADER_FONT, scale, 1)[0][0] <= width:
            lines[-1] = line
        else:
            lines.append(word)
    return lines or [""]


def header_strip(labels, widths, gap):
    """White strip naming each column: ``labels`` centred in black over columns ``widths`` pixels wide,
    ``gap`` apart; a label too wide for its column goes onto more lines (and smaller, where one word is too wide)."""
    layouts = []
    for text, width in zip(labels, widths):
        widest = max(cv2.getTextSize(word, HEADER_FONT, 1.0, 1)[0][0] for word in text.split() or [" "])
        scale = min(HEADER_SCALE, 0.95 * width / widest)
        layouts.append((scale, _wrap(text, 0.95 * width, scale)))
    line_height = cv2.getTextSize("Ag", HEADER_FONT, HEADER_SCALE, 1)
    line_height = line_height[0][1] + line_height[1] + 2
    height = max(len(lines) for _, lines in layouts) * line_height + 2 * HEADER_MARGIN
    strip = np.full((height, sum(widths) + gap * (len(widths) - 1), 3), 255, np.uint8)
    x = 0
    for (scale, lines), width in zip(layouts, widths):
        for n, line in enumerate(lines):
            (w, h), _ = cv2.getTextSize(line, HEADER_FONT, scale, 1)
            cv2.putText(strip, line, (x + (width - w) // 2, HEADER_MARGIN + n * line_height + h), HEADER_FONT, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
        x += width + gap
    return strip


def comparable_sets(texture_sets):
    """The common P of ``texture_sets``; :class:`InputError` unless all are atlas sets of one P and one dataset."""
    for ts in texture_sets:
        if ts.layout != "atlas":
            raise InputError(f"{ts.path} holds textures of a foreign layout ({ts.attrs.get('source', '?')}, "
                             "{}x{} images), not atlases: it cannot be drawn beside the true atlases; leave it out"
                             .format(*ts.target_shape))
    sizes = {str(ts.path): ts.size for ts in texture_sets}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{path} P={size}" for path, size in sizes.items())
        raise InputError(f"the sets have different atlas sizes ({listed}): compare sets of one P")
    names = {str(ts.path): ts.attrs.get("dataset", "") for ts in texture_sets}
    if len(set(names.values())) > 1:
        listed = ", ".join(f"{path} ({name})" for path, name in names.items())
        raise InputError(f"the sets belong to different datasets: {listed}")
    return texture_sets[0].size


def _holds(texture_set, key):
    try:
        texture_set.index(key)
    except KeyError:
        return False
    return True


def compare_keys(texture_sets, truth, *, count=6, seed=0, keys=None):
    """The images to compare: ``keys`` (checked to be in every set and to have a true atlas), else ``count``
    of the images with a person in every set whose identity has a true atlas in ``truth`` ({raw pid: atlas}),
    drawn by ``seed`` and kept in the first set's order. :class:`InputError` when there are none."""
    from .quality import raw_pid

    if keys is not None:
        for key in keys:
            missing = [str(ts.path) for ts in texture_sets if not _holds(ts, key)]
            if missing:
                raise InputError(f"{key!r} is not in texture set(s) {', '.join(missing)}")
            if raw_pid(key) not in truth:
                raise InputError(f"{key!r}: identity {raw_pid(key)} has no true atlas in --truth "
                                 "(is it the ground truth of this dataset?)")
        return list(keys)
    first = texture_sets[0]
    shared = [key for key, found in zip(first.keys, first.found) if found]
    for ts in texture_sets[1:]:
        shared = [key for key in shared if _holds(ts, key) and ts.found[ts.index(key)]]
    if not shared:
        raise InputError(f"the sets {', '.join(str(ts.path) for ts in texture_sets)} share no image with a person: "
                         "compare sets of the same dataset (and splits)")
    candidates = [key for key in shared if raw_pid(key) in truth]
    if not candidates:
        raise InputError(f"none of the {len(shared)} images the sets share has a true atlas in --truth: "
                         "give the ground truth of the sets' dataset")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(candidates), size=min(count, len(candidates)), replace=False))
    return [candidates[i] for i in chosen]


def compare_picture(texture_sets, labels, truth, root, keys, *, height=192, gap=4):
    """uint8 picture of the texture sources side by side: a header naming the columns ("image", ``labels``,
    "true"), then one row per key of ``keys``: the image (from ``root``), each set's atlas in DensePose's atlas
    layout, and the true atlas of the image's identity (``truth`` {raw pid: atlas}, resampled to the sets' P
    as :func:`~.quality.true_atlas` makes it), all ``height`` tall (nearest-neighbour), ``gap`` pixels apart."""
    from .quality import raw_pid, true_atlas

    size = comparable_sets(texture_sets)
    rows = []
    for key in keys:
        try:
            image = read_rgb(root / key)
        except InputError as err:
            log.warning("%s: drawing a blank image instead", err)
            image = np.full((2 * height, height, 3), 128, np.uint8)
        atlases = [record_atlas_image(ts.get(key)) for ts in texture_sets]
        atlases.append(atlas_to_image(true_atlas(truth[raw_pid(key)], size)))
        rows.append([_fit(image, height)] + [_fit(atlas, height) for atlas in atlases])
    widths = [max(row[c].shape[1] for row in rows) for c in range(len(rows[0]))]
    lines = []
    for row in rows:
        panels = [np.pad(p, ((0, 0), (0, w - p.shape[1]), (0, 0)), constant_values=255) for p, w in zip(row, widths)]
        line = panels[0]
        for panel in panels[1:]:
            line = np.concatenate([line, np.full((height, gap, 3), 255, np.uint8), panel], axis=1)
        lines.append(line)
    between = np.full((gap, lines[0].shape[1], 3), 255, np.uint8)
    header = header_strip(["image", *labels, "true"], widths, gap)
    return np.concatenate([header] + [part for line in lines for part in (line, between)][:-1], axis=0)
