"""``python -m pipeline``: the ``sanreid`` command (handy under ``torchrun``)."""

from .cli import main

main()
