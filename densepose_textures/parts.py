"""DensePose's 24 body-part charts and their left/right mirror pairs (index I, 0 = background;
the parts' names are in docs/design.md's table)."""

import numpy as np

NUM_PARTS = 24

# MIRROR_PART[I] is the part that I becomes when the person is mirrored left/right.
MIRROR_PART = np.array(
    [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23],
    dtype=np.int64,
)
