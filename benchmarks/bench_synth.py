"""Synthetic renderer throughput, one process (= per core), at 128x64 and 256x128.

- ``render``: :func:`render_image` (ray cast, atlas sampling, background, passers-by,
  occluders, camera effects), images/s;
- ``write``: :func:`write_dataset` with ``jobs=1`` (render + JPEG + IUV PNG + textures.h5), images/s;
- reference ``full-frame``: the same ray caster testing every primitive on every pixel
  (no screen-box culling), checked equal, images/s of the ray cast alone against ours;
- reference ``pixel loop``: the same caster called once per pixel (a Python loop over pixels),
  timed on a 32x16 crop of the person and scaled per pixel;
- ``default profile``: ``write_dataset`` at the CPU-profile settings (SynthParams) with its jobs.

    python benchmarks/bench_synth.py [--images 40] [--no-profile]

Last line: ``name=value`` pairs.
"""

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from densepose_textures.synth import raycast, write_dataset
from densepose_textures.synth.body import pose_body, walking_pose
from densepose_textures.synth.identity import make_identity
from densepose_textures.synth.render import pixel_centres, place, render_image
from densepose_textures.synth.scene import make_camera
from pipeline.params import SynthParams


def _timed(func, repeats):
    start = time.perf_counter()
    for i in range(repeats):
        func(i)
    return (time.perf_counter() - start) / repeats


def _scenes(n, size):
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        ident = make_identity(i, i, 32)
        pose = walking_pose(rng, yaw=rng.uniform(-np.pi, np.pi), pitch=0.1)
        placement, _ = place(ident.shape, pose, size, rng)
        out.append((pose_body(ident.shape, pose), *pixel_centres(size, placement)))
    return out


def full_frame_box(prim, xs, ys):
    return slice(0, len(xs)), slice(0, len(ys))


def bench_size(size, images):
    identities = [make_identity(i, i, 64) for i in range(8)]
    cameras = [make_camera(c, 100 + c) for c in range(4)]
    render_s = _timed(lambda i: render_image(identities[i % 8], cameras[i % 4], size, i), images)

    with tempfile.TemporaryDirectory() as tmp:
        ids = max(2, images)
        start = time.perf_counter()
        write_dataset(Path(tmp) / "d", ids=ids, images_per_id=4, cameras=4, seed=0, image_size=size,
                      texture_size=64, jobs=1)
        write_s = (time.perf_counter() - start) / (ids * 4)

    scenes = _scenes(images, size)
    ours_s = _timed(lambda i: raycast.cast(*scenes[i]), images)
    ours = [raycast.cast(*scene) for scene in scenes[:4]]
    with mock.patch.object(raycast, "screen_box", full_frame_box):
        full_s = _timed(lambda i: raycast.cast(*scenes[i]), images)
        for scene, mine in zip(scenes, ours):
            ref = raycast.cast(*scene)
            assert all(np.array_equal(a, b) for a, b in zip(ref[:3], mine[:3])), "culling changed the render"

    prims, xs, ys = scenes[0]
    h, w = size
    rows, cols = slice(h // 2 - 16, h // 2 + 16), slice(w // 2 - 8, w // 2 + 8)
    sub_x, sub_y = xs[cols], ys[rows]
    start = time.perf_counter()
    for y in sub_y:
        for x in sub_x:
            raycast.cast(prims, np.array([x]), np.array([y]))
    loop_s = (time.perf_counter() - start) / (len(sub_x) * len(sub_y)) * h * w
    return {"render": 1 / render_s, "write": 1 / write_s, "cast": 1 / ours_s,
            "cull_speedup": full_s / ours_s, "pixel_loop_speedup": loop_s / ours_s}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--no-profile", action="store_true", help="skip the default-profile dataset")
    args = parser.parse_args()

    figures = {}
    for size in ((128, 64), (256, 128)):
        r = bench_size(size, args.images)
        tag = f"{size[0]}x{size[1]}"
        print(f"{tag}: render {r['render']:.1f} img/s/core, write {r['write']:.1f} img/s/core, "
              f"ray cast {r['cast']:.1f} img/s; full-frame reference x{r['cull_speedup']:.2f} slower, "
              f"per-pixel loop x{r['pixel_loop_speedup']:.0f} slower")
        figures.update({f"render_img_per_s_{tag}": r["render"], f"write_img_per_s_{tag}": r["write"],
                        f"cull_speedup_{tag}": r["cull_speedup"],
                        f"pixel_loop_speedup_{tag}": r["pixel_loop_speedup"]})
    if not args.no_profile:
        p = SynthParams()
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_dataset(Path(tmp) / "d", ids=p.ids, images_per_id=p.images_per_id, cameras=p.cameras,
                          seed=p.seed, image_size=p.image_size, texture_size=p.texture_size, jobs=p.jobs)
            seconds = time.perf_counter() - start
        print(f"default profile ({p.ids} ids x {p.images_per_id} images, {p.image_size[0]}x{p.image_size[1]}, "
              f"jobs={p.jobs}): {seconds:.1f} s")
        figures["default_profile_s"] = seconds
        figures["default_profile_jobs"] = p.jobs
    print(" ".join(f"{k}={v:.4g}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
