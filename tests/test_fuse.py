import numpy as np

from densepose_textures.fill import fill_atlases
from densepose_textures.fuse import fuse_identities, median_of_observed
from densepose_textures.provenance import Provenance

P = 2


def hand_made_identity():
    """Three images of one identity that see parts of patch 1 (part I=1) of a P=2 atlas; image 2 is off on texel A."""
    textures = np.zeros((3, 24, P, P, 3), np.uint8)
    observed = np.zeros((3, 24, P, P), bool)
    a, b, c = (0, 0, 0), (0, 0, 1), (0, 1, 0)  # (part index, row, column)
    for image, (ta, tb, tc) in enumerate([((10, 20, 30), (10, 90, 7), None),
                                          ((12, 22, 32), (13, 91, 8), None),
                                          ((200, 0, 0), None, (50, 60, 70))]):
        for texel, value in ((a, ta), (b, tb), (c, tc)):
            if value is not None:
                textures[(image,) + texel] = value
                observed[(image,) + texel] = True
    return textures, observed


def test_median_of_the_images_that_observed_each_texel():
    textures, observed = hand_made_identity()
    fused, seen = median_of_observed(textures, observed)
    assert fused[0, 0, 0].tolist() == [12, 20, 30]  # median of 3: the outlier (200, 0, 0) has no say
    assert fused[0, 0, 1].tolist() == [12, 91, 8]  # two images: mean of both, rounded half up (11.5 -> 12)
    assert fused[0, 1, 0].tolist() == [50, 60, 70]  # one image: its value
    assert seen.sum() == 3 and seen[0, 0, 0] and seen[0, 0, 1] and seen[0, 1, 0]
    assert (fused[~seen] == 0).all()


def test_every_image_gets_the_identity_atlas_with_its_own_provenance():
    textures, observed = hand_made_identity()
    lone = np.zeros((1, 24, P, P, 3), np.uint8)
    lone_seen = np.zeros((1, 24, P, P), bool)
    lone[0, 5], lone_seen[0, 5] = 99, True  # another identity: one image that sees all of part 6
    textures = np.concatenate([textures, lone, np.zeros_like(lone)])  # and an image of identity 7 with no person
    observed = np.concatenate([observed, lone_seen, np.zeros_like(lone_seen)])
    texture, provenance = fuse_identities(textures, observed, [7, 7, 7, 3, 7], mirror=None)

    fused = np.zeros((24, P, P, 3), np.uint8)
    seen = np.zeros((24, P, P), bool)
    fused[0, 0, 0], fused[0, 0, 1], fused[0, 1, 0] = (12, 20, 30), (12, 91, 8), (50, 60, 70)
    seen[0, 0, 0] = seen[0, 0, 1] = seen[0, 1, 0] = True
    filled, steps = fill_atlases(fused[None], seen[None], None)
    for image in range(3):
        np.testing.assert_array_equal(texture[image], filled[0])
    assert texture[0, 0, 1, 1].tolist() in ([12, 91, 8], [50, 60, 70])  # the unseen texel: in-part fill
    assert provenance[0, 0].tolist() == [[0, 0], [5, 2]]  # image 0 saw A and B; C only image 2 saw
    assert provenance[1, 0].tolist() == [[0, 0], [5, 2]]
    assert provenance[2, 0].tolist() == [[0, 5], [0, 2]]
    assert (provenance[:3, 1:] == steps[0, 1:]).all() and set(np.unique(provenance[:3, 1:])) <= {1, 3, 4}
    alone, alone_steps = fill_atlases(lone, lone_seen, None)  # one image: as if not fused
    np.testing.assert_array_equal(texture[3], alone[0])
    np.testing.assert_array_equal(provenance[3], alone_steps[0])
    assert (provenance[4] == Provenance.NO_PERSON).all() and (texture[4] == 0).all()
