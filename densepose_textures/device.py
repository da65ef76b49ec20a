"""The one device resolver of every stage (IUV, training, evaluation)."""

import os

from .errors import InputError


def resolve_device(device="auto", environ=os.environ):
    """The ``torch.device`` a setting names: ``auto`` (or empty) is CUDA when available, else the
    CPU; ``cpu``; ``cuda``; ``cuda:N``. A CUDA device without an index is this process's GPU:
    ``LOCAL_RANK`` under torchrun, else the current one. :class:`InputError` when CUDA is asked
    for but not available, or the name is none of these.
    """
    import torch

    name = str(device or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if resolved.type not in ("cpu", "cuda"):
        raise InputError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    if resolved.type == "cpu":
        return resolved
    if not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for but CUDA is not available here: use --device cpu or auto")
    if resolved.index is None:
        local_rank = environ.get("LOCAL_RANK")
        resolved = torch.device("cuda", int(local_rank) if local_rank else torch.cuda.current_device())
    return resolved
