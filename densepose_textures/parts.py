"""DensePose's 24 body-part charts: names and left/right mirror pairs (index I, 0 = background)."""

import numpy as np

NUM_PARTS = 24

PART_NAMES = (
    "background",
    "torso back", "torso front", "right hand", "left hand", "left foot", "right foot",
    "upper leg right back", "upper leg left back", "upper leg right front", "upper leg left front",
    "lower leg right back", "lower leg left back", "lower leg right front", "lower leg left front",
    "upper arm left inside", "upper arm right inside", "upper arm left outside", "upper arm right outside",
    "lower arm left inside", "lower arm right inside", "lower arm left outside", "lower arm right outside",
    "head right", "head left",
)

# MIRROR_PART[I] is the part that I becomes when the person is mirrored left/right.
MIRROR_PART = np.array(
    [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23],
    dtype=np.int64,
)
