"""pairwise_distance against direct formulas; chunking does not change the result."""

import numpy as np
import pytest
import torch

from densepose_textures.errors import InputError
from train.evaluation.distance import pairwise_distance


@pytest.fixture()
def feats():
    rng = np.random.default_rng(0)
    return rng.standard_normal((13, 7)) * 3, rng.standard_normal((29, 7))


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_euclidean_raw_and_normalised(feats, chunk):
    qf, gf = feats
    raw = pairwise_distance(qf, gf, normalize=False, chunk_size=chunk).numpy()
    np.testing.assert_allclose(raw, np.linalg.norm(qf[:, None] - gf[None], axis=-1), atol=1e-9)
    qn, gn = qf / np.linalg.norm(qf, axis=1, keepdims=True), gf / np.linalg.norm(gf, axis=1, keepdims=True)
    norm = pairwise_distance(torch.from_numpy(qf), torch.from_numpy(gf), chunk_size=chunk).numpy()
    np.testing.assert_allclose(norm, np.linalg.norm(qn[:, None] - gn[None], axis=-1), atol=1e-9)


def test_cosine_and_dtype(feats):
    qf, gf = feats
    cos = pairwise_distance(torch.from_numpy(qf).float(), torch.from_numpy(gf).float(), metric="cosine",
                            normalize=False, chunk_size=5)
    assert cos.dtype == torch.float32 and cos.shape == (13, 29)
    expected = 1 - (qf @ gf.T) / np.outer(np.linalg.norm(qf, axis=1), np.linalg.norm(gf, axis=1))
    np.testing.assert_allclose(cos.numpy(), expected, atol=1e-5)


def test_errors(feats):
    qf, gf = feats
    with pytest.raises(InputError, match="metric"):
        pairwise_distance(qf, gf, metric="manhattan")
    with pytest.raises(InputError, match="7-d but gallery features 6-d"):
        pairwise_distance(qf, gf[:, :6])
    with pytest.raises(InputError, match=r"\(N, D\)"):
        pairwise_distance(qf[0], gf)


@pytest.mark.parametrize("onednn", [True, False])
def test_matmul_nt_with_and_without_onednn(monkeypatch, onednn):
    """The float32 CPU product goes through oneDNN where torch has it, else torch.addmm: same result."""
    import train.evaluation.distance as distance

    if not onednn:
        monkeypatch.setattr(distance, "_onednn_linear", lambda: None)
    elif distance._onednn_linear() is None:
        pytest.skip("this torch build has no oneDNN linear")
    rng = np.random.default_rng(1)
    a, b, bias = (torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)) for shape in ((37, 70), (23, 70), (23,)))
    expected = a.double() @ b.double().t() + bias.double()
    np.testing.assert_allclose(distance.matmul_nt(a, b, bias).double().numpy(), expected.numpy(), atol=1e-4)
    np.testing.assert_allclose(distance.matmul_nt(a, b).double().numpy(), (expected - bias.double()).numpy(), atol=1e-4)
    assert distance.matmul_nt(a.double(), b.double()).dtype == torch.float64  # oneDNN: float32 only
