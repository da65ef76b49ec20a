"""One prepared GPU check: training steps, both data paths, a short end-to-end run and the IUV path, in < 8 min.

Parts, each with its own time box (a part past its box stops at the next measurement and says so):

1. ``steps``: the training-step benchmark (``bench_train.build``): ResNet-50, last stride 1, 256x128,
   16 x 4 images, P = 64, AMP bf16, channels_last; baseline, SAN faithful, SAN joint; eager and under
   ``torch.compile`` (the compiled ones last: compilation takes most of this part).
2. ``data``: samples/s of both data paths at 256x128, P = 64: one DataLoader worker, and the device path on
   the GPU; whether data or the model step limits a step (8 workers, or the device path, against the
   fastest eager step).
3. ``e2e``: the paper profile's model and input size on a synthetic set rendered here (IUV from the synthetic
   backend, texture set P = 64): baseline and SAN (faithful) trained a few epochs through ``train_model``
   with ``data.loader=auto``, both evaluated on the GPU and on the CPU (Rank-1, mAP and features must agree).
4. ``iuv``: the IUV chart conversion (``charts_to_results``) on the GPU and the storage path (resize + HDF5).

The last line is ``figures: name=value ...``. Needs torch, numpy, opencv, h5py, click, joblib and this
project; no DVC, no dvclive. ``--dry-run``: tiny sizes on the CPU (ResNet-18, 64x32, one epoch,
``torch.compile`` with the ``eager`` backend), about a minute; the test suite runs it.

    python benchmarks/gpu_check.py            # on a CUDA machine
    python benchmarks/gpu_check.py --dry-run  # anywhere
"""

import argparse
import datetime
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_iuv  # noqa: E402
import bench_train  # noqa: E402

log = logging.getLogger("gpu_check")

FULL = dict(device="cuda", backbone="resnet50", last_stride=1, size=(256, 128), batch=(16, 4), texture=64,
            amp="bf16", channels_last=True, workers=8, steps=10, compile="inductor",
            synth=dict(ids=40, images_per_id=8), epochs=3, crops=256, data=dict(ids=20, samples=200, batches=50),
            boxes=dict(steps=200, data=60, e2e=150, iuv=30))
DRY = dict(device="cpu", backbone="resnet18", last_stride=1, size=(64, 32), batch=(4, 2), texture=8,
           amp="none", channels_last=False, workers=1, steps=1, compile="eager",
           synth=dict(ids=12, images_per_id=4), epochs=1, crops=16, data=dict(ids=10, samples=40, batches=5),
           boxes=dict(steps=60, data=20, e2e=60, iuv=10))
VARIANTS = ("baseline", "san", "san-joint")


class TimeBox:
    def __init__(self, seconds):
        self.end = time.perf_counter() + seconds

    @property
    def over(self):
        return time.perf_counter() > self.end


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(step, count, device):
    sync(device)
    start = time.perf_counter()
    for _ in range(count):
        step()
    sync(device)
    return (time.perf_counter() - start) / count


def steps_part(cfg, box):
    """ms per training step of each variant, eager then compiled; stops compiling when the box is over."""
    figures = {}
    for compiled in (False, True):
        for variant in VARIANTS:
            name = f"{variant.replace('-', '_')}{'_compiled' if compiled else ''}_step_ms"
            if box.over:
                log.warning("steps: time box over, %s not measured", name)
                continue
            train_step, _ = bench_train.build(cfg, variant, cfg["device"], cfg["compile"] if compiled else None)
            train_step()  # warm-up (compilation, cuDNN autotuning)
            train_step()
            figures[name] = min(timed(train_step, cfg["steps"], cfg["device"]) for _ in range(3)) * 1000
            log.info("steps: %s %.1f ms", name, figures[name])
            del train_step
    for suffix in ("", "_compiled"):
        base = figures.get(f"baseline{suffix}_step_ms")
        for variant in ("san", "san_joint"):
            if base and f"{variant}{suffix}_step_ms" in figures:
                figures[f"{variant}{suffix}_over_baseline"] = figures[f"{variant}{suffix}_step_ms"] / base
    return figures


def data_part(cfg, box, steps):
    """Samples/s of one worker and of the device path; which of data and model limits a step."""
    figures = {}
    n = cfg["batch"][0] * cfg["batch"][1]
    with tempfile.TemporaryDirectory() as tmp:
        data = bench_train.data_set(tmp, cfg["size"], cfg["texture"], ids=cfg["data"]["ids"])
        figures["worker_samples_s"] = bench_train.worker_rate(data, samples=cfg["data"]["samples"])
        if not box.over:
            figures["device_path_samples_s"] = bench_train.device_rate(data, cfg["device"], batch=n,
                                                                       batches=cfg["data"]["batches"])
    fastest = min((v for k, v in steps.items() if k.endswith("_step_ms")), default=None)
    if fastest:
        worker_ms = n / (cfg["workers"] * figures["worker_samples_s"]) * 1000
        figures["worker_path_limit"] = "data" if worker_ms > fastest else "model"
        if "device_path_samples_s" in figures:
            device_ms = n / figures["device_path_samples_s"] * 1000
            figures["device_path_limit"] = "data" if device_ms > fastest else "model"
    return figures


def synthetic_set(folder, cfg):
    """(dataset, texture set) of a synthetic set at the training size: IUV by the synthetic backend, textures."""
    from densepose_textures.iuv.run import run_iuv
    from densepose_textures.iuv.synth_backend import SynthBackend
    from densepose_textures.synth import body_mirror_map, write_dataset
    from densepose_textures.textures import build_texture_set
    from pipeline import datasets

    root = write_dataset(Path(folder) / "synth", cameras=3, seed=0, image_size=cfg["size"], texture_size=64,
                         jobs=4, **cfg["synth"])
    ds = datasets.load("synth", root)
    keys = [path for path, _, _ in ds.train]
    store = Path(folder) / "iuv.h5"
    run_iuv(SynthBackend(root), root, keys, store, size=cfg["size"], progress=False)
    labels = {path: (pid, camid) for path, pid, camid in ds.train}
    textures = Path(folder) / "textures"
    build_texture_set(textures, store_path=store, image_root=root, dataset="synth", labels=labels,
                      size=cfg["texture"], mirror=body_mirror_map(), jobs=4, progress=False)
    return ds, textures


def evaluate(last, ds, device):
    """(features of query + gallery, {rank1, mAP}) of a checkpoint's encoder on ``device``."""
    from train.evaluation import evaluate_rank
    from train.evaluation.distance import pairwise_distance
    from train.evaluation.features import extract_features
    from train.export import load_encoder

    encoder, preprocess = load_encoder(last, device)
    qf = extract_features(encoder, ds.root, ds.query, preprocess, batch_size=64, device=device, progress=False)
    gf = extract_features(encoder, ds.root, ds.gallery, preprocess, batch_size=64, device=device, progress=False)
    pids = [np.array([p for _, p, _ in s]) for s in (ds.query, ds.gallery)]
    cams = [np.array([c for _, _, c in s]) for s in (ds.query, ds.gallery)]
    result = evaluate_rank(pairwise_distance(qf, gf), pids[0], pids[1], cams[0], cams[1])
    return torch.cat([qf, gf]), {"rank1": float(result["cmc"][0]), "mAP": float(result["mAP"])}


def e2e_part(cfg, box):
    """Both variants trained a few epochs (paper model and input size), evaluated on the device and the CPU."""
    from pipeline.params import override
    from train.run import train_model
    from train.settings import TrainParams

    figures = {}
    settings = override(TrainParams(), [
        f"model.backbone={cfg['backbone']}", f"model.last_stride={cfg['last_stride']}",
        f"data.height={cfg['size'][0]}", f"data.width={cfg['size'][1]}", f"data.ids_per_batch={cfg['batch'][0]}",
        f"data.images_per_id={cfg['batch'][1]}", "data.workers=4", "data.loader=auto", "optim.profile=faithful",
        "optim.warmup_epochs=0", f"epochs={cfg['epochs']}", f"amp={cfg['amp']}",
        f"channels_last={str(cfg['channels_last']).lower()}", f"device={cfg['device']}", "eval_every=-1",
        "picture_every=0", "checkpoint_every=0"])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ds, textures = synthetic_set(tmp, cfg)
        figures["e2e_set_s"] = time.perf_counter() - start
        for variant in ("baseline", "san"):
            if box.over:
                log.warning("e2e: time box over, %s not trained", variant)
                continue
            start = time.perf_counter()
            last = train_model(settings, variant=variant, dataset=ds, out_dir=Path(tmp) / variant,
                               textures=textures if variant == "san" else None, progress=False)
            figures[f"e2e_{variant}_train_s"] = time.perf_counter() - start
            on_device, scores = evaluate(last, ds, cfg["device"])
            on_cpu, cpu_scores = evaluate(last, ds, "cpu")
            cosine = torch.nn.functional.cosine_similarity(on_device, on_cpu).min().item()
            figures[f"e2e_{variant}_mAP"] = scores["mAP"]
            figures[f"e2e_{variant}_rank1"] = scores["rank1"]
            figures[f"e2e_{variant}_cpu_mAP"] = cpu_scores["mAP"]
            figures[f"e2e_{variant}_min_feature_cosine"] = cosine
            # bf16 on the GPU against float32 on the CPU: features agree to rounding, metrics within a query or two
            agree = cosine > 0.99 and abs(scores["mAP"] - cpu_scores["mAP"]) < 0.02
            figures[f"e2e_{variant}_gpu_cpu_agree"] = "yes" if agree else "no"
    return figures


def iuv_part(cfg, box):
    """Images/s of the chart conversion on the device and of conversion + storage."""
    gen = torch.Generator().manual_seed(0)
    k, hw = cfg["crops"], cfg["size"]
    charts = [torch.randn(k, c, bench_iuv.CHART, bench_iuv.CHART, generator=gen).to(cfg["device"])
              for c in (2, bench_iuv.PARTS, bench_iuv.PARTS, bench_iuv.PARTS)]
    boxes = torch.tensor([[0.0, 0.0, float(hw[1]), float(hw[0])]]).repeat(k, 1)
    iuvs = bench_iuv.ours(*charts, boxes, hw)  # warm-up
    best = {"convert": float("inf"), "store": float("inf")}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(3):
            if box.over:
                break
            best["convert"] = min(best["convert"], timed(lambda: bench_iuv.ours(*charts, boxes, hw), 1, cfg["device"]))
            start = time.perf_counter()
            bench_iuv.store(iuvs, hw, folder)
            best["store"] = min(best["store"], time.perf_counter() - start)
    return {"iuv_convert_images_s": k / best["convert"], "iuv_convert_store_images_s": k / sum(best.values())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (about a minute)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = DRY if args.dry_run else FULL
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --dry-run, or on a GPU machine")
    start = time.perf_counter()
    figures = {"date": datetime.date.today().isoformat(),
               "device": torch.cuda.get_device_name() if cfg["device"] == "cuda" else "cpu"}
    failed = []
    parts = (("steps", lambda box: steps_part(cfg, box)),
             ("data", lambda box: data_part(cfg, box, figures)),
             ("e2e", lambda box: e2e_part(cfg, box)),
             ("iuv", lambda box: iuv_part(cfg, box)))
    for name, part in parts:
        part_start = time.perf_counter()
        try:
            figures.update(part(TimeBox(cfg["boxes"][name])))
        except Exception:
            log.exception("part %s failed", name)
            failed.append(name)
        figures[f"{name}_s"] = time.perf_counter() - part_start
        log.info("part %s done in %.0f s", name, figures[f"{name}_s"])
    figures["total_s"] = time.perf_counter() - start
    figures["failed"] = ",".join(failed) or "none"
    print("figures: " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}".replace(" ", "_")
                                 for k, v in figures.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
