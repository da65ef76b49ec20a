"""From an identity to an image: place the body, ray-cast it, colour it from the atlas, then add
lighting, the scene (:mod:`.scene`: background, shadows, passers-by, a carried bag, occluders),
the camera's colour cast, blur and noise.

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
from .scene import background, make_camera, occluder, shadow  # noqa: F401  (make_camera: also imported from here)


@dataclass(frozen=True)
class Placement:
    """Orthographic view: pixels per world unit and the world point at the image centre."""

    ppm: float
    cx: float
    cy: float

    def mirrored(self):
        return Placement(self.ppm, -self.cx, self.cy)


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
