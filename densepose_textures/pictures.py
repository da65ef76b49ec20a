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
