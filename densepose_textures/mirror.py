"""Left/right mirror correspondence between DensePose charts.

A :class:`MirrorMap` holds the tables of DensePose's ``UV_symmetry_transforms.mat``:
for source part I (index I-1) and texel ``[round(255 V), round(255 U)]``, the
mirrored U and V (in [0, 1]) on part ``MIRROR_PART[I]``. It comes from that file,
from the synthetic body (exact), or from the analytic approximation of docs/design.md.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atlas import texel_to_uv, uv_to_texel
from .errors import InputError
from .parts import MIRROR_PART, NUM_PARTS
from .storage import array_digest

TABLE_SIZE = 256


@dataclass(frozen=True)
class MirrorMap:
    u: np.ndarray  # (24, 256, 256) float32, mirrored U, indexed [part-1, round(255 V), round(255 U)]
    v: np.ndarray  # (24, 256, 256) float32, mirrored V
    source: str  # "approximate", "synthetic" or "densepose-mat"

    @property
    def exact(self):
        return self.source != "approximate"

    @classmethod
    def approximate(cls):
        """docs/design.md's approximation: legs/arms keep (U, V); hands, feet, head halves U -> 1-U; torso V -> 1-V."""
        grid = np.linspace(0.0, 1.0, TABLE_SIZE, dtype=np.float32)
        v0, u0 = np.meshgrid(grid, grid, indexing="ij")
        u = np.repeat(u0[None], NUM_PARTS, axis=0)
        v = np.repeat(v0[None], NUM_PARTS, axis=0)
        for part in (3, 4, 5, 6, 23, 24):
            u[part - 1] = 1.0 - u0
        for part in (1, 2):
            v[part - 1] = 1.0 - v0
        return cls(u, v, "approximate")

    @classmethod
    def from_tables(cls, u_tables, v_tables, source):
        u = np.asarray(u_tables, dtype=np.float32)
        v = np.asarray(v_tables, dtype=np.float32)
        expected = (NUM_PARTS, TABLE_SIZE, TABLE_SIZE)
        if u.shape != expected or v.shape != expected:
            raise InputError(f"mirror tables must have shape {expected}, got U {u.shape} and V {v.shape}")
        return cls(np.clip(u, 0, 1), np.clip(v, 0, 1), source)

    @classmethod
    def from_mat(cls, path):
        """Read DensePose's ``UV_symmetry_transforms.mat`` (cell arrays ``U_transforms``, ``V_transforms``)."""
        from scipy.io import loadmat

        path = Path(path)
        if not path.is_file():
            raise InputError(
                f"mirror file {path} not found: download DensePose's UV_symmetry_transforms.mat "
                "beside its weights, or leave the mirror file empty to use the approximation"
            )
        try:
            mat = loadmat(path)
            u = np.stack([mat["U_transforms"][0, i] for i in range(NUM_PARTS)])
            v = np.stack([mat["V_transforms"][0, i] for i in range(NUM_PARTS)])
        except (KeyError, IndexError, ValueError) as err:
            raise InputError(f"{path} is not a DensePose UV_symmetry_transforms.mat ({err})") from err
        return cls.from_tables(u, v, "densepose-mat")

    def digest(self):
        return array_digest(self.u, self.v)

    def map_uv(self, part, u, v):
        """Mirror arrays of (part, u, v), part in 1..24 -> (mirror part, u', v')."""
        part = np.asarray(part, dtype=np.int64)
        ui = np.rint(np.clip(u, 0, 1) * (TABLE_SIZE - 1)).astype(np.int64)
        vi = np.rint(np.clip(v, 0, 1) * (TABLE_SIZE - 1)).astype(np.int64)
        return MIRROR_PART[part], self.u[part - 1, vi, ui], self.v[part - 1, vi, ui]

    def texel_index(self, size):
        """(24, P, P) flat index into a (24, P, P) atlas of each texel's mirror texel."""
        row, col = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        u, v = texel_to_uv(row, col, size)
        parts = np.arange(1, NUM_PARTS + 1)[:, None, None]
        mpart, mu, mv = self.map_uv(np.broadcast_to(parts, (NUM_PARTS, size, size)), u[None], v[None])
        mrow, mcol = uv_to_texel(mu, mv, size)
        return ((mpart - 1) * size + mrow) * size + mcol

    def flip_atlas(self, texture):
        """Atlas of the left/right mirrored person: what a horizontally flipped image shows.

        ``texture`` is (..., 24, P, P, C), numpy or torch; the result has the same type.
        """
        *lead, parts, p, _, c = texture.shape
        index = self.texel_index(p).reshape(-1)
        flat = texture.reshape(*lead, parts * p * p, c)
        if hasattr(texture, "index_select"):
            import torch

            out = flat.index_select(len(lead), torch.as_tensor(index, device=texture.device))
        else:
            out = np.take(flat, index, axis=len(lead))
        return out.reshape(texture.shape)
