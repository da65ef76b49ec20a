"""The procedural body: shape, walking pose, and the posed primitives that carry the 24 charts.

World frame (also the body frame at zero yaw): x = the person's left (the viewer's right when
the person faces the camera), y = up, z = towards the camera. Lengths are in units of stature.

Every primitive is a canonical shape in its own local frame: a unit sphere (``ellipsoid``) or a
rounded cone (``cone``: spheres of radius ``ra`` at the origin and ``rb`` at (0, L, 0), joined
by their tangent cone). ``world = centre + frame @ (scale * local)``. Limb frames have columns
(outward lateral, limb axis from proximal to distal, forward), so a left limb's frame is the
mirror image of the right limb's; torso, head, hands and feet use the body's own x (the person's
left) for both sides. The charts in :mod:`.raycast` therefore mirror exactly (see :mod:`.mirror_map`).
"""

from dataclasses import dataclass, replace

import numpy as np

LEFT, RIGHT = 0, 1  # index of a side in the pose's (left, right) pairs
SIDE_SIGN = {LEFT: 1.0, RIGHT: -1.0}  # the person's left is +x


@dataclass(frozen=True)
class BodyShape:
    """Per-identity proportions (all symmetric left/right)."""

    height: float = 1.0  # stature multiplier
    girth: float = 1.0  # width of torso and limbs
    legs: float = 1.0  # leg length multiplier
    head: float = 1.0  # head size multiplier
    depth: float = 0.62  # torso depth / width
    skirt: float = 0.0  # skirt length from the waist (0: no skirt)
    hair: float = 0.0  # length of hair hanging down the back (0: short hair)


@dataclass(frozen=True)
class Pose:
    """Joint angles in radians; pairs are (left, right). Positive flexion moves the limb forward."""

    yaw: float = 0.0  # rotation about the vertical: 0 faces the camera, pi shows the back
    pitch: float = 0.0  # camera looking down (shows the top of the head)
    lean: float = 0.0  # forward lean of the upper body
    head_yaw: float = 0.0  # head turned towards the person's left (negative: right)
    hip: tuple = (0.0, 0.0)
    knee: tuple = (0.0, 0.0)  # bends the lower leg backwards
    shoulder: tuple = (0.0, 0.0)
    abduct: tuple = (0.12, 0.12)  # arm away from the body
    elbow: tuple = (0.15, 0.15)  # bends the forearm forwards


@dataclass(frozen=True)
class Primitive:
    kind: str  # "cone" | "ellipsoid"
    chart: str  # "torso" | "head" | "hair" | "leg" | "arm" | "hand" | "foot" | "skirt" | "bag" (raycast)
    parts: tuple  # the DensePose parts this primitive carries (order fixed by its chart)
    centre: np.ndarray  # (3,)
    frame: np.ndarray  # (3, 3) columns = local axes in world
    scale: np.ndarray  # (3,) local stretch (ellipsoid radii; torso depth)
    length: float = 0.0  # cone: L
    ra: float = 0.0  # cone: radius at the origin
    rb: float = 0.0  # cone: radius at (0, L, 0)


def rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def walking_pose(rng, *, yaw, pitch, stride=None):
    """A random instant of a walking cycle (or, with small stride, standing)."""
    phase = rng.uniform(0.0, 2.0 * np.pi)
    amp = rng.uniform(0.05, 0.45) if stride is None else stride
    swing = np.sin(phase)
    hip = (amp * swing, -amp * swing)
    # the knee bends most while the leg swings forward
    knee = tuple(float(amp * (0.4 + 0.9 * max(0.0, np.cos(phase + k * np.pi)))) for k in (0, 1))
    arm = 0.8 * amp * swing
    return Pose(
        yaw=float(yaw),
        pitch=float(pitch),
        lean=float(rng.uniform(0.0, 0.08)),
        head_yaw=float(np.clip(rng.normal(0.0, 0.3), -0.8, 0.8)),
        hip=(float(hip[0]), float(hip[1])),
        knee=knee,
        shoulder=(float(-arm), float(arm)),
        abduct=tuple(float(x) for x in rng.uniform(0.08, 0.2, size=2)),
        elbow=tuple(float(x) for x in rng.uniform(0.1, 0.5, size=2)),
    )


def mirror_pose(pose):
    """The left/right mirror image of ``pose`` (the scene reflected through the plane x = 0)."""
    swap = lambda pair: (pair[1], pair[0])  # noqa: E731
    return replace(
        pose,
        yaw=-pose.yaw,
        head_yaw=-pose.head_yaw,
        hip=swap(pose.hip),
        knee=swap(pose.knee),
        shoulder=swap(pose.shoulder),
        abduct=swap(pose.abduct),
        elbow=swap(pose.elbow),
    )


# parts carried by each primitive, in the order its chart expects
LEG_PARTS = {  # (front, back)
    "upper": {LEFT: (10, 8), RIGHT: (9, 7)},
    "lower": {LEFT: (14, 12), RIGHT: (13, 11)},
}
ARM_PARTS = {  # (outside, inside)
    "upper": {LEFT: (17, 15), RIGHT: (18, 16)},
    "lower": {LEFT: (21, 19), RIGHT: (22, 20)},
}
HAND_PART = {LEFT: 4, RIGHT: 3}
FOOT_PART = {LEFT: 5, RIGHT: 6}
TORSO_PARTS = (2, 1)  # (front, back)
HEAD_PARTS = (24, 23)  # (left, right)
SKIRT_PARTS = (10, 8, 9, 7)  # upper legs (left front, left back, right front, right back)
SKIRT_SQUASH = 0.25  # the skirt's cone is stretched 4x along its axis so its end caps stay flat


def pose_body(shape, pose):
    """The body's primitives, posed, in world coordinates (units of stature * ``shape.height``)."""
    return _pose(shape, pose)[0]


def bag_primitive(shape, pose, kind, side):
    """A bag carried on the ``side`` hip (``kind`` "shoulder") or in that hand ("hand").

    Not a body part: the renderer draws it in front of or behind the body by depth, and the IUV
    calls its pixels background.
    """
    _, joints = _pose(shape, pose)
    h, s = shape.height, SIDE_SIGN[side]
    root, upper = joints["root"], joints["upper"]
    if kind == "shoulder":
        centre = joints["pelvis"] + upper @ np.array([s * (0.1 * shape.girth + 0.04), -0.03, 0.01])
        rot, radii = upper, np.array([0.03, 0.065, 0.085])
    else:
        wrist, rot = joints["wrist"][side]
        centre = wrist + rot @ np.array([0.0, -0.1, 0.0])
        radii = np.array([0.028, 0.07, 0.09])
    return Primitive("ellipsoid", "bag", (), h * (root @ centre), root @ rot, h * radii)


def _pose(shape, pose):
    """(primitives, joints) of the posed body; joints in body units before the root rotation."""
    h, g = shape.height, shape.girth
    root = rot_x(pose.pitch) @ rot_y(pose.yaw)
    prims = []

    def add(kind, chart, parts, centre, rot, rest_axes, scale, length=0.0, ra=0.0, rb=0.0):
        scale = np.asarray(scale, dtype=np.float64) * (h if kind == "ellipsoid" else 1.0)
        prims.append(Primitive(kind, chart, parts, h * (root @ centre), root @ rot @ rest_axes,
                               scale, h * length, h * ra, h * rb))

    hip_y = 0.50 * shape.legs
    knee_y = hip_y - 0.23 * shape.legs
    thigh, shin = hip_y - knee_y, knee_y - 0.045
    pelvis = np.array([0.0, hip_y + 0.03, 0.0])
    upper = rot_x(-pose.lean)
    torso_len = 0.22
    ra_t, rb_t = 0.082 * g, 0.1 * g
    add("cone", "torso", TORSO_PARTS, pelvis, upper, np.eye(3), (1.0, 1.0, shape.depth),
        torso_len, ra_t, rb_t)
    top = pelvis + upper @ np.array([0.0, torso_len, 0.0])
    head_c = top + upper @ np.array([0.0, 0.165 - 0.02 * (shape.head - 1.0), 0.012])
    add("ellipsoid", "head", HEAD_PARTS, head_c, upper @ rot_y(pose.head_yaw), np.eye(3),
        shape.head * np.array([0.058, 0.078, 0.07]))
    if shape.hair > 0:
        add("ellipsoid", "hair", HEAD_PARTS, head_c + upper @ np.array([0.0, -0.06 * shape.hair, -0.045]),
            upper, np.eye(3), shape.head * np.array([0.052, 0.09 * shape.hair, 0.032]))
    if shape.skirt > 0:
        waist = 0.105 * g
        add("cone", "skirt", SKIRT_PARTS, pelvis + upper @ np.array([0.0, -0.01, 0.0]), upper,
            np.diag([1.0, -1.0, 1.0]), (1.0, SKIRT_SQUASH, shape.depth * 1.15),
            shape.skirt / SKIRT_SQUASH, waist, waist + 0.3 * shape.skirt)

    joints = {"root": root, "upper": upper, "pelvis": pelvis, "wrist": {}}
    for side in (LEFT, RIGHT):
        s = SIDE_SIGN[side]
        limb_axes = np.diag([s, -1.0, 1.0])  # (outward, down, forward) at rest
        body_axes = np.diag([1.0, -1.0, 1.0])  # (person's left, down, forward)
        # leg
        hip_rot = rot_x(-pose.hip[side])
        hip_j = np.array([s * 0.058 * g, hip_y, 0.0])
        add("cone", "leg", LEG_PARTS["upper"][side], hip_j, hip_rot, limb_axes, np.ones(3),
            thigh, 0.058 * g, 0.041 * g)
        knee_rot = hip_rot @ rot_x(pose.knee[side])
        knee_j = hip_j + hip_rot @ np.array([0.0, -thigh, 0.0])
        add("cone", "leg", LEG_PARTS["lower"][side], knee_j, knee_rot, limb_axes, np.ones(3),
            shin, 0.043 * g, 0.029 * g)
        ankle = knee_j + knee_rot @ np.array([0.0, -shin, 0.0])
        foot_axes = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # (left, forward, up)
        add("ellipsoid", "foot", (FOOT_PART[side],), ankle + knee_rot @ np.array([0.0, -0.022, 0.035]),
            knee_rot, foot_axes, np.array([0.034, 0.068, 0.026]) * np.sqrt(g))
        # arm
        sh_rot = upper @ rot_z(s * pose.abduct[side]) @ rot_x(-pose.shoulder[side])
        sh_j = top + upper @ np.array([s * (0.086 * g + 0.032), -0.035, 0.0])
        upper_len, fore_len = 0.165, 0.145
        add("cone", "arm", ARM_PARTS["upper"][side], sh_j, sh_rot, limb_axes, np.ones(3),
            upper_len, 0.038 * g, 0.03 * g)
        el_rot = sh_rot @ rot_x(-pose.elbow[side])
        el_j = sh_j + sh_rot @ np.array([0.0, -upper_len, 0.0])
        add("cone", "arm", ARM_PARTS["lower"][side], el_j, el_rot, limb_axes, np.ones(3),
            fore_len, 0.03 * g, 0.022 * g)
        wrist = el_j + el_rot @ np.array([0.0, -fore_len, 0.0])
        joints["wrist"][side] = (wrist, el_rot)
        add("ellipsoid", "hand", (HAND_PART[side],), wrist + el_rot @ np.array([0.0, -0.04, 0.0]),
            el_rot, body_axes, np.array([0.019, 0.048, 0.032]))
    return prims, joints


def world_bounds(prims):
    """Conservative (xmin, xmax, ymin, ymax) of the posed body in world units."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for p in prims:
        m = p.frame * p.scale  # columns scaled
        if p.kind == "ellipsoid":
            ext = np.sqrt((m**2).sum(1))
            lo, hi = np.minimum(lo, p.centre - ext), np.maximum(hi, p.centre + ext)
        else:
            for offset, r in ((0.0, p.ra), (p.length, p.rb)):
                c = p.centre + m[:, 1] * offset
                ext = r * np.sqrt((m**2).sum(1))
                lo, hi = np.minimum(lo, c - ext), np.maximum(hi, c + ext)
    return lo[0], hi[0], lo[1], hi[1]
