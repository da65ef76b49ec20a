"""``sanreid train`` and ``sanreid export``."""

from pathlib import Path

import click

from .common import user_errors


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
