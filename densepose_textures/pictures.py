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
    Provenance.RELATED_PART: (235, 110, 30), Provenance.MEAN_COLOUR: (200, 40, 40), Provenance.NO_PERSON: (0, 0, 0),
}
UNSEEN = (24, 24, 28)


def provenance_colours(provenance):
    """(..., P, P) provenance codes -> (..., P, P, 3) uint8 colours of :data:`STEP_COLOURS`."""
    palette = np.zeros((256, 3), np.uint8)
    for code, colour in STEP_COLOURS.items():
        palette[code] = colour
    return palette[provenance]


def record_atlas_image(record, what="texture"):
    """(6P, 4P, 3) DensePose atlas image of a record: its texture, only the observed texels, or its fill steps."""
    if what == "texture":
        patches = record["texture"]
    elif what == "observed":
        patches = np.where(record["observed"][..., None] > 0, record["texture"], np.uint8(UNSEEN))
    elif what == "provenance":
        patches = provenance_colours(record["provenance"])
    else:
        raise ValueError(f"what must be texture, observed or provenance, got {what!r}")
    return atlas_to_image(np.asarray(patches, np.uint8))


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
    legend = np.full((24, width, 3), 255, np.uint8)
    x = 4
    for code in Provenance:
        cv2.rectangle(legend, (x, 6), (x + 12, 18), tuple(int(c) for c in STEP_COLOURS[code]), -1)
        cv2.putText(legend, code.label, (x + 16, 17), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1, cv2.LINE_AA)
        x += 24 + 9 * len(code.label)
    return legend
