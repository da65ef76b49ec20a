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
from .body import mirror_pose, pose_body, walking_pose, world_bounds
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


def make_camera(index, seed):
    rng = np.random.default_rng(seed)
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.5, 1.0), rng.uniform(0.3, 1.0)])
    return Camera(
        index=index,
        walk_yaw=float(rng.uniform(0.0, np.pi)),
        pitch=(float(rng.uniform(0.0, 0.1)), float(rng.uniform(0.15, 0.3))),
        gain=rng.uniform(0.82, 1.12, 3),
        offset=rng.uniform(-12, 12, 3),
        blur=float(rng.uniform(0.3, 1.1)),
        noise=float(rng.uniform(1.5, 5.0)),
        light=light / np.linalg.norm(light),
        ambient=float(rng.uniform(0.5, 0.68)),
        wall=rng.uniform(60, 200, 3),
        ground=rng.uniform(70, 170, 3),
        clutter=rng.uniform(20, 235, (6, 3)),
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
        colour = tuple(float(c) for c in camera.clutter[rng.integers(len(camera.clutter))] + rng.normal(0, 20, 3))
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
    return img


def occluder(size, rng, depth_mask):
    """(mask (H, W) bool, colour image) of an object in front of the person, or None."""
    h, w = size
    mask = np.zeros((h, w), dtype=np.uint8)
    kind = rng.random()
    if kind < 0.35:  # pole, sign post
        bw = int(rng.integers(max(2, w // 14), max(3, w // 5)))
        x = int(rng.integers(0, w - bw))
        cv2.rectangle(mask, (x, 0), (x + bw, h), 1, -1)
    elif kind < 0.75:  # car, bike, railing, bag at the bottom
        top = int(h * rng.uniform(0.6, 0.85))
        x0 = int(rng.integers(-w // 2, w // 2))
        cv2.rectangle(mask, (x0, top), (x0 + int(w * rng.uniform(0.6, 1.4)), h), 1, -1)
    else:  # another pedestrian passing at the side
        cx = int(rng.choice([0, w])) + int(rng.integers(-w // 8, w // 8))
        cv2.ellipse(mask, (cx, int(h * rng.uniform(0.35, 0.7))), (int(w * rng.uniform(0.2, 0.35)), h // 2),
                    0, 0, 360, 1, -1)
    mask = mask.astype(bool)
    colour = rng.uniform(20, 230, 3).astype(np.float32)
    shade = np.linspace(1.1, 0.75, h, dtype=np.float32)[:, None, None]
    image = colour * shade * (1 + _smooth_noise(rng, size, (4, 3), 0.08))
    return mask, image


def view_yaw(camera, rng):
    """People walk past a camera along its main direction, both ways, or turn a little."""
    yaw = camera.walk_yaw + (np.pi if rng.random() < 0.5 else 0.0) + rng.normal(0.0, 0.45)
    return float(np.mod(yaw + np.pi, 2 * np.pi) - np.pi)


def render_image(identity, camera, size, seed, *, occlusion_rate=0.25):
    """One camera image of ``identity``: (image uint8 (H, W, 3), iuv uint8 (H, W, 3), info dict)."""
    rng = np.random.default_rng(seed)
    h, w = size
    pose = walking_pose(rng, yaw=view_yaw(camera, rng), pitch=rng.uniform(*camera.pitch))
    placement, truncated = place(identity.shape, pose, size, rng)
    person = render_person(identity.shape, pose, identity.texture, size, placement)
    fg = person.iuv[..., 0] > 0

    light = camera.light + rng.normal(0.0, 0.1, 3)
    light /= np.linalg.norm(light)
    diffuse = np.clip(person.normal @ light, 0.0, 1.0)
    shade = camera.ambient + (1.0 - camera.ambient) * 1.15 * diffuse
    body = person.clean.astype(np.float32) * shade[..., None].astype(np.float32)

    image = background(camera, size, rng)
    image[fg] = body[fg]
    iuv = person.iuv.copy()
    occluded = 0.0
    if rng.random() < occlusion_rate:
        mask, obj = occluder(size, rng, fg)
        image[mask] = obj[mask]
        occluded = float((mask & fg).sum() / max(1, fg.sum()))
        iuv[mask] = 0

    image = image * (camera.gain * rng.uniform(0.9, 1.1)).astype(np.float32) + camera.offset.astype(np.float32)
    sigma = camera.blur * (h / 128.0) * rng.uniform(0.8, 1.25)
    image = cv2.GaussianBlur(image, (0, 0), sigma)
    image += rng.normal(0.0, camera.noise, image.shape).astype(np.float32)
    info = {"yaw": pose.yaw, "truncated": truncated, "occluded": occluded, "visible": float(fg.mean())}
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), iuv, info
