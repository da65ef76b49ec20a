"""One training run in named steps: data, model, optimisation, resume, objective, logging; then the
loop (:func:`train.engine.fit`) with small end-of-epoch callbacks (log, monitor, pictures, checkpoint).

``sanreid train`` (the command the DVC pipeline runs) reads the parameters into a
:class:`train.settings.TrainParams` and calls :func:`train_model`; nothing here knows about
parameter files. Under ``torchrun`` every process calls it the same way.
"""

import functools
import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from densepose_textures.errors import InputError
from densepose_textures.imageio import write_rgb
from densepose_textures.storage import WorkDir, image_list_digest, partial_dir

from . import checkpoint as ckpt
from .balance import GradientShares
from .data import IMAGENET_MEAN, IMAGENET_STD, TrainImages, batch_to_device, readable_items
from .device_data import build_loader
from .engine import Logger, barrier, fit, setup_distributed
from .model import SAN
from .objective import SANObjective
from .optim import Optimization
from .sampler import IdentitySampler
from .settings import EvalParams
from .visual import LABELS, texture_rows

log = logging.getLogger(__name__)

VARIANTS = ("baseline", "san")
HOW_LOADED = ("workers", "loader", "device_budget_gb")  # data settings a resume may change
PICTURE_ROWS = 4  # samples in a training picture
AMP_MODES = ("none", "bf16", "fp16")


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


# -- build steps --------------------------------------------------------------------------------

def check_settings(settings, variant, textures):
    """InputError for a run that cannot start: unknown variant or AMP mode, san without a texture set."""
    if variant not in VARIANTS:
        raise InputError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if settings.amp not in AMP_MODES:
        raise InputError(f"unknown amp mode {settings.amp!r}; choose none, bf16 or fp16")
    if variant == "san" and textures is None:
        raise InputError("the san variant needs a texture set (--textures, built by `sanreid gen-textures`)")


@dataclass
class TrainData:
    """The training split as batches, and the preprocessing the trained model records."""

    images: TrainImages
    sampler: IdentitySampler
    loader: object  # a DataLoader, or a train.device_data.DeviceLoader
    preprocess: dict  # height, width, mean, std

    @property
    def num_classes(self):
        return int(self.images.pids.max()) + 1


def build_data(settings, root, items, textures, device, *, rank=0, world=1, progress=True):
    """Augmented images (with texture targets when ``textures`` is a set), the P x K sampler, the loader
    (``data.loader``: DataLoader workers, or the set held on the device, :mod:`train.device_data`).
    Images that cannot be read are left out (:func:`train.data.readable_items`)."""
    d = settings.data
    images = TrainImages(root, readable_items(root, items), textures, seed=settings.seed, height=d.height, width=d.width, flip=d.flip,
                         resize_crop=d.resize_crop, resize_crop_prob=d.resize_crop_prob, erasing=d.erasing)
    sampler = IdentitySampler(images.pids, d.ids_per_batch, d.images_per_id, seed=settings.seed, rank=rank,
                              world_size=world)
    preprocess = {"height": d.height, "width": d.width, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    loader = build_loader(images, sampler, loader=d.loader, budget_gb=d.device_budget_gb, workers=d.workers,
                          device=device, progress=progress)
    return TrainData(images, sampler, loader, preprocess)


def build_model(settings, data, device):
    """The SAN on ``device``, its initial weights a function of the seed alone; a decoder when the data has targets."""
    images = data.images
    foreign = {"target_size": images.target_size} if images.layout == "image" else {}  # decoder output: the targets' size
    net = initial_model(settings.seed, num_classes=data.num_classes, texture_size=images.texture_size, **foreign,
                        **asdict(settings.model)).to(device)
    return net.to(memory_format=torch.channels_last) if settings.channels_last else net


def build_optimization(settings, net, device, world):
    return Optimization(net, **asdict(settings.optim), amp=settings.amp, device=device, distributed=world > 1)


def build_objective(settings, net, device, world):
    """What the loop trains: SAN's objective over the (compiled) model, under DDP with several processes."""
    objective = SANObjective(torch.compile(net) if settings.compile else net, **asdict(settings.loss)).to(device)
    if world > 1:
        return DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
    return objective


def build_probe(settings, net):
    """Gradient shares at the backbone (and the decoder's gain toward its target share), or None when off."""
    b = settings.balance
    if b.every <= 0:
        if b.decoder_share > 0:
            raise InputError("train.balance.decoder_share needs measurements: set train.balance.every > 0")
        return None
    if b.decoder_share > 0 and settings.optim.profile == "faithful":
        log.warning("train.balance.decoder_share under the faithful profile: the texture losses have Adams of "
                    "their own, which take steps of the same size whatever the gradient's scale, so the gain "
                    "barely matters; there optim.texture_lr sets how far the decoder moves the encoder")
    return GradientShares(net, every=b.every, decoder_share=b.decoder_share, rate=b.rate)


def run_record(settings, variant, data):
    """The settings a checkpoint records and a resume must match (how the data is loaded may change)."""
    data_settings = {k: v for k, v in asdict(settings.data).items() if k not in HOW_LOADED}
    textures = data.images.textures
    return _plain({"variant": variant, "seed": settings.seed, "data": data_settings, "optim": asdict(settings.optim),
                   "loss": asdict(settings.loss), "balance": asdict(settings.balance), "amp": settings.amp,
                   "textures": textures.attrs.get("image_list_digest") if textures is not None else None})


def work_fingerprint(model_args, run, items):
    """What a run's unfinished work (``<out>.partial/``) was started with: continued only by the same run."""
    keys, pids, camids = zip(*items)
    return {"model": model_args, "run": run, "images": image_list_digest(keys, pids, camids)}


def resume_source(out_dir, resume, main=True):
    """The checkpoint a run continues: its unfinished work's ``<out>.partial/last.pt``, else with ``resume``
    the finished ``<out>/last.pt``; None to start from the beginning."""
    unfinished, finished = partial_dir(out_dir) / ckpt.LAST, Path(out_dir) / ckpt.LAST
    if unfinished.is_file():
        return unfinished
    if resume and finished.is_file():
        return finished
    if main and resume:
        log.info("--resume: no checkpoint at %s yet, starting from the beginning", finished)
    elif main and finished.is_file():
        log.warning("starting afresh: %s will be replaced when this run completes (use --resume to continue it)",
                    finished)
    return None


def resume_run(source, *, model_args, run, model, optim, sampler, world, total_epochs, main=True):
    """The number of epochs already done: those of checkpoint ``source`` (refused when its settings differ),
    0 when ``source`` is None."""
    if source is None:
        return 0
    record = ckpt.load_checkpoint(source)
    ckpt.check_resumable(record, source, model_args=model_args, run=run)
    start = ckpt.restore(record, model=model, optim=optim, sampler=sampler)
    if record.get("world_size", 1) != world and main:
        log.warning("%s was trained by %d process(es), this run has %d: it continues, but not bit for bit",
                    source, record.get("world_size", 1), world)
    log.info("resuming %s after epoch %d of %d", source, start, total_epochs)
    return start


def copy_finished(out_dir, work):
    """Start ``work`` with a copy of the finished run in ``out_dir``: its checkpoint, log and pictures."""
    for name in (ckpt.LAST, "dvclive", "pictures"):
        source = Path(out_dir) / name
        if source.is_dir():
            shutil.copytree(source, work / name, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, work / name)


def open_work(out_dir, fingerprint, *, resume, model_args, run, model, optim, sampler, world, total_epochs,
              main=True):
    """``(work, source, start_epoch)``: the run's :class:`~densepose_textures.storage.WorkDir` ``<out>.partial/``
    (continued when it holds the unfinished work of the same ``fingerprint``, None on other ranks), the checkpoint
    it continues (:func:`resume_source`, None when it starts afresh) and the epochs already done, restored into
    ``model``, ``optim`` and ``sampler``. A run that cannot resume leaves no fresh work directory behind."""
    out_dir = Path(out_dir)
    # the run works in <out>.partial/ (DVC deletes a stage's outputs, never this) and continues what it holds
    work = WorkDir(out_dir, fingerprint) if main else None
    barrier()
    source = resume_source(out_dir, resume, main)
    try:
        start_epoch = resume_run(source, model_args=model_args, run=run, model=model, optim=optim, sampler=sampler,
                                 world=world, total_epochs=total_epochs, main=main)
    except InputError:
        if main and not work.resumed:
            work.remove()
        raise
    if main and source == out_dir / ckpt.LAST:
        copy_finished(out_dir, partial_dir(out_dir))
    return work, source, start_epoch


def finish_work(work, out_dir, source, start_epoch, total_epochs, main=True):
    """Move the finished work into ``out_dir`` (main process), wait for every process; returns ``<out>/last.pt``."""
    if main:
        if start_epoch >= total_epochs:
            log.info("%s already holds all %d epochs: nothing to do", source, total_epochs)
        work.move_into(out_dir)
    barrier()
    return Path(out_dir) / ckpt.LAST


def make_evaluator(root, query, gallery, preprocess, *, device, metric=EvalParams.metric,
                   normalize=EvalParams.normalize, flip=EvalParams.flip, batch_size=EvalParams.batch_size):
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


# -- end-of-epoch callbacks: (epoch, stats, (inputs, visuals) of the last batch), on the main process ------

def due(epoch, every, total_epochs):
    """Whether a periodic task runs after ``epoch`` (0-based): every ``every`` epochs, and after the last."""
    return epoch + 1 == total_epochs or (every > 0 and (epoch + 1) % every == 0)


class LogStats:
    """The epoch's mean losses, learning rates and images/s into dvclive."""

    def __init__(self, logger):
        self.logger = logger

    def __call__(self, epoch, stats, last):
        self.logger.log(stats)


class Monitor:
    """Test-split Rank-1 and mAP every ``every`` epochs and after the last: logged, never used to select."""

    def __init__(self, evaluate, model, logger, every, total_epochs):
        self.evaluate, self.model, self.logger = evaluate, model, logger
        self.every, self.total_epochs = every, total_epochs

    def __call__(self, epoch, stats, last):
        if due(epoch, self.every, self.total_epochs):
            scores = self.evaluate(self.model)
            log.info("epoch %d: test split (monitoring only) rank-1 %.4f, mAP %.4f", epoch + 1,
                     scores["test/rank1"], scores["test/mAP"])
            self.logger.log(scores)


class TexturePictures:
    """Input | predicted atlas | target atlas of the epoch's last batch (san), as a PNG and in dvclive; the input
    as augmented but not erased, taken again from ``images`` (a :class:`train.data.TrainImages`, or any dataset
    with its ``image(index, epoch, slot, erase=False)``); ``labels``: the three columns' titles."""

    def __init__(self, directory, logger, every, total_epochs, images, labels=LABELS):
        self.directory, self.logger, self.images = Path(directory), logger, images
        self.every, self.total_epochs, self.labels = every, total_epochs, labels

    def __call__(self, epoch, stats, last):
        inputs, predicted, batch = last
        if predicted is None or not due(epoch, self.every, self.total_epochs):
            return
        shown = [self.images.image(*key.tolist(), erase=False)[0] for key in batch["key"][:PICTURE_ROWS]]
        picture = texture_rows(shown, predicted, inputs["target"], inputs["mask"], labels=self.labels)
        write_rgb(self.directory / f"textures-epoch{epoch + 1:04d}.png", picture)
        self.logger.image("textures.png", picture)


class SaveCheckpoint:
    """``last.pt`` every ``every`` epochs and after the last; ``state``: what :func:`train.checkpoint.save_checkpoint`
    records besides the epoch."""

    def __init__(self, path, every, total_epochs, **state):
        self.path, self.every, self.total_epochs, self.state = path, every, total_epochs, state

    def __call__(self, epoch, stats, last):
        if due(epoch, self.every, self.total_epochs):
            ckpt.save_checkpoint(self.path, epoch=epoch + 1, **self.state)


# -- the run ------------------------------------------------------------------------------------

def train_model(settings, *, variant, dataset, out_dir, textures=None, evaluation=None, resume=False, progress=True):
    """Train ``variant`` (``baseline``: encoder alone; ``san``: encoder + texture decoder) and return ``last.pt``.

    ``settings``: a :class:`train.settings.TrainParams`. ``dataset``: ``root`` and ``train``, ``query``,
    ``gallery`` lists of ``(relative_path, pid, camid)``, train pids 0..N-1 (a ``pipeline.datasets``
    dataset); query and gallery, when there are any, are monitored with ``evaluation`` (an
    :class:`~train.settings.EvalParams`: metric, normalize, flip, batch_size). ``textures``: the
    texture set of the san variant. ``out_dir`` receives ``last.pt``, ``dvclive/`` and ``pictures/``, written
    in ``<out_dir>.partial/`` and moved there when the run completes; a run finds there what an interrupted
    run of the same settings left and continues it (``resume``: continue ``<out_dir>/last.pt`` otherwise).
    """
    check_settings(settings, variant, textures)
    evaluation = evaluation or EvalParams()
    out_dir = Path(out_dir)
    rank, world, device = setup_distributed(settings.device)
    main = rank == 0
    total_epochs = settings.optim.warmup_epochs + settings.epochs

    data = build_data(settings, dataset.root, dataset.train, textures if variant == "san" else None, device,
                      rank=rank, world=world, progress=progress and main)
    net = build_model(settings, data, device)
    model_args = _plain(net.model_args)
    optimization = build_optimization(settings, net, device, world)
    run = run_record(settings, variant, data)
    work, source, start_epoch = open_work(out_dir, work_fingerprint(model_args, run, data.images.items), resume=resume,
                                          model_args=model_args, run=run, model=net, optim=optimization,
                                          sampler=data.sampler, world=world, total_epochs=total_epochs, main=main)
    work_dir = partial_dir(out_dir)
    module = build_objective(settings, net, device, world)

    logger = Logger(work_dir / "dvclive", resume=start_epoch > 0, step=start_epoch, enabled=main)
    callbacks = []
    if main:
        callbacks.append(LogStats(logger))
        if dataset.query and dataset.gallery and settings.eval_every >= 0:
            evaluate = make_evaluator(dataset.root, list(dataset.query), list(dataset.gallery), data.preprocess,
                                      device=device, metric=evaluation.metric, normalize=evaluation.normalize,
                                      flip=evaluation.flip, batch_size=evaluation.batch_size)
            callbacks.append(Monitor(evaluate, net, logger, settings.eval_every, total_epochs))
        callbacks += [
            TexturePictures(work_dir / "pictures", logger, settings.picture_every, total_epochs, data.images),
            logger.next_step,  # the epoch's log is whole before its checkpoint says the epoch is done
            SaveCheckpoint(work_dir / ckpt.LAST, settings.checkpoint_every, total_epochs, model=net,
                           model_args=model_args, preprocess=data.preprocess, optim=optimization,
                           sampler=data.sampler, run=run, world_size=world),
        ]
    prepare = functools.partial(batch_to_device, device=device, channels_last=settings.channels_last)
    try:
        fit(module, data.loader, data.sampler, optimization, prepare, start_epoch=start_epoch,
            total_epochs=total_epochs, device=device, amp=settings.amp, world_size=world, main=main,
            progress=progress and main, callbacks=callbacks, probe=build_probe(settings, net))
    finally:
        logger.end()
    return finish_work(work, out_dir, source, start_epoch, total_epochs, main)
