"""The settings' defaults are the library's: calling it directly builds what the CLI builds."""

import inspect
import subprocess
import sys
from dataclasses import asdict

from pipeline.params import Params
from train.settings import EvalParams, ModelParams


def test_help_and_the_settings_do_not_import_torch():
    code = ("import sys; from click.testing import CliRunner; import pipeline.cli, pipeline.params, train.settings; "
            "assert CliRunner().invoke(pipeline.cli.main, ['--help']).exit_code == 0; print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_the_cli_sections_are_the_train_settings():
    assert type(Params().train.model) is ModelParams and type(Params().eval) is EvalParams


def test_the_model_built_directly_is_the_cli_default_model():
    from train.model import SAN, resnet18, resnet50

    model = ModelParams()
    direct = SAN(num_classes=3)
    from_settings = SAN(num_classes=3, **asdict(model))
    assert direct.model_args == from_settings.model_args
    assert direct.model_args["last_stride"] == model.last_stride == 2
    stride = (model.last_stride,) * 2
    assert resnet18().layer4[0].conv1.stride == stride and resnet50().layer4[0].conv2.stride == stride


def defaults_of(function):
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_evaluation_defaults_are_the_eval_settings():
    from train.evaluation.features import extract_features
    from train.evaluation.report import evaluate_features
    from train.run import make_evaluator

    settings = asdict(EvalParams())
    for function, names in ((evaluate_features, {"metric", "normalize", "rerank", "k1", "k2", "lambda_value",
                                                 "max_rank", "hardest"}),
                            (make_evaluator, {"metric", "normalize", "flip", "batch_size"}),
                            (extract_features, {"flip", "batch_size"})):
        defaults = defaults_of(function)
        assert {name: defaults[name] for name in names} == {name: settings[name] for name in names}, function
