"""Training checkpoints: everything needed to continue a run exactly, loadable with ``weights_only=True``.

A checkpoint is a dict: ``model`` (SAN state dict), ``model_args``, ``preprocess``
(``height``, ``width``, ``mean``, ``std``), ``optim`` (all optimisers, lr schedule,
AMP scaler), ``sampler``, ``rng`` (torch, CUDA, numpy and Python generator states as
tensors and lists), ``epoch`` (completed epochs) and ``run`` (the run's settings,
checked on resume), ``world_size``. Files are written atomically (``densepose_textures.storage``), so a
kill never leaves a half-written ``last.pt``.
"""

import logging
import random
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from densepose_textures.errors import InputError
from densepose_textures.storage import AtomicWrite

log = logging.getLogger(__name__)

LAST = "last.pt"


def rng_state():
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP's and torch.compile's key prefixes


def bare_model(model):
    """The module under DDP and torch.compile wrappers (its state dict keys carry no prefixes)."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def strip_prefixes(state, prefixes=WRAPPER_PREFIXES):
    """A copy of state dict ``state`` whose keys lose ``prefixes``, nested in any order."""
    state = OrderedDict(state)
    for _ in prefixes:  # one pass per prefix: "module._orig_mod." and "_orig_mod.module." alike
        for prefix in prefixes:
            consume_prefix_in_state_dict_if_present(state, prefix)
    return state


def save_checkpoint(path, *, model, model_args, preprocess, optim, sampler, epoch, run, world_size=1):
    record = {
        "model": {k: v.detach().cpu() for k, v in bare_model(model).state_dict().items()},
        "model_args": dict(model_args),
        "preprocess": dict(preprocess),
        "optim": optim.state_dict(),
        "sampler": sampler.state_dict(),
        "rng": rng_state(),
        "epoch": int(epoch),
        "run": dict(run),
        "world_size": int(world_size),
    }
    with AtomicWrite(path) as tmp:
        torch.save(record, tmp)
    log.info("saved checkpoint %s (epoch %d)", path, epoch)
    return Path(path)


def load_checkpoint(path):
    """The checkpoint dict of ``path`` (tensors on the CPU); InputError naming the file if unreadable."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"checkpoint {path} not found") from None
    except Exception as err:  # truncated or foreign file: name it
        raise InputError(f"cannot read checkpoint {path} ({err}): delete it to start afresh") from err


def check_resumable(record, path, *, model_args, run):
    """InputError when the checkpoint at ``path`` was made with other settings than this run's."""
    for name, mine, theirs in (("model", model_args, record["model_args"]), ("run", run, record["run"])):
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if diff:
            shown = ", ".join(f"{k}: {theirs.get(k)!r} -> {mine.get(k)!r}" for k in diff)
            raise InputError(f"cannot resume {path}: it was trained with other {name} settings ({shown}); "
                             "resume with the same settings, or drop --resume (or choose another --out) to start afresh")


def restore(record, *, model, optim, sampler):
    """Load a checkpoint's state into the run; returns the number of completed epochs."""
    bare_model(model).load_state_dict(record["model"])
    optim.load_state_dict(record["optim"])
    sampler.load_state_dict(record["sampler"])
    set_rng_state(record["rng"])
    return int(record["epoch"])
