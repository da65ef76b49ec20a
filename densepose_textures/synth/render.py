"""From an identity to an image: place the body, ray-cast it, colour it from the atlas, then add
lighting, background clutter, an occluder, the camera's colour cast, blur and noise.

:func:`render_person` gives the clean colour image and the exact IUV (the colour of a body pixel
is the atlas texel its stored IUV names, by :func:`densepose_textures.atlas.uv_to_texel`);
:func:`render_image` makes the full camera image from it.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from ..atlas import uv_to_texel
from .body import bag_primitive, mirror_pose, pose_body, walking_pose, world_bounds
from .identity import make_identity
from .raycast import cast


@dataclass(frozen=True)
class Placement:
    """Orthographic view: pixels per world unit and the world point at the image centre."""

    ppm: float
    cx: float
    cy: float

    def mirrored(self):
        return Placement(self.ppm, -self.cx, self.cy)


@dataclass(frozen=True)
class Camera:
    index: int
    walk_yaw: float  # the direction people mostly walk past this camera
    pitch: tuple  # (low, high) camera tilt
    gain: np.ndarray  # (3,) colour cast
    offset: np.ndarray  # (3,)
    blur: float  # Gaussian sigma in pixels at 128 rows
    noise: float  # std of additive noise
    light: np.ndarray  # (3,) unit direction towards the light
    ambient: float
    wall: np.ndarray  # (3,) background colours
    ground: np.ndarray
    clutter: np.ndarray  # (K, 3) colours of background objects


def _muted(rng, n, low, high, tint):
    """n colours: a grey level with a small tint (walls, pavement, concrete)."""
    grey = rng.uniform(low, high, (n, 1))
    return np.clip(grey + rng.normal(0.0, tint, (n, 3)), 0, 255)


def make_camera(index, seed):
    rng = np.random.default_rng(seed)
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.5, 1.0), rng.uniform(0.3, 1.0)])
    clutter = _muted(rng, 8, 30, 220, 14)
    vivid = rng.random(8) < 0.3  # shop signs, posters, plants
    clutter[vivid] = 0.5 * clutter[vivid] + 0.5 * rng.uniform(20, 235, (int(vivid.sum()), 3))
    return Camera(
        index=index,
        walk_yaw=float(rng.uniform(0.0, np.pi)),
        pitch=(float(rng.uniform(0.0, 0.1)), float(rng.uniform(0.15, 0.3))),
        gain=rng.uniform(0.85, 1.1, 3),
        offset=rng.uniform(-10, 10, 3),
        blur=float(rng.uniform(0.3, 0.85)),
        noise=float(rng.uniform(1.5, 4.5)),
        light=light / np.linalg.norm(light),
        ambient=float(rng.uniform(0.5, 0.68)),
        wall=_muted(rng, 1, 70, 200, 14)[0],
        ground=_muted(rng, 1, 60, 170, 10)[0],
        clutter=clutter,
    )


def pixel_centres(size, placement):
    """World x of each column (increasing) and y of each row (decreasing)."""
    h, w = size
    xs = placement.cx + (np.arange(w) + 0.5 - w / 2) / placement.ppm
    ys = placement.cy - (np.arange(h) + 0.5 - h / 2) / placement.ppm
    return xs, ys


def quantise_iuv(part, u, v):
    """(H, W, 3) uint8 DensePose IUV of float charts."""
    iuv = np.zeros(part.shape + (3,), dtype=np.uint8)
    iuv[..., 0] = part
    fg = part > 0
    iuv[..., 1] = np.where(fg, np.rint(u * 255), 0)
    iuv[..., 2] = np.where(fg, np.rint(v * 255), 0)
    return iuv


def sample_atlas(texture, iuv):
    """(H, W, 3) uint8 colour of each body pixel: the atlas texel named by its IUV (black elsewhere)."""
    part = iuv[..., 0].astype(np.int64)
    fg = part > 0
    row, col = uv_to_texel(iuv[..., 1] / 255.0, iuv[..., 2] / 255.0, texture.shape[1])
    out = texture[np.maximum(part - 1, 0), row, col]
    out[~fg] = 0
    return out


@dataclass
class PersonRender:
    iuv: np.ndarray  # (H, W, 3) uint8
    clean: np.ndarray  # (H, W, 3) uint8 atlas colour of body pixels, 0 elsewhere
    normal: np.ndarray  # (H, W, 3) float world normals
    depth: np.ndarray  # (H, W) float, inf on the background


def render_person(shape, pose, texture, size, placement):
    """Ray-cast one posed body: exact IUV and clean colours (no lighting, background or noise)."""
    xs, ys = pixel_centres(size, placement)
    part, u, v, depth, normal = cast(pose_body(shape, pose), xs, ys)
    iuv = quantise_iuv(part, u, v)
    return PersonRender(iuv, sample_atlas(texture, iuv), normal, depth)


def mirror_scene(pose, placement):
    """The left/right mirror image of a scene: its render is the horizontally flipped render."""
    return mirror_pose(pose), placement.mirrored()


def place(shape, pose, size, rng):
    """A detector-like box around the person: scale, jitter and sometimes truncation."""
    x0, x1, y0, y1 = world_bounds(pose_body(shape, pose))
    h, w = size
    fill = rng.uniform(0.78, 0.94)
    ppm = h * fill / (y1 - y0)
    cx = (x0 + x1) / 2 + rng.normal(0.0, 0.06) * w / ppm
    cy = (y0 + y1) / 2 + rng.normal(0.0, 0.025) * h / ppm
    truncated = rng.random() < 0.12
    if truncated:
        if rng.random() < 0.6:
            cy += rng.choice([-1, 1]) * rng.uniform(0.12, 0.25) * (y1 - y0)
        else:
            cx += rng.choice([-1, 1]) * rng.uniform(0.25, 0.4) * w / ppm
    return Placement(float(ppm), float(cx), float(cy)), truncated


def _smooth_noise(rng, size, cells, amplitude):
    h, w = size
    grid = rng.normal(0.0, amplitude, (cells[0], cells[1], 3)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def background(camera, size, rng):
    """A cluttered street scene in the camera's colours: wall, ground, windows, poles, bushes."""
    h, w = size
    img = np.empty((h, w, 3), dtype=np.float32)
    horizon = int(h * rng.uniform(0.45, 0.8))
    ramp = np.linspace(0.85, 1.1, h, dtype=np.float32)[:, None, None]
    img[:horizon] = (camera.wall + rng.normal(0, 12, 3)) * ramp[:horizon]
    img[horizon:] = (camera.ground + rng.normal(0, 12, 3)) * ramp[horizon:]
    for _ in range(int(rng.integers(3, 9))):
        colour = tuple(float(c) for c in camera.clutter[rng.integers(len(camera.clutter))] + rng.normal(0, 12, 3))
        kind = rng.random()
        x, y = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 8, horizon + h // 8))
        if kind < 0.45:  # windows, doors, signs
            bw, bh = int(rng.integers(w // 8, w // 2)), int(rng.integers(h // 12, h // 3))
            cv2.rectangle(img, (x, y), (x + bw, y + bh), colour, -1)
            if rng.random() < 0.5:
                cv2.rectangle(img, (x, y), (x + bw, y + bh), tuple(0.6 * c for c in colour), max(1, w // 64))
        elif kind < 0.7:  # poles
            bw = int(rng.integers(1, max(2, w // 12)))
            cv2.rectangle(img, (x, 0), (x + bw, horizon + int(rng.integers(0, h // 4))), colour, -1)
        elif kind < 0.85:  # bushes, bins, people far away
            cv2.ellipse(img, (x, horizon + int(rng.integers(-h // 10, h // 10))),
                        (int(rng.integers(w // 10, w // 3)), int(rng.integers(h // 20, h // 6))),
                        0, 0, 360, colour, -1)
        else:  # kerb, road marking
            y = horizon + int(rng.integers(0, max(1, h - horizon)))
            cv2.rectangle(img, (0, y), (w, y + int(rng.integers(1, max(2, h // 30)))), colour, -1)
    img += _smooth_noise(rng, size, (6, 4), 10.0) + rng.normal(0, 4.0, img.shape).astype(np.float32)
    return cv2.GaussianBlur(img, (0, 0), 0.5 * h / 128.0)  # the background is a little out of focus


def shadow(image, iuv, rng):
    """Darken an ellipse on the ground under the feet (in place), if the feet are in view."""
    h, w = iuv.shape[:2]
    rows, cols = np.nonzero(np.isin(iuv[..., 0], (5, 6)))
    if len(rows) == 0 or rows.max() >= h - 1:
        return
    mask = np.zeros((h, w), dtype=np.float32)
    body_cols = np.nonzero(iuv[..., 0].any(0))[0]
    half = max(2, int(0.35 * (body_cols.max() - body_cols.min() + 1)))
    cv2.ellipse(mask, (int(cols.mean()), int(rows.max())), (half, max(1, h // 40)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, h / 128.0))
    image *= (1.0 - rng.uniform(0.25, 0.45) * mask)[..., None]


def occluder(size, rng):
    """(mask (H, W) bool, colour image (H, W, 3)) of an object in front of the person."""
    h, w = size
    mask = np.zeros((h, w), dtype=np.uint8)
    if rng.random() < 0.4:  # pole, sign post, tree trunk
        bw = int(rng.integers(max(2, w // 14), max(3, w // 5)))
        x = int(rng.integers(0, w - bw))
        cv2.rectangle(mask, (x, 0), (x + bw, h), 1, -1)
    else:  # car, bike, railing, bin at the bottom
        top = int(h * rng.uniform(0.6, 0.85))
        x0 = int(rng.integers(-w // 2, w // 2))
        cv2.rectangle(mask, (x0, top), (x0 + int(w * rng.uniform(0.6, 1.4)), h), 1, -1)
        if rng.random() < 0.5:  # rounded top
            cv2.ellipse(mask, (x0 + int(w * 0.5), top), (int(w * 0.5), max(1, h // 20)), 0, 180, 360, 1, -1)
    colour = rng.uniform(20, 230, 3).astype(np.float32)
    ramp = np.linspace(1.1, 0.75, h, dtype=np.float32)[:, None, None]
    image = colour * ramp * (1 + _smooth_noise(rng, size, (4, 3), 0.08))
    return mask.astype(bool), image


def view_yaw(camera, rng):
    """People walk past a camera along its main direction, both ways, or turn a little."""
    yaw = camera.walk_yaw + (np.pi if rng.random() < 0.5 else 0.0) + rng.normal(0.0, 0.45)
    return float(np.mod(yaw + np.pi, 2 * np.pi) - np.pi)


def shade(person, camera, rng):
    """(H, W, 3) float32 lit colours of a rendered person (Lambert + ambient)."""
    light = camera.light + rng.normal(0.0, 0.1, 3)
    light /= np.linalg.norm(light)
    diffuse = np.clip(person.normal @ light, 0.0, 1.0)
    gain = camera.ambient + (1.0 - camera.ambient) * 1.15 * diffuse
    return person.clean.astype(np.float32) * gain[..., None].astype(np.float32)


def passer_by(camera, size, placement, rng):
    """Another pedestrian, beside the person (a cheap identity with a small atlas)."""
    other = make_identity(0, int(rng.integers(2**63)), 16)
    pose = walking_pose(rng, yaw=view_yaw(camera, rng), pitch=rng.uniform(*camera.pitch))
    w = size[1]
    side = rng.choice([-1.0, 1.0])
    near = Placement(placement.ppm * rng.uniform(0.85, 1.15),
                     placement.cx - side * rng.uniform(0.55, 0.9) * w / placement.ppm,
                     placement.cy + rng.normal(0.0, 0.05))
    return render_person(other.shape, pose, other.texture, size, near)


def _paint(image, person, lit):
    """Draw a rendered person's pixels; returns its mask."""
    mask = person.iuv[..., 0] > 0
    image[mask] = lit[mask]
    return mask


def render_image(identity, camera, size, seed, *, occlusion_rate=0.2, passer_rate=0.2):
    """One camera image of ``identity``: (image uint8 (H, W, 3), iuv uint8 (H, W, 3), info dict).

    The IUV labels only this identity's visible pixels: occluders and passers-by in front of it
    are background there.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    pose = walking_pose(rng, yaw=view_yaw(camera, rng), pitch=rng.uniform(*camera.pitch))
    placement, truncated = place(identity.shape, pose, size, rng)
    person = render_person(identity.shape, pose, identity.texture, size, placement)
    fg = person.iuv[..., 0] > 0
    iuv = person.iuv.copy()

    image = background(camera, size, rng)
    hidden = np.zeros((h, w), dtype=bool)
    other = passer_by(camera, size, placement, rng) if rng.random() < passer_rate else None
    in_front = other is not None and rng.random() < 0.5
    for someone in (person, other):
        if someone is not None:
            shadow(image, someone.iuv, rng)
    if other is not None and not in_front:
        _paint(image, other, shade(other, camera, rng))
    image[fg] = shade(person, camera, rng)[fg]
    bag = identity.traits.get("bag")
    if bag is not None:
        prim = bag_primitive(identity.shape, pose, identity.traits["bag_kind"], identity.traits["bag_side"])
        _, _, _, depth, normal = cast([prim], *pixel_centres(size, placement))
        mask = depth < person.depth
        gain = camera.ambient + (1.0 - camera.ambient) * np.clip(normal @ camera.light, 0.0, 1.0)
        image[mask] = (bag * gain[..., None])[mask]
        hidden |= mask
    if in_front:
        hidden |= _paint(image, other, shade(other, camera, rng))
    if rng.random() < occlusion_rate:
        mask, obj = occluder(size, rng)
        image[mask] = obj[mask]
        hidden |= mask
    iuv[hidden] = 0

    image = image * (camera.gain * rng.uniform(0.9, 1.1)).astype(np.float32) + camera.offset.astype(np.float32)
    sigma = camera.blur * (h / 128.0) * rng.uniform(0.8, 1.25)
    image = cv2.GaussianBlur(image, (0, 0), sigma)
    image += rng.normal(0.0, camera.noise, image.shape).astype(np.float32)
    info = {"yaw": pose.yaw, "truncated": truncated, "occluded": float((hidden & fg).sum() / max(1, fg.sum())),
            "visible": float((fg & ~hidden).mean())}
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), iuv, info
