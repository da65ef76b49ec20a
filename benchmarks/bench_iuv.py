"""IUV stage throughput: chart conversion and storage on CPU; DensePose box vs detect on a GPU.

CPU part (always): K detectron2-shaped chart outputs (coarse (K, 2, 112, 112), fine/u/v
(K, 25, 112, 112), one XYXY box per crop) -> image-sized IUV, with

- ours: ``charts_to_results`` (boxes of one size resampled in one call, U/V gathered by label)
  + ``result_to_iuv``;
- reference: DensePose's per-instance converter as written in its source (one interpolate per
  box and chart, then a Python loop over the 24 parts to pick U and V) + the same paste;

checked equal, then the storage path (nearest resize to the canonical size and the HDF5 store
writer) after each. GPU part (only when CUDA is available, detectron2 + DensePose import and
``SANREID_DENSEPOSE_SRC`` names the DensePose source): R-50-FPN with random weights, box vs
detect mode images/s at batch sizes 1..64 (``--model-device cpu`` runs it on CPU instead).

    python benchmarks/bench_iuv.py [--crops 256] [--repeats 3]
    SANREID_DENSEPOSE_SRC=SRC/projects/DensePose python benchmarks/bench_iuv.py \
        [--model-device cpu --modes box --batch-sizes 1,4,16 --model-crops 32]

Last line: ``name=value`` pairs.
"""

import argparse
import os
from pathlib import Path
import tempfile
import time

import numpy as np
import torch
from torch.nn import functional as F

from densepose_textures.imageio import resize_iuv
from densepose_textures.iuv.charts import charts_to_results, result_to_iuv
from densepose_textures.iuv.store import IUVWriter

CHART = 112
PARTS = 25


def densepose_reference(coarse, fine, u, v, box_xyxy, image_hw):
    """One instance as DensePose's converter does it (per box, loop over parts), pasted as IUV."""
    x0, y0, x1, y1 = box_xyxy.tolist()
    xywh = torch.tensor([x0, y0, x1 - x0, y1 - y0], dtype=torch.float32).long().tolist()
    w, h = max(int(xywh[2]), 1), max(int(xywh[3]), 1)
    coarse_bbox = F.interpolate(coarse[None], (h, w), mode="bilinear", align_corners=False).argmax(dim=1)
    labels = F.interpolate(fine[None], (h, w), mode="bilinear", align_corners=False).argmax(dim=1)
    labels = (labels * (coarse_bbox > 0).long()).squeeze(0)
    u_bbox = F.interpolate(u[None], (h, w), mode="bilinear", align_corners=False)
    v_bbox = F.interpolate(v[None], (h, w), mode="bilinear", align_corners=False)
    uv = torch.zeros([2, h, w], dtype=torch.float32)
    for part_id in range(1, u_bbox.size(1)):
        uv[0][labels == part_id] = u_bbox[0, part_id][labels == part_id]
        uv[1][labels == part_id] = v_bbox[0, part_id][labels == part_id]
    return result_to_iuv(labels, uv.clamp(0, 1), (xywh[0], xywh[1], w, h), image_hw)


def ours(coarse, fine, u, v, boxes, image_hw, batch=16):
    """Batches of ``batch`` crops, as the backend converts each forward pass's outputs."""
    iuvs = []
    for s in range(0, len(boxes), batch):
        results = charts_to_results(coarse[s : s + batch], fine[s : s + batch], u[s : s + batch], v[s : s + batch], boxes[s : s + batch])
        iuvs += [result_to_iuv(labels, uv, box, image_hw) for labels, uv, box in results]
    return iuvs


def reference(coarse, fine, u, v, boxes, image_hw):
    return [densepose_reference(coarse[i], fine[i], u[i], v[i], boxes[i], image_hw) for i in range(len(boxes))]


def store(iuvs, size, folder):
    """The storage path of the run loop: nearest resize to the store size, then the HDF5 writer."""
    path = Path(folder) / "bench.h5"
    with IUVWriter(path, len(iuvs), size, {}) as writer:
        for i, iuv in enumerate(iuvs):
            writer.append(resize_iuv(iuv, size), f"img{i:06d}.jpg", True, 1.0)
    path.unlink()


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cpu_part(crops, repeats, image_hw=(128, 64), size=(256, 128)):
    gen = torch.Generator().manual_seed(0)
    coarse = torch.randn(crops, 2, CHART, CHART, generator=gen)
    fine = torch.randn(crops, PARTS, CHART, CHART, generator=gen)
    u = torch.rand(crops, PARTS, CHART, CHART, generator=gen) * 1.2 - 0.1
    v = torch.rand(crops, PARTS, CHART, CHART, generator=gen) * 1.2 - 0.1
    boxes = torch.tensor([[0.0, 0.0, float(image_hw[1]), float(image_hw[0])]]).repeat(crops, 1)  # box mode: the crop
    a, b = ours(coarse, fine, u, v, boxes, image_hw), reference(coarse, fine, u, v, boxes, image_hw)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)), "ours and DensePose's per-instance code disagree"
    t_ours = best_time(lambda: ours(coarse, fine, u, v, boxes, image_hw), repeats)
    t_ref = best_time(lambda: reference(coarse, fine, u, v, boxes, image_hw), repeats)
    with tempfile.TemporaryDirectory() as folder:
        t_store = best_time(lambda: store(a, size, folder), repeats)
    figures = {
        "convert_ips": crops / t_ours,
        "convert_ref_ips": crops / t_ref,
        "convert_speedup": t_ref / t_ours,
        "store_ips": crops / t_store,
        "convert_store_ips": crops / (t_ours + t_store),
        "convert_store_ref_ips": crops / (t_ref + t_store),
    }
    print(f"CPU, {crops} crops {image_hw[0]}x{image_hw[1]}, charts {CHART}x{CHART}, store {size[0]}x{size[1]}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"  conversion: ours {figures['convert_ips']:.0f} img/s, DensePose per-instance code "
          f"{figures['convert_ref_ips']:.0f} img/s ({figures['convert_speedup']:.1f}x)")
    print(f"  storage (resize + HDF5 gzip-1): {figures['store_ips']:.0f} img/s; conversion + storage: ours "
          f"{figures['convert_store_ips']:.0f} img/s, reference {figures['convert_store_ref_ips']:.0f} img/s")
    return figures


def model_part(device, batch_sizes, crops, modes=("box", "detect"), input_size=(512, 256)):
    """Box vs detect images/s of R-50-FPN with random weights (weights written to a temporary file)."""
    from densepose_textures.iuv.densepose import DensePoseBackend, write_random_checkpoint

    config = Path(os.environ["SANREID_DENSEPOSE_SRC"]) / "configs" / "densepose_rcnn_R_50_FPN_s1x.yaml"
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (128, 64, 3), dtype=np.uint8) for _ in range(crops)]
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        weights = write_random_checkpoint(config, Path(folder) / "random.pth", person_logit=8.0)
        for mode in modes:
            for bs in batch_sizes:
                backend = DensePoseBackend(config, weights, mode=mode, device=device, batch_size=bs, input_size=input_size)
                backend.predict(images[:bs], None)  # warm-up (cuDNN autotuning, allocator)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                backend.predict(images, None)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                figures[f"{mode}_b{bs}_ips"] = crops / (time.perf_counter() - start)
                print(f"  {device} {mode:6s} batch {bs:2d}: {figures[f'{mode}_b{bs}_ips']:.1f} img/s")
                del backend
    return figures


def model_available():
    try:
        import detectron2  # noqa: F401
        import densepose  # noqa: F401
    except ImportError:
        return "detectron2/DensePose not importable"
    src = os.environ.get("SANREID_DENSEPOSE_SRC", "")
    if not (Path(src) / "configs").is_dir():
        return "SANREID_DENSEPOSE_SRC does not name the DensePose source folder"
    return ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-device", default="", help="run the model part here (default: cuda when available)")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--model-crops", type=int, default=256)
    parser.add_argument("--modes", default="box,detect")
    args = parser.parse_args()
    figures = cpu_part(args.crops, args.repeats)
    device = args.model_device or ("cuda" if torch.cuda.is_available() else "")
    missing = model_available()
    if not device:
        print("model part skipped: no CUDA device here (use --model-device cpu to run it on CPU)")
    elif missing:
        print(f"model part skipped: {missing}")
    else:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
        figures.update(model_part(device, batch_sizes, args.model_crops, args.modes.split(",")))
    print(" ".join(f"{k}={v:.2f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
