import pytest
import torch

from densepose_textures.device import resolve_device
from densepose_textures.errors import InputError


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


@pytest.mark.parametrize("setting", ["auto", "", None, "cpu", " CPU "])
def test_auto_and_empty_mean_the_cpu_without_cuda(no_cuda, setting):
    assert resolve_device(setting, environ={}) == torch.device("cpu")


@pytest.mark.parametrize("setting", ["cuda", "cuda:1"])
def test_cuda_asked_but_absent_is_a_clear_error(no_cuda, setting):
    with pytest.raises(InputError, match=f"device '{setting}' asked for but CUDA is not available.*--device cpu"):
        resolve_device(setting, environ={})


@pytest.mark.parametrize("setting", ["gpu", "mps", "cuda:x"])
def test_unknown_names_are_refused(no_cuda, setting):
    with pytest.raises(InputError, match="unknown device .*auto, cpu, cuda or cuda:N"):
        resolve_device(setting, environ={})


def test_cuda_means_this_process_gpu(two_gpus):
    assert resolve_device("auto", environ={}) == torch.device("cuda", 0)
    assert resolve_device("", environ={}) == torch.device("cuda", 0)
    assert resolve_device("cuda", environ={"LOCAL_RANK": "1"}) == torch.device("cuda", 1)  # under torchrun
    assert resolve_device("auto", environ={"LOCAL_RANK": "1"}) == torch.device("cuda", 1)
    assert resolve_device("cuda:3", environ={"LOCAL_RANK": "1"}) == torch.device("cuda", 3)  # as given
    assert resolve_device("cpu", environ={"LOCAL_RANK": "1"}) == torch.device("cpu")
