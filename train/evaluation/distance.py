"""Query x gallery distances in chunks of queries (bounded memory), on the features' device."""

import functools
import logging

import torch
import torch.nn.functional as F

from densepose_textures.errors import InputError

log = logging.getLogger(__name__)

METRICS = ("euclidean", "cosine")


@functools.cache
def _onednn_linear():
    """torch's oneDNN linear kernel, or None where this torch build has none."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None
    return op if torch.backends.mkldnn.is_available() else None


def matmul_nt(a, b, bias=None):
    """``a @ b.T`` (+ ``bias`` per column). On CPU in float32 through oneDNN where torch has it: torch's
    default product (MKL) runs its AVX2 kernels on AMD CPUs, where oneDNN's were about 2x faster
    (benchmarks/bench_eval.py); elsewhere ``torch.addmm``."""
    op = _onednn_linear() if a.device.type == "cpu" and a.dtype == b.dtype == torch.float32 else None
    if op is not None:
        try:
            return op(a, b, bias, "none", [], "")
        except RuntimeError as error:  # e.g. a CPU without the instructions oneDNN's kernels need
            log.debug("oneDNN linear unavailable (%s): using torch.mm", error)
    return torch.mm(a, b.t()) if bias is None else torch.addmm(bias, a, b.t())


def squared_norms(x):
    """Row-wise squared L2 norms (``vector_norm``: at 6,000 x 2048 on CPU, 15x ``x.pow(2).sum(1)``)."""
    return torch.linalg.vector_norm(x, dim=1).square_()


def as_features(x, name):
    """A floating (N, D) tensor from a numpy array or tensor."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    if t.ndim != 2 or t.shape[1] == 0:
        raise InputError(f"{name}: expected a (N, D) feature matrix, got shape {tuple(t.shape)}")
    return t if t.is_floating_point() else t.float()


def pairwise_distance(qf, gf, metric="euclidean", normalize=True, chunk_size=2048):
    """(Q, G) distances between query and gallery features, computed ``chunk_size`` queries at a time.

    ``euclidean``: Euclidean distance (not squared); ``cosine``: 1 - cosine similarity (always on
    L2-normalised features). ``normalize`` L2-normalises both sets first. Runs on ``qf``'s device;
    the result has the features' dtype.
    """
    if metric not in METRICS:
        raise InputError(f"metric={metric!r}: expected one of {', '.join(METRICS)}")
    qf, gf = as_features(qf, "query features"), as_features(gf, "gallery features")
    if qf.shape[1] != gf.shape[1]:
        raise InputError(f"query features are {qf.shape[1]}-d but gallery features {gf.shape[1]}-d")
    gf = gf.to(qf.device, qf.dtype)
    if normalize or metric == "cosine":
        qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
    out = torch.empty(len(qf), len(gf), dtype=qf.dtype, device=qf.device)
    g_sq = squared_norms(gf)
    for start in range(0, len(qf), chunk_size):
        q = qf[start:start + chunk_size]
        block = out[start:start + len(q)]
        block.copy_(matmul_nt(q, gf))  # (B, G) dot products
        if metric == "cosine":
            block.neg_().add_(1.0)
        else:
            block.mul_(-2.0).add_(squared_norms(q)[:, None]).add_(g_sq).clamp_(min=0).sqrt_()
    return out
