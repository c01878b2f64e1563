"""Document versions only grow (issue 16): a didChange whose version is not greater than the
document's marks it out of sync, as a change that does not fit does, and the user is told once."""

from __future__ import annotations

import copy

import pytest
from core_server import change_doc, close_doc, code_actions, core_server, open_doc
from lsp_fakes import ScriptedBackend
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from sdls.lsp import handlers
from sdls.lsp.documents import DocumentStore, UnknownDocument, VersionNotIncreasing

URI = "file:///w/versions.py"
TEXT = "def f(x):\n    return x\n"


def told(server) -> list[str]:
    """Capture what the server shows the user (window/showMessage)."""
    shown: list[str] = []
    server.window_show_message = lambda params: shown.append(params.message)
    return shown


@pytest.mark.parametrize("version", [1, 2, 0, -5])
def test_a_version_that_does_not_grow_marks_the_document_out_of_sync(version):
    store = DocumentStore()
    store.open(URI, "python", 2, TEXT)
    with pytest.raises(VersionNotIncreasing, match=f"version {version} does not follow version 2"):
        store.change(URI, version, [((0, 0, 0, 0), "#")])
    with pytest.raises(UnknownDocument, match="out of sync"):
        store.get(URI)
    assert store.open(URI, "python", 1, TEXT).version == 1  # reopening (any version) resyncs


def test_a_full_text_change_with_an_old_version_is_refused_too():
    store = DocumentStore()
    store.open(URI, "python", 3, TEXT)
    with pytest.raises(VersionNotIncreasing):
        store.change(URI, 3, [(None, "x = 1\n")])
    with pytest.raises(UnknownDocument, match="out of sync"):
        store.get(URI)


async def test_1_2_1_an_action_made_at_the_first_version_1_does_not_resolve_against_the_new_text():
    backend = ScriptedBackend(edits=lambda job: [])
    server = core_server(backend, settings={"actions": {"validate": False}})
    shown = told(server)
    open_doc(server, URI, TEXT, version=1)
    [rewrite] = [a for a in await code_actions(server, URI, (1, 4), (1, 12)) if a.title == "Rewrite selection"]
    change_doc(server, URI, 2, (1, 11, 1, 12), "y")
    change_doc(server, URI, 1, (1, 11, 1, 12), "z")  # back to version 1, other text
    with pytest.raises(JsonRpcException) as err:
        await handlers.code_action_resolve(server, copy.deepcopy(rewrite))
    assert err.value.code == lsp.ErrorCodes.InvalidParams and "out of sync" in err.value.message
    assert "version 1 does not follow version 2" in err.value.message
    assert backend.jobs == []  # nothing reached the model
    change_doc(server, URI, 3, (0, 0, 0, 0), "#")  # further changes of the desynced document: not told again
    change_doc(server, URI, 4, (0, 0, 0, 0), "#")
    assert len(shown) == 1 and "out of sync" in shown[0] and "reopen" in shown[0]
    with pytest.raises(JsonRpcException) as err:
        await code_actions(server, URI, (0, 0), (0, 1))
    assert err.value.code == lsp.ErrorCodes.InvalidParams


async def test_reopening_resyncs_and_a_new_desync_is_told_again():
    server = core_server(ScriptedBackend())
    shown = told(server)
    open_doc(server, URI, TEXT, version=5)
    change_doc(server, URI, 5, (0, 0, 0, 0), "#")
    close_doc(server, URI)
    open_doc(server, URI, TEXT, version=1)
    change_doc(server, URI, 2, (0, 0, 0, 0), "#")  # a growing version is applied
    assert server.docs.get(URI).text == "#" + TEXT
    change_doc(server, URI, 2, (0, 0, 0, 0), "#")
    assert len(shown) == 2
