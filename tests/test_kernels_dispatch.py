"""The SDLS_KERNELS switch and its in-process override."""

import pytest
from kernel_checks import DEVICE

from sdls_kernels import dispatch


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    monkeypatch.delenv("SDLS_KERNELS", raising=False)
    dispatch.set_kernels(None)
    yield
    dispatch.set_kernels(None)


@pytest.mark.parametrize(
    "env, device, expected",
    [
        (None, "cpu", False),
        ("auto", "cpu", False),
        ("auto", "cuda", True),
        ("triton", "cpu", True),
        ("TRITON", "cuda", True),
        ("torch", "cuda", False),
        ("torch", "cpu", False),
    ],
)
def test_env_switch(monkeypatch, env, device, expected):
    if env is not None:
        monkeypatch.setenv("SDLS_KERNELS", env)
    assert dispatch.use_kernels(device) is expected


def test_force_overrides_env_and_restores(monkeypatch):
    monkeypatch.setenv("SDLS_KERNELS", "triton")
    with dispatch.force_kernels("torch"):
        assert not dispatch.use_kernels("cuda")
        with dispatch.force_kernels("triton"):
            assert dispatch.use_kernels("cpu")
        assert not dispatch.use_kernels("cuda")
    assert dispatch.use_kernels("cpu")


def test_bad_modes_are_clear_errors(monkeypatch):
    monkeypatch.setenv("SDLS_KERNELS", "cuda")
    with pytest.raises(ValueError, match="SDLS_KERNELS='cuda'"):
        dispatch.use_kernels("cpu")
    with pytest.raises(ValueError, match="not one of"):
        dispatch.set_kernels("fast")


def test_kernel_for_refuses_a_device_triton_cannot_run_on():
    def kernel():
        pass

    with pytest.raises(RuntimeError, match="device type 'mps'"):
        dispatch.kernel_for(kernel, "mps")
    other = "cpu" if DEVICE.type == "cuda" else "cuda"
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        dispatch.kernel_for(kernel, other)
