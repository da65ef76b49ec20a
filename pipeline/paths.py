"""Default locations of every output, relative to the working directory (docs/design.md)."""

from pathlib import Path

DATA = Path("data")


def canonical_name(dataset, variant=None):
    """Output name of a dataset: ``cuhk03`` is the labeled variant, named ``cuhk03_labeled``."""
    if dataset == "cuhk03":
        return f"cuhk03_{variant or 'labeled'}"
    return dataset


def raw_root(dataset):
    """Where the dataset itself lives (or is linked): ``data/raw/<dataset>``.

    ``cuhk03_labeled`` and ``cuhk03_detected`` fall back to ``data/raw/cuhk03`` (one download holds both).
    """
    root = DATA / "raw" / dataset
    if dataset.startswith("cuhk03") and not root.exists():
        return DATA / "raw" / "cuhk03"
    return root


def iuv_store(dataset):
    return DATA / "iuv" / f"{dataset}.h5"


def texture_set(dataset, targets="per-image"):
    """``data/textures/<dataset>`` (the per-image set), ``<dataset>-fused`` or ``<dataset>-truth``."""
    return DATA / "textures" / (dataset if targets == "per-image" else f"{dataset}-{targets}")


def model_dir(dataset, variant):
    return DATA / "models" / dataset / variant


def metrics_dir():
    return DATA / "metrics"
