"""Training speed and peak memory of the baseline vs SAN: same backbone, batch and input, one run.

A P x K batch of random images and texture targets held in memory (the model step only, no
data loading). Timing: all variants built in one process, one warm-up step each, then 3 rounds
in which each variant times ``--steps`` steps in turn (best round kept), so load changes on a
shared machine hit all variants alike. Peak memory: each variant alone in its own process.
Variants:
``baseline`` (encoder alone), ``san`` (faithful profile: two gradient sets, four optimisers),
``san-joint`` (one optimiser over the summed losses), and eval-mode inference of both.

CPU: the CPU profile's sizes (ResNet-18, 128x64, 8 x 4 images, P = 32) at last stride 1, as this
benchmark has always measured. GPU (only when CUDA is available): ResNet-50, last stride 1, 256x128,
16 x 4 images, P = 32, AMP bf16, channels_last.
Also the training samples/s of one DataLoader worker (image + texture target at 256x128, P = 32).
The reference is the baseline measured in the same run; the last line holds the figures,
``san_over_baseline_step`` from the GPU when there is one, else from the CPU.

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
                amp="none", channels_last=False),
    "gpu": dict(device="cuda", backbone="resnet50", last_stride=1, size=(256, 128), batch=(16, 4), texture=32,
                amp="bf16", channels_last=True),
}
VARIANTS = ("baseline", "san", "san-joint")


def build(cfg, variant, device):
    """(train step, inference step) closures of one variant on a random in-memory batch."""
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
    objective = SANObjective(net, label_smoothing=0.1, triplet_margin=0.3, texture_weight=1.0, tr_weight=1.0,
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


def loader_rate(repeats=3, samples=400):
    """Training samples/s of one DataLoader worker (256x128 image, P = 32 target, full augmentation),
    on a synthetic set with its texture set built here; best of ``repeats``."""
    import tempfile
    from pathlib import Path

    import cv2
    import numpy as np

    from densepose_textures.atlas import image_to_atlas
    from densepose_textures.fill import fill_atlas
    from densepose_textures.imageio import read_iuv, read_rgb
    from densepose_textures.shards import write_texture_set
    from densepose_textures.synth import body_mirror_map, iuv_path, write_dataset
    from train.data import TrainImages

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "synth", ids=20, images_per_id=10, cameras=3, seed=0, image_size=(256, 128),
                             texture_size=32, jobs=1)
        keys = sorted(str(p.relative_to(root)) for p in (root / "bounding_box_train").glob("*.jpg"))
        mirror = body_mirror_map()
        rec = [fill_atlas(*image_to_atlas(read_rgb(root / k), read_iuv(iuv_path(root, k)), 32), mirror=mirror)
               for k in keys]
        observed = np.ones((len(keys), 24, 32, 32), np.uint8)
        pids = [int(k.split("/")[-1][:4]) for k in keys]
        write_texture_set(Path(tmp) / "tex", np.stack([r[0] for r in rec]), observed, np.stack([r[1] for r in rec]),
                          keys, pids, [0] * len(keys), mirror_index=mirror.texel_index(32))
        items = [(k, pid, 0) for k, pid in zip(keys, pids)]
        data = TrainImages(root, items, Path(tmp) / "tex", height=256, width=128, flip=True, resize_crop=1.125,
                           resize_crop_prob=0.5, erasing=0.5)
        best = 0.0
        for r in range(repeats):
            start = time.perf_counter()
            for slot in range(samples):
                data[(slot % len(items), r, slot)]
            best = max(best, samples / (time.perf_counter() - start))
    return best


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
    figures = {}
    for where in places:
        cfg = CONFIGS[where]
        steps = args.steps if where == "cpu" else 10
        results = run(where, "time", steps, args.threads)
        for v in VARIANTS:
            results[v].update(run(where, v, steps, args.threads))
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
    figures["loader_samples_s_per_worker"] = loader_rate()
    print(f"data: {figures['loader_samples_s_per_worker']:.0f} training samples/s per DataLoader worker "
          "(256x128 image read + augmentation + P=32 target read and mirrored)")
    head = places[-1]
    figures["san_over_baseline_step"] = figures[f"{head}_san_over_baseline_step"]
    figures["san_joint_over_baseline_step"] = figures[f"{head}_san_joint_over_baseline_step"]
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
