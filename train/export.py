"""The inference model: SA-Enc alone, with its preprocessing settings.

An exported file (``model.pt``) is a dict with ``encoder`` (the encoder's state
dict), ``model_args`` (the kwargs that built :class:`train.model.SAN`) and
``preprocess`` (``height``, ``width``, ``mean``, ``std``), and nothing of the
decoder. :func:`load_encoder` reads it, or a training checkpoint (a dict with
``model``, the SAN state dict, ``model_args`` and ``preprocess``). Both load with
``torch.load(weights_only=True)``.
"""

import logging
from pathlib import Path

import torch

from densepose_textures.errors import InputError
from densepose_textures.storage import AtomicWrite

from .checkpoint import bare_model, strip_prefixes
from .model import SAN

log = logging.getLogger(__name__)

PREPROCESS_KEYS = ("height", "width", "mean", "std")


def check_preprocess(preprocess, where="preprocess"):
    """A plain copy of ``preprocess`` (ints and float lists), or InputError naming what is wrong."""
    if not isinstance(preprocess, dict) or any(k not in preprocess for k in PREPROCESS_KEYS):
        raise InputError(f"{where}: expected a dict with {', '.join(PREPROCESS_KEYS)}, got {preprocess!r}")
    out = {"height": int(preprocess["height"]), "width": int(preprocess["width"]),
           "mean": [float(v) for v in preprocess["mean"]], "std": [float(v) for v in preprocess["std"]]}
    if len(out["mean"]) != 3 or len(out["std"]) != 3 or min(out["height"], out["width"]) < 1:
        raise InputError(f"{where}: height and width must be positive and mean/std hold 3 RGB values, got {out}")
    return out


def _model_args(model):
    args = getattr(model, "model_args", None)
    if not isinstance(args, dict):
        raise InputError(f"{type(model).__name__} has no model_args: export a train.model.SAN or its encoder")
    return dict(args)


def save_encoder(model_or_encoder, preprocess, path, onnx=False):
    """Write the inference encoder of a SAN (or the SAN's ``encoder``) to ``path``; also ``.onnx`` if asked.

    Returns the list of written paths.
    """
    model = bare_model(model_or_encoder)
    encoder = getattr(model, "encoder", model)
    args = dict(_model_args(encoder), texture_size=None)
    args.pop("target_size", None)
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    record = {"encoder": state, "model_args": args, "preprocess": check_preprocess(preprocess)}
    path = Path(path)
    with AtomicWrite(path) as tmp:
        torch.save(record, tmp)
    written = [path]
    log.info("exported the encoder (%d tensors, %d-d features) to %s", len(state),
             getattr(encoder, "feature_dim", -1), path)
    if onnx:
        written.append(export_onnx(build_encoder(args, state), record["preprocess"], path.with_suffix(".onnx")))
    return written


def build_encoder(model_args, encoder_state, device="cpu", where="the model file"):
    """An encoder in eval mode rebuilt from ``model_args`` and its state dict."""
    args = dict(model_args, texture_size=None, pretrained="")
    args.pop("target_size", None)  # the decoder's output size: no decoder here
    try:
        encoder = SAN(**args).encoder
    except TypeError as err:
        raise InputError(f"{where}: model_args {model_args!r} do not build a SAN model: {err}") from err
    try:
        encoder.load_state_dict(encoder_state)
    except RuntimeError as err:
        raise InputError(f"{where}: the stored weights do not match model_args {model_args!r}: {err}") from err
    return encoder.to(device).eval()


def load_encoder(path, device="cpu"):
    """(encoder in eval mode on ``device``, preprocess dict) from an exported ``model.pt`` or a training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} not found; give a training checkpoint (last.pt) or an exported model.pt")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, foreign pickle: name the file
        raise InputError(f"cannot read model file {path}: {err}") from err
    if not isinstance(record, dict) or "model_args" not in record or "preprocess" not in record:
        raise InputError(f"{path} is neither an exported model nor a training checkpoint "
                         "(expected a dict with model_args, preprocess and encoder or model)")
    if "encoder" in record:
        state = strip_prefixes(record["encoder"])
    elif "model" in record:
        state = {k[len("encoder."):]: v for k, v in strip_prefixes(record["model"]).items()
                 if k.startswith("encoder.")}
        if not state:
            raise InputError(f"{path}: the checkpoint's model state holds no encoder.* weights")
    else:
        raise InputError(f"{path}: found neither 'encoder' (exported model) nor 'model' (training checkpoint)")
    preprocess = check_preprocess(record["preprocess"], where=f"{path}: preprocess")
    return build_encoder(record["model_args"], state, device, where=str(path)), preprocess


def export_onnx(encoder, preprocess, path):
    """ONNX export of the encoder (dynamic batch size); needs the ``export`` extra (onnx, onnxscript)."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise InputError(f"ONNX export needs onnx and onnxscript ({err.name} is missing): "
                         "pip install 'san-reid[export]'") from err
    encoder = encoder.cpu().eval()
    dummy = torch.zeros(2, 3, preprocess["height"], preprocess["width"])  # batch 2: not specialised to 1
    path = Path(path)
    program = torch.onnx.export(encoder, (dummy,), dynamo=True, input_names=["images"], output_names=["features"],
                                dynamic_shapes=({0: torch.export.Dim("batch")},))
    program.save(str(path))
    log.info("exported ONNX to %s", path)
    return path
