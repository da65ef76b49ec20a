import numpy as np
import pytest

from densepose_textures.fill import FILL_METHODS, fill_atlas, fill_atlases
from densepose_textures.mirror import MirrorMap

P = 8
APPROXIMATE = MirrorMap.approximate()
RED, BLUE, GREEN = (200, 10, 10), (10, 10, 200), (10, 200, 10)


def blank():
    return np.zeros((24, P, P, 3), np.uint8), np.zeros((24, P, P), bool)


def see(texture, observed, part, colour, rows=slice(None), cols=slice(None)):
    texture[part - 1, rows, cols] = colour
    observed[part - 1, rows, cols] = True


@pytest.mark.parametrize("method", FILL_METHODS)
def test_observed_texels_never_change_and_everything_gets_filled(method):
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (3, 24, P, P, 3), dtype=np.uint8)
    observed = rng.random((3, 24, P, P)) < 0.2
    observed[1, 4:] = False  # most parts of image 1 unseen
    filled, provenance = fill_atlases(texture, observed, APPROXIMATE, method=method)
    np.testing.assert_array_equal(filled[observed], texture[observed])
    assert (provenance[observed] == 0).all() and (provenance[~observed] > 0).all()
    assert set(np.unique(provenance)) <= {0, 1, 2, 3, 4}


def test_mirror_step_copies_the_mirror_texel():
    texture, observed = blank()
    see(texture, observed, 3, RED, rows=2, cols=1)  # right hand; the approximation maps U -> 1 - U
    filled, provenance = fill_atlas(texture, observed, mirror=APPROXIMATE)
    assert tuple(filled[3, 2, P - 2]) == RED and provenance[3, 2, P - 2] == 1
    same, _ = fill_atlas(texture, observed, mirror=MirrorMap.approximate().texel_index(P))
    np.testing.assert_array_equal(same, filled)


def test_in_part_fill_spreads_within_the_part_only():
    texture, observed = blank()
    see(texture, observed, 7, RED, rows=0, cols=0)
    see(texture, observed, 7, BLUE, rows=P - 1, cols=P - 1)
    see(texture, observed, 9, GREEN)
    filled, provenance = fill_atlas(texture, observed, mirror=None)
    assert tuple(filled[6, 1, 0]) == RED and tuple(filled[6, P - 1, P - 2]) == BLUE
    assert (provenance[6][~observed[6]] == 2).all()
    assert set(map(tuple, filled[6].reshape(-1, 3))) == {RED, BLUE}


def test_empty_parts_take_mirror_then_other_side_of_the_limb():
    texture, observed = blank()
    see(texture, observed, 9, GREEN, rows=slice(0, 4))  # upper leg right front, half seen
    filled, provenance = fill_atlas(texture, observed, APPROXIMATE)
    assert (provenance[8, 4:] == 2).all()  # rest of part 9: in-part
    assert (filled[9] == GREEN).all()  # part 10, its mirror: mirror of what was seen, then in-part
    assert (provenance[9, :4] == 1).all() and (provenance[9, 4:] == 2).all()
    assert (provenance[6] == 3).all() and (filled[6] == GREEN).all()  # part 7 (back of the same leg)
    assert (provenance[7] == 3).all()  # part 8: back of the mirrored leg


def test_torso_sides_never_mix_unless_one_is_wholly_unseen():
    texture, observed = blank()
    see(texture, observed, 2, RED)  # torso front
    see(texture, observed, 1, BLUE, rows=3, cols=3)  # one texel of the back
    filled, provenance = fill_atlas(texture, observed, APPROXIMATE)
    assert (filled[0] == BLUE).all()  # its own mirror image (V -> 1 - V), then in-part
    assert (provenance[0, P - 4, 3] == 1) and (provenance[0][~observed[0]] <= 2).all()
    texture, observed = blank()
    see(texture, observed, 2, RED)
    see(texture, observed, 7, GREEN)
    filled, provenance = fill_atlas(texture, observed, APPROXIMATE)
    assert (filled[0] == RED).all() and (provenance[0] == 3).all()  # the late, recorded fallback


def test_what_nothing_explains_takes_the_mean_colour():
    texture, observed = blank()
    see(texture, observed, 7, (100, 0, 0))
    see(texture, observed, 15, (0, 0, 51))  # arm, same number of texels
    filled, provenance = fill_atlas(texture, observed, APPROXIMATE)
    assert (provenance[22:] == 4).all()  # head halves
    np.testing.assert_array_equal(filled[22, 0, 0], [50, 0, 26])  # (50, 0, 25.5) rounded half up


def test_no_person_is_marked_255():
    texture, observed = blank()
    texture[:] = 7
    filled, provenance = fill_atlas(texture, observed, APPROXIMATE)
    assert (provenance == 255).all() and (filled == 0).all()


@pytest.mark.parametrize("method", FILL_METHODS)
def test_a_uniform_part_is_filled_with_its_colour(method):
    texture, observed = blank()
    see(texture, observed, 1, BLUE, rows=slice(2, 5), cols=slice(1, 3))
    filled, provenance = fill_atlas(texture, observed, mirror=None, method=method)
    tolerance = 6 if method == "telea" else 0  # Telea extrapolates gradients: close, not exact
    assert np.abs(filled[0].astype(int) - BLUE).max() <= tolerance
    assert (provenance[0][~observed[0]] == 2).all()


def test_batched_equals_single_and_bad_method_is_refused():
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 256, (2, 24, P, P, 3), dtype=np.uint8)
    observed = rng.random((2, 24, P, P)) < 0.1
    filled, provenance = fill_atlases(texture, observed, APPROXIMATE)
    for i in range(2):
        t, p = fill_atlas(texture[i], observed[i], APPROXIMATE)
        np.testing.assert_array_equal(filled[i], t)
        np.testing.assert_array_equal(provenance[i], p)
    with pytest.raises(ValueError, match="fill method"):
        fill_atlas(texture[0], observed[0], APPROXIMATE, method="magic")
