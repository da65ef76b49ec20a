"""Provenance codes: which step set each texel of a texture set (its ``provenance`` array, uint8).

One home for the codes and their labels; the fill, the shards, the pictures, the quality table
and the trainer all read them from here. ``NO_PERSON`` (255) is the one code for a texel with
nothing behind it: its image has no person. Codes 9 to 254 are free: a new step is one line
below (its code and label), plus its colour in :data:`densepose_textures.pictures.STEP_COLOURS`.
"""

from enum import IntEnum


class Provenance(IntEnum):
    """A texel's provenance code; ``.label`` names it in tables and legends."""

    def __new__(cls, code, label):
        member = int.__new__(cls, code)
        member._value_ = code
        member.label = label
        return member

    OBSERVED = 0, "observed"
    MIRROR = 1, "mirror"
    IN_PART = 2, "in-part"
    RELATED_PART = 3, "related part"
    MEAN_COLOUR = 4, "mean colour"
    IDENTITY = 5, "identity"  # not seen in this image, fused from other images of its identity
    TRUE = 6, "true"  # copied from the renderer's true atlas (synthetic sets)
    GENERATED = 7, "generated"  # predicted by a SAN-PG texture generator (source sanpg)
    IMPORTED = 8, "imported"  # taken from a released texture image (`sanreid textures import`)
    NO_PERSON = 255, "no person"
