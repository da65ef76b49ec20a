"""Shared pieces of the commands: parameters from the context, user errors as clean exits."""

import functools
import re

import click

from densepose_textures.errors import InputError

from ..params import load_params


class UsageFailure(click.ClickException):
    """A user error: printed without a traceback, exit status 2."""

    exit_code = 2


def fail(message):
    raise UsageFailure(message)


def params_from_context(ctx=None):
    """The parameters in force: defaults < params.yaml (or ``sanreid --params FILE``)."""
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    params_file = (root.obj or {}).get("params_file")
    try:
        return load_params(params_file)
    except InputError as err:
        fail(str(err))


WORKER_ERROR = re.compile(r"Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback")


def worker_error(err):
    """``(type name, message)`` of the exception a DataLoader worker raised, or None for any other exception.

    torch raises it again in the main process with the worker's traceback as its message; the worker's
    exception is what follows the traceback's last indented line (``module.Type: message``).
    """
    text = str(err)
    if not WORKER_ERROR.match(text):
        return None
    lines = text.rstrip().splitlines()
    last_frame = max(i for i, line in enumerate(lines) if line.startswith(" "))
    kind, _, message = " ".join(lines[last_frame + 1:]).partition(": ")
    return kind.rsplit(".", 1)[-1], message


def user_errors(func):
    """Turn :class:`InputError` raised anywhere below a command into a clean exit 2, and any error raised in a
    DataLoader worker into one line (exit 2 for an InputError, else 1) instead of the worker's traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as err:
            worker = worker_error(err)
            if isinstance(err, InputError):
                fail(worker[1] if worker else str(err))
            if worker is None:
                raise
            kind, message = worker
            raise click.ClickException(f"{kind} in a DataLoader worker: {message} "
                                       "(with 0 workers the traceback shows where)") from None

    return wrapper
