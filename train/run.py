"""One training run, from plain arguments: data, model, optimisers, loop, checkpoints, logs.

``pipeline.commands.train`` reads the parameters and calls :func:`train_model`; nothing
here knows about parameter files. Under ``torchrun`` every process calls it the same way.
"""

import json
import logging
import random
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from densepose_textures.errors import InputError
from densepose_textures.imageio import write_rgb

from . import checkpoint as ckpt
from .data import IMAGENET_MEAN, IMAGENET_STD, TrainImages, batch_to_device, make_loader
from .engine import Logger, barrier, fit, setup_distributed
from .model import SAN
from .objective import SANObjective
from .optim import Optimization
from .sampler import IdentitySampler
from .visual import texture_rows

log = logging.getLogger(__name__)

VARIANTS = ("baseline", "san")


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def initial_model(seed, **model_args):
    """The SAN a run starts from: built right after seeding, so its initial weights depend on ``seed`` only."""
    seed_everything(seed)
    return SAN(**model_args)


def _plain(value):
    """JSON-plain copy (tuples become lists), so settings compare equal after a checkpoint round trip."""
    return json.loads(json.dumps(value))


def make_evaluator(root, query, gallery, preprocess, *, device, metric="euclidean", normalize=True, flip=True,
                   batch_size=128):
    """A function model -> {rank1, mAP} on the test split (for monitoring only: never select on it)."""
    from .evaluation import evaluate_rank
    from .evaluation.distance import pairwise_distance
    from .evaluation.features import extract_features

    q_pids = np.array([p for _, p, _ in query]); q_cams = np.array([c for _, _, c in query])
    g_pids = np.array([p for _, p, _ in gallery]); g_cams = np.array([c for _, _, c in gallery])

    def evaluate(model):
        was_training = model.training
        try:
            with torch.no_grad():
                qf = extract_features(model, root, query, preprocess, flip=flip, batch_size=batch_size, device=device)
                gf = extract_features(model, root, gallery, preprocess, flip=flip, batch_size=batch_size, device=device)
                result = evaluate_rank(pairwise_distance(qf, gf, metric=metric, normalize=normalize),
                                       q_pids, g_pids, q_cams, g_cams)
        finally:
            model.train(was_training)
        return {"test/rank1": float(result["cmc"][0]), "test/mAP": float(result["mAP"])}

    return evaluate


def train_model(*, root, train_items, out_dir, variant, model, data, optim, loss, epochs, textures=None,
                query_items=(), gallery_items=(), evaluation=None, seed=0, device="auto", amp="none",
                channels_last=False, compile=False, checkpoint_every=5, eval_every=0, picture_every=5,
                resume=False, progress=True):
    """Train ``variant`` (``baseline``: encoder alone; ``san``: encoder + texture decoder) and return ``last.pt``.

    ``model``: SAN kwargs (backbone, head, embed_dim, last_stride, pretrained); ``data``: height, width,
    ids_per_batch, images_per_id, workers, flip, resize_crop, resize_crop_prob, erasing; ``optim``: the
    kwargs of :class:`train.optim.Optimization`; ``loss``: those of :class:`train.objective.SANObjective`;
    ``epochs``: main epochs, after ``optim['warmup_epochs']``; ``evaluation``: metric, normalize, flip,
    batch_size of the periodic test-split monitoring (``query_items`` and ``gallery_items``).
    """
    if variant not in VARIANTS:
        raise InputError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if amp not in ("none", "bf16", "fp16"):
        raise InputError(f"unknown amp mode {amp!r}; choose none, bf16 or fp16")
    if variant == "san" and textures is None:
        raise InputError("the san variant needs a texture set (--textures, built by `sanreid gen-textures`)")
    out_dir = Path(out_dir)
    rank, world, device = setup_distributed(device)
    main = rank == 0

    dataset = TrainImages(root, train_items, textures if variant == "san" else None, seed=seed,
                          height=data["height"], width=data["width"], flip=data["flip"],
                          resize_crop=data["resize_crop"], resize_crop_prob=data["resize_crop_prob"],
                          erasing=data["erasing"])
    sampler = IdentitySampler(dataset.pids, data["ids_per_batch"], data["images_per_id"], seed=seed, rank=rank,
                              world_size=world)
    loader = make_loader(dataset, sampler, workers=data["workers"], device=device)
    preprocess = {"height": data["height"], "width": data["width"], "mean": list(IMAGENET_MEAN),
                  "std": list(IMAGENET_STD)}

    num_classes = int(dataset.pids.max()) + 1
    net = initial_model(seed, num_classes=num_classes, texture_size=dataset.texture_size, **model).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model_args = _plain(net.model_args)
    optimization = Optimization(net, **optim, amp=amp, device=device, distributed=world > 1)
    total_epochs = optim["warmup_epochs"] + epochs
    run = _plain({"variant": variant, "seed": seed, "data": {k: v for k, v in data.items() if k != "workers"},
                  "optim": optim, "loss": loss, "amp": amp,
                  "textures": dataset.textures.attrs.get("image_list_digest") if variant == "san" else None})

    last = out_dir / ckpt.LAST
    start_epoch = 0
    if resume and last.is_file():
        record = ckpt.load_checkpoint(last)
        ckpt.check_resumable(record, last, model_args=model_args, run=run)
        start_epoch = ckpt.restore(record, model=net, optim=optimization, sampler=sampler)
        if record.get("world_size", 1) != world and main:
            log.warning("%s was trained by %d process(es), this run has %d: it continues, but not bit for bit",
                        last, record.get("world_size", 1), world)
        log.info("resuming %s after epoch %d of %d", last, start_epoch, total_epochs)
    elif resume:
        log.info("--resume: no checkpoint at %s yet, starting from the beginning", last)
    elif last.is_file() and main:
        log.warning("starting afresh: %s will be overwritten (use --resume to continue it)", last)

    objective = SANObjective(torch.compile(net) if compile else net, **loss).to(device)
    module = objective
    if world > 1:
        module = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
    prepare = lambda batch: batch_to_device(batch, device, channels_last=channels_last)  # noqa: E731

    evaluate = None
    if main and query_items and gallery_items and eval_every >= 0:
        evaluate = make_evaluator(root, list(query_items), list(gallery_items), preprocess, device=device,
                                  **(evaluation or {}))
    logger = Logger(out_dir / "dvclive", resume=resume and start_epoch > 0, step=start_epoch, enabled=main)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)

    def due(epoch, every):
        return epoch + 1 == total_epochs or (every > 0 and (epoch + 1) % every == 0)

    def on_epoch_end(epoch, stats, last_batch):
        if main:
            logger.log(stats)
            if evaluate is not None and due(epoch, eval_every):
                scores = evaluate(net)
                log.info("epoch %d: test split (monitoring only) rank-1 %.4f, mAP %.4f", epoch + 1,
                         scores["test/rank1"], scores["test/mAP"])
                logger.log(scores)
            inputs, predicted = last_batch
            if predicted is not None and due(epoch, picture_every):
                picture = texture_rows(inputs["images"], predicted, inputs["target"], inputs["mask"],
                                       mean=IMAGENET_MEAN, std=IMAGENET_STD)
                write_rgb(out_dir / "pictures" / f"textures-epoch{epoch + 1:04d}.png", picture)
                logger.image("textures.png", picture)
            if due(epoch, checkpoint_every):
                ckpt.save_checkpoint(last, model=net, model_args=model_args, preprocess=preprocess,
                                     optim=optimization, sampler=sampler, epoch=epoch + 1, run=run, world_size=world)
            logger.next_step()
        barrier()

    try:
        fit(module, loader, sampler, optimization, prepare, start_epoch=start_epoch, total_epochs=total_epochs,
            device=device, amp=amp, world_size=world, main=main, progress=progress and main,
            on_epoch_end=on_epoch_end)
    finally:
        logger.end()
    if start_epoch >= total_epochs and main:
        log.info("%s already holds all %d epochs: nothing to do", last, total_epochs)
    return last
