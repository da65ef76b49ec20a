"""The training loop. It knows nothing about SAN: a module maps a prepared batch to
``(losses dict, visuals)``, an :class:`train.optim.Optimization` turns the losses into
steps, and checkpointing, evaluation, pictures and logging are small callbacks the
caller hands to :func:`fit`, run at the end of each epoch.
"""

import contextlib
import json
import logging
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from densepose_textures.device import resolve_device
from densepose_textures.storage import write_text

log = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device, amp):
    """Mixed precision context for ``amp`` in ``none``, ``bf16``, ``fp16``."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=AMP_DTYPES[amp])


# -- distributed -------------------------------------------------------------------------------

def setup_distributed(device="auto"):
    """(rank, world_size, device) from torchrun's environment; the process group is started when world > 1.

    ``device``: as :func:`densepose_textures.device.resolve_device` (each rank takes the GPU of its
    LOCAL_RANK). Backend nccl on CUDA, gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def barrier():
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def mean_over_ranks(values, device):
    """Average a dict of floats across processes (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or not values:
        return values
    names = sorted(values)
    t = torch.tensor([values[n] for n in names], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(names, t.tolist()))


# -- the loop ----------------------------------------------------------------------------------

def train_epoch(module, loader, optim, prepare, *, device, amp="none", epoch=0, world_size=1, progress=True,
                probe=None):
    """One pass over ``loader``. Returns (mean of each loss, images/s, (inputs, visuals, batch as loaded) of the
    last batch).

    ``probe``, when given, sees each batch's losses (graph attached) before the step: ``probe.step(losses)``."""
    module.train()
    sums, steps, images = {}, 0, 0
    last = None
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", unit="batch", disable=not progress, leave=False, dynamic_ncols=True)
    start = time.perf_counter()
    for batch in bar:
        inputs = prepare(batch)
        with optim.forward_context(module), autocast(device, amp):
            losses, visuals = module(**inputs)
        if probe is not None:
            probe.step(losses)
        optim.step(losses)
        for name, value in losses.items():
            value = value.detach().float()
            sums[name] = sums[name] + value if name in sums else value
        steps += 1
        images += len(inputs["pids"]) * world_size
        last = (inputs, visuals.detach() if torch.is_tensor(visuals) else visuals, batch)
        if progress and (steps % 10 == 1 or steps == len(loader)):
            rate = images / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix({"img/s": f"{rate:.1f}", **{n: f"{v.item() / steps:.3f}" for n, v in sums.items()}})
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    means = {name: (value / max(steps, 1)).item() for name, value in sums.items()}
    return means, images / max(elapsed, 1e-9), last


def fit(module, loader, sampler, optim, prepare, *, start_epoch, total_epochs, device, amp="none", world_size=1,
        main=True, progress=True, callbacks=(), probe=None):
    """Epochs ``start_epoch`` .. ``total_epochs - 1``; after each, every ``callback(epoch, stats, last)`` in
    order (``last``: the last batch's inputs, visuals and the batch as loaded), then all processes meet.

    ``probe`` (every process): ``probe.step(losses)`` before each optimiser step, and ``probe.end_epoch()``,
    a dict of figures added to the epoch's stats (e.g. :class:`train.balance.GradientShares`).

    ``main``: this process logs (rank 0); ``progress``: show a tqdm bar."""
    for epoch in range(start_epoch, total_epochs):
        sampler.set_epoch(epoch)
        optim.set_epoch(epoch)
        lrs = optim.lrs()
        means, rate, last = train_epoch(module, loader, optim, prepare, device=device, amp=amp, epoch=epoch,
                                        world_size=world_size, progress=progress, probe=probe)
        means = mean_over_ranks(means, device)
        stats = {**{f"loss/{k}": v for k, v in means.items()}, **{f"lr/{k}": v for k, v in lrs.items()},
                 "images_per_s": rate, **(probe.end_epoch() if probe is not None else {})}
        if main:
            log.info("epoch %d/%d: %s, %.1f images/s", epoch + 1, total_epochs,
                     ", ".join(f"{k} {v:.4f}" for k, v in means.items()), rate)
        for callback in callbacks:
            callback(epoch, stats, last)
        barrier()


def rewind_log(directory, step):
    """Leave the dvclive directory ``directory`` as it was after steps 0 .. ``step`` - 1.

    A run killed after its checkpoint, or while dvclive was writing, leaves rows of later steps, a
    half-written last row or a truncated ``metrics.json``. The metric files keep their complete rows
    before ``step``; ``metrics.json`` is rewritten from them (what dvclive reads to resume).
    """
    directory = Path(directory)
    summary = {}
    for tsv in sorted((directory / "plots" / "metrics").rglob("*.tsv")):
        lines = tsv.read_text(encoding="utf-8").splitlines(keepends=True)
        if not lines or not lines[0].endswith("\n"):  # not even a whole header: dvclive starts the file again
            tsv.unlink()
            continue
        header, rows = lines[0], lines[1:]
        names = header.rstrip("\r\n").split("\t")
        kept = [row for row in rows if _complete_row(row, names, step)]
        write_text(tsv, header + "".join(kept))
        if kept:
            node = summary
            *parents, leaf = tsv.relative_to(directory / "plots" / "metrics").with_suffix("").parts
            for name in parents:
                node = node.setdefault(name, {})
            node[leaf] = float(kept[-1].rstrip("\r\n").split("\t")[-1])
    write_text(directory / "metrics.json", json.dumps({**summary, "step": step - 1}, indent=4))


def _complete_row(row, names, step):
    """Whether a dvclive metric row is whole (ends its line, one value per column) and of a step before ``step``."""
    values = row.rstrip("\r\n").split("\t")
    if not row.endswith("\n") or len(values) != len(names) or "step" not in names:
        return False
    try:
        float(values[-1])
        return int(values[names.index("step")]) < step
    except ValueError:
        return False


class Logger:
    """dvclive metrics and images on the main process; a no-op elsewhere, and where dvclive is not installed
    (a bare GPU machine). One dvclive step per epoch.

    ``resume``: continue the log of ``directory`` at ``step`` (see :func:`rewind_log`)."""

    def __init__(self, directory, *, resume, step, enabled=True):
        self.live = None
        if enabled:
            try:
                from dvclive import Live
            except ImportError:
                log.info("dvclive is not installed: metrics are only logged, not written to %s", directory)
                return

            if resume:
                rewind_log(directory, step)
            self.live = Live(dir=str(directory), resume=resume, save_dvc_exp=False, dvcyaml=False)
            self.live.step = step

    def log(self, metrics):
        if self.live is not None:
            for name, value in metrics.items():
                self.live.log_metric(name, float(value))

    def image(self, name, array):
        if self.live is not None:
            self.live.log_image(name, array)

    def next_step(self, *_):
        """Close the epoch's step (also usable as the last end-of-epoch callback)."""
        if self.live is not None:
            self.live.next_step()

    def end(self):
        if self.live is not None:
            self.live.end()
