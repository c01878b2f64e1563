"""The service's layering (ARCHITECTURE.md): only sdls/ knows HTTP; the ASGI stack only sdls/service;
Ray only its entry point; the language server's remote backend loads neither torch nor the server stack."""

from __future__ import annotations

import subprocess
import sys

from test_architecture import ROOT, imports_of, offenders

HTTP = ("starlette", "uvicorn", "fastapi", "httpx", "ray", "openai")


def test_only_sdls_knows_http():
    assert offenders("model", HTTP) == [] and offenders("kernels", HTTP) == []


def test_the_asgi_stack_and_ray_stay_in_their_modules():
    server = [o for o in offenders("sdls", ("starlette", "uvicorn")) if not o.startswith("sdls/service/")]
    assert server == []
    ray = [p for p, names in imports_of("sdls").items() if "ray" in names]
    assert sorted(ray) == ["sdls/service/ray_app.py"]
    assert [
        p for p, names in imports_of("sdls").items() if "httpx" in names and not p.startswith("sdls/service/")
    ] == []


def test_the_remote_backend_imports_neither_torch_nor_the_server_stack():
    probe = (
        "import sys; from sdls.lsp.backends import service_backend; import sdls.service.client; "
        "print(sorted(m for m in ('torch', 'starlette', 'uvicorn', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
