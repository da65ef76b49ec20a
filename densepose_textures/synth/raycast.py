"""Orthographic ray casting of the posed primitives, with each part's chart (I, U, V).

Rays run along -z through pixel centres; each primitive is intersected for the pixels of its
screen bounding box only, all at once (numpy), and a depth test keeps the nearest surface.

Charts (local coordinates of the canonical shape; see :mod:`.body` for the frames):

- ``torso`` (parts 2 front, 1 back): U = height along the torso (0 hips .. 1 shoulders),
  V = angle across the body, 0 the person's right .. 1 the person's left (left-right runs along
  V, as in DensePose); mirror: V -> 1 - V.
- ``leg`` (front, back): V = 1 at the proximal end .. 0 distal, U = angle around the limb,
  0 the inner side .. 1 the outer side; mirror keeps (U, V).
- ``arm`` (outside, inside): V as legs, U = angle around the limb, 0 back .. 1 front;
  mirror keeps (U, V).
- ``head`` (24 left, 23 right): U = azimuth / pi measured from the face towards the person's
  left (left half: 0 face .. 1 back; right half: 0 back .. 1 face), V = elevation (0 chin, 1 top);
  mirror: U -> 1 - U.
- ``hand`` / ``foot``: U = angle around the long axis, turning the same way for both sides
  (so mirror: U -> 1 - U), V along the long axis (hand: 1 wrist .. 0 fingertips; foot:
  0 heel .. 1 toes).

- ``hair`` (long hair hanging down the back, on the head halves' charts): the back of the head
  (|azimuth| >= pi/2) and V in [0.12, 0.5], where the atlas holds the hair.
- ``skirt`` (on the upper legs' charts, a quarter each: left front, left back, right front,
  right back): U = angle from the midline (0) to the side (1), as the legs' inner .. outer;
  V = 1 at the waist .. 0.35 at the hem (the upper legs' texels below 0.35 show under it).

A primitive with no parts (a carried bag) gives depth and normals, and part 0.
"""

import numpy as np

FAR = 10.0  # ray origins sit at z = FAR, in front of everything


def _round_cone(o, d, length, ra, rb):
    """Rounded-cone hits for local ray origins o (3, N) and one unit direction d (3,).

    Returns (hit (N,), t (N,), gradient (3, N)) with the cone's axis from (0,0,0) to (0,L,0).
    After Inigo Quilez's closed form ("intersectors", rounded cone), vectorised.
    """
    ba = np.array([0.0, length, 0.0])
    oa = o
    ob = o - ba[:, None]
    rr = ra - rb
    m0 = length * length
    m1 = length * oa[1]
    m2 = length * d[1]
    m3 = d @ oa
    m5 = (oa * oa).sum(0)
    m6 = d @ ob
    m7 = (ob * ob).sum(0)
    d2 = m0 - rr * rr
    k2 = d2 - m2 * m2
    k1 = d2 * m3 - m1 * m2 + m2 * rr * ra
    k0 = d2 * m5 - m1 * m1 + m1 * rr * ra * 2.0 - m0 * ra * ra
    h = k1 * k1 - k0 * k2
    hit = h >= 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        t_body = (-np.sqrt(np.where(hit, h, 0.0)) - k1) / k2
    y = m1 - ra * rr + t_body * m2
    body = hit & (y > 0.0) & (y < d2)
    h1 = m3 * m3 - m5 + ra * ra
    h2 = m6 * m6 - m7 + rb * rb
    t1 = np.where(h1 > 0.0, -m3 - np.sqrt(np.maximum(h1, 0.0)), np.inf)
    t2 = np.where(h2 > 0.0, -m6 - np.sqrt(np.maximum(h2, 0.0)), np.inf)
    t_cap = np.minimum(t1, t2)
    t = np.where(body, t_body, t_cap)
    hit = hit & np.isfinite(t)
    t = np.where(hit, t, 0.0)
    p = o + t * d[:, None]
    grad_body = d2 * p - ba[:, None] * y
    grad_cap = np.where(t1 <= t2, p, p - ba[:, None])
    grad = np.where(body, grad_body, grad_cap)
    return hit, t, grad


def _sphere(o, d):
    b = d @ o
    h = b * b - ((o * o).sum(0) - 1.0)
    hit = h >= 0.0
    t = -b - np.sqrt(np.where(hit, h, 0.0))
    return hit, t, o + t * d[:, None]


def _chart(prim, p):
    """(part index into prim.parts (N,), U, V) of local hit points p (3, N) on the canonical shape."""
    x, y, z = p
    if prim.kind == "cone":
        s = np.clip((y + prim.ra) / (prim.length + prim.ra + prim.rb), 0.0, 1.0)
        if prim.chart == "torso":
            return (z < 0).astype(np.int64), s, np.arctan2(x, np.abs(z)) / np.pi + 0.5
        if prim.chart == "skirt":  # a quarter per upper leg, charted like the legs: V 1 .. 0.35
            side = 2 * (x < 0) + (z < 0)
            return side.astype(np.int64), np.arctan2(np.abs(x), np.abs(z)) / (np.pi / 2), 1.0 - 0.65 * s
        if prim.chart == "leg":
            return (z < 0).astype(np.int64), np.arctan2(x, np.abs(z)) / np.pi + 0.5, 1.0 - s
        # arm: (outside, inside)
        return (x < 0).astype(np.int64), np.arctan2(z, np.abs(x)) / np.pi + 0.5, 1.0 - s
    if prim.chart in ("head", "hair"):
        if prim.chart == "head":
            alpha = np.arctan2(x, z) / np.pi  # (-1, 1], 0 at the face, + towards the person's left
            v = np.arcsin(np.clip(y, -1.0, 1.0)) / np.pi + 0.5
        else:  # hanging hair: the back of the head's charts, low down
            alpha = np.arctan2(x, -np.abs(z)) / np.pi
            v = 0.12 + 0.38 * (np.clip(y, -1.0, 1.0) + 1.0) / 2.0
        right = alpha < 0
        u = np.where(right, alpha + 1.0, alpha)
        return right.astype(np.int64), u, v
    u = np.arctan2(x, z) / (2.0 * np.pi) + 0.5
    v = (1.0 - y) / 2.0 if prim.chart == "hand" else (y + 1.0) / 2.0
    return np.zeros(x.shape, dtype=np.int64), u, np.clip(v, 0.0, 1.0)


def screen_box(prim, xs, ys):
    """Column and row slices of the pixels whose centres may see ``prim``."""
    m = prim.frame * prim.scale
    if prim.kind == "ellipsoid":
        centres, radii = [prim.centre], [1.0]
    else:
        centres = [prim.centre, prim.centre + m[:, 1] * prim.length]
        radii = [prim.ra, prim.rb]
    ext = np.sqrt((m**2).sum(1))
    lo = np.min([c - r * ext for c, r in zip(centres, radii)], axis=0)
    hi = np.max([c + r * ext for c, r in zip(centres, radii)], axis=0)
    cols = np.searchsorted(xs, [lo[0], hi[0]])
    rows = np.searchsorted(-ys, [-hi[1], -lo[1]])  # ys decrease down the image
    return slice(int(cols[0]), int(cols[1])), slice(int(rows[0]), int(rows[1]))


def cast(prims, xs, ys):
    """Ray-cast the body at pixel centres xs (W,) increasing, ys (H,) decreasing (world units).

    Returns part (H, W) int64 (0 = background), u, v (H, W) float64 in [0, 1], depth (H, W)
    (inf where empty) and world normals (H, W, 3).
    """
    h, w = len(ys), len(xs)
    part = np.zeros((h, w), dtype=np.int64)
    u = np.zeros((h, w))
    v = np.zeros((h, w))
    depth = np.full((h, w), np.inf)
    normal = np.zeros((h, w, 3))
    for prim in prims:
        cs, rs = screen_box(prim, xs, ys)
        if cs.stop <= cs.start or rs.stop <= rs.start:
            continue
        gx, gy = np.meshgrid(xs[cs], ys[rs])  # (h', w')
        shape = gx.shape
        a = (prim.frame / prim.scale).T  # world -> local (3, 3)
        rel = np.stack([gx.ravel() - prim.centre[0], gy.ravel() - prim.centre[1],
                        np.full(gx.size, FAR - prim.centre[2])])  # (3, N)
        o = a @ rel
        d = -a[:, 2]
        dn = np.linalg.norm(d)
        d = d / dn
        if prim.kind == "cone":
            hit, t, grad = _round_cone(o, d, prim.length, prim.ra, prim.rb)
            p = o + t * d[:, None]  # t = 0 where missed, so p stays finite
        else:
            hit, t, p = _sphere(o, d)
            grad = p
        t = np.where(hit, t / dn, np.inf).reshape(shape)
        closer = t < depth[rs, cs]
        if not closer.any():
            continue
        if prim.parts:
            idx, pu, pv = _chart(prim, p)
            parts = np.asarray(prim.parts, dtype=np.int64)[idx]
        else:  # not a body part (a bag): depth and normals only
            parts = pu = pv = np.zeros(p.shape[1])
        n = (a.T @ grad).T  # (N, 3) world gradient
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        for arr, val in ((part, parts), (u, pu), (v, pv)):
            sub = arr[rs, cs]
            sub[closer] = val.reshape(shape)[closer]
        depth[rs, cs][closer] = t[closer]
        normal[rs, cs][closer] = n.reshape(shape + (3,))[closer]
    return part, np.clip(u, 0.0, 1.0), np.clip(v, 0.0, 1.0), depth, normal
