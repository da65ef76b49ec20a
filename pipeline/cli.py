"""``sanreid``: the command line. Thin: each command reads parameters and calls plain functions.

Commands live in ``pipeline.commands.*`` and are imported only when invoked, so
``sanreid --help`` and small commands do not pay for importing torch.
"""

import importlib
import logging

import click

from . import __version__

COMMANDS = {
    "datasets": ("pipeline.commands.datasets", "datasets", "List, describe and prepare reID datasets."),
    "synth": ("pipeline.commands.synth", "synth", "Render the synthetic reID dataset."),
    "synth-preview": ("pipeline.commands.synth", "synth_preview", "Draw a grid of synthetic images, IUV and atlases."),
    "iuv": ("pipeline.commands.iuv", "iuv", "Run DensePose (or another backend) on every image into an IUV store."),
    "iuv-merge": ("pipeline.commands.iuv", "iuv_merge", "Join IUV shard files into one store."),
    "gen-textures": ("pipeline.commands.textures", "gen_textures", "Build the HDF5 texture set of one dataset."),
    "textures": ("pipeline.commands.textures", "textures", "Inspect, draw and measure texture sets; import released ones."),
    "train": ("pipeline.commands.train", "train", "Train the baseline or SAN."),
    "train-pg": ("pipeline.commands.train", "train_pg", "Train SAN-PG, the texture generator, on image/atlas pairs."),
    "export": ("pipeline.commands.train", "export", "Export the inference encoder of a checkpoint."),
    "extract": ("pipeline.commands.evaluate", "extract", "Extract features of a dataset split or image folder."),
    "evaluate": ("pipeline.commands.evaluate", "evaluate", "Evaluate a model or features: CMC, mAP, mINP, re-ranking."),
    "evaluate-experiment": ("pipeline.commands.report", "evaluate_experiment",
                            "Evaluate a trained model on every test set of its experiment."),
    "report": ("pipeline.commands.report", "report_command", "Write the pipeline's report of all experiments."),
    "test-digest": ("pipeline.commands.report", "test_digest", "Digest the test sets of an experiment (for DVC)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sanreid")
@click.option("-v", "--verbose", count=True, help="More logging (-v: debug).")
@click.option(
    "--params", "params_file", type=click.Path(dir_okay=False), default=None,
    help="Parameter file (default: ./params.yaml if present, else built-in CPU defaults).",
)
@click.pass_context
def main(ctx, verbose, params_file):
    """SAN person re-identification: DensePose textures and the SAN trainer."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    ctx.obj = {"params_file": params_file}
