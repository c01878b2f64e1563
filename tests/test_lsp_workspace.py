"""The workspace after initialize: folders added and removed, settings pulled with workspace/configuration
(a real server over stdio, driven by pytest-lsp; no model is loaded)."""

from __future__ import annotations

import pytest
from lsp_harness import sdls_session, stats
from lsprotocol import types as lsp
from waiting import eventually_async

from sdls.lsp.language_server import create_server


async def wait_stats(client, ok):
    """The server's stats once `ok(stats)` holds."""

    async def check():
        got = await stats(client)
        return got if ok(got) else None

    return await eventually_async(check, "the server's stats to show the change", interval=0.05)


@pytest.fixture
def two_folders(tmp_path):
    app, lib = tmp_path / "app", tmp_path / "lib"
    app.mkdir()
    lib.mkdir()
    (lib / "shapes.py").write_text("def area(w, h):\n    return w * h\n")
    return app, lib


@pytest.mark.asyncio
async def test_added_and_removed_workspace_folders_reach_the_index(two_folders):
    app, lib = two_folders
    async with sdls_session(None, root=app) as client:
        assert (await stats(client)).workspace_roots == [str(app)]
        client.workspace_did_change_workspace_folders(
            lsp.DidChangeWorkspaceFoldersParams(
                lsp.WorkspaceFoldersChangeEvent(added=[lsp.WorkspaceFolder(lib.as_uri(), "lib")], removed=[])
            )
        )
        got = await wait_stats(client, lambda s: len(s.workspace_roots) == 2)
        assert sorted(got.workspace_roots) == sorted([str(app), str(lib)])
        client.workspace_did_change_workspace_folders(
            lsp.DidChangeWorkspaceFoldersParams(
                lsp.WorkspaceFoldersChangeEvent(added=[], removed=[lsp.WorkspaceFolder(app.as_uri(), "app")])
            )
        )
        got = await wait_stats(client, lambda s: s.workspace_roots == [str(lib)])
        assert got.workspace_roots == [str(lib)]


def test_a_new_folder_feeds_cross_file_context(two_folders):
    app, lib = two_folders
    server = create_server()
    server.set_roots([app])
    doc = server.docs.open((app / "main.py").as_uri(), "python", 1, "import shapes\nx = shapes.\n")
    try:
        assert server.cross_file_header(doc) == ""
        server.set_roots([app, lib])
        assert server.cross_file_header(doc) == "# from shapes.py:\ndef area(w, h): ...\n\n"
        server.set_roots([app])
        assert server.cross_file_header(doc) == ""
    finally:
        server.index.stop()


@pytest.mark.asyncio
async def test_settings_are_pulled_after_initialize_and_on_an_empty_change(tmp_path):
    config = {"completion": {"maxTokens": 7}, "model": {"dtype": "float32"}}
    async with sdls_session(None, root=tmp_path, configuration=config) as client:
        got = await wait_stats(client, lambda s: s.settings.completion.max_tokens == 7)
        assert got.settings.completion.max_tokens == 7 and got.settings.model.dtype == "float32"
        # The editor's settings changed; it says so without values: the server asks again.
        client.set_configuration({"completion": {"maxTokens": 9}}, section="sdls")
        client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))
        got = await wait_stats(client, lambda s: s.settings.completion.max_tokens == 9)
        assert got.settings.completion.max_tokens == 9 and got.settings.model.dtype == "float32"


@pytest.mark.asyncio
async def test_no_pull_without_the_capability_and_pushed_settings_apply(tmp_path):
    async with sdls_session(None, root=tmp_path, configuration={"completion": {"maxTokens": 7}}, pull=False) as client:
        client.workspace_did_change_configuration(
            lsp.DidChangeConfigurationParams(settings={"sdls": {"completion": {"threshold": 0.5}}})
        )
        got = await wait_stats(client, lambda s: s.settings.completion.threshold == 0.5)
        assert got.settings.completion.threshold == 0.5
        assert got.settings.completion.max_tokens == 32  # the client's section was never asked for
