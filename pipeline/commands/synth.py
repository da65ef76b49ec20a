"""``sanreid synth`` (``--pairs``: the texture generator's pairs) and ``sanreid synth-preview``: render the
synthetic dataset and look at it."""

import logging
from pathlib import Path

import click

from densepose_textures.errors import InputError

from ..params import with_options
from ..paths import PAIRS, raw_root
from .common import params_from_context, user_errors

log = logging.getLogger(__name__)


def parse_size(text):
    """'HxW' -> (H, W)."""
    if text is None:
        return None
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--image-size {text!r}: expected HxW, for example 256x128") from None
    return (h, w)


@click.command("synth")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Dataset folder (default: data/raw/synth; with --pairs data/raw/synth-pairs).")
@click.option("--pairs", is_flag=True,
              help="Render image/true-atlas pairs for the texture generator (`pairs` section): one identity "
                   "per image, identities disjoint from every reID set's.")
@click.option("--ids", type=int, default=None, help="Identities, training then test (with --pairs: pairs).")
@click.option("--test-ids", type=int, default=None, help="How many of --ids are test identities (0: half).")
@click.option("--images-per-id", type=int, default=None, help="Images per identity.")
@click.option("--cameras", type=int, default=None, help="Cameras (2 to 9).")
@click.option("--seed", type=int, default=None, help="Random seed: same seed, same bytes.")
@click.option("--image-size", default=None, help="Image size HxW, e.g. 128x64 or 256x128.")
@click.option("--texture-size", type=int, default=None, help="P of the ground-truth atlases.")
@click.option("--jobs", type=int, default=None, help="Worker processes.")
@click.option("--force", is_flag=True, help="Replace an existing dataset rendered with other settings.")
@user_errors
def synth(out, pairs, ids, test_ids, images_per_id, cameras, seed, image_size, texture_size, jobs, force):
    """Render the synthetic reID dataset: Market-1501 layout, exact IUV, true textures.

    Settings come from the `synth` section of the parameters (with --pairs the `pairs` section); options
    override them.
    """
    from densepose_textures.synth import write_dataset, write_pairs
    from densepose_textures.synth.dataset import test_count

    params = params_from_context()
    if pairs:
        reid_only = (("--test-ids", test_ids), ("--images-per-id", images_per_id), ("--cameras", cameras))
        given = [name for name, value in reid_only if value is not None]
        if given:
            raise InputError(f"{' and '.join(given)}: not for --pairs (one image per identity, a camera per image)")
        p = with_options(params.pairs, ids=ids, seed=seed, image_size=parse_size(image_size),
                         texture_size=texture_size, jobs=jobs)
        out = Path(out) if out else raw_root(PAIRS)
        root = write_pairs(out, count=p.ids, seed=p.seed, image_size=p.image_size, texture_size=p.texture_size,
                           jobs=p.jobs, overwrite=force)
        click.echo(f"{root}: {p.ids} image/atlas pairs (one identity each), {p.image_size[0]}x{p.image_size[1]}, "
                   f"P = {p.texture_size}")
        return
    p = with_options(params.synth, ids=ids, test_ids=test_ids, images_per_id=images_per_id, cameras=cameras,
                     seed=seed, image_size=parse_size(image_size), texture_size=texture_size, jobs=jobs)
    out = Path(out) if out else raw_root("synth")
    root = write_dataset(out, ids=p.ids, images_per_id=p.images_per_id, cameras=p.cameras, seed=p.seed,
                         image_size=p.image_size, texture_size=p.texture_size, jobs=p.jobs, overwrite=force,
                         test_ids=p.test_ids)
    click.echo(f"{root}: {p.ids} identities ({test_count(p.ids, p.test_ids)} for testing) x {p.images_per_id} "
               f"images, {p.cameras} cameras, {p.image_size[0]}x{p.image_size[1]}")


@click.command("synth-preview")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Synthetic dataset folder (default: data/raw/synth).")
@click.option("--out", type=click.Path(dir_okay=False), default="synth_preview.png", show_default=True,
              help="PNG to write.")
@click.option("--ids", type=int, default=6, show_default=True, help="Identities (rows).")
@click.option("--images", type=int, default=4, show_default=True, help="Images per identity.")
@click.option("--pids", default=None, help="Identities to draw, e.g. 3,7,12 (default: the first test ids).")
@click.option("--scale", type=int, default=1, show_default=True, help="Integer zoom of the picture.")
@click.option("--colours", type=int, default=0, show_default=True,
              help="Store a palette of this many colours (2-256; a smaller file); 0: full colour.")
@user_errors
def synth_preview(root, out, ids, images, pids, scale, colours):
    """Draw a grid: per identity, its images, their IUV coloured by part, and its atlas."""
    import cv2

    from densepose_textures.synth.preview import preview_grid, write_png

    if ids < 1 or images < 1 or scale < 1:
        raise InputError("--ids, --images and --scale must be 1 or more")
    try:
        chosen = [int(p) for p in pids.split(",")] if pids else None
    except ValueError:
        raise InputError(f"--pids {pids!r}: expected identities separated by commas, e.g. 3,7,12") from None
    grid = preview_grid(Path(root) if root else raw_root("synth"), ids=ids, images=images, pids=chosen)
    if scale > 1:
        grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    write_png(out, grid, colours)
    click.echo(f"{out}: {grid.shape[1]}x{grid.shape[0]}")
