"""Which dtype the engine computes in: names, "auto" per device, clear errors."""

from __future__ import annotations

import pytest
import torch

from sdls.lsp.settings import settings_from
from sdls_model import precision
from sdls_model.precision import resolve_dtype


def test_names_and_dtypes_resolve():
    assert resolve_dtype("float32", "cpu") is torch.float32
    assert resolve_dtype("bfloat16", "cpu") is torch.bfloat16
    assert resolve_dtype(torch.float16, "cpu") is torch.float16


def test_auto_is_bfloat16_on_gpus_and_on_cpus_only_with_native_bfloat16(monkeypatch):
    assert resolve_dtype("auto", "cuda:0") is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype("auto", "cpu") is torch.bfloat16
    assert resolve_dtype(None, "cpu") is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_dtype("auto", "cpu") is torch.float32


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown dtype 'fp8'.*auto, float32, bfloat16, float16"):
        resolve_dtype("fp8", "cpu")


def test_settings_refuse_an_unknown_dtype_and_keep_the_default():
    settings, warnings = settings_from({"model": {"dtype": "fp8"}})
    assert settings.model.dtype == "auto"
    assert warnings == ["model.dtype: expected one of auto, float32, bfloat16, float16, got 'fp8'; kept 'auto'"]
    settings, warnings = settings_from({"model": {"dtype": "float32"}})
    assert settings.model.dtype == "float32" and not warnings


def test_worker_socket_depends_on_the_dtype():
    from sdls.worker.paths import worker_key

    assert worker_key(None, "cpu", 1024, "float32") != worker_key(None, "cpu", 1024, "bfloat16")


def test_the_dtype_setting_reaches_the_worker_and_the_in_process_engine(tmp_path):
    from fixtures_checkpoints import write_sdls

    from sdls.lsp.backends import worker_args
    from sdls.worker.inprocess import InProcessBackend

    settings, _ = settings_from({"model": {"dtype": "bfloat16", "path": str(tmp_path / "m")}})
    args = worker_args(settings)
    assert args[args.index("--dtype") + 1] == "bfloat16"
    write_sdls(tmp_path / "m")
    backend = InProcessBackend.from_dir(str(tmp_path / "m"), "cpu", 256, "bfloat16")
    try:
        assert backend.info["model"]["dtype"] == "bfloat16"
    finally:
        backend.scheduler.stop()
