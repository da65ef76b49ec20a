"""``sanreid train``, ``sanreid train-pg`` and ``sanreid export``."""

import os
from pathlib import Path

import click

from .common import params_from_context, user_errors


# --- train ------------------------------------------------------------------------------------

@click.command("train")
@click.option("--dataset", required=True, help="Training dataset name (sanreid datasets list).")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset root (default: data/raw/<dataset>).")
@click.option("--textures", type=click.Path(path_type=Path), default=None,
              help="Texture set of a SAN variant (default: the variant's targets, data/textures/<dataset>[-fused|-truth|-sanpg]).")
@click.option("--variant", required=True,
              help="baseline: the encoder alone; san (or another name under `variants` in params.yaml): encoder + "
                   "texture decoder + TR constraints, with that variant's targets and settings.")
@click.option("--epochs", type=int, default=None, help="Main epochs, after the warm-up (default: train.epochs).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory: last.pt, dvclive logs, pictures (default: data/models/<dataset>/<variant>/).")
@click.option("--resume", is_flag=True, default=False, help="Continue from <out>/last.pt exactly.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a train setting, e.g. --set optim.profile=joint --set data.workers=0 (repeatable).")
@user_errors
def train(dataset, root, textures, variant, epochs, out, resume, assignments):
    """Train the baseline or SAN on one dataset; checkpoints, logs and pictures go to --out."""
    from pipeline import datasets, paths
    from pipeline.params import TARGETS, override, with_options
    from train.run import train_model

    params = params_from_context()
    san = params.variant(variant) if variant != "baseline" else None
    settings = override(params.train, list(san.set) if san else [])
    settings = with_options(override(settings, assignments), epochs=epochs)
    ds = datasets.load(dataset, root)
    if san and textures is None:
        textures = paths.texture_set(ds.name, *TARGETS[san.targets])
    last = train_model(settings, variant="san" if san else "baseline", dataset=ds,
                       out_dir=out or paths.model_dir(ds.name, variant), textures=textures if san else None,
                       evaluation=params.eval, resume=resume)
    if os.environ.get("RANK", "0") == "0":
        click.echo(f"wrote {last}")


# --- train-pg (SAN-PG, the texture generator) ---------------------------------------------------

@click.command("train-pg")
@click.option("--pairs", "pairs_dir", type=click.Path(path_type=Path), default=None,
              help="Image/atlas pairs of `sanreid synth --pairs` (default: data/raw/synth-pairs).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory: last.pt, dvclive logs, pictures (default: data/models/sanpg/seed<S>/).")
@click.option("--epochs", type=int, default=None, help="Main epochs, after the warm-up (default: train_pg.epochs).")
@click.option("--seed", type=int, default=None, help="Seed of the weights, order and augmentation (default: train_pg.seed).")
@click.option("--resume", is_flag=True, default=False, help="Continue from <out>/last.pt exactly.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a train_pg setting, e.g. --set data.batch_size=8 --set texture_size=16 (repeatable).")
@user_errors
def train_pg(pairs_dir, out, epochs, seed, resume, assignments):
    """Train SAN-PG, the texture generator: SAN's encoder + decoder on image/true-atlas pairs, texture loss only.

    The generator's atlas has P = train_pg.texture_size (0: textures.size). Its last.pt loads as a SAN
    (model_args, model, preprocess), whose decoder gives the atlas. With train_pg.warp_input it also reads each
    image's warp + fill (textures.splat, textures.fill) and corrects it.
    """
    from pipeline import paths
    from pipeline.params import override, with_options
    from train.pg import train_generator

    params = params_from_context()
    settings = with_options(override(params.train_pg, assignments), epochs=epochs, seed=seed)
    if settings.texture_size == 0:
        settings = with_options(settings, texture_size=params.textures.size)
    last = train_generator(settings, pairs=pairs_dir or paths.raw_root(paths.PAIRS),
                           out_dir=out or paths.generator_dir(settings.seed), resume=resume,
                           warp={"splat": params.textures.splat, "fill": params.textures.fill})
    if os.environ.get("RANK", "0") == "0":
        click.echo(f"wrote {last}")


# --- export (the inference encoder of a checkpoint) ---------------------------------------------

@click.command("export")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Training checkpoint (e.g. data/models/<dataset>/<variant>/last.pt) or an exported model.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file (default: model.pt beside the checkpoint).")
@click.option("--onnx", is_flag=True, default=False,
              help="Also write <out>.onnx (needs the export extra: onnx, onnxscript).")
@user_errors
def export(checkpoint, out, onnx):
    """Export the inference encoder of a checkpoint: weights and preprocessing, no decoder."""
    from train.export import load_encoder, save_encoder

    out = out or checkpoint.with_name("model.pt")
    if out.resolve() == checkpoint.resolve():
        raise click.UsageError(f"--out {out} would overwrite the checkpoint; choose another file")
    encoder, preprocess = load_encoder(checkpoint)
    for path in save_encoder(encoder, preprocess, out, onnx=onnx):
        click.echo(f"wrote {path}")
    click.echo(f"features: {encoder.feature_dim}-d, input {preprocess['height']}x{preprocess['width']}")
