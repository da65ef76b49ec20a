"""Training speed and peak memory of the baseline vs SAN: same backbone, batch and input, one run.

A P x K batch of random images and texture targets held in memory (the model step only, no
data loading). Timing: all variants built in one process, one warm-up step each, then 3 rounds
in which each variant times ``--steps`` steps in turn (best round kept), so load changes on a
shared machine hit all variants alike. Peak memory: each variant alone in its own process.
Variants:
``baseline`` (encoder alone), ``san`` (faithful profile: two gradient sets, four optimisers),
``san-joint`` (one optimiser over the summed losses), and eval-mode inference of both.

CPU: the CPU profile's sizes (ResNet-18, 128x64, 8 x 4 images, P = 32) at last stride 1, as this
benchmark has always measured. GPU (only when CUDA is available): the paper profile's ResNet-50, last
stride 1, 256x128, 16 x 4 images, P = 64, AMP bf16, channels_last.

Data: the training samples/s of both data paths (uint8 batches, full augmentation, targets
mirrored with the flips) at 256x128, P = 64: one DataLoader worker (one thread) and the device path
(:mod:`train.device_data`) on the CPU with one thread, and on the GPU when there is one; then the
same at the CPU profile's 128x64, P = 32. Each profile's data time per batch (worker path with the
profile's workers, device path) is set against its model step: whichever is longer limits a step.
The reference is the baseline (or one worker) measured in the same run; the last line holds the
figures, ``san_over_baseline_step`` from the GPU when there is one, else from the CPU, and
``device_path_over_worker`` (device path on the CPU over one worker, 256x128, P = 64).

    python benchmarks/bench_train.py [--steps N] [--threads T]
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

CONFIGS = {
    "cpu": dict(device="cpu", backbone="resnet18", last_stride=1, size=(128, 64), batch=(8, 4), texture=32,
                amp="none", channels_last=False, workers=2),
    "gpu": dict(device="cuda", backbone="resnet50", last_stride=1, size=(256, 128), batch=(16, 4), texture=64,
                amp="bf16", channels_last=True, workers=8),
}
VARIANTS = ("baseline", "san", "san-joint")


def build(cfg, variant, device, compile_backend=None):
    """(train step, inference step) closures of one variant on a random in-memory batch; ``compile_backend``
    (``inductor``, ``eager``, ...): the model under ``torch.compile``, as ``train.compile`` runs it."""
    from train.data import batch_to_device
    from train.engine import autocast
    from train.model import SAN
    from train.objective import SANObjective
    from train.optim import Optimization

    torch.manual_seed(0)
    (h, w), (p, k), tex = cfg["size"], cfg["batch"], cfg["texture"]
    n = p * k
    net = SAN(751, backbone=cfg["backbone"], last_stride=cfg["last_stride"],
              texture_size=None if variant == "baseline" else tex).to(device)
    if cfg["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
    profile = "joint" if variant == "san-joint" else "faithful"
    optim = Optimization(net, profile=profile, lr=8e-4, weight_decay=5e-4, amsgrad=True, step_size=40, gamma=0.5,
                         warmup_epochs=0, warmup_lr=8e-6, warmup_factor=1.259, texture_lr=1e-5,
                         texture_betas=(0.5, 0.999), amp=cfg["amp"], device=device)
    optim.set_epoch(0)
    model = torch.compile(net, backend=compile_backend) if compile_backend else net
    objective = SANObjective(model, label_smoothing=0.1, triplet_margin=0.3, texture_weight=1.0, tr_weight=1.0,
                             tr_margin=0.3).to(device)
    batch = {"image": torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8), "pid": torch.arange(n) // k,
             "target": torch.randint(0, 256, (n, 3, 6 * tex, 4 * tex), dtype=torch.uint8),
             "provenance": torch.zeros(n, 1, 6 * tex, 4 * tex, dtype=torch.uint8)}
    inputs = batch_to_device(batch, device, channels_last=cfg["channels_last"])
    if variant == "baseline":
        inputs = {k: inputs[k] for k in ("images", "pids")}

    def train_step():
        objective.train()
        with autocast(device, cfg["amp"]):
            losses, _ = objective(**inputs)
        optim.step(losses)

    def infer_step():
        net.eval()
        with torch.no_grad(), autocast(device, cfg["amp"]):
            net(inputs["images"])

    return train_step, infer_step


def child(where, what, steps, threads):
    """``what``: ``time`` (all variants in turn, round by round, so load changes hit them alike) or a
    variant name (its peak memory over a few training steps, alone in this process)."""
    cfg = CONFIGS[where]
    torch.set_num_threads(threads)
    device = torch.device(cfg["device"])

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(step, count):
        sync()
        start = time.perf_counter()
        for _ in range(count):
            step()
        sync()
        return (time.perf_counter() - start) / count

    if what != "time":
        train_step, _ = build(cfg, what, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(2):
            train_step()
        sync()
        peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
        print(json.dumps({"peak_mb": peak}))
        return
    steps_of = {v: build(cfg, v, device) for v in VARIANTS}
    for train_step, infer_step in steps_of.values():  # warm-up
        train_step()
        infer_step()
    best = {v: {"train_s": float("inf"), "infer_s": float("inf")} for v in VARIANTS}
    for _ in range(3):
        for v, (train_step, infer_step) in steps_of.items():
            best[v]["train_s"] = min(best[v]["train_s"], timed(train_step, steps))
            best[v]["infer_s"] = min(best[v]["infer_s"], timed(infer_step, steps))
    n = cfg["batch"][0] * cfg["batch"][1]
    for v in VARIANTS:
        best[v]["img_s"] = n / best[v]["train_s"]
    print(json.dumps(best))


def data_set(tmp, size, texture, ids=20, images_per_id=10):
    """A :class:`train.data.TrainImages` with full augmentation over a synthetic set rendered at ``size`` and its
    texture set (P = ``texture``), built here under ``tmp``."""
    from pathlib import Path

    import numpy as np

    from densepose_textures.atlas import image_to_atlas
    from densepose_textures.fill import fill_atlas
    from densepose_textures.imageio import read_iuv, read_rgb
    from densepose_textures.shards import write_texture_set
    from densepose_textures.synth import body_mirror_map, iuv_path, write_dataset
    from train.data import TrainImages

    tmp = Path(tmp) / f"{size[0]}x{size[1]}-{texture}"
    root = write_dataset(tmp / "synth", ids=ids, images_per_id=images_per_id, cameras=3, seed=0, image_size=size,
                         texture_size=texture, jobs=1)
    keys = sorted(str(p.relative_to(root)) for p in (root / "bounding_box_train").glob("*.jpg"))
    mirror = body_mirror_map()
    rec = [fill_atlas(*image_to_atlas(read_rgb(root / k), read_iuv(iuv_path(root, k)), texture), mirror=mirror)
           for k in keys]
    observed = np.ones((len(keys), 24, texture, texture), np.uint8)
    pids = [int(k.split("/")[-1][:4]) for k in keys]
    write_texture_set(tmp / "tex", np.stack([r[0] for r in rec]), observed, np.stack([r[1] for r in rec]),
                      keys, pids, [0] * len(keys), mirror_index=mirror.texel_index(texture))
    items = [(k, pid, 0) for k, pid in zip(keys, pids)]
    return TrainImages(root, items, tmp / "tex", height=size[0], width=size[1], flip=True, resize_crop=1.125,
                       resize_crop_prob=0.5, erasing=0.5)


def worker_rate(data, repeats=3, samples=300):
    """Training samples/s of one DataLoader worker (one thread): image read + augmentation + target read and
    mirrored, as uint8 tensors; best of ``repeats``."""
    import cv2

    cv2.setNumThreads(1)
    best = 0.0
    for r in range(repeats):
        start = time.perf_counter()
        for slot in range(samples):
            data[(slot % len(data), r, slot)]
        best = max(best, samples / (time.perf_counter() - start))
    return best


def device_rate(data, device, repeats=3, batches=20, batch=64):
    """Training samples/s of the device path on ``device`` (the same uint8 batches as the workers give, augmented
    there), best of ``repeats``; the set is decoded onto the device first (not timed)."""
    from train.device_data import DeviceImages

    held = DeviceImages(data, device, progress=False)
    best = 0.0
    for r in range(repeats):
        keys = [[((b * batch + i) % len(data), r, b * batch + i) for i in range(batch)] for b in range(batches)]
        if held.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for k in keys:
            held.batch(k)
        if held.device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, batches * batch / (time.perf_counter() - start))
    return best


def data_rates(places):
    """Samples/s of both data paths at 256x128, P = 64 (one thread on the CPU), at the CPU profile's 128x64,
    P = 32, and on the GPU when there is one: {name: samples/s}."""
    import tempfile

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rates = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for tag, size, texture in (("", (256, 128), 64), ("cpu_profile_", (128, 64), 32)):
                data = data_set(tmp, size, texture)
                rates[f"{tag}worker_samples_s"] = worker_rate(data)
                rates[f"{tag}device_path_cpu_samples_s"] = device_rate(data, "cpu")
                if "gpu" in places and not tag:
                    rates["device_path_gpu_samples_s"] = device_rate(data, "cuda")
    finally:
        torch.set_num_threads(threads)
    return rates


def limits(where, results, rates):
    """Lines saying whether the data path or the model step limits a training step of ``where``'s profile."""
    cfg = CONFIGS[where]
    n = cfg["batch"][0] * cfg["batch"][1]
    prefix = "cpu_profile_" if where == "cpu" else ""
    step_ms = {v: results[v]["train_s"] * 1000 for v in VARIANTS}
    data_ms = {f"worker path, {cfg['workers']} workers": n / (cfg["workers"] * rates[f"{prefix}worker_samples_s"]) * 1000,
               "device path": n / rates[f"{prefix}device_path_{where}_samples_s"] * 1000}
    fastest = min(step_ms.values())
    lines = [f"  data per batch of {n}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in data_ms.items())
             + f"; model step {fastest:.1f} ms (baseline) to {max(step_ms.values()):.1f} ms"]
    for path, ms in data_ms.items():
        lines.append(f"  {path}: {'data' if ms > fastest else 'the model step'} limits a training step")
    return lines


def run(where, what, steps, threads):
    out = subprocess.run([sys.executable, __file__, "--child", where, what, "--steps", str(steps),
                          "--threads", str(threads)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="steps per timing (best of 3 timings)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--child", nargs=2, metavar=("WHERE", "WHAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.steps, args.threads)
    places = ["cpu"] + (["gpu"] if torch.cuda.is_available() else [])
    figures, results_of = {}, {}
    for where in places:
        cfg = CONFIGS[where]
        steps = args.steps if where == "cpu" else 10
        results = run(where, "time", steps, args.threads)
        for v in VARIANTS:
            results[v].update(run(where, v, steps, args.threads))
        results_of[where] = results
        base = results["baseline"]
        print(f"{where}: {cfg['backbone']}, {cfg['size'][0]}x{cfg['size'][1]}, batch {cfg['batch'][0]}x{cfg['batch'][1]}, "
              f"P={cfg['texture']}, amp {cfg['amp']}, threads {args.threads if where == 'cpu' else '-'}")
        for v, r in results.items():
            print(f"  {v:10s} train {r['img_s']:8.1f} images/s ({r['train_s'] * 1000:8.1f} ms/step, "
                  f"{r['train_s'] / base['train_s']:.2f}x baseline), peak {r['peak_mb']:8.0f} MB, "
                  f"inference {r['infer_s'] * 1000:7.1f} ms/batch")
        figures.update({
            f"{where}_baseline_img_s": base["img_s"], f"{where}_san_img_s": results["san"]["img_s"],
            f"{where}_san_joint_img_s": results["san-joint"]["img_s"],
            f"{where}_san_over_baseline_step": results["san"]["train_s"] / base["train_s"],
            f"{where}_san_joint_over_baseline_step": results["san-joint"]["train_s"] / base["train_s"],
            f"{where}_baseline_peak_mb": base["peak_mb"], f"{where}_san_peak_mb": results["san"]["peak_mb"],
            f"{where}_san_over_baseline_infer": results["san"]["infer_s"] / base["infer_s"],
        })
    rates = data_rates(places)
    for where in places:
        print(f"{where} profile, data against the model step:")
        print("\n".join(limits(where, results_of[where], rates)))
    print(f"data at 256x128, P=64: one DataLoader worker {rates['worker_samples_s']:.0f} samples/s, device path "
          f"on the CPU (one thread) {rates['device_path_cpu_samples_s']:.0f} samples/s"
          + (f", on the GPU {rates['device_path_gpu_samples_s']:.0f} samples/s" if "gpu" in places else ""))
    figures.update(rates)
    figures["device_path_over_worker"] = rates["device_path_cpu_samples_s"] / rates["worker_samples_s"]
    head = places[-1]
    figures["san_over_baseline_step"] = figures[f"{head}_san_over_baseline_step"]
    figures["san_joint_over_baseline_step"] = figures[f"{head}_san_joint_over_baseline_step"]
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
