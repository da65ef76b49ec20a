"""``sanreid iuv`` and ``sanreid iuv-merge``: every image of a dataset into one HDF5 IUV store."""

import logging
from pathlib import Path

import click

from densepose_textures.errors import InputError

from .. import paths
from ..params import with_options
from .common import params_from_context, user_errors

log = logging.getLogger(__name__)

SPLITS = {"train": ("train",), "all": ("train", "query", "gallery")}
SHOWN = 20  # image names listed per problem in the summary


def image_keys(dataset, split_choice):
    """Relative paths of the images of ``split_choice`` (train | all), in split order, each once."""
    if split_choice not in SPLITS:
        raise InputError(f"splits must be one of {', '.join(SPLITS)}, got {split_choice!r}")
    keys = [path for split in SPLITS[split_choice] for path, _, _ in dataset.split(split)]
    return list(dict.fromkeys(keys))


def backend_options(params, root, device):
    """Constructor options of the backend ``params.backend`` from the IUV parameters."""
    if params.backend == "synth":
        return {"root": root}
    if params.backend == "dump":
        if not params.dump:
            raise InputError("the dump backend needs --dump FILE (written by DensePose's apply_net.py dump)")
        return {"dump": params.dump}
    if params.backend == "densepose":
        return {"config": params.config, "weights": params.weights, "mode": params.mode, "device": device,
                "batch_size": params.batch_size, "input_size": params.input_size}
    return {}


@click.command("iuv")
@click.option("--dataset", required=True, help="Dataset name (see `sanreid datasets`).")
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Dataset root [default: data/raw/<dataset>].")
@click.option("--backend", type=click.Choice(["synth", "densepose", "dump"]), default=None, help="IUV source [params: iuv.backend].")
@click.option("--mode", type=click.Choice(["box", "detect"]), default=None, help="DensePose mode: crop as the person box, or detect [iuv.mode].")
@click.option("--config", type=click.Path(dir_okay=False), default=None, help="DensePose config file (densepose backend).")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, help="DensePose weights file (densepose backend).")
@click.option("--dump", type=click.Path(dir_okay=False), default=None, help="apply_net.py dump file (dump backend).")
@click.option("--splits", type=click.Choice(["train", "all"]), default=None, help="Images to cover [iuv.splits].")
@click.option("--shard", default=None, metavar="I/N", help="Process only shard I of N (default under torchrun: RANK/WORLD_SIZE).")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable image or image without a person.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Store path [default: data/iuv/<dataset>.h5].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Images per backend call [iuv.batch_size].")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="Images per committed chunk [iuv.chunk_size].")
@click.option("--device", default=None, help="auto | cpu | cuda[:i] (densepose backend) [iuv.device].")
@user_errors
def iuv(dataset, root, backend, mode, config, weights, dump, splits, shard, strict, out, batch_size, chunk_size, device):
    """Run DensePose (or another backend) on every image of a dataset into one IUV store.

    Resumable: chunks are committed as they finish, and a rerun after an interruption continues
    where it stopped. With --shard I/N (or under torchrun) each process writes
    <out stem>.shard-I-of-N.h5; join them with `sanreid iuv-merge`.
    """
    from densepose_textures.iuv.backends import make_backend
    from densepose_textures.iuv.run import parse_shard, run_iuv, shard_from_env
    from pipeline import datasets

    params = with_options(params_from_context().iuv, backend=backend, mode=mode, config=config, weights=weights,
                          dump=dump, splits=splits, batch_size=batch_size, chunk_size=chunk_size, device=device)
    root = paths.raw_root(dataset) if root is None else root
    out = paths.iuv_store(dataset) if out is None else out
    ds = datasets.load(dataset, root)
    keys = image_keys(ds, params.splits)
    shard = parse_shard(shard) if shard is not None else shard_from_env()
    backend_obj = make_backend(params.backend, **backend_options(params, ds.root, params.device))
    summary = run_iuv(backend_obj, ds.root, keys, out, size=params.size, chunk_size=params.chunk_size,
                      batch_size=params.batch_size, strict=strict, shard=shard, workers=params.workers,
                      extra_attrs={"dataset": dataset, "splits": params.splits})
    click.echo(f"wrote {summary.path}: {summary.images} images, {summary.found} with a person"
               f" ({summary.resumed} resumed from an interrupted run; {summary.images_per_second:.1f} images/s)")
    for what, names in (("unreadable", summary.unreadable), ("no person found", summary.no_person)):
        if names:
            more = f" ... and {len(names) - SHOWN} more (found = False in the store)" if len(names) > SHOWN else ""
            click.echo(f"{what} ({len(names)}): " + ", ".join(names[:SHOWN]) + more)
    if shard is not None:
        click.echo(f"shard {shard[0]} of {shard[1]}: when all are done, join them with "
                   f"`sanreid iuv-merge --dataset {dataset}" + (f" --out {out}`" if Path(out) != paths.iuv_store(dataset) else "`"))


@click.command("iuv-merge")
@click.argument("shards", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--dataset", default=None, help="Dataset name: the default --out, whose shard files are found beside it.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Merged store [default: data/iuv/<dataset>.h5].")
@user_errors
def iuv_merge(shards, dataset, out):
    """Join the shard files of `sanreid iuv --shard I/N` into the store one process would have written.

    SHARDS default to every <out stem>.shard-I-of-N.h5 beside --out.
    """
    from densepose_textures.iuv.merge import find_shards, merge_shards

    if out is None:
        if dataset is None:
            raise InputError("give --dataset or --out (the merged store's path)")
        out = paths.iuv_store(dataset)
    shards = list(shards) or find_shards(out)
    merged = merge_shards(shards, out)
    click.echo(f"merged {len(shards)} shard files into {merged}")
