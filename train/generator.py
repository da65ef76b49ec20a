"""A trained SAN-PG texture generator: predicts each image's full texture atlas (``--source sanpg``).

A generator file is a checkpoint as ``sanreid train`` writes it (:mod:`train.checkpoint`): ``model``
(a SAN state dict with the decoder), ``model_args`` (``texture_size`` = P) and ``preprocess``
(``height``, ``width``, ``mean``, ``std``); only these three are read. The atlas of a batch is the
decoder's output for the encoder's maps, ``decoder(encoder.forward_stages(x)[0])[0]``, a (B, 3, 6P, 4P)
image in the trainer's target scale (uint8 target t is t / 127.5 - 1): it goes back to uint8 as
``rint((y + 1) * 127.5)`` clamped to 0..255, and to (B, 24, P, P, 3) patches, the layout of every
texture set. Images are preprocessed as the trainer and evaluation do: resized bilinearly (OpenCV)
to (height, width), normalised on the device. A generator whose ``model_args`` has ``warp_input``
(``{"splat", "fill"}``) also reads each image's IUV warp filled with those settings, and its refiner
returns the corrected warp + fill (:mod:`train.model.refiner`).

:class:`TextureGenerator` is what :func:`densepose_textures.textures.build_texture_set` takes as its
``generator`` (``texture_size``, ``input_size``, ``warp_input``, ``digest``, ``predict``), so
``densepose_textures`` never imports torch or this package.
"""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from densepose_textures.atlas import atlas_to_image, image_to_atlas_parts
from densepose_textures.device import resolve_device
from densepose_textures.errors import InputError

from .checkpoint import load_checkpoint, strip_prefixes
from .export import check_preprocess
from .model import SAN
from .model.refiner import refine_atlas

log = logging.getLogger(__name__)


def generator_digest(state, model_args, preprocess):
    """sha256 (hex) of everything that determines a generator's predictions: the model's tensors (name,
    dtype, shape, bytes, in name order), its ``model_args`` and its ``preprocess``."""
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(f"{name}\t{tensor.dtype}\t{tuple(tensor.shape)}\n".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps({"model_args": model_args, "preprocess": preprocess}, sort_keys=True).encode())
    return h.hexdigest()


def generator_atlas(net, images, warp=None):
    """The atlas images (B, 3, 6P, 4P) a SAN's decoder predicts from normalised ``images``, in the
    targets' scale [-1, 1] up to the decoder's range; a warp-input generator's refiner then corrects
    ``warp`` (``{"filled", "steps"}``, :func:`train.model.refiner.refine_atlas`) with it. The backbone's
    maps feed the decoder; the reID head is not run."""
    return refine_atlas(net.refiner, net.decoder(net.encoder.backbone.forward_stages(images))[0], warp)


def warp_tensors(filled, steps, device):
    """(B, 24, P, P, 3) uint8 warp + fill and (B, 24, P, P) uint8 fill steps -> the refiner's ``warp`` dict:
    atlas images (B, 3, 6P, 4P) in [-1, 1] and (B, 1, 6P, 4P) uint8 on ``device``."""
    filled = torch.from_numpy(np.ascontiguousarray(atlas_to_image(np.asarray(filled)))).to(device)
    steps = torch.from_numpy(np.ascontiguousarray(atlas_to_image(np.asarray(steps)[..., None]))).to(device)
    return {"filled": filled.permute(0, 3, 1, 2).float() / 127.5 - 1.0, "steps": steps.permute(0, 3, 1, 2)}


class TextureGenerator:
    """A SAN (encoder + decoder) in eval mode on ``device`` that predicts atlases from uint8 images."""

    def __init__(self, model, preprocess, digest, device="cpu", path=None):
        if model.decoder is None:
            raise InputError(f"generator {path or 'model'} has no decoder (model_args texture_size is None): "
                             "give a SAN-PG generator or a SAN checkpoint trained with a decoder")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.preprocess = check_preprocess(preprocess)
        self.digest = digest
        self.path = path
        self.texture_size = int(model.decoder.texture_size)
        self.input_size = (self.preprocess["height"], self.preprocess["width"])
        self.warp_input = model.model_args.get("warp_input")  # {"splat", "fill"} of the warp it reads, or None
        self._mean = torch.tensor(self.preprocess["mean"], device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(self.preprocess["std"], device=self.device).view(1, 3, 1, 1) * 255

    def predict(self, images, filled=None, steps=None):
        """(B, H, W, 3) uint8 RGB images, already at :attr:`input_size` -> (B, 24, P, P, 3) uint8 atlases.
        A :attr:`warp_input` generator also reads each image's warp + fill ``filled`` (B, 24, P, P, 3) uint8 and
        its fill steps ``steps`` (B, 24, P, P) (:func:`densepose_textures.fill.fill_atlases`)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (*self.input_size, 3):
            raise ValueError(f"expected (B, {self.input_size[0]}, {self.input_size[1]}, 3) uint8 images, "
                             f"got {images.shape} {images.dtype}")
        if (filled is None) != (self.warp_input is None):
            raise ValueError("give the warp + fill and its steps exactly when the generator reads them (warp_input)")
        with torch.inference_mode():
            x = torch.from_numpy(images).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
            x = (x - self._mean) / self._std
            warp = None if filled is None else warp_tensors(filled, steps, self.device)
            atlas = generator_atlas(self.model, x, warp).float()  # (B, 3, 6P, 4P), targets' scale [-1, 1]
            atlas = ((atlas + 1.0) * 127.5).round().clamp_(0, 255).to(torch.uint8)
            atlas = atlas.permute(0, 2, 3, 1).cpu().numpy()  # (B, 6P, 4P, 3)
        return np.ascontiguousarray(image_to_atlas_parts(atlas))


def load_generator(path, device="auto"):
    """The :class:`TextureGenerator` of checkpoint ``path`` on ``device`` (``auto``: the GPU when there is
    one); :class:`InputError` naming the file when it is missing, unreadable, not a SAN checkpoint or
    has no decoder."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"generator {path} not found: give a SAN-PG generator checkpoint (`sanreid train-pg`) "
                         "or a SAN training checkpoint (last.pt) with --generator")
    record = load_checkpoint(path)
    if not isinstance(record, dict) or any(k not in record for k in ("model", "model_args", "preprocess")):
        have = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
        raise InputError(f"generator {path} is not a SAN checkpoint: expected model, model_args and preprocess, "
                         f"found {have} (an exported model.pt has no decoder; give the training checkpoint)")
    model_args = dict(record["model_args"])
    if model_args.get("texture_size") is None:
        raise InputError(f"generator {path} has no decoder (model_args texture_size is None: a baseline model): "
                         "give a SAN-PG generator or a SAN checkpoint trained with a decoder")
    preprocess = check_preprocess(record["preprocess"], where=f"generator {path}: preprocess")
    state = strip_prefixes(record["model"])
    try:
        model = SAN(**{**model_args, "pretrained": ""})
        model.load_state_dict(state)
    except (TypeError, RuntimeError) as err:
        raise InputError(f"generator {path}: its weights do not build the SAN of its model_args "
                         f"{model_args!r}: {err}") from err
    device = resolve_device(device)
    generator = TextureGenerator(model, preprocess, generator_digest(state, model_args, preprocess), device, path)
    log.info("generator %s: P=%d, input %dx%d, on %s (digest %s)", path, generator.texture_size,
             *generator.input_size, device, generator.digest[:16])
    return generator
