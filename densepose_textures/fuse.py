"""Identity-fused targets: one atlas per identity from the observed texels of all its images.

A reID dataset's identity wears the same clothes in all its images, so each image shows part
of one texture; fusing them fills what one image cannot see with what the others saw. Per
texel and channel the fused colour is the median over the images that observed the texel
(robust to a few badly warped, occluded or shaded pixels; a texel seen by more images gets a
steadier value). What no image observed is then filled by the usual chain
(:func:`densepose_textures.fill.fill_atlases`). Every image of the identity gets the same
atlas; its provenance says 0 where this image observed the texel, 5 (identity) where only
other images did, and the fill step's code elsewhere.
"""

import numpy as np

from .fill import fill_atlases
from .provenance import Provenance


def median_of_observed(textures, observed):
    """Fuse one identity: (N, 24, P, P, 3) uint8 textures, (N, 24, P, P) observed ->
    ((24, P, P, 3) uint8 fused texture, (24, P, P) bool seen by any image).

    Per texel and channel the median over the images that observed the texel (an even count
    takes the mean of the two middle values, rounded half up); 0 where no image did."""
    observed = np.asarray(observed).astype(bool)
    values = np.where(observed[..., None], np.asarray(textures, dtype=np.float32), np.nan)
    ordered = np.sort(values, axis=0)  # NaN (not observed) last
    count = np.broadcast_to(observed.sum(axis=0)[..., None], ordered.shape[1:])  # (24, P, P, 3)
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0)[None] // 2, axis=0)[0]
    high = np.take_along_axis(ordered, np.minimum(count // 2, len(ordered) - 1)[None], axis=0)[0]
    seen = count[..., 0] > 0
    fused = np.where(count > 0, np.floor((low + high) / 2 + 0.5), 0).astype(np.uint8)
    return fused, seen


def fuse_identities(textures, observed, identities, mirror, method="nearest"):
    """Identity-fused targets of a batch: textures (B, 24, P, P, 3) uint8 and observed (B, 24, P, P)
    warped from B images, ``identities`` (B,) their identity labels -> (textures, provenance).

    Every image with an observed texel gets its identity's fused atlas, filled by ``method``
    with ``mirror`` (as :func:`fill_atlases`) where no image of the identity observed a texel;
    an image with no observed texel keeps a zero texture and provenance 255 (no person)."""
    textures, observed = np.asarray(textures), np.asarray(observed).astype(bool)
    names, group = np.unique(np.asarray(identities), return_inverse=True)
    fused = np.zeros((len(names),) + textures.shape[1:], np.uint8)
    seen = np.zeros((len(names),) + observed.shape[1:], bool)
    for g in range(len(names)):
        members = group == g
        fused[g], seen[g] = median_of_observed(textures[members], observed[members])
    filled, steps = fill_atlases(fused, seen, mirror, method)
    texture, provenance = filled[group], steps[group]
    provenance[(provenance == Provenance.OBSERVED) & ~observed] = Provenance.IDENTITY
    person = observed.reshape(len(observed), -1).any(axis=1)
    texture[~person] = 0
    provenance[~person] = Provenance.NO_PERSON
    return texture, provenance
