"""Shared pieces of the commands: parameters from the context, user errors as clean exits."""

import functools

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


def user_errors(func):
    """Turn :class:`InputError` raised anywhere below a command into a clean exit 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as err:
            fail(str(err))

    return wrapper
