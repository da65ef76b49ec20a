"""Torch CPU threads for the evaluation's many small array operations."""

import contextlib

import torch


@contextlib.contextmanager
def single_threaded(device):
    """One torch thread on CPU inside the block (no-op elsewhere).

    The evaluation's flat operations work on arrays of thousands to a few million elements, where
    torch's second thread only costs: on a loaded 2-core machine they ran up to 30x slower with two.
    Matrix products stay outside these blocks.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
