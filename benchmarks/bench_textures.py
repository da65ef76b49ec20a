"""Texture building throughput, one process and one thread (= per core), at 256x128 input.

On synthetic camera images (lighting, clutter, occluders, noise) with their exact IUV:

- ``reference``: the DensePose texture-transfer notebook's way, written here: a loop over the
  24 parts assigning each part's pixels to their nearest texel, last write wins (no averaging);
- ``warp``: :func:`images_to_atlas`, nearest (with averaging) and bilinear splats;
- ``warp+fill``: nearest warp, then :func:`fill_atlases` with the exact mirror map and each
  in-part fill method (batches of ``--batch`` images, as gen-textures' workers do);
- ``set``: the whole default synthetic set (SynthParams, TextureParams) through
  :func:`build_texture_set` with the default jobs, rendering and IUV store excluded.

Images/s are per CPU second of this one-thread process (best of ``--repeats`` runs), for P = 32 and 64.

    python benchmarks/bench_textures.py [--images 64] [--repeats 3] [--no-set]

Last line: ``name=value`` pairs.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from densepose_textures.atlas import images_to_atlas, uv_to_texel  # noqa: E402
from densepose_textures.fill import FILL_METHODS, fill_atlases  # noqa: E402
from densepose_textures.synth import body_mirror_map  # noqa: E402
from densepose_textures.synth.identity import make_identity  # noqa: E402
from densepose_textures.synth.render import make_camera, render_image  # noqa: E402

cv2.setNumThreads(1)


def reference_warp(image, iuv, size):
    """DensePose notebook style: per part, nearest texel, last write wins."""
    texture = np.zeros((24, size, size, 3), np.uint8)
    for part in range(1, 25):
        mask = iuv[..., 0] == part
        row, col = uv_to_texel(iuv[..., 1][mask] / 255.0, iuv[..., 2][mask] / 255.0, size)
        texture[part - 1, row, col] = image[mask]
    return texture


def check(images, iuvs, size):
    """Where one pixel alone hits a texel, our nearest warp equals the reference; texels hit equal."""
    ours, observed = images_to_atlas(images, iuvs, size)
    for i, (image, iuv) in enumerate(zip(images, iuvs)):
        part = iuv[..., 0].astype(np.int64)
        row, col = uv_to_texel(iuv[..., 1] / 255.0, iuv[..., 2] / 255.0, size)
        hits = np.bincount((((part - 1) * size + row) * size + col)[part > 0], minlength=24 * size * size)
        hits = hits.reshape(24, size, size)
        assert np.array_equal(observed[i], hits > 0)
        alone = hits == 1
        assert np.array_equal(ours[i][alone], reference_warp(image, iuv, size)[alone])


def camera_images(n, size=(256, 128), seed=0):
    cameras = [make_camera(c, seed + c) for c in range(4)]
    identities = [make_identity(pid, seed + pid, 64) for pid in range(1, 9)]
    pairs = [render_image(identities[i % 8], cameras[i % 4], size, seed + 100 + i)[:2] for i in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def best_rate(fn, images, repeats):
    """Images per CPU second of this single-threaded process (= per core; other processes' load
    does not count against it, as it would in wall time)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return images / best


def whole_set(jobs):
    from densepose_textures.iuv.run import run_iuv
    from densepose_textures.iuv.synth_backend import SynthBackend
    from densepose_textures.synth import read_truth, write_dataset
    from densepose_textures.textures import build_texture_set
    from pipeline import datasets
    from pipeline.params import IUVParams, SynthParams, TextureParams

    s, t = SynthParams(), TextureParams()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "synth", ids=s.ids, images_per_id=s.images_per_id, cameras=s.cameras,
                             seed=s.seed, image_size=s.image_size, texture_size=s.texture_size, jobs=s.jobs)
        ds = datasets.load("synth", root)
        labels = {k: (p, c) for split in ("train", "query", "gallery") for k, p, c in ds.split(split)}
        store = Path(tmp) / "synth.h5"
        run_iuv(SynthBackend(root), root, list(labels), store, size=IUVParams().size, progress=False)
        start = time.perf_counter()
        summary = build_texture_set(Path(tmp) / "set", store_path=store, image_root=root, dataset="synth",
                                    labels=labels, size=t.size, splat=t.splat, fill=t.fill,
                                    mirror=read_truth(root)[1], shard_size=t.shard_size, chunk_size=t.chunk_size,
                                    jobs=jobs, progress=False)
        return summary.records, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64, help="images per fill_atlases call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-set", action="store_true", help="skip the whole default synthetic set")
    args = parser.parse_args()

    images, iuvs = camera_images(args.images)
    fg = (iuvs[..., 0] > 0).mean()
    print(f"{args.images} synthetic camera images 256x128, {fg:.0%} person pixels; one thread; best of {args.repeats}")
    mirror = body_mirror_map()
    figures = {}
    for size in (32, 64):
        mirror_index = mirror.texel_index(size)
        check(images[:8], iuvs[:8], size)

        def batches(fn):
            return lambda: [fn(images[a:a + args.batch], iuvs[a:a + args.batch])
                            for a in range(0, len(images), args.batch)]

        ref = best_rate(lambda: [reference_warp(im, iv, size) for im, iv in zip(images, iuvs)], len(images),
                        args.repeats)
        rates = {"reference": ref}
        for splat in ("nearest", "bilinear"):
            rates[f"warp {splat}"] = best_rate(batches(lambda im, iv: images_to_atlas(im, iv, size, splat)),
                                               len(images), args.repeats)
        for method in FILL_METHODS:
            rates[f"warp+fill {method}"] = best_rate(batches(lambda im, iv: fill_atlases(
                *images_to_atlas(im, iv, size), mirror_index, method)), len(images), args.repeats)
        for name, rate in rates.items():
            print(f"P={size:<3} {name:<20} {rate:8.0f} images/s per core   x{rate / ref:5.2f} reference")
        figures[f"warp_vs_reference_p{size}"] = rates["warp nearest"] / ref
        figures[f"reference_ips_p{size}"] = ref
        figures[f"warp_ips_p{size}"] = rates["warp nearest"]
        figures[f"warp_bilinear_ips_p{size}"] = rates["warp bilinear"]
        for method in FILL_METHODS:
            figures[f"warp_fill_{method}_ips_p{size}"] = rates[f"warp+fill {method}"]

    if not args.no_set:
        from pipeline.params import SynthParams, TextureParams

        jobs = TextureParams().jobs
        records, seconds = whole_set(jobs)
        s = SynthParams()
        print(f"default synthetic set ({records} images {s.image_size[0]}x{s.image_size[1]}, "
              f"P={TextureParams().size}, jobs={jobs}): {seconds:.2f} s")
        figures["default_set_seconds"] = seconds
    print(" ".join(f"{k}={v:.2f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
