"""Pipeline stage entry points: digest an experiment's test sets, evaluate one trained model on
them, write the report."""

import json
from pathlib import Path

import click

from densepose_textures.storage import write_text

from .. import paths, report
from .common import fail, params_from_context, user_errors


def _experiment(dataset):
    experiments = params_from_context().experiments
    if dataset not in experiments:
        fail(f"no experiment trains on {dataset!r}; experiments in the parameters: {', '.join(experiments)}")
    return experiments[dataset]


@click.command("test-digest")
@click.option("--dataset", required=True, help="Training dataset: a key of `experiments` in the parameters.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON to write (default: data/metrics/runs/<dataset>/test-data.json).")
@user_errors
def test_digest(dataset, out):
    """Digest the query and gallery images of every test set of an experiment.

    The experiment's evaluation stages depend on this file instead of all of data/raw (DVC cannot
    give a stage a list of dependencies of varying length). This stage reruns, in seconds, whenever
    anything under data/raw changes; its file, and so the evaluations, change only when one of the
    experiment's test sets does.
    """
    from pipeline import datasets

    digests = {test: report.digest_test_splits(datasets.load(test)) for test in _experiment(dataset).test}
    path = out or report.digest_path(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(digests, indent=2) + "\n")
    for test, digest in digests.items():
        click.echo(f"{test}: {digest['query']} query and {digest['gallery']} gallery images, sha256 {digest['sha256'][:16]}")
    click.echo(f"wrote {path}")


@click.command("evaluate-experiment")
@click.option("--dataset", required=True, help="Training dataset: a key of `experiments` in the parameters.")
@click.option("--variant", required=True, help="baseline, or a SAN variant's name (`variants` in the parameters).")
@click.option("--seed", type=int, default=0, show_default=True, help="Training seed of the model.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Model to evaluate (default: data/models/<dataset>/<variant>/seed<S>/last.pt).")
@click.pass_context
@user_errors
def evaluate_experiment(ctx, dataset, variant, seed, checkpoint):
    """Evaluate a model on every test set of its experiment (``experiments.<dataset>.test``).

    Writes data/metrics/runs/<dataset>/<variant>/seed<S>/<test>/ (sanreid evaluate's files) and
    data/metrics/runs/<dataset>/<variant>/seed<S>.json ({test set: metrics}).
    """
    from .evaluate import evaluate

    experiment = _experiment(dataset)
    if variant != report.BASELINE:
        params_from_context().variant(variant)  # refuses a name the parameters do not know
    checkpoint = checkpoint or paths.model_dir(dataset, variant) / f"seed{seed}" / "last.pt"
    if not checkpoint.is_file():
        fail(f"model {checkpoint} not found: run `sanreid train --dataset {dataset} --variant {variant}` first")
    details = report.run_details_dir(dataset, variant, seed)
    summary = {}
    for test in experiment.test:
        out = details / test
        ctx.invoke(evaluate, dataset=test, checkpoint=checkpoint, out=out,
                   title=f"trained on {dataset} ({variant}, seed {seed}), tested on {test}")
        summary[test] = json.loads((out / "metrics.json").read_text())
    training = checkpoint.parent / "dvclive" / "metrics.json"
    if training.is_file():  # the training's last figures (losses, gradient shares) for the report
        write_text(details / report.TRAINING_FILE, training.read_text())
    path = report.run_summary_path(dataset, variant, seed)
    write_text(path, json.dumps(summary, indent=2) + "\n")
    click.echo(f"wrote {path}")


@click.command("report")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Report file (default: data/metrics/report.md).")
@user_errors
def report_command(out):
    """Baseline vs SAN on every test set (mean and spread over seeds), and texture quality."""
    params = params_from_context()
    path = report.write_report(params.experiments, params.seeds, params.variant_names(),
                               out or paths.metrics_dir() / "report.md")
    click.echo(path.read_text())
    click.echo(f"wrote {path}")
