"""The pipeline's summary: metrics of every (training set, variant, seed) on every test set.

Evaluation runs write ``data/metrics/runs/<train>/<variant>/seed<S>.json`` ({test set: metrics});
:func:`write_report` gathers them into ``data/metrics/report.md`` and, in ``data/metrics/cmc/``,
one CMC plot per (training set, test set) comparing the variants (JSON for ``dvc plots``, and PNG).
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from densepose_textures.storage import write_text

from . import paths

VARIANTS = ("baseline", "san")
COLUMNS = (("rank1", "Rank-1"), ("rank5", "Rank-5"), ("rank10", "Rank-10"), ("mAP", "mAP"), ("mINP", "mINP"))


def runs_dir():
    return paths.metrics_dir() / "runs"


def run_summary_path(dataset, variant, seed):
    return runs_dir() / dataset / variant / f"seed{seed}.json"


def run_details_dir(dataset, variant, seed):
    return runs_dir() / dataset / variant / f"seed{seed}"


def digest_path(train):
    """The digest of an experiment's test sets, which its evaluation stages depend on."""
    return runs_dir() / train / "test-data.json"


def digest_test_splits(dataset):
    """``{"query": n, "gallery": n, "sha256": hex}`` of a dataset's test splits: the ordered query and
    gallery lists (paths, pids, camids) and the bytes of every image they name."""
    h = hashlib.sha256()
    for split in ("query", "gallery"):
        for key, pid, camid in dataset.split(split):
            h.update(f"{split}\t{key}\t{pid}\t{camid}\n".encode())
            with open(dataset.root / key, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
    return {"query": len(dataset.query), "gallery": len(dataset.gallery), "sha256": h.hexdigest()}


def collect(experiments, seeds):
    """{(train, test, variant): [metrics of each seed]} for the runs that exist, and the seeds found."""
    table, found = {}, set()
    for train in experiments:
        for variant in VARIANTS:
            for seed in seeds:
                path = run_summary_path(train, variant, seed)
                if not path.is_file():
                    continue
                found.add(seed)
                for test, metrics in json.loads(path.read_text()).items():
                    table.setdefault((train, test, variant), []).append(metrics)
    return table, sorted(found)


def _mean_spread(values):
    values = 100 * np.asarray(values, dtype=np.float64)
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    return values.mean(), spread


def _cell(runs, kind, column):
    values = [run[kind][column] for run in runs if kind in run]
    if not values:
        return "–"
    mean, spread = _mean_spread(values)
    return f"{mean:.1f} ± {spread:.1f}" if len(values) > 1 else f"{mean:.1f}"


def metrics_table(table):
    """Markdown table: one row per (train, test, variant), plain and re-ranked columns."""
    head = "| train | test | variant | seeds | " + " | ".join(name for _, name in COLUMNS)
    head += " | " + " | ".join(f"{name} (RR)" for _, name in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * 4 + " ---: |" * (2 * len(COLUMNS))]
    for (train, test, variant), runs in sorted(table.items()):
        cells = [_cell(runs, "plain", c) for c, _ in COLUMNS] + [_cell(runs, "rerank", c) for c, _ in COLUMNS]
        lines.append(f"| {train} | {test} | {variant} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(table):
    """Does SAN beat the baseline by more than the seed spread? One line per (train, test)."""
    lines = []
    for train, test in sorted({(t, s) for t, s, _ in table}):
        base, san = table.get((train, test, "baseline")), table.get((train, test, "san"))
        if not base or not san:
            continue
        for column in ("mAP", "rank1"):
            b_mean, b_spread = _mean_spread([r["plain"][column] for r in base])
            s_mean, s_spread = _mean_spread([r["plain"][column] for r in san])
            diff = s_mean - b_mean
            spread = max(b_spread, s_spread)
            if min(len(base), len(san)) < 2:
                judgement = "one seed per variant: no spread to compare with"
            elif abs(diff) > spread:
                judgement = f"exceeds the seed spread ({spread:.1f})"
            else:
                judgement = f"within the seed spread ({spread:.1f})"
            lines.append(f"- {train} -> {test}, {column}: SAN - baseline = {diff:+.1f} points; {judgement}.")
    return "\n".join(lines)


VARIANT_LABELS = {"baseline": "baseline", "san": "SAN"}


def cmc_name(train, test):
    """File name (without suffix) of the CMC plot of the models trained on ``train``, tested on ``test``."""
    return f"trained-on-{train}-tested-on-{test}"


def mean_cmc_curves(train, test, seeds):
    """``({label: CMC as fractions, mean over seeds}, seeds found)`` of both variants, plain and
    re-ranked, from the evaluation runs that exist (labels: ``baseline``, ``SAN re-ranked``, ...)."""
    curves, found = {}, set()
    for variant in VARIANTS:
        runs = {}
        for seed in seeds:
            path = run_details_dir(train, variant, seed) / test / "cmc.json"
            if path.is_file():
                runs[seed] = json.loads(path.read_text())["cmc"]
        if not runs:
            continue
        found.update(runs)
        ranks = min(len(rows) for rows in runs.values())
        for column, suffix in (("cmc", ""), ("cmc_rerank", " re-ranked")):
            if all(column in rows[0] for rows in runs.values()):
                curves[VARIANT_LABELS[variant] + suffix] = np.mean(
                    [[row[column] for row in rows[:ranks]] for rows in runs.values()], axis=0)
    return curves, sorted(found)


def write_cmc_files(experiments, seeds, out_dir):
    """One CMC plot per (training set, test set) comparing the variants, mean over seeds:
    ``<cmc_name>.json`` (rows of rank and one column per curve, in %, for ``dvc plots``) and
    ``<cmc_name>.png``."""
    from train.evaluation.pictures import plot_cmc

    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    for train, experiment in experiments.items():
        for test in experiment.test:
            curves, found = mean_cmc_curves(train, test, seeds)
            if not curves:
                continue
            ranks = min(len(curve) for curve in curves.values())
            rows = [{"rank": r + 1, **{label: round(100 * float(curve[r]), 2) for label, curve in curves.items()}}
                    for r in range(ranks)]
            name = cmc_name(train, test)
            write_text(out_dir / f"{name}.json", json.dumps(rows) + "\n")
            seeds_text = f"seed {found[0]}" if len(found) == 1 else f"mean of seeds {', '.join(map(str, found))}"
            plot_cmc(out_dir / f"{name}.png", curves, title=f"CMC: trained on {train}, tested on {test} ({seeds_text})")


TARGET_KINDS = (("warp", "none"), ("warp", "identity"), ("truth", "none"))  # per-image, fused, truth


def texture_quality_sections(experiments):
    """The texture-quality tables of every training set that has ground truth (the synthetic sets):
    each of its texture sets present (per-image, identity-fused, truth) against the true atlases."""
    from densepose_textures.quality import format_regions_table, format_table, measure_quality
    from densepose_textures.shards import TextureSet
    from densepose_textures.synth import read_truth

    sections = []
    for train in experiments:
        truth_file = paths.raw_root(train) / "textures.h5"
        set_dirs = [paths.texture_set(train, source, fuse) for source, fuse in TARGET_KINDS]
        set_dirs = [d for d in set_dirs if d.is_dir()]
        if not truth_file.is_file() or not set_dirs:
            continue
        truth, _ = read_truth(truth_file)
        results = {}
        for set_dir in set_dirs:
            results.update(measure_quality(TextureSet(set_dir), truth))
        sections.append(f"### {train}: texture sets against the true atlases\n\n{format_regions_table(results)}\n\n"
                        f"{format_table(results)}\n")
    return sections


def write_report(experiments, seeds, out_path):
    table, found = collect(experiments, seeds)
    parts = [
        "# SAN vs baseline\n",
        f"Seeds: {', '.join(map(str, found)) or 'none'}. Mean ± sample standard deviation over seeds; "
        "(RR) = with k-reciprocal re-ranking. Values in %.\n",
        metrics_table(table) + "\n",
        "## Does SAN beat the baseline?\n",
        (verdicts(table) or "- no experiment has both variants yet") + "\n",
        "## Texture quality\n",
        *(texture_quality_sections(experiments) or ["No training set with ground-truth textures.\n"]),
    ]
    out_path = write_text(out_path, "\n".join(parts))
    write_cmc_files(experiments, seeds, out_path.parent / "cmc")
    return out_path
