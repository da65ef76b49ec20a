"""SAN-PG: the texture generator. SAN's encoder + decoder trained on image/true-atlas pairs
(:mod:`densepose_textures.synth.pairs`) with the texture loss alone (:class:`train.objective.GeneratorObjective`),
by the engine and the checkpointing of ``sanreid train`` (:mod:`train.run`): ``<out>.partial/`` work that an
interrupted run continues, exact resume, dvclive curves, pictures (input | predicted | true).

Checkpoint contract (``<out>/last.pt``, :mod:`train.checkpoint`'s format): ``model`` is the state dict of a
:class:`train.model.SAN` with its decoder, ``model_args`` its constructor arguments (``texture_size`` = P of the
predicted atlas, ``num_classes`` = 1: the reID head is built, never trained nor used), ``preprocess`` =
``{height, width, mean, std}`` of the input. So::

    ckpt = torch.load(path, weights_only=True)
    net = SAN(**ckpt["model_args"]); net.load_state_dict(ckpt["model"]); net.eval()
    atlas = net.decoder(net.encoder.forward_stages(x)[0])[0]  # (B, 3, 6P, 4P) in [-1, 1]

(:func:`train.generator.load_generator` and :func:`train.generator.generator_atlas` do exactly this.) ``x`` is the RGB image resized to
``height`` x ``width``, scaled to [0, 1] and normalised by ``mean``, ``std``; the atlas image is DensePose's
layout (:func:`densepose_textures.atlas.image_to_atlas` turns it into (24, P, P, 3)).
With ``train_pg.warp_input`` the SAN also has a refiner (``model_args["warp_input"]`` names the splat and fill of
the warp it reads): the atlas is then ``generator_atlas(net, x, warp)``, the image's warp + fill corrected.
"""

import functools
import logging
from dataclasses import asdict

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import default_collate

from densepose_textures.atlas import SPLATS, atlas_to_image, image_to_atlas
from densepose_textures.errors import InputError
from densepose_textures.fill import FILL_METHODS, fill_atlas
from densepose_textures.quality import true_atlas
from densepose_textures.storage import partial_dir
from densepose_textures.synth.pairs import Pairs

from . import checkpoint as ckpt
from .data import IMAGENET_MEAN, IMAGENET_STD, Augmentation, augment_image, batch_to_device, draw_augmentation, \
    make_loader, mirror_atlas
from .engine import Logger, fit, setup_distributed
from .generator import generator_atlas
from .losses import texture_l1
from .objective import GeneratorObjective
from .optim import Optimization
from .run import AMP_MODES, LogStats, SaveCheckpoint, TexturePictures, _plain, due, finish_work, initial_model, \
    open_work
from .sampler import ShuffleSampler

log = logging.getLogger(__name__)

PICTURE_LABELS = ("input", "predicted", "true")
NUM_CLASSES = 1  # the SAN class builds a reID head; the generator never trains nor runs it


class PairImages(torch.utils.data.Dataset):
    """The pairs as training samples: the image at the training size (resize-crop and flip drawn from
    ``(seed, epoch, slot)``, as :class:`train.data.TrainImages`), ``target`` the true atlas resampled to P
    (:func:`densepose_textures.quality.true_atlas`; mirrored for a flipped image) as a (3, 6P, 4P) atlas image,
    ``provenance`` 0 everywhere (every texel is true), ``pid`` the pair's identity, ``key`` (index, epoch, slot).
    With ``warp`` (``{"splat", "fill"}``), also ``warp``: the warp of the whole image through its exact IUV, filled
    with the pairs' mirror map (:func:`densepose_textures.fill.fill_atlases`), and ``warp_steps`` its fill steps,
    as atlas images (mirrored with the target for a flipped image; the resize-crop does not change them, as an
    image's warp at inference does not depend on how the generator's input is resized).
    Indexed by ``(index, epoch, slot)`` or a plain index (no augmentation)."""

    def __init__(self, pairs, *, texture_size, height, width, flip, resize_crop, resize_crop_prob, seed=0,
                 warp=None):
        self.pairs, self.texture_size = pairs, int(texture_size)
        self.size = (height, width)
        self.flip, self.resize_crop, self.resize_crop_prob, self.seed = flip, resize_crop, resize_crop_prob, seed
        self.pids = np.asarray(pairs.pids, dtype=np.int64)
        self.mirror_index = pairs.mirror.texel_index(self.texture_size).reshape(-1)
        self.warp = warp

    def __len__(self):
        return len(self.pairs)

    def augmentation(self, epoch, slot):
        return draw_augmentation(np.random.default_rng([self.seed, epoch, slot]), self.size, flip=self.flip,
                                 resize_crop=self.resize_crop, resize_crop_prob=self.resize_crop_prob, erasing=0.0)

    def image(self, index, epoch=None, slot=None, *, erase=False):
        """(H, W, 3) uint8 image of sample ``(index, epoch, slot)`` and whether it is flipped (never erased)."""
        aug = Augmentation(None, False, None) if epoch is None or epoch < 0 else self.augmentation(epoch, slot)
        return augment_image(self.pairs.image(index), aug, self.size, self.resize_crop), aug.flip

    def target(self, index, flipped):
        atlas = true_atlas(self.pairs.texture(index), self.texture_size)  # (24, P, P, 3)
        if flipped:
            atlas = mirror_atlas(atlas, self.mirror_index)
        image = atlas_to_image(atlas)  # (6P, 4P, 3)
        return {"target": _channels_first(image), "provenance": torch.zeros((1,) + image.shape[:2], dtype=torch.uint8)}

    def warp_input(self, index, flipped):
        """The pair's warp + fill and fill steps as (3, 6P, 4P) and (1, 6P, 4P) uint8 atlas images."""
        texture, observed = image_to_atlas(self.pairs.image(index), self.pairs.iuv(index), self.texture_size,
                                           self.warp["splat"])
        filled, steps = fill_atlas(texture, observed, self.mirror_index.reshape(-1, self.texture_size,
                                                                                  self.texture_size), self.warp["fill"])
        if flipped:
            filled, steps = mirror_atlas(filled, self.mirror_index), mirror_atlas(steps, self.mirror_index)
        return {"warp": _channels_first(atlas_to_image(filled)),
                "warp_steps": _channels_first(atlas_to_image(steps[..., None]))}

    def __getitem__(self, key):
        index, epoch, slot = key if isinstance(key, tuple) else (key, None, None)
        image, flipped = self.image(index, epoch, slot)
        return {"image": _channels_first(image), "pid": int(self.pids[index]),
                "key": torch.tensor([index, -1 if epoch is None else epoch, -1 if slot is None else slot]),
                **self.target(index, flipped), **(self.warp_input(index, flipped) if self.warp else {})}


def _channels_first(image):
    """(H, W, C) uint8 -> a contiguous (C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def split_pairs(count, holdout):
    """(training indices, held-out indices): the last ``round(holdout * count)`` pairs are held out."""
    if not 0 <= holdout < 1:
        raise InputError(f"train_pg.data.holdout={holdout}: use a share in [0, 1)")
    held = int(round(holdout * count))
    return np.arange(count - held), np.arange(count - held, count)


def build_generator(settings, texture_size, device, warp=None):
    """The SAN generator on ``device``, its initial weights a function of the seed; the reID head frozen.
    ``warp`` (``{"splat", "fill"}``): a warp-input generator, with its refiner."""
    net = initial_model(settings.seed, num_classes=NUM_CLASSES, texture_size=texture_size, warp_input=warp,
                        **asdict(settings.model))
    for p in net.encoder.head.parameters():  # never run: no gradient, no optimiser state, no DDP bucket
        p.requires_grad_(False)
    net = net.to(device)
    return net.to(memory_format=torch.channels_last) if settings.channels_last else net


def heldout_loss(net, images, indices, *, device, batch_size=32, channels_last=False):
    """Mean L1 (the texture loss, atlas in [-1, 1]) of the generator's atlas against the true atlas over pairs
    ``indices`` of ``images`` (a :class:`PairImages`; plain resize, no flip), the model in eval mode."""
    was_training = net.training
    net.eval()
    total = 0.0
    try:
        with torch.no_grad():
            for start in range(0, len(indices), batch_size):
                chunk = [int(i) for i in indices[start:start + batch_size]]
                inputs = batch_to_device(default_collate([images[i] for i in chunk]), device,
                                         channels_last=channels_last)
                atlas = generator_atlas(net, inputs["images"], inputs.get("warp"))
                loss = texture_l1(atlas, inputs["target"], inputs["mask"])
                total += float(loss) * len(chunk)
    finally:
        net.train(was_training)
    return total / max(len(indices), 1)


class HeldOut:
    """The texture loss on the held-out pairs every ``every`` epochs and after the last, logged as ``heldout/texture``."""

    def __init__(self, evaluate, logger, every, total_epochs):
        self.evaluate, self.logger, self.every, self.total_epochs = evaluate, logger, every, total_epochs

    def __call__(self, epoch, stats, last):
        if due(epoch, self.every, self.total_epochs):
            loss = self.evaluate()
            log.info("epoch %d: held-out texture loss %.4f (mean absolute error %.1f grey levels)", epoch + 1, loss,
                     127.5 * loss)
            self.logger.log({"heldout/texture": loss})


def check_warp(settings, warp):
    """The ``{"splat", "fill"}`` a ``warp_input`` generator reads (None without warp input); InputError when absent
    or unknown."""
    if not settings.warp_input:
        return None
    if not warp or warp.get("splat") not in SPLATS or warp.get("fill") not in FILL_METHODS:
        raise InputError(f"train_pg.warp_input needs the warp's splat ({', '.join(SPLATS)}) and fill "
                         f"({', '.join(FILL_METHODS)}), got {warp!r}")
    return {"splat": warp["splat"], "fill": warp["fill"]}


def train_generator(settings, *, pairs, out_dir, resume=False, progress=True, warp=None):
    """Train SAN-PG on the pairs in ``pairs`` (a folder of ``sanreid synth --pairs``) and return ``<out_dir>/last.pt``.

    ``settings``: a :class:`train.settings.PGParams` whose ``texture_size`` is P (1 or more); with
    ``warp_input``, ``warp`` names the splat and fill of the warp the generator reads (the texture sets'). The last
    ``data.holdout`` share of the pairs is never trained on: its texture loss is logged. ``out_dir`` receives
    ``last.pt`` (the contract of the module docstring), ``dvclive/`` and ``pictures/``, written in
    ``<out_dir>.partial/`` and moved there when the run completes; a run finds there what an interrupted run of
    the same settings left and continues it (``resume``: continue ``<out_dir>/last.pt`` otherwise).
    """
    if settings.amp not in AMP_MODES:
        raise InputError(f"unknown amp mode {settings.amp!r}; choose none, bf16 or fp16")
    if not isinstance(settings.texture_size, int) or settings.texture_size < 1:
        raise InputError(f"train_pg.texture_size={settings.texture_size!r}: P must be 1 or more")
    warp = check_warp(settings, warp)
    pairs = Pairs(pairs)
    rank, world, device = setup_distributed(settings.device)
    main = rank == 0
    total_epochs = settings.optim.warmup_epochs + settings.epochs
    d, p = settings.data, settings.texture_size
    if p > pairs.texture_size and main:
        log.warning("the pairs' true atlases have P = %d, fewer texels than the generator's P = %d: targets are "
                    "enlarged (render pairs with --texture-size %d or more)", pairs.texture_size, p, p)

    train_idx, held_idx = split_pairs(len(pairs), d.holdout)
    images = PairImages(pairs, texture_size=p, height=d.height, width=d.width, flip=d.flip,
                        resize_crop=d.resize_crop, resize_crop_prob=d.resize_crop_prob, seed=settings.seed, warp=warp)
    sampler = ShuffleSampler(train_idx, d.batch_size, seed=settings.seed, rank=rank, world_size=world)
    loader = make_loader(images, sampler, workers=d.workers, device=device)
    preprocess = {"height": d.height, "width": d.width, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}

    net = build_generator(settings, p, device, warp)
    model_args = _plain(net.model_args)
    optimization = Optimization(net, profile="joint", **asdict(settings.optim), texture_lr=0.0,
                                texture_betas=(0.5, 0.999), amp=settings.amp, device=device, distributed=world > 1)
    run = _plain({"kind": "sanpg", "seed": settings.seed, "amp": settings.amp, "pairs": pairs.digest,
                  "data": {k: v for k, v in asdict(d).items() if k != "workers"}, "optim": asdict(settings.optim)})
    work, source, start_epoch = open_work(out_dir, {"model": model_args, "run": run}, resume=resume,
                                          model_args=model_args, run=run, model=net, optim=optimization,
                                          sampler=sampler, world=world, total_epochs=total_epochs, main=main)
    work_dir = partial_dir(out_dir)
    module = GeneratorObjective(net).to(device)
    if world > 1:
        module = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    logger = Logger(work_dir / "dvclive", resume=start_epoch > 0, step=start_epoch, enabled=main)
    callbacks = []
    if main:
        callbacks.append(LogStats(logger))
        if len(held_idx) and settings.eval_every >= 0:
            evaluate = functools.partial(heldout_loss, net, images, held_idx, device=device,
                                         channels_last=settings.channels_last)
            if start_epoch == 0:
                loss = evaluate()
                log.info("before training: held-out texture loss %.4f (mean absolute error %.1f grey levels) "
                         "on %d pairs", loss, 127.5 * loss, len(held_idx))
            callbacks.append(HeldOut(evaluate, logger, settings.eval_every, total_epochs))
        callbacks += [
            TexturePictures(work_dir / "pictures", logger, settings.picture_every, total_epochs, images,
                            labels=PICTURE_LABELS),
            logger.next_step,  # the epoch's log is whole before its checkpoint says the epoch is done
            SaveCheckpoint(work_dir / ckpt.LAST, settings.checkpoint_every, total_epochs, model=net,
                           model_args=model_args, preprocess=preprocess, optim=optimization, sampler=sampler,
                           run=run, world_size=world),
        ]
    prepare = functools.partial(batch_to_device, device=device, channels_last=settings.channels_last)
    try:
        fit(module, loader, sampler, optimization, prepare, start_epoch=start_epoch, total_epochs=total_epochs,
            device=device, amp=settings.amp, world_size=world, main=main, progress=progress and main,
            callbacks=callbacks)
    finally:
        logger.end()
    return finish_work(work, out_dir, source, start_epoch, total_epochs, main)
