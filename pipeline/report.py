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
from .params import TARGETS

BASELINE = "baseline"
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


def collect(experiments, seeds, variants):
    """{(train, test, variant): {seed: metrics}} for the runs that exist, and the seeds found."""
    table, found = {}, set()
    for train in experiments:
        for variant in variants:
            for seed in seeds:
                path = run_summary_path(train, variant, seed)
                if not path.is_file():
                    continue
                found.add(seed)
                for test, metrics in json.loads(path.read_text()).items():
                    table.setdefault((train, test, variant), {})[seed] = metrics
    return table, sorted(found)


def _mean_spread(values):
    values = 100 * np.asarray(values, dtype=np.float64)
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    return values.mean(), spread


def _cell(runs, kind, column):
    values = [run[kind][column] for run in runs.values() if kind in run]
    if not values:
        return "–"
    mean, spread = _mean_spread(values)
    return f"{mean:.1f} ± {spread:.1f}" if len(values) > 1 else f"{mean:.1f}"


def metrics_table(table, variants):
    """Markdown table: one row per (train, test, variant), plain and re-ranked columns."""
    head = "| train | test | variant | seeds | " + " | ".join(name for _, name in COLUMNS)
    head += " | " + " | ".join(f"{name} (RR)" for _, name in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * 4 + " ---: |" * (2 * len(COLUMNS))]
    order = {variant: i for i, variant in enumerate(variants)}
    for (train, test, variant), runs in sorted(table.items(), key=lambda kv: (kv[0][:2], order[kv[0][2]])):
        cells = [_cell(runs, "plain", c) for c, _ in COLUMNS] + [_cell(runs, "rerank", c) for c, _ in COLUMNS]
        lines.append(f"| {train} | {test} | {variant} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_set_sd(train, test, variant, seeds, draws=1000):
    """The sd (points) the finite test set alone gives the paired mAP difference of ``variant`` and the
    baseline: both runs' query APs resampled together by test identity (bootstrap, ``draws`` draws, a
    fixed generator), root mean square over ``seeds``. None when a run has no per-query file."""
    from train.evaluation.report import PER_QUERY_FILE, read_per_query

    rng = np.random.default_rng(0)
    variances = []
    for seed in seeds:
        files = [run_details_dir(train, v, seed) / test / PER_QUERY_FILE for v in (BASELINE, variant)]
        if not all(f.is_file() for f in files):
            return None
        (pids, base), (other_pids, ap) = (read_per_query(f) for f in files)
        if not np.array_equal(pids, other_pids):
            return None
        _, identity = np.unique(pids, return_inverse=True)
        sums, counts = np.bincount(identity, weights=ap - base), np.bincount(identity)
        drawn = rng.integers(0, len(sums), size=(draws, len(sums)))
        variances.append((100 * sums[drawn].sum(1) / counts[drawn].sum(1)).var(ddof=1))
    return float(np.sqrt(np.mean(variances))) if variances else None


def paired_differences(table, variants):
    """Each SAN variant minus the baseline, seed by seed (same seed: same initial encoder and sampler
    order), on mAP and Rank-1: a markdown table with the mean and sample sd of the per-seed differences,
    how much of that sd the test set alone explains (:func:`test_set_sd`), and the verdict: SAN beats
    the baseline when its mean mAP gain exceeds twice the sd and its Rank-1 does not fall."""
    head = ("| train | test | variant | paired seeds | mAP - baseline | of which test set (sd) | Rank-1 - baseline "
            "| verdict |\n| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    lines = []
    for train, test in sorted({(t, s) for t, s, _ in table}):
        base = table.get((train, test, BASELINE), {})
        for variant in variants:
            runs = table.get((train, test, variant), {}) if variant != BASELINE else {}
            seeds = sorted(set(base) & set(runs))
            if not seeds:
                continue
            cells, stats = [], {}
            for column in ("mAP", "rank1"):
                diffs = 100 * np.array([runs[s]["plain"][column] - base[s]["plain"][column] for s in seeds])
                sd = diffs.std(ddof=1) if len(diffs) > 1 else float("nan")
                stats[column] = (diffs.mean(), sd)
                cells.append(f"{diffs.mean():+.1f} ± {sd:.1f}" if len(diffs) > 1 else f"{diffs.mean():+.1f}")
            (gain, sd), (rank1, _) = stats["mAP"], stats["rank1"]
            if len(seeds) < 2:
                verdict = "one paired seed: no spread"
            elif gain > 2 * sd and rank1 >= 0:
                verdict = "**beats the baseline** (mAP gain > 2 sd, Rank-1 not lower)"
            elif gain > 2 * sd:
                verdict = "mAP gain > 2 sd, but Rank-1 falls"
            else:
                verdict = "no clear gain (within 2 sd)" if gain > -2 * sd else "worse than the baseline"
            noise = test_set_sd(train, test, variant, seeds)
            cells.insert(1, "–" if noise is None else f"{noise:.1f}")
            lines.append(f"| {train} | {test} | {variant} | {len(seeds)} | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join([head] + lines) if lines else ""


def training_share_table(experiments, seeds, variants):
    """The decoder's share of the gradient at the backbone and the texture losses at the end of
    training, mean over seeds, from each evaluation run's copy of its training metrics."""
    lines = []
    for train in experiments:
        for variant in variants:
            runs = [json.loads(path.read_text()) for seed in seeds
                    if (path := run_details_dir(train, variant, seed) / TRAINING_FILE).is_file()]
            runs = [run for run in runs if "share" in run]
            if not runs:
                continue

            def mean(get):
                values = [v for v in (get(run) for run in runs) if v is not None]
                return f"{np.mean(values):.3g}" if values else "–"

            share = mean(lambda r: r["share"].get("texture", 0.0) + r["share"].get("tr", 0.0))
            gain = mean(lambda r: r.get("decoder", {}).get("encoder_gain"))
            texture = mean(lambda r: r["loss"].get("texture"))
            tr = mean(lambda r: r["loss"].get("tr"))
            lines.append(f"| {train} | {variant} | {len(runs)} | {share} | {gain} | {texture} | {tr} |")
    if not lines:
        return ""
    head = ("| train | variant | seeds | decoder share (texture + tr) | encoder gain | texture loss | TR loss |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    return "\n".join([head] + lines)


VARIANT_LABELS = {"baseline": "baseline", "san": "SAN"}  # other variants are labelled with their name
TRAINING_FILE = "training.json"  # the model's last training metrics, copied beside its evaluation


def cmc_name(train, test):
    """File name (without suffix) of the CMC plot of the models trained on ``train``, tested on ``test``."""
    return f"trained-on-{train}-tested-on-{test}"


def mean_cmc_curves(train, test, seeds, variants):
    """``({label: CMC as fractions, mean over seeds}, seeds found)`` of every variant, plain and
    re-ranked, from the evaluation runs that exist (labels: ``baseline``, ``SAN re-ranked``, ...)."""
    curves, found = {}, set()
    for variant in variants:
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
                curves[VARIANT_LABELS.get(variant, variant) + suffix] = np.mean(
                    [[row[column] for row in rows[:ranks]] for rows in runs.values()], axis=0)
    return curves, sorted(found)


def write_cmc_files(experiments, seeds, variants, out_dir):
    """One CMC plot per (training set, test set) comparing the variants, mean over seeds:
    ``<cmc_name>.json`` (rows of rank and one column per curve, in %, for ``dvc plots``) and
    ``<cmc_name>.png``."""
    from train.evaluation.pictures import plot_cmc

    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    for train, experiment in experiments.items():
        for test in experiment.test:
            curves, found = mean_cmc_curves(train, test, seeds, variants)
            if not curves:
                continue
            ranks = min(len(curve) for curve in curves.values())
            rows = [{"rank": r + 1, **{label: round(100 * float(curve[r]), 2) for label, curve in curves.items()}}
                    for r in range(ranks)]
            name = cmc_name(train, test)
            write_text(out_dir / f"{name}.json", json.dumps(rows) + "\n")
            seeds_text = f"seed {found[0]}" if len(found) == 1 else f"mean of seeds {', '.join(map(str, found))}"
            plot_cmc(out_dir / f"{name}.png", curves, title=f"CMC: trained on {train}, tested on {test} ({seeds_text})")


def texture_quality_sections(experiments):
    """The texture-quality tables of every training set that has ground truth (the synthetic sets):
    each of its texture sets present (per-image, identity-fused, truth, sanpg) against the true atlases."""
    from densepose_textures.quality import format_regions_table, format_table, measure_quality
    from densepose_textures.shards import TextureSet
    from densepose_textures.synth import read_truth

    sections = []
    for train in experiments:
        truth_file = paths.raw_root(train) / "textures.h5"
        set_dirs = [paths.texture_set(train, source, fuse) for source, fuse in TARGETS.values()]
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


def write_report(experiments, seeds, variants, out_path):
    """``variants``: the names of the trained variants, the baseline first."""
    table, found = collect(experiments, seeds, variants)
    parts = [
        "# SAN vs baseline\n",
        f"Seeds: {', '.join(map(str, found)) or 'none'}. Mean ± sample standard deviation over seeds; "
        "(RR) = with k-reciprocal re-ranking. Values in %.\n",
        metrics_table(table, variants) + "\n",
        "## Does SAN beat the baseline?\n",
        "Paired per seed: each variant minus the baseline trained with the same seed (same initial "
        "encoder, same sampler order); mean ± sd of the per-seed differences, in points. \"Of which test set\": "
        "the sd that resampling the test identities alone gives one seed's paired mAP difference.\n",
        (paired_differences(table, variants) or "No experiment has the baseline and a SAN variant yet.") + "\n",
        "## How much the decoder moves the encoder\n",
        (training_share_table(experiments, seeds, variants) or "No training metrics with gradient shares.") + "\n",
        "## Texture quality\n",
        *(texture_quality_sections(experiments) or ["No training set with ground-truth textures.\n"]),
    ]
    out_path = write_text(out_path, "\n".join(parts))
    write_cmc_files(experiments, seeds, variants, out_path.parent / "cmc")
    return out_path
