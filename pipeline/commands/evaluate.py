"""``sanreid extract`` (features of a split or an image folder) and ``sanreid evaluate`` (metrics, plots)."""

import logging
from pathlib import Path

import click

from densepose_textures.device import resolve_device

from .common import fail, params_from_context, user_errors

log = logging.getLogger(__name__)


def _load_model(path, device):
    from train.export import load_encoder

    return load_encoder(path, device)


def _extract(model, preprocess, root, items, settings, device):
    from train.evaluation.features import extract_features

    return extract_features(model, root, items, preprocess, flip=settings.flip, batch_size=settings.batch_size,
                            device=device, workers=settings.workers)


_device_option = click.option("--device", default=None, help="auto | cpu | cuda[:N] (default: eval.device).")
_flip_option = click.option("--flip/--no-flip", default=None,
                            help="Average the features of each image and its mirror image (default: eval.flip).")


# --- extract ------------------------------------------------------------------------------------

@click.command("extract")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Training checkpoint (last.pt).")
@click.option("--model", "model_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Exported model (model.pt), instead of --checkpoint.")
@click.option("--dataset", default=None, help="Dataset name (sanreid datasets list); with --split.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset root (default: data/raw/<dataset>).")
@click.option("--split", type=click.Choice(["query", "gallery", "train"]), default=None,
              help="Dataset split to extract.")
@click.option("--images", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Any folder of images, instead of --dataset/--split.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="features.h5 to write.")
@click.option("--batch-size", type=int, default=None, help="Images per batch (default: eval.batch_size).")
@_flip_option
@_device_option
@user_errors
def extract(checkpoint, model_file, dataset, root, split, images, out, batch_size, flip, device):
    """Write the features of a dataset split, or of a folder of images, to an HDF5 file
    (features, keys, pids, camids)."""
    from pipeline import datasets
    from pipeline.params import with_options
    from train.evaluation.features import image_items, write_features

    if (checkpoint is None) == (model_file is None):
        fail("give exactly one of --checkpoint and --model")
    if (images is None) == (dataset is None):
        fail("give either --dataset (with --split) or --images")
    if dataset is not None and split is None:
        fail("--dataset needs --split query|gallery|train")
    settings = with_options(params_from_context().eval, batch_size=batch_size, flip=flip, device=device)
    device = resolve_device(settings.device)
    if images is not None:
        root, items, name = images, image_items(images), images.name
    else:
        ds = datasets.load(dataset, root)
        root, items, name = ds.root, ds.split(split), ds.name
    model_path = checkpoint or model_file
    model, preprocess = _load_model(model_path, device)
    features = _extract(model, preprocess, root, items, settings, device)
    write_features(out, features, items, dataset=name, split=split or "images", root=str(root),
                   model=str(model_path), flip=settings.flip)
    click.echo(f"wrote {out}: {features.shape[0]} x {features.shape[1]} features")


# --- evaluate -----------------------------------------------------------------------------------

@click.command("evaluate")
@click.option("--dataset", required=True, help="Dataset name (sanreid datasets list).")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset root (default: data/raw/<dataset>).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Training checkpoint or exported model.pt: extracts query and gallery features first.")
@click.option("--features-query", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Query features.h5 (sanreid extract), instead of --checkpoint.")
@click.option("--features-gallery", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Gallery features.h5, with --features-query.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default: data/metrics/<dataset>/).")
@click.option("--metric", type=click.Choice(["euclidean", "cosine"]), default=None, help="Default: eval.metric.")
@click.option("--rerank/--no-rerank", default=None, help="Also report k-reciprocal re-ranking (default: eval.rerank).")
@click.option("--hardest", type=int, default=None, help="Rank lists of the N hardest queries (default: eval.hardest).")
@click.option("--batch-size", type=int, default=None, help="Images per batch (default: eval.batch_size).")
@click.option("--title", default=None, help="Title of the CMC plot, cmc.png (default: the dataset name).")
@_flip_option
@_device_option
@user_errors
def evaluate(dataset, root, checkpoint, features_query, features_gallery, out, metric, rerank, hardest,
             batch_size, title, flip, device):
    """Rank-1/5/10, mAP and mINP (with and without re-ranking), the CMC curve and rank lists."""
    from pipeline import datasets, paths
    from pipeline.params import with_options
    from train.evaluation.features import read_features, write_features
    from train.evaluation.report import evaluate_features

    by_features = features_query is not None or features_gallery is not None
    if by_features == (checkpoint is not None):
        fail("give either --checkpoint or both --features-query and --features-gallery")
    if by_features and (features_query is None or features_gallery is None):
        fail("--features-query and --features-gallery go together")
    settings = with_options(params_from_context().eval, metric=metric, rerank=rerank, hardest=hardest,
                            batch_size=batch_size, flip=flip, device=device)
    device = resolve_device(settings.device)
    out = out or paths.metrics_dir() / paths.canonical_name(dataset)
    if by_features:
        qf, query, _ = read_features(features_query)
        gf, gallery, _ = read_features(features_gallery)
        try:
            image_root = datasets.load(dataset, root).root
        except datasets.DatasetError as err:  # metrics need no images; only the rank lists do
            log.warning("no rank-list pictures: %s", err)
            image_root = None
    else:
        ds = datasets.load(dataset, root)
        model, preprocess = _load_model(checkpoint, device)
        query, gallery, image_root = ds.query, ds.gallery, ds.root
        qf = _extract(model, preprocess, ds.root, query, settings, device)
        gf = _extract(model, preprocess, ds.root, gallery, settings, device)
        for split, feats, items in (("query", qf, query), ("gallery", gf, gallery)):
            write_features(Path(out) / f"features-{split}.h5", feats, items, dataset=ds.name, split=split,
                           root=str(ds.root), model=str(checkpoint), flip=settings.flip)
    metrics = evaluate_features(
        qf, gf, query, gallery, out, root=image_root, name=dataset, title=title, metric=settings.metric,
        normalize=settings.normalize, rerank=settings.rerank, k1=settings.k1, k2=settings.k2,
        lambda_value=settings.lambda_value, max_rank=settings.max_rank, hardest=settings.hardest, device=device)
    for kind in ("plain", "rerank"):
        if kind in metrics:
            m = metrics[kind]
            click.echo(f"{dataset} {kind:>6}: Rank-1 {100 * m['rank1']:.2f}  Rank-5 {100 * m['rank5']:.2f}  "
                       f"Rank-10 {100 * m['rank10']:.2f}  mAP {100 * m['mAP']:.2f}  mINP {100 * m['mINP']:.2f}")
    click.echo(f"wrote {Path(out) / 'metrics.json'}")
