"""The ``sanreid`` command line, stage entry points, parameters and the dataset registry."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("san-reid")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
