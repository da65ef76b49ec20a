"""Identities: a body shape and a full atlas texture (24, P, P, 3) painted in chart coordinates.

Colours come from small shared palettes and garments from a few kinds, so that many people
look alike from one side; the front and the back differ (a logo only on the front, a backpack
only on the back, open jackets, long hair), so one view shows only part of an identity.
"""

from dataclasses import dataclass, replace

import numpy as np

from ..atlas import texel_to_uv
from ..parts import NUM_PARTS
from .body import LEFT, BodyShape

CLOTH = np.array([
    (28, 28, 32), (58, 58, 64), (120, 120, 124), (222, 222, 216), (32, 42, 84), (52, 92, 168),
    (74, 98, 138), (168, 36, 42), (52, 108, 62), (168, 148, 102), (98, 68, 46), (216, 140, 158),
    (218, 186, 64), (98, 104, 56), (98, 62, 128),
], dtype=np.float64)
CLOTH_WEIGHTS = np.array([14, 10, 8, 10, 8, 6, 7, 4, 3, 4, 4, 2, 2, 2, 2], dtype=np.float64)
SKIN = np.array([(238, 200, 172), (224, 178, 140), (198, 148, 110), (158, 108, 74), (108, 74, 50)], dtype=np.float64)
HAIR = np.array([(24, 20, 18), (58, 40, 26), (108, 74, 44), (196, 166, 108), (150, 148, 146)], dtype=np.float64)
HAIR_WEIGHTS = np.array([10, 8, 4, 2, 1], dtype=np.float64)
SHOES = np.array([(20, 20, 22), (230, 230, 228), (90, 60, 40), (110, 110, 115), (30, 38, 70)], dtype=np.float64)

BAGS = np.array([(22, 20, 20), (92, 58, 36), (140, 104, 70), (200, 190, 170), (120, 20, 30)], dtype=np.float64)
HAT_COLOURS = [0, 2, 3, 4, 5, 7]  # black, grey, white, navy, blue, red
TOP_KINDS = ("plain", "stripes", "checks", "yoke", "jacket")
TOP_WEIGHTS = np.array([8, 3, 2, 2, 3], dtype=np.float64)
TORSO_WAIST = 0.21  # torso U below which the trousers show
ARM_PARTS_UPPER = (15, 16, 17, 18)
ARM_PARTS_LOWER = (19, 20, 21, 22)
LEG_PARTS_UPPER = (7, 8, 9, 10)
LEG_PARTS_LOWER = (11, 12, 13, 14)


@dataclass(frozen=True)
class Identity:
    pid: int
    shape: BodyShape
    texture: np.ndarray  # (24, P, P, 3) uint8
    traits: dict  # what was drawn (garment kinds, colours), for inspection


def _pick(rng, palette, weights=None, jitter=10.0):
    p = None if weights is None else weights / weights.sum()
    index = int(rng.choice(len(palette), p=p))
    return np.clip(palette[index] + rng.normal(0.0, jitter, 3), 0, 255), index


def _other_colour(rng, avoid):
    while True:
        colour, index = _pick(rng, CLOTH, CLOTH_WEIGHTS)
        if index != avoid:
            return colour, index


def draw_traits(rng):
    top, top_i = _pick(rng, CLOTH, CLOTH_WEIGHTS)
    top2, _ = _other_colour(rng, top_i)
    bottom, bottom_i = _pick(rng, CLOTH, CLOTH_WEIGHTS)
    return {
        "top": top, "top_index": top_i, "top2": top2,
        "top_kind": TOP_KINDS[int(rng.choice(len(TOP_KINDS), p=TOP_WEIGHTS / TOP_WEIGHTS.sum()))],
        "stripes": int(rng.integers(4, 9)),
        "sleeves": "long" if rng.random() < 0.5 else "short",
        "bottom": bottom, "bottom_index": bottom_i,
        "bottom_kind": str(rng.choice(["trousers", "shorts", "skirt"], p=[0.68, 0.16, 0.16])),
        "skirt_length": float(rng.uniform(0.16, 0.25)),
        "tights": _pick(rng, CLOTH[[0, 1, 4]])[0] if rng.random() < 0.4 else None,
        "skin": _pick(rng, SKIN, jitter=8.0)[0],
        "hair": _pick(rng, HAIR, HAIR_WEIGHTS, jitter=6.0)[0],
        "long_hair": bool(rng.random() < 0.3),
        "hair_length": float(rng.uniform(0.6, 1.1)),
        "hat": _pick(rng, CLOTH[HAT_COLOURS])[0] if rng.random() < 0.12 else None,
        "shoes": _pick(rng, SHOES, jitter=8.0)[0],
        "logo": _other_colour(rng, top_i)[0] if rng.random() < 0.45 else None,
        "logo_shape": int(rng.integers(0, 3)),
        "logo_at": float(rng.choice([0.5, 0.62])),
        "backpack": _other_colour(rng, top_i)[0] if rng.random() < 0.35 else None,
        "bag": _pick(rng, BAGS)[0] if rng.random() < 0.25 else None,
        "bag_kind": "shoulder" if rng.random() < 0.6 else "hand",
        "bag_side": int(rng.integers(0, 2)),  # body.LEFT or body.RIGHT
    }


def draw_shape(rng):
    return BodyShape(
        height=float(rng.uniform(0.92, 1.08)),
        girth=float(rng.uniform(0.88, 1.12)),
        legs=float(rng.uniform(0.95, 1.05)),
        head=float(rng.uniform(0.94, 1.08)),
        depth=float(rng.uniform(0.56, 0.7)),
    )


def _ellipse(v, u, cv, cu, rv, ru):
    return ((v - cv) / rv) ** 2 + ((u - cu) / ru) ** 2 <= 1.0


def _paint_torso(t, u, v, front):
    """Torso chart: u = height (0 hips .. 1 shoulders), v = across (0.5 the midline)."""
    out = np.empty(u.shape + (3,))
    out[:] = t["top"]
    kind = t["top_kind"]
    if kind == "stripes":
        out[(np.floor(u * t["stripes"] * 1.6) % 2).astype(bool)] = t["top2"]
    elif kind == "checks":
        out[((np.floor(u * 7) + np.floor(v * 6)) % 2).astype(bool)] = t["top2"]
    elif kind == "yoke":
        out[u > 0.62] = t["top2"]
    elif kind == "jacket" and front:
        out[np.abs(v - 0.5) < 0.09] = t["top2"]
        out[np.abs(np.abs(v - 0.5) - 0.09) < 0.012] = t["top"] * 0.6
    if t["logo"] is not None and front:
        cv, cu = (0.5, 0.66) if t["logo_at"] == 0.5 else (0.62, 0.72)
        if t["logo_shape"] == 0:
            mask = _ellipse(v, u, cv, cu, 0.1, 0.08)
        elif t["logo_shape"] == 1:
            mask = (np.abs(v - cv) < 0.09) & (np.abs(u - cu) < 0.07)
        else:
            mask = (np.abs(v - cv) < 0.13) & (np.abs(u - cu) < 0.03)
        out[mask] = t["logo"]
    neck = (u > 0.93) & (np.abs(v - 0.5) < (0.16 if front else 0.1))
    out[neck] = t["skin"]
    if t["long_hair"] and not front:
        out[(u > 0.8) & (np.abs(v - 0.5) < 0.2)] = t["hair"]
    if t["backpack"] is not None:
        if front:
            straps = (np.abs(np.abs(v - 0.5) - 0.2) < 0.03) & (u > 0.55)
            out[straps] = t["backpack"] * 0.7
        else:
            bag = (np.abs(v - 0.5) < 0.27) & (u > 0.34) & (u < 0.88)
            out[bag] = t["backpack"]
            rim = bag & ((np.abs(np.abs(v - 0.5) - 0.27) < 0.025) | (np.abs(u - 0.6) < 0.015))
            out[rim] = t["backpack"] * 0.65
            pocket = (np.abs(v - 0.5) < 0.15) & (u > 0.38) & (u < 0.56)
            out[pocket] = np.clip(t["backpack"] * 1.15 + 10, 0, 255)
    if t["bag"] is not None and t["bag_kind"] == "shoulder":  # strap from the other shoulder to the bag
        towards = 1.0 if t["bag_side"] == LEFT else -1.0  # the person's left is v = 1
        line = 0.5 - 0.22 * towards + 0.62 * towards * (1.0 - u) / 0.7
        out[(np.abs(v - line) < 0.03) & (u > 0.3)] = t["bag"] * 0.8
    out[u < TORSO_WAIST] = t["bottom"]
    out[np.abs(u - TORSO_WAIST) < 0.018] = t["bottom"] * 0.55  # belt
    return out


def _paint_head(t, u, v, left):
    """Head halves: azimuth from the face |alpha| in [0, pi], height y = sin(pi (v - 1/2))."""
    alpha = np.pi * (u if left else 1.0 - u)
    y = np.sin(np.pi * (v - 0.5))
    out = np.empty(u.shape + (3,))
    out[:] = t["skin"]
    back = np.clip((alpha - 0.9) / 1.1, 0.0, 1.0)
    hairline = 0.5 * (1 - back) + back * (-0.95 if t["long_hair"] else -0.4)
    out[y > hairline] = t["hair"]
    eye = ((np.abs(alpha - 0.36) / 0.11) ** 2 + ((y - 0.12) / 0.08) ** 2) <= 1.0
    out[eye] = (35, 28, 26)
    out[((alpha / 0.2) ** 2 + ((y + 0.45) / 0.06) ** 2) <= 1.0] = t["skin"] * np.array([0.8, 0.55, 0.55])
    ear = ((np.abs(alpha - 1.57) / 0.15) ** 2 + ((y - 0.05) / 0.2) ** 2) <= 1.0
    out[ear & ~(y > hairline)] = t["skin"] * 0.9
    if t["hat"] is not None:  # a cap: crown, and a darker peak over the face
        out[y > 0.38] = t["hat"]
        out[(alpha < 0.8) & (y > 0.3) & (y <= 0.42)] = t["hat"] * 0.6
    return out


def paint_texture(t, size, rng):
    """(24, P, P, 3) uint8 atlas of traits ``t`` (rng adds cloth noise)."""
    row, col = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    u, v = texel_to_uv(row, col, size)
    atlas = np.zeros((NUM_PARTS, size, size, 3))
    for part in range(1, NUM_PARTS + 1):
        if part in (1, 2):
            img = _paint_torso(t, u, v, part == 2)
        elif part in (23, 24):
            img = _paint_head(t, u, v, part == 24)
        elif part in (3, 4):
            img = np.broadcast_to(t["skin"], u.shape + (3,)).copy()
        elif part in (5, 6):
            img = np.broadcast_to(t["shoes"], u.shape + (3,)).copy()
            img[(u < 0.14) | (u > 0.86)] = t["shoes"] * 0.5 + 60  # sole
        elif part in ARM_PARTS_UPPER + ARM_PARTS_LOWER:
            img = np.broadcast_to(t["skin"], u.shape + (3,)).copy()
            cut = 0.0 if t["sleeves"] == "long" else (1.1 if part in ARM_PARTS_LOWER else 0.45)
            sleeve = v > cut
            img[sleeve] = t["top"]
            if t["top_kind"] == "stripes":
                img[sleeve & (np.floor(v * t["stripes"]) % 2).astype(bool)] = t["top2"]
            if t["sleeves"] == "long" and part in ARM_PARTS_LOWER:
                img[v < 0.08] = t["top"] * 0.75  # cuff
        else:  # legs
            img = np.broadcast_to(t["bottom"], u.shape + (3,)).copy()
            if t["bottom_kind"] in ("shorts", "skirt"):
                legs = t["skin"] if t["bottom_kind"] == "shorts" or t["tights"] is None else t["tights"]
                if part in LEG_PARTS_LOWER:
                    img[:] = legs
                else:
                    img[v < (0.45 if t["bottom_kind"] == "shorts" else 0.35)] = legs
            if part in LEG_PARTS_LOWER:
                img[v < 0.06] = t["shoes"]
        atlas[part - 1] = img
    # soft cloth folds (a few low-frequency waves per part) and weave noise
    freq = rng.uniform(1.0, 3.0, (NUM_PARTS, 2, 1, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (NUM_PARTS, 2, 1, 1))
    waves = np.sin(2 * np.pi * freq * np.stack([u, v])[None] + phase).sum(1)  # (24, P, P)
    atlas *= (1.0 + 0.06 * waves)[..., None]
    atlas += rng.normal(0.0, 3.0, atlas.shape)
    return np.clip(np.rint(atlas), 0, 255).astype(np.uint8)


def make_identity(pid, seed, size):
    """Identity ``pid`` drawn from ``seed`` (an int or a numpy SeedSequence)."""
    rng = np.random.default_rng(seed)
    traits = draw_traits(rng)
    shape = draw_shape(rng)
    if traits["bottom_kind"] == "skirt":
        shape = replace(shape, skirt=traits["skirt_length"])
    if traits["long_hair"]:
        shape = replace(shape, hair=traits["hair_length"])
    return Identity(pid, shape, paint_texture(traits, size, rng), traits)
