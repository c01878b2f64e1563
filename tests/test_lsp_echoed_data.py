"""What a client echoes back (code action data, fix-up arguments) is checked, never trusted: offsets
inside the document it names, the version and the digest of the text it was made on (issue 16)."""

from __future__ import annotations

import copy

import pytest
from core_server import close_doc, code_actions, core_server, open_doc
from lsp_fakes import ScriptedBackend
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from sdls.lsp import handlers
from sdls.lsp.convert import FixArguments, to_json
from sdls_model.jobs import EditJob, TextEdit

URI = "file:///w/broken.py"
TEXT = "def f(x):\n    retrun x\n\ndef g(y):\n    return y\n"


def upper(job: EditJob) -> list[TextEdit]:
    start, end = job.start, job.end
    return [TextEdit(start, end, job.text[start:end].upper())]


@pytest.fixture
async def served():
    backend = ScriptedBackend(edits=upper)
    server = core_server(backend, settings={"actions": {"validate": False}})
    open_doc(server, URI, TEXT)
    actions = await code_actions(server, URI, (0, 0), (1, 5))
    assert [a.kind for a in actions] == ["quickfix", "refactor.rewrite", "refactor.rewrite"]
    return server, backend, {a.title.split(":")[0].split(" ")[0]: a for a in actions}


async def resolve(server, action: lsp.CodeAction) -> lsp.CodeAction:
    return await handlers.code_action_resolve(server, action)


async def refused(server, action) -> JsonRpcException:
    with pytest.raises(JsonRpcException) as err:
        await resolve(server, action)
    return err.value


def forged(original: lsp.CodeAction, **offer) -> lsp.CodeAction:
    action = copy.deepcopy(original)
    action.data["offer"].update(offer)
    return action


async def test_an_honest_action_resolves(served):
    server, backend, actions = served
    done = await resolve(server, copy.deepcopy(actions["Rewrite"]))
    assert done.edit is not None and len(backend.jobs) == 1


@pytest.mark.parametrize(
    "offer",
    [
        {"start": -100, "end": 10**9},
        {"start": 10, "end": 10**9},
        {"start": 30, "end": 5},
        {"action": "teleport"},
        {"action": "fix", "kind": "quickfix", "issue": None},
    ],
)
async def test_forged_offsets_or_actions_are_refused_before_any_job(served, offer):
    server, backend, actions = served
    err = await refused(server, forged(actions["Rewrite"], **offer))
    assert err.code == lsp.ErrorCodes.InvalidParams and "not one sdls made" in err.message
    assert backend.jobs == []  # nothing reached the model


async def test_a_fix_for_an_error_the_document_does_not_have_is_refused(served):
    server, backend, actions = served
    fix = actions["Fix"]
    issue = {**fix.data["offer"]["issue"], "start": 40, "end": 44}
    err = await refused(server, forged(fix, start=40, end=44, issue=issue))
    assert err.code == lsp.ErrorCodes.InvalidParams and "not in the document" in err.message
    assert backend.jobs == []


async def test_a_reopened_document_with_the_same_version_but_other_text_refuses_old_actions(served):
    server, backend, actions = served
    close_doc(server, URI)
    open_doc(server, URI, TEXT.replace("retrun", "return"), version=1)
    err = await refused(server, copy.deepcopy(actions["Rewrite"]))
    assert err.code == lsp.LSPErrorCodes.ContentModified and "not the one" in err.message
    assert backend.jobs == []


async def test_a_fix_up_is_applied_only_to_the_text_it_was_made_for(served):
    server, _, _ = served
    doc = server.docs.get(URI)
    edit = lsp.TextEdit(lsp.Range(lsp.Position(1, 4), lsp.Position(1, 10)), "return")
    applied = []

    async def apply_edit(params):
        applied.append(params)
        return lsp.ApplyWorkspaceEditResult(applied=True)

    server.workspace_apply_edit_async = apply_edit
    stale = to_json(FixArguments(URI, 1, "0" * 32, [edit]))
    with pytest.raises(JsonRpcException) as err:
        await handlers.apply_fix(server, stale)
    assert err.value.code == lsp.LSPErrorCodes.ContentModified
    outside = lsp.TextEdit(lsp.Range(lsp.Position(1, 4), lsp.Position(900, 0)), "x")
    with pytest.raises(JsonRpcException) as err:
        await handlers.apply_fix(server, to_json(FixArguments(URI, 1, doc.digest, [outside])))
    assert err.value.code == lsp.ErrorCodes.InvalidParams
    assert applied == []
    assert await handlers.apply_fix(server, to_json(FixArguments(URI, 1, doc.digest, [edit]))) == {"applied": True}
