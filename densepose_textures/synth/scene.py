"""The scene around a person: cameras (their colours, light, blur, noise and main walking
direction), a cluttered background, ground shadows and occluding objects."""

from dataclasses import dataclass

import cv2
import numpy as np


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
        walk_yaw=float(np.pi * ((0.618 * index + rng.uniform(0.0, 0.2)) % 1.0)),  # cameras see different sides
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


def _smooth_noise(rng, size, cells, amplitude, chroma=0.25):
    """(H, W, 3) smooth noise: mostly brightness, ``chroma`` of it colour."""
    h, w = size
    grid = rng.normal(0.0, amplitude, (cells[0], cells[1], 1)) + rng.normal(0.0, chroma * amplitude,
                                                                            (cells[0], cells[1], 3))
    return cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


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
    img += _smooth_noise(rng, size, (6, 4), 12.0) + rng.normal(0, 3.0, img.shape).astype(np.float32)
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
