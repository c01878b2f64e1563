"""Settings a repository can send (issue 16): a running server refuses a change of the settings that
say what is read or run and where code goes (STARTUP_ONLY: model.path, model.url, model.token,
model.tokenFile, model.id, worker.socket), whether pushed with didChangeConfiguration or answered to
workspace/configuration, and tells the user once; the rest of the change applies. Numeric settings
keep their ranges on every path."""

from __future__ import annotations

import pytest
from core_server import core_server
from lsprotocol import types as lsp

from sdls.lsp import handlers
from sdls.lsp.settings import STARTUP_ONLY, Settings

CHANGES = {
    "model.path": {"model": {"path": "/repo/evil-checkpoint"}},
    "model.url": {"model": {"url": "http://attacker.example:8012"}},
    "model.token": {"model": {"token": "stolen"}},
    "model.token_file": {"model": {"tokenFile": "/home/user/.ssh/id_ed25519"}},
    "model.id": {"model": {"id": "other"}},
    "worker.socket": {"worker": {"socket": "/home/user/notes.txt"}},
}


def started(options: dict | None = None):
    server = core_server()
    shown: list[lsp.ShowMessageParams] = []
    server.window_show_message = shown.append
    server.apply_settings(options, base=server.defaults)  # what initialize does with initializationOptions
    return server, shown


async def change(server, settings: dict) -> None:
    await handlers.did_change_configuration(server, lsp.DidChangeConfigurationParams(settings=settings))


def test_every_startup_only_setting_has_a_case():
    assert sorted(CHANGES) == sorted(STARTUP_ONLY)


@pytest.mark.parametrize("path", sorted(CHANGES))
async def test_a_change_of_a_startup_only_setting_is_refused_and_told_once(path):
    server, shown = started({"model": {"path": "/mine"}, "worker": {"socket": "/run/me/w.sock"}})
    before = server.settings
    pushed = {**CHANGES[path], "completion": {"maxTokens": 7}}
    await change(server, pushed)
    await change(server, pushed)  # VS Code pushes the whole section on every change
    assert server.settings.completion.max_tokens == 7  # the rest of the change applies
    assert server.settings.model == before.model and server.settings.worker == before.worker
    assert len(shown) == 1 and shown[0].type == lsp.MessageType.Warning
    assert "taken only when the server starts" in shown[0].message and "refused" in shown[0].message


async def test_the_values_given_at_start_up_are_kept_and_may_be_pushed_again_unchanged():
    options = {"model": {"path": "/mine", "url": None}, "worker": {"socket": "/run/me/w.sock"}}
    server, shown = started(options)
    assert server.settings.model.path == "/mine" and server.settings.worker.socket == "/run/me/w.sock"
    await change(server, {**options, "hover": {"enabled": False}})
    assert server.settings.hover.enabled is False and shown == []


async def test_an_answer_to_workspace_configuration_is_held_to_the_same_rule():
    server, shown = started()
    server.protocol.client_capabilities = lsp.ClientCapabilities(
        workspace=lsp.WorkspaceClientCapabilities(configuration=True)
    )

    async def answer(params):
        return [{"worker": {"socket": "/home/user/notes.txt"}, "completion": {"maxTokens": 9}}]

    server.workspace_configuration_async = answer
    await handlers.did_change_configuration(server, lsp.DidChangeConfigurationParams(settings=None))
    assert server.settings.worker.socket is None and server.settings.completion.max_tokens == 9
    assert len(shown) == 1 and "worker.socket" in shown[0].message


async def test_resource_settings_cannot_be_raised_past_their_range_by_a_change():
    server, _ = started()
    logged: list[str] = []
    server.window_log_message = lambda params: logged.append(params.message)
    await change(server, {"completion": {"blockSize": 100_000, "maxTokens": 10**6, "cacheSize": 10**9}})
    assert server.settings.completion == Settings().completion
    assert sum("must be an integer in [" in m and "kept" in m for m in logged) == 3, logged
