"""The exact left/right mirror map of the synthetic body's charts (see :mod:`.raycast`).

The charts of a left part are the mirror images of its right twin's, so mirroring is, on the
source part's (U, V): torso (1, 2) V -> 1 - V; hands, feet, head halves (3-6, 23, 24) U -> 1 - U;
legs and arms (7-22) unchanged. This is also the form docs/design.md measured on DensePose's atlas,
but here it is exact by construction. The tables hold, at [round(255 V), round(255 U)], the
mirrored U and V exactly (k / 255), so for any atlas size P <= 256 the texel map it induces is an
exact involution (no texel centre lies on a rounding tie: 2 k (P - 1) = 255 (2 j + 1) has no
solution, the left side being even and the right odd).
"""

import numpy as np

from ..mirror import TABLE_SIZE, MirrorMap
from ..parts import NUM_PARTS

U_FLIPPED = (3, 4, 5, 6, 23, 24)
V_FLIPPED = (1, 2)


def body_mirror_map():
    """:class:`MirrorMap` (source ``"synthetic"``, exact) of the synthetic body."""
    grid = np.arange(TABLE_SIZE, dtype=np.float64) / (TABLE_SIZE - 1)
    v0, u0 = np.meshgrid(grid, grid, indexing="ij")  # tables are indexed [V, U]
    u = np.repeat(u0[None], NUM_PARTS, axis=0)
    v = np.repeat(v0[None], NUM_PARTS, axis=0)
    for part in U_FLIPPED:
        u[part - 1] = 1.0 - u0
    for part in V_FLIPPED:
        v[part - 1] = 1.0 - v0
    return MirrorMap.from_tables(u, v, "synthetic")
