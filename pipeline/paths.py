"""Default locations of every output, relative to the working directory (docs/design.md)."""

from pathlib import Path

DATA = Path("data")
PAIRS = "synth-pairs"  # the generator's image/atlas pairs: data/raw/synth-pairs


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


def texture_set(dataset, source="warp", fuse="none"):
    """``data/textures/<dataset>`` for per-image warped targets; other sources and fusion add a suffix
    (``<dataset>-truth``, ``<dataset>-fused``), so the sets of one dataset live side by side."""
    suffix = ("" if source == "warp" else f"-{source}") + ("-fused" if fuse == "identity" else "")
    return DATA / "textures" / f"{dataset}{suffix}"


def model_dir(dataset, variant):
    return DATA / "models" / dataset / variant


def metrics_dir():
    return DATA / "metrics"


def generator_dir(seed):
    """Where ``sanreid train-pg`` writes the texture generator of ``seed``: ``data/models/sanpg/seed<S>``."""
    return DATA / "models" / "sanpg" / f"seed{seed}"
