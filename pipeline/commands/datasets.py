"""``sanreid datasets``: list the registered readers, describe a dataset, extract CUHK03."""

import click

from .. import paths
from .common import user_errors

VARIANTS = ("labeled", "detected")


@click.group("datasets")
def datasets():
    """List, describe and prepare reID datasets."""


@datasets.command("list")
def list_datasets():
    """Every dataset name with its standard statistics."""
    from ..datasets import REGISTRY, names

    header = f"{'name':<16}{'train':>14}{'query':>14}{'gallery':>14}{'cams':>6}  default root"
    click.echo(header)
    click.echo("-" * len(header))
    for name in names():
        entry = REGISTRY[name]
        stats = entry.stats
        cells = [f"{stats[s][0]} / {stats[s][1]}" if s in stats else "from data" for s in ("train", "query", "gallery")]
        cams = stats.get("cameras", "-")
        click.echo(f"{name:<16}{cells[0]:>14}{cells[1]:>14}{cells[2]:>14}{cams:>6}  {paths.raw_root(name)}")
    click.echo("(ids / images; gallery ids include distractors; train is list_train only for msmt17)")


@datasets.command()
@click.option("--dataset", "name", required=True, help="Dataset name (see `sanreid datasets list`).")
@click.option("--root", type=click.Path(), default=None, help="Dataset folder (default: data/raw/<family>).")
@click.option("--variant", type=click.Choice(VARIANTS), default=None, help="cuhk03 only: labeled (default) or detected.")
@click.option("--train-val/--no-train-val", default=None, help="msmt17 only: train on list_train + list_val.")
@user_errors
def info(name, root, variant, train_val):
    """Statistics of one dataset; warns about queries with no valid match."""
    from ..datasets import REGISTRY, load

    ds = load(name, root, variant=variant, train_val=train_val)
    click.echo(f"{ds.name} at {ds.root}")
    click.echo(ds.table())
    standard = REGISTRY.get(ds.name, REGISTRY[name]).stats  # cuhk03 --variant detected: cuhk03_detected
    found = {split: ds.stats(split)[:2] for split in ("train", "query", "gallery")}
    differ = [f"{s} {standard[s][0]} ids / {standard[s][1]} images" for s in found
              if s in standard and tuple(standard[s]) != found[s] and not (s == "train" and train_val)]
    if differ:
        click.echo(f"note: differs from the standard statistics ({'; '.join(differ)}): incomplete or modified copy?")
    no_id, same_camera = ds.unmatched_queries()
    if no_id:
        ids = sorted({pid for _, pid, _ in no_id})
        click.echo(f"warning: {len(ids)} query id(s) ({len(no_id)} images) have no gallery image: {_short(ids)}")
    if same_camera:
        ids = sorted({pid for _, pid, _ in same_camera})
        click.echo(
            f"warning: {len(same_camera)} query image(s) of {len(ids)} id(s) have gallery matches only in their own "
            f"camera, which the same-camera rule removes (no valid match): {_short(ids)}"
        )


def _short(values, limit=10):
    text = ", ".join(str(v) for v in values[:limit])
    return text + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")


@datasets.command("prepare-cuhk03")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="CUHK03 folder: images go to ROOT/images_<variant>/ (default: data/raw/cuhk03).")
@click.option("--mat", type=click.Path(dir_okay=False), default=None,
              help="The raw cuhk-03.mat (default: ROOT/cuhk03_release/cuhk-03.mat).")
@click.option("--variant", type=click.Choice(VARIANTS), multiple=True, help="Extract only this variant (default: both).")
@click.option("--overwrite", is_flag=True, help="Rewrite images that already exist.")
@user_errors
def prepare_cuhk03(root, mat, variant, overwrite):
    """Extract CUHK03 images from cuhk-03.mat (v7.3) as PNGs."""
    from ..datasets import prepare_cuhk03 as prepare

    root = paths.raw_root("cuhk03") if root is None else root
    counts = prepare(root, mat=mat, variants=variant or VARIANTS, overwrite=overwrite)
    for name, (written, kept, folder) in counts.items():
        click.echo(f"{name}: {written} images written, {kept} already present in {folder}")
