import numpy as np

from densepose_textures.pictures import STEP_COLOURS, provenance_colours
from densepose_textures.provenance import Provenance


def test_codes_labels_and_the_one_no_person_code():
    assert [(int(p), p.label) for p in Provenance] == [
        (0, "observed"), (1, "mirror"), (2, "in-part"), (3, "related part"), (4, "mean colour"), (5, "identity"),
        (6, "true"), (7, "generated"), (8, "imported"), (255, "no person")]
    assert Provenance(255) is Provenance.NO_PERSON and Provenance(2).label == "in-part"
    provenance = np.full(4, Provenance.NO_PERSON, np.uint8)  # codes are plain uint8 values in arrays
    provenance[1] = Provenance.MIRROR
    assert provenance.tolist() == [255, 1, 255, 255] and (provenance != Provenance.NO_PERSON).sum() == 1


def test_every_code_has_a_distinct_picture_colour():
    assert set(STEP_COLOURS) == set(Provenance)
    colours = provenance_colours(np.array([p.value for p in Provenance], np.uint8))
    assert len({tuple(c) for c in colours}) == len(Provenance)
